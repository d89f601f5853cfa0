"""--precision bf16: bfloat16 arithmetic with float32 state, in PyTorch, JAX and Keras.

The tolerances come from bfloat16's precision. A bfloat16 number has 8 significant bits
(7 stored and the implicit one), so rounding a value to it changes it by at most
U = 2**-8 of itself. In a bf16 forward pass each convolution or fully connected layer
reads its input and its weights rounded to bfloat16 (products summed in float32): two
roundings a layer, and to first order L layers change a logit by at most 2 L U of its
size. BatchNorm rescales its input but keeps relative errors relative. The metrics are
means of sigmoid(logit) and of the BCE loss, both 1-Lipschitz in the logit, so each
moves by at most BOUND = 2 L U max|logit| from its float32 value. Float32 arithmetic, by
contrast, agrees across frameworks to 1e-5 (tests/test_cross_framework.py's TOL): a bf16
step must land farther than that from the float32 one, or it did not compute in bfloat16.
"""
import dataclasses
import json

import numpy as np
import pytest

from common import runfiles
from common.config import Config, parse_config
from tests import helpers
from tests.test_cross_framework import draw_inputs, random_weights

from .conftest import run_cli

U = 2.0 ** -8                 # bfloat16's unit roundoff
F32_NOISE = 1e-5              # float32's disagreement between frameworks (TOL there)
# 16 px: G has 3 layers (1 -> 4 -> 8 -> 16), D has 3 (16 -> 8 -> 4 -> 1); a fake image's
# logit goes through all 6.
CFG = Config(image_size=16, channels=1, nz=8, ngf=4, ndf=4, batch_size=16)
LAYERS = 6


def start_weights():
    """The cross-framework tests' order-one weights, biases and betas zero (as there)."""
    return {k: np.zeros_like(v) if k.endswith((".bias", ".beta")) else v
            for k, v in random_weights(CFG).items()}


def bound(max_logit):
    return 2 * LAYERS * U * max(1.0, max_logit)


def one_step(adapter, precision):
    """One GAN step of a framework's Stepper (in this process) from start_weights()."""
    z, real = draw_inputs(CFG, np.random.default_rng(2))
    stepper = adapter.Stepper(dataclasses.replace(CFG, precision=precision), start_weights())
    return stepper, stepper.step(real, z)


def max_real_logit(adapter):
    _, real = draw_inputs(CFG, np.random.default_rng(2))
    return float(np.abs(adapter.discriminate(CFG, start_weights(), real, True)[0]).max())


def check_bf16_step_differs_within_bound(adapter):
    _, fp32 = one_step(adapter, "fp32")
    _, bf16 = one_step(adapter, "bf16")
    diff = {k: abs(fp32[k] - bf16[k]) for k in runfiles.METRICS}
    limit = bound(max_real_logit(adapter))
    assert max(diff.values()) > 10 * F32_NOISE, f"bf16 step = fp32 step: not bfloat16 ({diff})"
    assert max(diff.values()) < limit, f"{diff} beyond {limit:.3g}"


# ----------------------------------------------------------------------------------------
# PyTorch

def test_pytorch_bf16_step_keeps_float32_state():
    import torch
    from tests.crossfw import adapt_pytorch
    s, m = one_step(adapt_pytorch, "bf16")
    assert all(np.isfinite(v) for v in m.values())
    for net, opt in ((s.generator, s.g_optimizer), (s.discriminator, s.d_optimizer)):
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            if t.is_floating_point():         # num_batches_tracked is an integer count
                assert t.dtype == torch.float32, name
        moments = [v for st in opt.state.values() for k, v in st.items() if k.startswith("exp_avg")]
        assert moments and all(v.dtype == torch.float32 for v in moments)
        bn = [t for n, t in net.named_buffers() if n.endswith(("running_mean", "running_var"))]
        assert bn and all(t.dtype == torch.float32 for t in bn)


