import os
import subprocess
import sys
from pathlib import Path

import pytest

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
