"""The course (course/, issue 15): its notebooks are fresh, every solution runs top to
bottom, and every blank exercise fails its own check, so that no check passes on nothing.

Slow by nature: it executes every lesson in a Jupyter kernel (solutions whole, student
notebooks without the cells tagged `slow`). No network, no browser."""
import re

import nbformat
import pytest

from common.config import UserError
from course import build, check

LESSONS = build.lesson_paths()
IDS = [p.stem for p in LESSONS]
CELL_TIMEOUT = 600        # seconds a cell may take (the slowest, lesson 7's timings, ~3 min loaded)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tags(cell) -> list:
    return list(cell.metadata.get("tags", []))


# ----------------------------------------------------------------------------------------
# (a) the committed notebooks are what the scripts give

def test_there_are_lessons_and_their_notebooks_are_fresh():
    assert len(LESSONS) >= 4, [p.name for p in LESSONS]
    problems = [msg for lesson in LESSONS for msg in build.stale(lesson)]
    assert not problems, "\n".join(problems) + "\nrebuild with: python -m course.build"


# ----------------------------------------------------------------------------------------
# (b) every solution notebook runs top to bottom without an error

@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_solution_runs_top_to_bottom(lesson):
    _, solution = build.notebooks(lesson)
    done = build.execute(solution, timeout=CELL_TIMEOUT)       # CellExecutionError on any error
    assert build.has_outputs(done)
    for cell in done.cells:                  # and every check in it passed, saying so
        if "check" in tags(cell):            # (a prediction's check records it, lesson 5)
            text = "".join(o.get("text", "") for o in cell.outputs)
            assert "correct" in text or "prediction recorded" in text, cell.source


# ----------------------------------------------------------------------------------------
# (c) every blank exercise fails its check, with course.check's AssertionError

@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_every_blank_exercise_fails_its_check(lesson):
    student, _ = build.notebooks(lesson)
    done = build.execute(student, timeout=CELL_TIMEOUT, allow_errors=True, skip_tags=("slow",))
    checks = [c for c in done.cells if "check" in tags(c)]
    assert checks, f"{lesson.name} has no check"
    for cell in checks:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors, f"this check passed on the blank exercise:\n{cell.source}"
        e = errors[-1]
        trace = ANSI.sub("", "\n".join(e.traceback))
        assert e.ename == "AssertionError", f"{e.ename}: {e.evalue}\n{cell.source}"
        assert "course/check.py" in trace, f"an AssertionError not raised by course.check:\n{trace}"
        assert e.evalue, cell.source       # a message that tells the student what is wrong


# ----------------------------------------------------------------------------------------
# (d) course.check passes right answers and rejects wrong ones

def test_close_accepts_numbers_and_arrays_within_the_tolerance(capsys):
    check.close("x", 0.6931472, 0.69314718056)
    check.close("a", [1.0, 2.0, 3.0], (1.0, 2.0, 3.0 + 1e-9))
    check.close("b", [[1, 2], [3, 4]], [[1, 2], [3, 4]], tol=0)
    assert "x: correct" in capsys.readouterr().out