def test_pytorch_bf16_step_computes_in_bfloat16():
    from tests.crossfw import adapt_pytorch
    check_bf16_step_differs_within_bound(adapt_pytorch)


# ----------------------------------------------------------------------------------------
# JAX

def test_jax_bf16_step_keeps_float32_state():
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from tests.crossfw import adapt_jax
    s, m = one_step(adapt_jax, "bf16")
    assert all(np.isfinite(v) for v in m.values())
    for net, opt in ((s.generator, s.g_optimizer), (s.discriminator, s.d_optimizer)):
        stats = jax.tree.leaves(nnx.state(net, nnx.BatchStat))
        assert stats and all(v.dtype == jnp.float32 for v in stats)
        assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(nnx.state(net, nnx.Param)))
        moments = [v for k, v in adapt_jax.flat_state(opt).items() if "/mu/" in k or "/nu/" in k]
        assert moments and all(v.dtype == jnp.float32 for v in moments)


def test_jax_bf16_step_computes_in_bfloat16():
    from tests.crossfw import adapt_jax
    check_bf16_step_differs_within_bound(adapt_jax)


# ----------------------------------------------------------------------------------------
# Keras

def test_keras_bf16_step_keeps_float32_state():
    from tests.crossfw import adapt_keras
    s, m = one_step(adapt_keras, "bf16")
    assert all(np.isfinite(v) for v in m.values())
    for net in (s.gan.generator, s.gan.discriminator):
        convs = [l for l in net._flatten_layers() if l.__class__.__name__.startswith("Conv")]
        assert convs and all(l.compute_dtype == "bfloat16" for l in convs)
        assert all(str(v.dtype) == "float32" for v in net.weights)   # BatchNorm's moving stats too
    opt_vars = s.gan.d_optimizer.variables + s.gan.g_optimizer.variables
    assert all(str(v.dtype) == "float32" for v in opt_vars if "iteration" not in v.path)


def test_keras_bf16_step_computes_in_bfloat16():
    from tests.crossfw import adapt_keras
    check_bf16_step_differs_within_bound(adapt_keras)


# ----------------------------------------------------------------------------------------
# the three frameworks in bf16, each in its own process (tests/crossfw/driver.py)

