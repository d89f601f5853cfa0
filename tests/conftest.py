import os
import subprocess
import sys
from pathlib import Path

import pytest

# One pytest process holds torch, JAX and TensorFlow. TensorFlow loads its libraries with
# RTLD_GLOBAL, and Triton (which torch.optim imports lazily, at the first optimizer)
# then crashes on import; loading it first, here, keeps any test order safe.
import torch._dynamo  # noqa: F401,E402

ROOT = Path(__file__).resolve().parents[1]
# Tests never reach for the network: downloads are tested against a local server.
os.environ["DCGAN_OFFLINE"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ----------------------------------------------------------------------------------------
# Tests that need something outside the Python environment. On a user's fresh machine they
# skip, with the reason and the install command in pytest's summary (-rs in pytest.ini).
# CI installs these packages and sets DCGAN_REQUIRE_SYSTEM=1, which turns each such skip
# into a failure: a missing browser can never make CI green by skipping.
REQUIRE_SYSTEM = os.environ.get("DCGAN_REQUIRE_SYSTEM") == "1"
SYSTEM_NEEDS = {
    "chromium": "Debian's chromium, a headless browser (apt-get install chromium)",
    "fashion-mnist": "Debian's Fashion-MNIST in /usr/share/datasets/fashion-mnist "
                     "(apt-get install dataset-fashion-mnist)",
}


def need_system(what: str, present: bool) -> None:
    """Skip the calling test when `what` (a key of SYSTEM_NEEDS) is absent; fail in CI."""
    if present:
        return
    reason = f"needs {SYSTEM_NEEDS[what]}"
    if REQUIRE_SYSTEM:
        pytest.fail(f"{reason}; DCGAN_REQUIRE_SYSTEM=1 says this machine must have it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def chromium_present():
    from common import side_by_side
    need_system("chromium", side_by_side.find_chromium() is not None)


@pytest.fixture
def debian_fashion_mnist():
    from common import data
    need_system("fashion-mnist", data.DEBIAN_FASHION_DIR.is_dir())
    return data.DEBIAN_FASHION_DIR


def run_cli(*args, cwd=None, env=None):
    """Run `python -m ...` as a user would; returns CompletedProcess with text output."""
    e = dict(os.environ, PYTHONPATH=str(ROOT), DCGAN_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=e,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def cli():
    return run_cli
