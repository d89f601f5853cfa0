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


def run_cli(*args, cwd=None, env=None):
    """Run `python -m ...` as a user would; returns CompletedProcess with text output."""
    e = dict(os.environ, PYTHONPATH=str(ROOT), DCGAN_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=e,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def cli():
    return run_cli