@pytest.mark.parametrize("value, expected, kwargs, message", [
    (None, 1.0, {}, "x is None: fill in the exercise above"),
    (0.7, 0.69314718, {}, "relative error"),
    ([1.0, 2.0], [1.0, 2.0, 3.0], {}, "has shape"),
    ([1.0, float("nan")], [1.0, 2.0], {}, "NaN"),
    ("abc", 1.0, {}, "not a number"),
    (1.0 + 1e-4, 1.0, {"tol": 1e-5}, "> tolerance 1e-05"),
    ([1.0, 2.0, 3.5], [1.0, 2.0, 3.0], {}, "worst at index (2,)"),
])
def test_close_rejects_wrong_values_and_says_why(value, expected, kwargs, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        check.close("x", value, expected, **kwargs)


def test_close_refuses_a_tensor_with_advice():
    torch = pytest.importorskip("torch")
    with pytest.raises(AssertionError, match=r"\.item\(\)"):
        check.close("x", torch.tensor(1.0), 1.0)


def test_equal_and_less():
    check.equal("n", 524800, 524800)
    check.equal("n", 524800.0, 524800)                 # an integral float is that integer
    check.equal("shape", [4, 8], (4, 8))
    check.less("r", 0.5, 1.0)
    for args, message in [(("n", None, 3), "None"), (("n", 3, 4), "is 3, expected 4"),
                          (("shape", (4, 8), (4, 16)), "expected (4, 16)"),
                          (("n", "3", 3), "is str")]:
        with pytest.raises(AssertionError, match=re.escape(message)):
            check.equal(*args)
    with pytest.raises(AssertionError, match="expected less than"):
        check.less("r", 2.0, 1.0)
    with pytest.raises(AssertionError, match="None"):
        check.less("r", None, 1.0)


def test_predict_then_outcome(capsys):
    check.PREDICTIONS.clear()
    with pytest.raises(AssertionError, match="no prediction recorded for lr10"):
        check.outcome("lr10", "worse")                 # the experiment before the prediction
    with pytest.raises(AssertionError, match="None: fill in"):
        check.predict("lr10", None)                    # a blank prediction fails its check
    with pytest.raises(AssertionError, match="predict one of"):
        check.predict("lr10", "much worse", choices=("better", "worse"))
    check.predict("lr10", "worse", choices=("better", "worse"))
    assert check.outcome("lr10", "worse") is True
    assert check.outcome("lr10", "better") is False    # wrong is reported, not raised
    out = capsys.readouterr().out
    assert "prediction recorded ('worse')" in out
    assert "you predicted 'worse'; measured 'better': it does not match" in out


# ----------------------------------------------------------------------------------------
# the markup and --check, on a lesson written here (no kernel started)

LESSON = f'''# %% [markdown]
# # A lesson

# %%
{build.SETUP}

# %%
x = 1
### BEGIN SOLUTION
y = x + 1
### END SOLUTION
#: y = None   # your code here
if True:
    ### BEGIN SOLUTION
    z = 3
    ### END SOLUTION
    #: z = None

# %% tags=["check"]
check.equal("y", y, 2)

# %% tags=["slow"]
print("slow")
'''


@pytest.fixture
def course_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "COURSE", tmp_path)
    monkeypatch.setattr(build, "LESSONS", tmp_path / "lessons")
    monkeypatch.setattr(build, "SOLUTIONS", tmp_path / "solutions")
    (tmp_path / "lessons").mkdir()
    return tmp_path


def write_lesson(course_dir, text, name="01_try.py"):
    path = course_dir / "lessons" / name
    path.write_text(text)
    return path


def test_student_and_solution_cells_follow_the_markup(course_dir):
    student, solution = build.notebooks(write_lesson(course_dir, LESSON))
    assert [c.cell_type for c in student.cells] == ["markdown", "code", "code", "code", "code"]
    assert student.cells[2].source == "x = 1\ny = None   # your code here\nif True:\n    z = None"
    assert solution.cells[2].source == ("x = 1\n### BEGIN SOLUTION\ny = x + 1\n### END SOLUTION\n"
                                        "if True:\n    ### BEGIN SOLUTION\n    z = 3\n    ### END SOLUTION")
    assert tags(student.cells[3]) == ["check"] and tags(solution.cells[4]) == ["slow"]
    assert student.cells[1].source == build.SETUP
    assert len({c.id for c in student.cells}) == len(student.cells)
    again, _ = build.notebooks(course_dir / "lessons" / "01_try.py")
    assert nbformat.writes(again) == nbformat.writes(student)          # deterministic


@pytest.mark.parametrize("change, message", [
    (("### END SOLUTION\n#: y", "#: y"), "inside a solution block"),          # no END
    (('# %% tags=["check"]\n', "# %%\n"), "must be its check"),
    (("#: y = None   # your code here\n", ""), None),                         # still one `#:` (z)
    ((build.SETUP, "import sys"), "setup cell"),
    (('tags=["slow"]', 'tags=["fast"]'), "unknown tag"),
    (('check.equal("y", y, 2)', "print(y)"), "must call course.check"),
])
def test_markup_mistakes_are_one_clear_error(course_dir, change, message):
    path = write_lesson(course_dir, LESSON.replace(*change))
    if message is None:
        build.notebooks(path)
        return
    with pytest.raises(UserError, match=message):
        build.notebooks(path)


