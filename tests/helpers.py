"""What the per-framework tests share: the tiny training config and the checks that every
implementation's run directory, resume and sample command must pass alike, and the
portable layout's definition written out one pixel at a time."""
import hashlib
import importlib
import io
import json
import os
import signal
import sys
import textwrap
import types

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


# ----------------------------------------------------------------------------------------
# The TensorBoard events (common/tensorboard_log.py), read back with TensorBoard's own reader.

# Every framework's tags, spelled out here rather than imported: a framework that writes
# another set, or a renamed tag (which would break users' dashboards), fails its short run.
TENSORBOARD_TAGS = {
    "scalars": {"loss/d", "loss/g", "D/real", "D/fake_before", "D/fake_after", "time/step_seconds"},
    "images": {"samples/fixed_noise"},
    "tensors": {"config/text_summary"},
}
CSV_COLUMN = {"loss/d": "d_loss", "loss/g": "g_loss", "D/real": "d_real",
              "D/fake_before": "d_fake", "D/fake_after": "d_fake_after",
              "time/step_seconds": "seconds"}


def read_events(run_dir):
    """The run's events as TensorBoard shows them, with what a resume purged left out:
    tags {kind: set}, scalars {tag: (steps, values)}, images [(step, PIL image)] and
    texts [(step, str)] of the config."""
    # With TensorFlow installed, TensorBoard's reader goes through TensorFlow's file API:
    # seven seconds to import, and TensorFlow loaded into a PyTorch test. A module named
    # tensorboard.compat.notf is TensorBoard's own switch to its built-in stand-in.
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = {kind: set(names) for kind, names in acc.Tags().items() if isinstance(names, list) and names}
    scalars = {}
    for tag in tags.get("scalars", ()):
        events = acc.Scalars(tag)
        scalars[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    images = [(e.step, Image.open(io.BytesIO(e.encoded_image_string)))
              for tag in tags.get("images", ()) for e in acc.Images(tag)]
    texts = [(e.step, e.tensor_proto.string_val[0].decode())
             for tag in tags.get("tensors", ()) for e in acc.Tensors(tag)]
    return {"tags": tags, "scalars": scalars, "images": images, "texts": texts}


def check_events(run_dir, starts, image_steps):
    """The run's TensorBoard events say what its other files say: the same tags as every
    framework's; each scalar at every step of metrics.csv once, with the csv's value; the
    config once per start (the steps the run started and resumed at), the last one
    config.json; the grid once at each of image_steps, the last of each epoch
    samples/epoch_NNN.png pixel for pixel."""
    ev = read_events(run_dir)
    assert ev["tags"] == TENSORBOARD_TAGS
    m = runfiles.read_metrics(run_dir / "metrics.csv")
    for tag, column in CSV_COLUMN.items():
        steps, values = ev["scalars"][tag]
        assert steps.tolist() == m["step"].tolist(), tag
        # the csv rounds to 6 decimals (seconds to 4), TensorBoard keeps float32
        np.testing.assert_allclose(values, m[column], rtol=1e-6,
                                   atol=5e-5 if column == "seconds" else 1e-6, err_msg=tag)
    assert [step for step, _ in ev["texts"]] == starts
    config = json.loads((run_dir / "config.json").read_text())
    assert json.loads(textwrap.dedent(ev["texts"][-1][1])) == config
    assert [step for step, _ in ev["images"]] == image_steps
    epoch_of = dict(zip(m["step"].astype(int).tolist(), m["epoch"].astype(int).tolist()))
    last_of_epoch = {epoch_of[step]: im for step, im in ev["images"]}
    for epoch, im in last_of_epoch.items():
        with Image.open(run_dir / "samples" / f"epoch_{epoch:03d}.png") as png:
            assert im.size == png.size, epoch
            np.testing.assert_array_equal(np.asarray(im.convert(png.mode)), np.asarray(png))


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
    check_events(run_dir, starts=[0], image_steps=[8, 10])


def check_resume_equals_an_uninterrupted_run(train, tmp_path):
    whole = run_tiny(train, tmp_path / "whole", "--max-steps", "12")
    part = run_tiny(train, tmp_path / "part", "--max-steps", "5")       # stops mid-epoch 1
    resume(train, part, 12)
    assert_same_run(whole, part)
    check_events(part, starts=[0, 5], image_steps=[5, 8, 12])


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)      # a real SIGINT, as a terminal's Ctrl-C sends


