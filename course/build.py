"""Build the course's notebooks from the lesson scripts in course/lessons/.

    python -m course.build                   every lesson: student notebook, executed solution
    python -m course.build 03 10_porting     only these lessons (a number or a name)
    python -m course.build --no-execute      the notebooks' cells only (solutions unexecuted)
    python -m course.build --check           exit 1 if a committed notebook is stale

A lesson is a jupytext "percent" script (course/lessons/NN_slug.py). From it come
    course/NN_slug.ipynb            the student notebook: exercises blank, no outputs
    course/solutions/NN_slug.ipynb  the solution notebook, executed (kernel: this Python's
                                    ipykernel; working directory: the repository root)

An exercise is a code cell with one or more solution blocks; a `#: ` line after a block is
what the student gets instead (course/README.md, "Writing a lesson"):

    ### BEGIN SOLUTION
    d_loss = ...
    ### END SOLUTION
    #: d_loss = None   # your code here

The cell right after an exercise is its check, tagged `check` (`# %% tags=["check"]`).
Cells tagged `slow` are demonstrations no exercise needs. The notebooks are written
deterministically: fixed cell ids and metadata, no execution timings, so that a rebuild
changes the files only where a source or an output changed.

A solution notebook also records what it read from results/ (every path under results/ that
its script names, a folder meaning every file in it, `*` a glob): the SHA-256 of each file,
in the notebook's metadata. --check calls the notebook stale when one of them changed, so a
lesson that shows a committed run is re-executed when the run is.
"""
from __future__ import annotations

import hashlib
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from benchmarks import machine
from common.config import ArgumentParser, UserError, run_main

COURSE = Path(__file__).resolve().parent
ROOT = COURSE.parent
LESSONS = COURSE / "lessons"
SOLUTIONS = COURSE / "solutions"
KERNEL = "python3"              # ipykernel's own: started with this Python (sys.executable)

SETUP = ('import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") '
         'if os.path.isfile(f"{p}/course/start.py"))))\n'
         'import course.start  # noqa: E402  (the repository root is importable and the working directory)')
BEGIN, END, BLANK = "### BEGIN SOLUTION", "### END SOLUTION", "#:"
TAGS = {"check", "slow"}
RESULTS_PATH = re.compile(r"results/[\w.*\-/]*")    # a path under results/ in a lesson
METADATA = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                           "name": KERNEL},
            "language_info": {"name": "python"}}


def rel(path: Path) -> Path:
    """A path as the messages show it: from the repository root where it is inside."""
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def lesson_paths() -> list[Path]:
    return sorted(LESSONS.glob("[0-9][0-9]_*.py"))


def student_path(lesson: Path) -> Path:
    return COURSE / f"{lesson.stem}.ipynb"


def solution_path(lesson: Path) -> Path:
    return SOLUTIONS / f"{lesson.stem}.ipynb"


def inputs(lesson: Path) -> dict[str, str]:
    """{path: SHA-256} of every file under results/ that the lesson's script names (a named
    folder: every file in it; `*`: a glob), for the staleness check."""
    files = set()
    for name in RESULTS_PATH.findall(lesson.read_text(encoding="utf-8")):
        name = name.rstrip("./-")
        for hit in (sorted(ROOT.glob(name)) if "*" in name else [ROOT / name]):
            if hit.is_dir():
                files |= {f for f in hit.rglob("*") if f.is_file() and "__pycache__" not in f.parts}
            elif hit.is_file():
                files.add(hit)
    return {rel(f).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(files)}


def record_inputs(nb: nbformat.NotebookNode, lesson: Path) -> nbformat.NotebookNode:
    """An executed solution notebook, with what it read from results/ in its metadata."""
    nb.metadata["course"] = {"inputs": inputs(lesson)}
    return nb


