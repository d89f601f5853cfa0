"""What the per-framework tests share: the tiny training config and the checks that every
implementation's run directory, resume and sample command must pass alike, and the
portable layout's definition written out one pixel at a time."""
import hashlib
import json
import sys

import numpy as np
import pytest
from PIL import Image

from common import runfiles, weights
from common.config import parse_config

TINY = ["--dataset", "synthetic", "--image-size", "16", "--ngf", "8", "--ndf", "8",
        "--nz", "16", "--batch-size", "64", "--device", "cpu"]   # 512 images: 8 steps/epoch


def standin_venv(venv, root):
    """A stand-in for run.sh's .venv: its python is this interpreter and its stamp says it
    matches root/requirements.txt, so run.sh installs nothing (tests set DCGAN_VENV)."""
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    sha = hashlib.sha256((root / "requirements.txt").read_bytes()).hexdigest()
    (venv / ".requirements.sha").write_text(sha + "\n")
    return venv


def run_tiny(train, out, *extra):
    """train(config) of one implementation on TINY; returns the run directory."""
    return train(parse_config(TINY + ["--out", str(out), *extra], "test"))


def resume(train, run_dir, max_steps):
    return train(parse_config(["--resume", str(run_dir), "--max-steps", str(max_steps)], "test"))


def metrics_without_time(run_dir):
    m = runfiles.read_metrics(run_dir / "metrics.csv")
    return np.stack([m[c] for c in runfiles.COLUMNS[:-1]], axis=1)


def assert_same_run(a, b):
    """Two run directories hold the same metrics (bar the clock) and the same weights."""
    np.testing.assert_array_equal(metrics_without_time(a), metrics_without_time(b))
    _, wa, _ = weights.load(a / "weights.npz")
    _, wb, _ = weights.load(b / "weights.npz")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def check_short_run(run_dir, framework, checkpoint):
    """A 10-step TINY run (8 steps an epoch) wrote every file of DESIGN's run directory."""
    for f in ["config.json", "metrics.csv", "losses.png", "d_outputs.png", "progress.gif",
              checkpoint, "weights.npz", "samples/epoch_001.png", "samples/epoch_002.png"]:
        assert (run_dir / f).is_file() and (run_dir / f).stat().st_size > 0, f
    m = runfiles.read_metrics(run_dir / "metrics.csv")
    assert m["step"].tolist() == list(range(1, 11))
    assert m["epoch"].tolist() == [1] * 8 + [2] * 2
    assert np.all((m["d_real"] > 0) & (m["d_real"] < 1)) and np.all(m["d_loss"] > 0)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["framework"] == framework and cfg["profile"] == "cpu" and cfg["channels"] == 1
    assert weights.load(run_dir / "weights.npz")[2]["step"] == 10


def check_resume_equals_an_uninterrupted_run(train, tmp_path):
    whole = run_tiny(train, tmp_path / "whole", "--max-steps", "12")
    part = run_tiny(train, tmp_path / "part", "--max-steps", "5")       # stops mid-epoch 1
    resume(train, part, 12)
    assert_same_run(whole, part)


def check_interrupted_run_keeps_its_progress(train_mod, tmp_path, monkeypatch):
    """Ctrl-C during step 4 of train_mod.train (its module-level train_step raises
    KeyboardInterrupt): the weights are saved at step 3, and resuming gives the
    uninterrupted run."""
    real_step = train_mod.train_step
    calls = []

    def step_then_interrupt(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(*args)

    monkeypatch.setattr(train_mod, "train_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(train_mod.train, tmp_path / "r", "--max-steps", "12")
    d = tmp_path / "r"
    assert weights.load(d / "weights.npz")[2]["step"] == 3
    monkeypatch.setattr(train_mod, "train_step", real_step)
    resume(train_mod.train, d, 12)
    assert_same_run(run_tiny(train_mod.train, tmp_path / "whole", "--max-steps", "12"), d)


def check_sample_command(cli, package, run_dir, sample, tmp_path):
    """`python -m <package>.sample` writes .npy from --noise (what sample() gives in-process)
    and a png grid from --n."""
    z = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    r = cli(f"{package}.sample", "--weights", str(run_dir / "weights.npz"),
            "--noise", str(tmp_path / "z.npy"), "--out", str(tmp_path / "s.npy"))
    assert r.returncode == 0, r.stderr
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (6, 16, 16, 1) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    np.testing.assert_allclose(x, sample(run_dir / "weights.npz", z, "cpu"), atol=1e-6)
    assert not np.allclose(x[0], x[1])
    r = cli(f"{package}.sample", "--weights", str(run_dir / "weights.npz"), "--n", "10",
            "--out", str(tmp_path / "g.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "g.png").size == (8 * 18 + 2, 2 * 18 + 2)


# ----------------------------------------------------------------------------------------
# The portable layout (common/weights.py), one output pixel at a time: slow, and written
# independently of common/reference.py's vectorised version, which test_reference checks.

def conv_ref(x, k, s, p):
    """out[y, x, o] = sum in[y*s - p + i, x*s - p + j, c] K[i, j, c, o]  (weights.py)"""
    h, w, _ = x.shape
    kh, kw, _, o = k.shape
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    out = np.zeros((oh, ow, o))
    for y in range(oh):
        for xx in range(ow):
            out[y, xx] = np.einsum("ijc,ijco->o", xp[y * s:y * s + kh, xx * s:xx * s + kw], k)
    return out


def conv_transpose_ref(x, k, s, p):
    """out[y*s - p + i, x*s - p + j, o] += in[y, x, c] K[i, j, c, o]  (weights.py)"""
    h, w, _ = x.shape
    kh, kw, _, o = k.shape
    full = np.zeros(((h - 1) * s + kh, (w - 1) * s + kw, o))
    for y in range(h):
        for xx in range(w):
            full[y * s:y * s + kh, xx * s:xx * s + kw] += np.einsum("c,ijco->ijo", x[y, xx], k)
    return full[p:full.shape[0] - p, p:full.shape[1] - p]


def layer_ref(kind):
    return conv_transpose_ref if kind == "conv_transpose" else conv_ref