def test_an_exercise_without_a_blank_is_refused(course_dir):
    text = LESSON.replace("#: y = None   # your code here\n", "").replace("    #: z = None\n", "")
    with pytest.raises(UserError, match="blank value"):
        build.notebooks(write_lesson(course_dir, text))


def test_check_exits_1_when_a_notebook_is_stale_or_unexecuted(course_dir, capsys):
    lesson = write_lesson(course_dir, LESSON)
    assert build.main(["--check"]) == 1                    # nothing built yet
    assert "is missing" in capsys.readouterr().out
    assert build.main(["--no-execute"]) == 0
    assert build.main(["--check"]) == 1                    # the solution has no outputs
    assert "never executed" in capsys.readouterr().out
    sol = nbformat.read(build.solution_path(lesson), as_version=4)
    sol.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="slow\n")]
    build.write(sol, build.solution_path(lesson))
    assert build.main(["--check"]) == 0                    # fresh
    lesson.write_text(LESSON.replace("x = 1", "x = 2"))
    assert build.main(["--check"]) == 1                    # the script changed
    assert "first at cell 3" in capsys.readouterr().out


def test_a_solution_is_stale_when_a_results_file_it_reads_changes(course_dir, monkeypatch, capsys):
    # lesson 05 once showed an old run after the run was re-done: sources alone missed it
    monkeypatch.setattr(build, "ROOT", course_dir)
    run = course_dir / "results" / "a-run"
    run.mkdir(parents=True)
    (run / "judge.txt").write_text("FD 80.1\n")
    (run / "curve.csv").write_text("step,fd\n1,80.1\n")
    lesson = write_lesson(course_dir, LESSON.replace("x = 1", 'x = open("results/a-run/judge.txt").read()'))
    assert list(build.inputs(lesson)) == ["results/a-run/judge.txt"]
    lesson.write_text(LESSON.replace("# # A lesson", "# # A lesson on results/a-run."))
    assert list(build.inputs(lesson)) == ["results/a-run/curve.csv", "results/a-run/judge.txt"]
    assert build.main(["--no-execute"]) == 0
    sol = nbformat.read(build.solution_path(lesson), as_version=4)
    sol.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="slow\n")]
    build.write(build.record_inputs(sol, lesson), build.solution_path(lesson))
    assert build.main(["--check"]) == 0
    (run / "judge.txt").write_text("FD 76.8\n")            # the run was re-done
    assert build.main(["--check"]) == 1
    assert "other files from results/ than there are now (results/a-run/judge.txt)" in capsys.readouterr().out
    (run / "judge.txt").write_text("FD 80.1\n")
    assert build.main(["--check"]) == 0


def test_the_times_table_names_each_lesson_the_machine_and_its_load():
    text = build.times_table({"01_shapes": 30.4, "02_game": 11.6}, [0.31, 0.2, 0.1], [1.5, 0.9, 0.4])
    assert "| 01_shapes | 30 s |" in text and "| 02_game | 12 s |" in text
    assert "total 42 s" in text
    assert "0.31 before, 1.50 after" in text
    assert "cores" in text            # the machine, from benchmarks.machine


def test_an_unknown_lesson_is_a_user_error(course_dir):
    write_lesson(course_dir, LESSON)
    with pytest.raises(UserError, match="no lesson '09'"):
        build.main(["09"])


def test_the_checks_and_the_build_load_no_framework():
    # course/check.py is NumPy only: a student's kernel pays for no framework it did not import
    import subprocess
    import sys
    from tests.conftest import ROOT
    code = ("import sys, course.check, course.build, course.start; "
            "print(' '.join(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == []


def test_run_sh_course_reaches_jupyterlab(tmp_path):
    # the README's one command, without starting a server: --help goes to JupyterLab itself
    import os
    import subprocess
    from tests.conftest import ROOT
    from tests.helpers import standin_venv
    env = dict(os.environ, DCGAN_VENV=str(standin_venv(tmp_path / "venv", ROOT)))
    r = subprocess.run([str(ROOT / "run.sh"), "course", "--help"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("JupyterLab") and "creating" not in r.stderr
    # as root (a container's usual user) JupyterLab refuses to start without --allow-root
    assert ("passing --allow-root" in r.stderr) == (os.geteuid() == 0), r.stderr[-500:]