def check_ctrl_c_finishes_the_step(train_mod, tmp_path, monkeypatch, during_step_4):
    """A real SIGINT sent during step 4 (during_step_4(real_step, args) takes the step and
    sends it from wherever inside the step the framework lets a test reach): the run stops
    after step 4, not in the middle of it; the checkpoint, weights.npz and metrics.csv end
    at step 4, the SIGINT handler is put back, and resuming gives the uninterrupted run."""
    handler_before = signal.getsignal(signal.SIGINT)
    real_step = train_mod.train_step
    calls = []

    def step(*args):
        calls.append(1)
        return during_step_4(real_step, args) if len(calls) == 4 else real_step(*args)

    monkeypatch.setattr(train_mod, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(train_mod.train, tmp_path / "r", "--max-steps", "12")
    d = tmp_path / "r"
    assert weights.load(d / "weights.npz")[2]["step"] == 4
    assert runfiles.read_metrics(d / "metrics.csv")["step"].tolist() == [1, 2, 3, 4]
    assert signal.getsignal(signal.SIGINT) is handler_before
    monkeypatch.setattr(train_mod, "train_step", real_step)
    resume(train_mod.train, d, 12)
    assert_same_run(run_tiny(train_mod.train, tmp_path / "whole", "--max-steps", "12"), d)
    check_events(d, starts=[0, 4], image_steps=[8, 12])


def check_a_nan_stops_the_run(train_mod, tmp_path, monkeypatch, capsys):
    """A NaN in z from step 11 on (common.data.noise, which all three train on) makes that
    step's losses NaN: the run stops there with one line naming the step, exit 2, and the
    checkpoint and weights.npz of step 8 (the end of epoch 1) stay as they were, still
    good to resume from."""
    from common import data
    from common.config import run_main
    d = run_tiny(train_mod.train, tmp_path / "r", "--max-steps", "8")
    kept = {f: (d / f).read_bytes() for f in ("weights.npz", train_mod.CHECKPOINT)}
    real_noise = data.noise

    def noise_with_a_nan(seed, step, n, nz, z_dist="normal"):
        z = real_noise(seed, step, n, nz, z_dist)
        if step >= 10:                                   # the noise of step 11 (1-based)
            z[0, 0] = np.nan
        return z

    monkeypatch.setattr(data, "noise", noise_with_a_nan)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(train_mod.main, ["--resume", str(d), "--max-steps", "16"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    line, = [l for l in err.splitlines() if "error" in l]
    assert line.startswith("error: step 11: training diverged (d_loss is nan"), err
    assert "checkpoint of step 8" in line
    for f, content in kept.items():
        assert (d / f).read_bytes() == content, f"{f} was overwritten"
    assert runfiles.read_metrics(d / "metrics.csv")["step"].max() == 10   # no NaN row
    monkeypatch.setattr(data, "noise", real_noise)
    resume(train_mod.train, d, 10)                       # the kept checkpoint trains on
    _, arrays, header = weights.load(d / "weights.npz")
    assert header["step"] == 10 and all(np.isfinite(a).all() for a in arrays.values())


# The seeds' other two networks, trained as the tutorial's is: tiny widths, the
# architecture's own size (cs231n: 28x28, nz 96) and its z.
OTHER_ARCHS = {"paper": TINY + ["--arch", "paper"],
               "cs231n": ["--dataset", "synthetic", "--arch", "cs231n", "--ngf", "4", "--ndf", "4",
                          "--batch-size", "64", "--device", "cpu"]}


def check_other_architecture(train_mod, package, sample, arch, tmp_path, capsys):
    """--arch paper / cs231n: a run writes its config with the architecture's defaults, a
    run stopped after 3 steps and resumed to 10 ends where an uninterrupted one does, and
    sample draws z as the network was trained (U(-1, 1) for cs231n) from weights.npz."""
    from common.config import run_main
    flags = OTHER_ARCHS[arch]
    whole = train_mod.train(parse_config(flags + ["--out", str(tmp_path / "whole"), "--max-steps", "10"], "t"))
    part = train_mod.train(parse_config(flags + ["--out", str(tmp_path / "part"), "--max-steps", "3"], "t"))
    resume(train_mod.train, part, 10)
    assert_same_run(whole, part)
    cfg = json.loads((whole / "config.json").read_text())
    size = 28 if arch == "cs231n" else 16
    assert cfg["arch"] == arch and cfg["image_size"] == size
    if arch == "cs231n":
        assert (cfg["nz"], cfg["z_dist"], cfg["lr"]) == (96, "uniform", 1e-3)
    m = runfiles.read_metrics(whole / "metrics.csv")
    assert np.isfinite(m["d_loss"]).all() and np.ptp(m["g_loss"]) > 0
    file_cfg, _, header = weights.load(whole / "weights.npz")
    assert file_cfg.arch == arch and header["z_dist"] == cfg["z_dist"]
    run_main(importlib.import_module(f"{package}.sample").main,
             ["--weights", str(whole / "weights.npz"), "--n", "5", "--seed", "3", "--out", str(tmp_path / "s.npy")])
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (5, size, size, 1) and x.std() > 0
    from common.data import draw_z
    z = draw_z(np.random.default_rng(3), 5, cfg["nz"], cfg["z_dist"])
    np.testing.assert_allclose(x, sample(whole / "weights.npz", z, "cpu"), atol=1e-6)


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
