"""The layout of DESIGN section 2: the same files in the three implementations, one idea
each; a GAN step a student reads without the distributed machinery; common/ below
everything and framework-free; each implementation loading its own framework only; and no
import cycle anywhere in the repository."""
import ast
import os
import pkgutil
import subprocess
import sys

import pytest

import common
from .conftest import ROOT

FRAMEWORK_MODULES = {"pytorch": "torch", "jax": "jax", "keras": "tensorflow"}
IMPLS = [f"{fw}_impl" for fw in FRAMEWORK_MODULES]
FILES = {"__init__.py", "model.py", "layers.py", "step.py", "train.py", "parallel.py",
         "checkpoint.py", "sample.py", "README.md"}
# Files of one implementation alone. pytorch_impl/port.py converts pytorch/examples' dcgan
# checkpoints, which are PyTorch state_dicts: reading them needs torch, and the other two
# frameworks load the portable weights.npz it writes, so they have no port.py to mirror it.
ONLY_IN = {"pytorch_impl": {"port.py"}}
# what a data-parallel engine is called in each framework: none of it may appear in a step.py
DISTRIBUTED = ("torch.distributed", "DistributedDataParallel", "jax.sharding", "shard_map",
               "Mesh(", "tf.distribute", "tensorflow.distribute", "MirroredStrategy")
OUR_PACKAGES = ("common", "pytorch_impl", "jax_impl", "keras_impl", "benchmarks", "docs",
                "course", "tests")


def loaded_after(imports):
    code = (f"import sys; {imports}; "
            "print(' '.join(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def module_name(path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path) -> set[str]:
    """Every module of ours that the file imports, at the top or inside a function: the
    strictest reading, so that a lazy import cannot hide a circle."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                       # from . import x, from .y import z
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in OUR_PACKAGES}
    return found


def our_modules() -> dict:
    """{module name: the modules of ours it imports}, for every .py file of the repository
    (results/ holds scripts that were run once, not modules)."""
    graph = {}
    for pkg in OUR_PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            graph[module_name(path)] = imports_of(path)
    # "from pkg import mod" names the module when there is one, the package otherwise
    return {m: {i for i in deps if i in graph} | {i.rpartition(".")[0] for i in deps
                                                   if i not in graph and i.rpartition(".")[0] in graph}
            for m, deps in graph.items()}


def find_cycle(graph: dict):
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if d == m or d == m.rpartition(".")[0]:     # a module and its own package
                continue
            if state.get(d) == "open":
                return path[path.index(d):] + [d] if d in path else [m, d]
            if d not in state:
                found = visit(d, path + [d])
                if found:
                    return found
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


# ----------------------------------------------------------------------------------------
# the files

def test_the_three_implementations_have_the_same_files():
    have = {impl: {p.name for p in (ROOT / impl).iterdir() if p.is_file()} for impl in IMPLS}
    for impl, files in have.items():
        want = FILES | ONLY_IN.get(impl, set())
        assert files == want, f"{impl}: missing {sorted(want - files)}, extra {sorted(files - want)}"


@pytest.mark.parametrize("impl", IMPLS)
def test_no_step_py_holds_distributed_machinery(impl):
    text = (ROOT / impl / "step.py").read_text()
    assert not [w for w in DISTRIBUTED if w in text], f"{impl}/step.py names {[w for w in DISTRIBUTED if w in text]}"


@pytest.mark.parametrize("impl", IMPLS)
def test_the_gan_step_is_within_the_first_100_lines_of_step_py(impl):
    lines = (ROOT / impl / "step.py").read_text().splitlines()
    where = {m: next(i for i, l in enumerate(lines, 1) if m in l) for m in ("def train_step", "(1) Update D",
                                                                            "(2) Update G")}
    # and it ends there too: the metrics it returns
    end = next(i for i, l in enumerate(lines, 1) if i > where["(2) Update G"] and "return" in l)
    assert max(*where.values(), end) <= 100, where


@pytest.mark.parametrize("impl", IMPLS)
def test_sample_py_reads_model_and_step_never_train(impl):
    deps = our_modules()[f"{impl}.sample"]
    assert {f"{impl}.model", f"{impl}.step"} <= deps and f"{impl}.train" not in deps, deps


@pytest.mark.parametrize("impl", IMPLS)
def test_train_py_is_a_loop_a_reader_can_hold(impl):
    """About 150 lines at most: the engineering lives in parallel.py and checkpoint.py."""
    assert len((ROOT / impl / "train.py").read_text().splitlines()) <= 150


# ----------------------------------------------------------------------------------------
# the imports

def test_common_is_below_everything():
    graph = our_modules()
    above = {m: sorted(d for d in deps if not d.startswith("common"))
             for m, deps in graph.items() if m.startswith("common")}
    assert not any(above.values()), {m: d for m, d in above.items() if d}


def test_no_import_cycle_anywhere():
    graph = our_modules()
    assert len(graph) > 50          # the walk found the repository
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle_and_reads_imports_inside_functions():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    # runfiles imports common.data only inside start_run: the walk sees it all the same
    runfiles = ROOT / "common" / "runfiles.py"
    top = {n.module for n in ast.parse(runfiles.read_text()).body if isinstance(n, ast.ImportFrom)}
    assert "data" not in top and ".data" not in top and "common.data" in imports_of(runfiles)


def test_common_imports_no_framework():
    modules = [m.name for m in pkgutil.walk_packages(common.__path__, "common.")]
    assert {"common.config", "common.spec", "common.data", "common.runfiles", "common.weights",
            "common.judge.evaluate"} <= set(modules)
    assert loaded_after("; ".join(f"import {m}" for m in modules)) == set()


@pytest.mark.parametrize("fw", list(FRAMEWORK_MODULES))
def test_each_implementation_loads_only_its_framework(fw):
    files = [p.stem for p in (ROOT / f"{fw}_impl").glob("*.py") if p.stem != "__init__"]
    loaded = loaded_after("; ".join(f"import {fw}_impl.{f}" for f in files))
    assert FRAMEWORK_MODULES[fw] in loaded
    others = {FRAMEWORK_MODULES[o] for o in FRAMEWORK_MODULES if o != fw}
    if fw == "keras":
        # TensorFlow 2.21 itself imports jax when it is installed (tensorflow.lite's
        # util module does); no file of ours does, as the source check below shows
        others.discard("jax")
    assert not loaded & others, f"{fw}_impl loads {loaded & others}"
    for f in (ROOT / f"{fw}_impl").glob("*.py"):
        text = f.read_text()
        for other in others | ({"jax"} if fw == "keras" else set()):
            assert f"import {other}" not in text and f"from {other}" not in text, (f, other)