def split(source: str, where: str) -> tuple[str, str, int]:
    """One code cell's (solution source, student source, number of solution blocks)."""
    sol, stu, blocks, inside = [], [], 0, False
    for n, line in enumerate(source.split("\n"), 1):
        s = line.strip()
        if s == BEGIN:
            if inside:
                raise UserError(f"{where}, line {n} of the cell: {BEGIN} inside a solution block")
            inside, blocks = True, blocks + 1
            sol.append(line)
        elif s == END:
            if not inside:
                raise UserError(f"{where}, line {n} of the cell: {END} without {BEGIN}")
            inside = False
            sol.append(line)
        elif s.startswith(BLANK) and not inside:
            indent = line[:len(line) - len(line.lstrip())]
            rest = s[len(BLANK):]
            stu.append(indent + (rest[1:] if rest.startswith(" ") else rest))
        else:
            sol.append(line)
            if not inside:
                stu.append(line)
    if inside:
        raise UserError(f"{where}: {BEGIN} without {END}")
    if blocks and not any(l.strip().startswith(BLANK) for l in source.split("\n")):
        raise UserError(f"{where}: an exercise needs a `{BLANK} ...` line that gives the "
                        "student a blank value (None, zeros) for the check to reject")
    return "\n".join(sol), "\n".join(stu), blocks


def notebooks(lesson: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """The (student, solution) notebooks of one lesson script, unexecuted."""
    src = jupytext.read(lesson, fmt="py:percent")
    student, solution = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    student.metadata = nbformat.from_dict(METADATA)
    solution.metadata = nbformat.from_dict(METADATA)
    first_code, prev_exercise = True, False
    for i, cell in enumerate(src.cells):
        where = f"{rel(lesson)}, cell {i + 1}"
        tags = list(cell.metadata.get("tags", []))
        unknown = set(tags) - TAGS
        if unknown:
            raise UserError(f"{where}: unknown tag(s) {sorted(unknown)}; known: {sorted(TAGS)}")
        source = cell.source.strip("\n")
        if cell.cell_type == "markdown":
            make = nbformat.v4.new_markdown_cell
            sol_src = stu_src = source
            blocks = 0
        elif cell.cell_type == "code":
            make = nbformat.v4.new_code_cell
            sol_src, stu_src, blocks = split(source, where)
            if first_code and source != SETUP:
                raise UserError(f"{where}: the first code cell must be the setup cell, exactly:\n"
                                f"{SETUP}")
            first_code = False
        else:
            raise UserError(f"{where}: a {cell.cell_type} cell; lessons hold code and markdown")
        if prev_exercise and "check" not in tags:
            raise UserError(f"{where}: the cell after an exercise must be its check "
                            '(`# %% tags=["check"]`)')
        if "check" in tags and not (cell.cell_type == "code" and "check." in source):
            raise UserError(f"{where}: a check cell must call course.check (check.close(...))")
        prev_exercise = blocks > 0
        n = len(student.cells)
        for nb, text in ((student, stu_src), (solution, sol_src)):
            c = make(text)
            c.id = f"cell{n:03d}"
            c.metadata = nbformat.from_dict({"tags": tags} if tags else {})
            nb.cells.append(c)
    if prev_exercise:
        raise UserError(f"{rel(lesson)}: the last exercise has no check cell after it")
    return student, solution


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Only what the sources and outputs determine: fixed notebook metadata, cell metadata
    reduced to tags, no timings."""
    nb.metadata = nbformat.from_dict(METADATA)
    for c in nb.cells:
        c.metadata = nbformat.from_dict({"tags": c.metadata["tags"]} if c.metadata.get("tags") else {})
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600, allow_errors: bool = False,
            skip_tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel, in the repository root. Cells with a
    tag in skip_tags are dropped first."""
    if skip_tags:
        nb = nbformat.from_dict(nb)
        nb.cells = [c for c in nb.cells if not set(c.metadata.get("tags", [])) & set(skip_tags)]
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=allow_errors,
                            record_timing=False, resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    return clean(nb)


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    nbformat.validate(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb, version=4) + "\n", encoding="utf-8")


def cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def has_outputs(nb) -> bool:
    return any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def stale(lesson: Path) -> list[str]:
    """What is out of date for one lesson: [] when its committed notebooks match its script."""
    student, solution = notebooks(lesson)
    problems = []
    for want, path, executed in ((student, student_path(lesson), False),
                                 (solution, solution_path(lesson), True)):
        shown = rel(path)
        if not path.is_file():
            problems.append(f"{shown} is missing")
            continue
        have = nbformat.read(path, as_version=4)
        if cells(have) != cells(want):
            diff = next(i for i, (a, b) in enumerate(zip(cells(have) + [None] * len(want.cells),
                                                          cells(want) + [None] * len(have.cells)))
                        if a != b)
            problems.append(f"{shown} differs from {rel(lesson)} (first at cell {diff + 1})")
        elif executed and not has_outputs(have):
            problems.append(f"{shown} has no outputs: it was never executed")
        elif executed:
            was, now = have.metadata.get("course", {}).get("inputs", {}), inputs(lesson)
            moved = sorted(p for p in set(was) | set(now) if was.get(p) != now.get(p))
            if moved:
                problems.append(f"{shown} was executed with other files from results/ than there "
                                f"are now ({', '.join(moved[:3])}{', ...' if len(moved) > 3 else ''})")
        elif not executed and has_outputs(have):
            problems.append(f"{shown} has outputs: a student notebook is written blank")
    return problems


def select(names: list[str]) -> list[Path]:
    all_lessons = lesson_paths()
    if not names:
        return all_lessons
    chosen = []
    for name in names:
        stem = Path(name).stem
        hits = [p for p in all_lessons if p.stem == stem or p.stem.split("_")[0] == stem]
        if not hits:
            raise UserError(f"no lesson {name!r} in {rel(LESSONS)}/ (there are: "
                            f"{', '.join(p.stem for p in all_lessons) or 'none'})")
        chosen += [p for p in hits if p not in chosen]
    return chosen


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m course.build", description="Build the course's "
                       "student and solution notebooks from course/lessons/*.py.")
    p.add_argument("lessons", nargs="*", metavar="LESSON", help="a number (02) or a name "
                   "(03_one_step); default: every lesson")
    p.add_argument("--no-execute", action="store_true", help="write the solution notebooks "
                   "without running them (fast; --check then calls them stale)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed "
                   "notebook differs from its script or a solution has no outputs")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    a = p.parse_args(argv)
    chosen = select(a.lessons)
    if a.check:
        problems = [msg for lesson in chosen for msg in stale(lesson)]
        for msg in problems:
            print(msg)
        if problems:
            print("rebuild with: python -m course.build")
            return 1
        print(f"{len(chosen)} lessons: notebooks up to date")
        return 0
    failed, took = 0, {}
    load_before = machine.load()
    for lesson in chosen:
        t0 = time.perf_counter()
        student, solution = notebooks(lesson)       # a markup mistake stops here, before writing
        write(student, student_path(lesson))
        if a.no_execute:
            write(solution, solution_path(lesson))
            print(f"{lesson.stem}: written, not executed")
            continue
        try:
            solution = execute(solution, timeout=a.timeout)
        except CellExecutionError as e:
            failed += 1
            print(f"{lesson.stem}: FAILED after {time.perf_counter() - t0:.0f} s; "
                  f"{rel(solution_path(lesson))} left as it was\n{e}", file=sys.stderr)
            continue
        write(record_inputs(solution, lesson), solution_path(lesson))
        took[lesson.stem] = time.perf_counter() - t0
        print(f"{lesson.stem}: executed in {took[lesson.stem]:.0f} s", flush=True)
    if took:
        print(times_table(took, load_before, machine.load()))
    return 1 if failed else 0


def times_table(took: dict[str, float], load_before, load_after) -> str:
    """The lessons' execution times as the syllabus prints them, with the machine and its
    load (a busy machine makes every lesson slower)."""
    fmt = lambda avg: "unknown" if avg is None else f"{avg[0]:.2f}"
    rows = "\n".join(f"| {stem} | {sec:.0f} s |" for stem, sec in took.items())
    return (f"\nexecution times, one fresh kernel each, on {machine.summary()}; load average "
            f"(1 min) {fmt(load_before)} before, {fmt(load_after)} after; "
            f"{time.strftime('%Y-%m-%d')}\n| lesson | time |\n|---|--:|\n{rows}\n"
            f"total {sum(took.values()):.0f} s")


if __name__ == "__main__":
    sys.exit(run_main(main))
