import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# pytest-xdist (`-n auto` in pytest.ini) runs the test files in a few worker processes. In
# one process the suite kept about one of two cores busy (imports, compilation, Python: 32
# min of CPU in 32 min); two workers on the same two cores ran it in 15. But two that each
# start one OpenMP thread per core make every parallel region wait for a thread the other
# worker has preempted (a 32x32 PyTorch step measured 2.1 s instead of 0.19 under one busy
# core), so each worker, and every process it starts, gets an equal share of the cores
# instead. This must happen before the first framework import below.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
# (TensorFlow's inter-op pool is left alone: a data-parallel step's collectives on two
# logical devices wait for each other in it.)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
if WORKERS > 1:
    _share = str(max(1, len(os.sched_getaffinity(0)) // WORKERS))
    for _var in THREAD_VARS:
        os.environ.setdefault(_var, _share)


# Started as a shell's background job (`./run.sh test &`, nohup), a process inherits SIGINT
# ignored, and Python then never raises KeyboardInterrupt: the Ctrl-C tests, which send real
# SIGINTs to this process and to the runs it starts, would fail for that alone (they did,
# in a CI run started so). Python's default comes back here; the runs started from here
# inherit the default, not "ignored" (a handler does not survive exec, an ignore does).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most four (each worker holds torch, JAX and
    TensorFlow: about 2 GiB)."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


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
    from docs import side_by_side
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
