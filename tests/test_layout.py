"""DESIGN section 2: common/ is framework-free, and each implementation loads its own
framework only, so `python -m jax_impl.train` never pays for importing torch."""
import os
import pkgutil
import subprocess
import sys

import pytest

import common
from .conftest import ROOT

FRAMEWORK_MODULES = {"pytorch": "torch", "jax": "jax", "keras": "tensorflow"}


def loaded_after(imports):
    code = (f"import sys; {imports}; "
            "print(' '.join(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_common_imports_no_framework():
    modules = [m.name for m in pkgutil.iter_modules(common.__path__)]
    assert {"config", "spec", "data", "runfiles", "weights"} <= set(modules)
    assert loaded_after("; ".join(f"import common.{m}" for m in modules)) == set()


@pytest.mark.parametrize("fw", list(FRAMEWORK_MODULES))
def test_each_implementation_loads_only_its_framework(fw):
    loaded = loaded_after(f"import {fw}_impl.model, {fw}_impl.train, {fw}_impl.sample")
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