def run_driver(fw, tmp_path, precision):
    z, real = draw_inputs(CFG, np.random.default_rng(2))
    config = json.dumps({**{k: getattr(CFG, k) for k in ("image_size", "channels", "nz", "ngf", "ndf",
                                                         "batch_size")}, "precision": precision})
    inp, out = tmp_path / f"{fw}-{precision}-in.npz", tmp_path / f"{fw}-{precision}-out.npz"
    np.savez(inp, config=np.array(config), z=z, x=real, real=real[None], step_z=z[None],
             **{f"w.{k}": v for k, v in start_weights().items()})
    r = run_cli("tests.crossfw.driver", fw, "forward,steps", str(inp), str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("other", ["jax", "keras"])
def test_bf16_step_agrees_between_frameworks(other, tmp_path):
    """Each framework's bf16 metrics lie within BOUND of the float32 ones (which agree to
    1e-5), so the two lie within 2 BOUND of each other. The running statistics are
    0.9 old + 0.1 of the batch's: a mean moves by at most 0.1 of the BOUND-relative error
    of the maps, a variance (a square) by twice that. The weights: Adam's first step moves
    each by lr g / (|g| + eps), that is +-lr whatever |g| is, so a weight agrees exactly
    unless bf16 flipped the sign of a gradient that was near zero: most must agree."""
    pt, jx = run_driver("pytorch", tmp_path, "bf16"), run_driver(other, tmp_path, "bf16")
    limit = bound(float(np.abs(pt["forward:d_train"]).max()))
    np.testing.assert_allclose(pt["steps:metrics"], jx["steps:metrics"], rtol=0, atol=2 * limit)
    keys = [k for k in pt if k.startswith("steps:step1.")]
    stats = [k for k in keys if k.endswith(("running_mean", "running_var"))]
    assert stats
    for k in stats:
        scale = float(np.abs(pt[k]).max())
        assert np.abs(pt[k] - jx[k]).max() <= 0.1 * 2 * (2 * limit) * scale, k
    kernels = [k for k in keys if k.endswith(".kernel") and ".m." not in k and ".v." not in k]
    same = np.concatenate([(np.abs(pt[k] - jx[k]) < 1e-6).ravel() for k in kernels])
    assert same.mean() > 0.9, f"only {same.mean():.1%} of the weights took the same step"


# ----------------------------------------------------------------------------------------
# real runs and the flag

@pytest.mark.parametrize("package", ["pytorch_impl", "jax_impl", "keras_impl"])
def test_short_bf16_run(package, tmp_path):
    import importlib
    train = importlib.import_module(f"{package}.train").train
    d = helpers.run_tiny(train, tmp_path / "r", "--max-steps", "10", "--precision", "bf16")
    helpers.check_short_run(d, package.removesuffix("_impl"), train.__globals__["CHECKPOINT"])
    assert json.loads((d / "config.json").read_text())["precision"] == "bf16"
    m = runfiles.read_metrics(d / "metrics.csv")
    assert np.isfinite(m["d_loss"]).all() and np.isfinite(m["g_loss"]).all()


def test_precision_fp16_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(["--precision", "fp16"], "train")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--precision" in err and "fp16" in err


def test_resume_keeps_the_runs_precision(tmp_path, capsys):
    (tmp_path / "config.json").write_text(Config(precision="fp32").to_json())
    assert parse_config(["--resume", str(tmp_path)], "train").precision == "fp32"
    with pytest.raises(SystemExit):
        parse_config(["--resume", str(tmp_path), "--precision", "bf16"], "train")
    assert "--precision bf16 (run has fp32)" in capsys.readouterr().err



# ----------------------------------------------------------------------------------------
# --precision auto

def test_auto_picks_bf16_only_where_the_hardware_has_bfloat16_units():
    from common.hardware import auto_precision
    no_amx = {"AVX2": True, "AVX-512F": True, "AVX512-BF16": True, "AMX-BF16": False, "AMX-TILE": False}
    assert auto_precision(None, no_amx)[0] == "fp32"          # AVX512-BF16 alone: measured slower
    assert auto_precision(None, {**no_amx, "AMX-BF16": True, "AMX-TILE": True})[0] == "bf16"
    assert auto_precision(None, {})[0] == "fp32"
    assert auto_precision((8, 0))[0] == "bf16" and auto_precision((9, 0))[0] == "bf16"
    precision, why = auto_precision((7, 5))
    assert precision == "fp32" and "7.5" in why
    amx = {**no_amx, "AMX-BF16": True}
    assert auto_precision(None, amx, gpu=True)[0] == "fp32"   # a GPU of unknown capability: not the CPU's rule


@pytest.mark.parametrize("package", ["pytorch_impl", "jax_impl", "keras_impl"])
@pytest.mark.parametrize("amx", [False, True])
def test_auto_is_resolved_with_the_device_and_recorded(package, amx, tmp_path, monkeypatch, capsys):
    import importlib
    from common import hardware
    features = {name: amx or not name.startswith("AMX") for name, _ in hardware.FEATURES}
    monkeypatch.setattr(hardware, "cpu_features", lambda info=None: features)
    train = importlib.import_module(f"{package}.train").train
    d = helpers.run_tiny(train, tmp_path / "r", "--max-steps", "1", "--precision", "auto", "--device", "cpu")
    expected = "bf16" if amx else "fp32"
    assert json.loads((d / "config.json").read_text())["precision"] == expected
    assert f"--precision auto: {expected} (a CPU with" in capsys.readouterr().out
    # resuming with auto keeps the arithmetic the run chose, whatever auto would say now
    assert parse_config(["--resume", str(d), "--precision", "auto"], "train").precision == expected
