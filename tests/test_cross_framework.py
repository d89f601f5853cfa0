"""The three implementations are one network: the same weights and inputs give the same
numbers, in inference, in training mode, and through whole GAN steps. And the tests are
sensitive: each framework default of DESIGN section 4 set the wrong way moves the result
far outside the tolerance.

Every framework runs in its own subprocess (tests/crossfw/driver.py) on inputs written
here; NumPy (common/reference.py, float64) referees the forward pass.
"""
import itertools
import json

import numpy as np
import pytest

from common import reference
from common.config import Config
from common.weights import expected_shapes

from .conftest import run_cli

FRAMEWORKS = ["pytorch", "jax", "keras"]
PAIRS = list(itertools.combinations(FRAMEWORKS, 2))
# 32x32 RGB, so there are two stride-2 middle layers in each network; small widths for speed.
CFG = Config(image_size=32, channels=3, nz=16, ngf=8, ndf=8, batch_size=16)
TOL = 1e-5          # max absolute difference, float32 arithmetic in every framework
# Weights after a step: Adam moves each by lr * m / (sqrt(v) + eps), about lr = 2e-4 for
# any gradient well above eps. Most weights agree to 1e-8, but a gradient that is tiny
# because terms cancel (|g| ~ 1e-7, seen in g2) comes out a few percent different with
# another float32 summation order, and Adam turns that into a few percent of lr. So the
# weights get the same TOL, which is 5% of one step.
K_STEPS = 10


def random_weights(cfg, seed=0):
    """Weights of order one (not the N(0, 0.02) init) and non-trivial running statistics,
    so that every parameter visibly matters."""
    rng = np.random.default_rng(seed)
    a = {}
    for k, shape in expected_shapes(cfg).items():
        kind = k.rsplit(".", 1)[1]
        if kind == "kernel":
            fan_in = shape[0] * shape[1] * shape[2]
            a[k] = rng.standard_normal(shape) / np.sqrt(fan_in)
        elif kind == "gamma":
            a[k] = 1 + 0.2 * rng.standard_normal(shape)
        elif kind in ("beta", "running_mean", "bias"):
            a[k] = 0.2 * rng.standard_normal(shape)
        else:
            a[k] = rng.uniform(0.5, 1.5, shape)
    return {k: v.astype(np.float32) for k, v in a.items()}


def run_framework(fw, task, tmp_path, arrays, **inputs):
    inp, out = tmp_path / f"{fw}-{task}-in.npz", tmp_path / f"{fw}-{task}-out.npz"
    cfg = json.dumps({k: getattr(CFG, k) for k in ("image_size", "channels", "nz", "ngf", "ndf",
                                                    "lr", "beta1", "beta2", "batch_size")})
    np.savez(inp, config=np.array(cfg), **{f"w.{k}": v for k, v in arrays.items()}, **inputs)
    r = run_cli("tests.crossfw.driver", fw, task, str(inp), str(out))
    assert r.returncode == 0, f"{fw} {task} failed:\n{r.stderr[-3000:]}"
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def weights():
    return random_weights(CFG)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((CFG.batch_size, CFG.nz)).astype(np.float32)
    x = np.tanh(rng.standard_normal((CFG.batch_size, 32, 32, 3))).astype(np.float32)
    return z, x


@pytest.fixture(scope="module")
def forward(weights, batch, tmp_path_factory):
    z, x = batch
    tmp = tmp_path_factory.mktemp("forward")
    return {fw: run_framework(fw, "forward", tmp, weights, z=z, x=x) for fw in FRAMEWORKS}


@pytest.fixture(scope="module")
def reference_forward(weights, batch):
    z, x = batch
    out = {}
    for train in (True, False):
        tag = "train" if train else "eval"
        out[f"g_{tag}"], g_stats = reference.generator(CFG, weights, z, train)
        out[f"d_{tag}"], d_stats = reference.discriminator(CFG, weights, x, train)
        if train:
            out.update({f"g_stats.{k}": v for k, v in g_stats.items()})
            out.update({f"d_stats.{k}": v for k, v in d_stats.items()})
    return out


def max_diff(a, b, keys):
    return max(float(np.abs(a[k] - b[k]).max()) for k in keys)


FORWARD_KEYS = ["g_train", "g_eval", "d_train", "d_eval"]


# ----------------------------------------------------------------------------------------
# inference and training-mode forward passes

@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("what", FORWARD_KEYS + ["stats"])
def test_forward_matches_numpy_reference(forward, reference_forward, fw, what):
    keys = [k for k in reference_forward if "_stats." in k] if what == "stats" else [what]
    assert set(keys) <= set(forward[fw]), f"{fw} did not return {sorted(set(keys) - set(forward[fw]))}"
    assert max_diff(forward[fw], reference_forward, keys) < TOL


@pytest.mark.parametrize("a, b", PAIRS)
def test_forward_agrees_between_frameworks(forward, a, b):
    keys = FORWARD_KEYS + [k for k in forward["pytorch"] if "_stats." in k]
    assert max_diff(forward[a], forward[b], keys) < TOL


def test_outputs_are_not_trivial(reference_forward):
    # differences below TOL mean something only if the outputs themselves are large
    for k in FORWARD_KEYS:
        assert np.abs(reference_forward[k]).mean() > 0.05, k


# ----------------------------------------------------------------------------------------
# sensitivity: each pinned default, set the way another framework sets it, is caught

@pytest.mark.parametrize("wrong, what", [
    (dict(eps=1e-3), "g_train"),                         # Keras' BatchNorm epsilon
    (dict(momentum=0.9), "stats"),                       # Flax/Keras momentum read as PyTorch's
    (dict(unbiased_running_var=False), "stats"),         # Flax/Keras biased running variance
    (dict(flip_transposed_kernel=True), "g_eval"),       # conv_transpose without the flip
    (dict(pad=(2, 0)), "g_eval"),                        # padding on one side only
    (dict(pad=(2, 0)), "d_eval"),
])
def test_each_pinned_default_matters(forward, weights, batch, wrong, what):
    z, x = batch
    out = {}
    for train in (True, False):
        tag = "train" if train else "eval"
        out[f"g_{tag}"], g_stats = reference.generator(CFG, weights, z, train, **wrong)
        out[f"d_{tag}"], d_stats = reference.discriminator(CFG, weights, x, train, **wrong)
        if train:
            out.update({f"g_stats.{k}": v for k, v in g_stats.items()})
            out.update({f"d_stats.{k}": v for k, v in d_stats.items()})
    keys = [k for k in out if "_stats." in k] if what == "stats" else [what]
    for fw in FRAMEWORKS:
        assert max_diff(forward[fw], out, keys) > 20 * TOL, (fw, wrong)


# ----------------------------------------------------------------------------------------
# whole GAN steps

@pytest.fixture(scope="module")
def steps(weights, tmp_path_factory):
    rng = np.random.default_rng(2)
    real = np.tanh(rng.standard_normal((K_STEPS, CFG.batch_size, 32, 32, 3))).astype(np.float32)
    z = rng.standard_normal((K_STEPS, CFG.batch_size, CFG.nz)).astype(np.float32)
    tmp = tmp_path_factory.mktemp("steps")
    return {fw: run_framework(fw, "steps", tmp, weights, real=real, z=z) for fw in FRAMEWORKS}


def groups(result, tag):
    keys = [k for k in result if k.startswith(tag + ".")]
    return {
        "parameters": [k for k in keys if not k.split(".", 1)[1].startswith(("m.", "v.")) and not k.endswith(("running_mean", "running_var"))],
        "statistics": [k for k in keys if k.endswith(("running_mean", "running_var"))],
        "adam m": [k for k in keys if k.split(".", 1)[1].startswith("m.")],
        "adam v": [k for k in keys if k.split(".", 1)[1].startswith("v.")],
    }


@pytest.mark.parametrize("a, b", PAIRS)
def test_one_gan_step_agrees(steps, a, b):
    np.testing.assert_allclose(steps[a]["metrics"][0], steps[b]["metrics"][0], rtol=0, atol=TOL)
    for group, keys in groups(steps["pytorch"], "step1").items():
        assert keys, group
        assert set(keys) <= set(steps[a]) and set(keys) <= set(steps[b]), group
        # the moments are of the order of grad and grad**2: compare them relative to their size
        if group in ("adam m", "adam v"):
            tol = TOL * max(float(np.abs(steps["pytorch"][k]).max()) for k in keys)
        else:
            tol = TOL
        assert max_diff(steps[a], steps[b], keys) < tol, group


@pytest.mark.parametrize("a, b", PAIRS)
def test_ten_gan_steps_stay_together(steps, a, b):
    # Float32 rounding differences (different convolution algorithms) grow through ten
    # updates of both networks; 1e-4 on the metrics and the weights is still three orders
    # of magnitude below what any of the pinned defaults moves (see above).
    np.testing.assert_allclose(steps[a]["metrics"], steps[b]["metrics"], rtol=0, atol=1e-4)
    keys = groups(steps["pytorch"], "stepK")["parameters"] + groups(steps["pytorch"], "stepK")["statistics"]
    assert max_diff(steps[a], steps[b], keys) < 1e-4


def test_the_steps_moved_the_weights(steps, weights):
    # Adam's first step moves a weight by at most lr = 2e-4 = 20 TOL; ten steps by more
    for tag, least in (("step1", 10 * TOL), ("stepK", 100 * TOL)):
        keys = groups(steps["pytorch"], tag)["parameters"]
        moved = max(float(np.abs(steps["pytorch"][k] - weights[k.split(".", 1)[1]]).max()) for k in keys)
        assert moved > least, tag


def test_adam_epsilon_placement_matters(steps, weights):
    """Keras' stock Adam adds epsilon (1e-7) to the uncorrected sqrt(v) and folds the bias
    corrections into the learning rate; PyTorch and optax add 1e-8 to the corrected one.
    Applied to the first step's moments, the two formulas put the weights this far apart;
    every framework must land on the PyTorch side."""
    lr, b1, b2 = CFG.lr, CFG.beta1, CFG.beta2
    for fw in FRAMEWORKS:
        r = steps[fw]
        torch_err = keras_gap = 0.0
        for k in groups(r, "step1")["parameters"]:
            name = k.split(".", 1)[1]
            m, v, p0 = r[f"step1.m.{name}"], r[f"step1.v.{name}"], weights[name]
            torch_p1 = p0 - lr * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + 1e-8)
            keras_p1 = p0 - lr * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + 1e-7)
            torch_err = max(torch_err, float(np.abs(torch_p1 - r[k]).max()))
            keras_gap = max(keras_gap, float(np.abs(keras_p1 - r[k]).max()))
        assert torch_err < TOL, fw
        assert keras_gap > 10 * TOL, fw       # measured: 1.7e-4 = 17 TOL


# ----------------------------------------------------------------------------------------
# portable weights travel between the frameworks

def test_portable_weights_round_trip_through_every_framework(weights, tmp_path):
    arrays = weights
    for fw in FRAMEWORKS + FRAMEWORKS[:1]:          # pytorch -> jax -> keras -> pytorch
        arrays = run_framework(fw, "roundtrip", tmp_path, arrays)
        assert set(arrays) == set(weights), fw
        for k in weights:
            np.testing.assert_array_equal(arrays[k], weights[k], err_msg=f"{fw}: {k}")


TINY = ["--dataset", "synthetic", "--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16",
        "--batch-size", "64", "--max-steps", "16", "--device", "cpu"]   # 16 steps: running
# statistics (momentum 0.1) have mostly left their init, so inference-mode samples are not ~0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short real training run by each framework's train command."""
    tmp = tmp_path_factory.mktemp("trained")
    for fw in FRAMEWORKS:
        r = run_cli(f"{fw}_impl.train", *TINY, "--out", str(tmp / fw))
        assert r.returncode == 0, f"{fw} train failed:\n{r.stderr[-3000:]}"
    z = np.random.default_rng(5).standard_normal((12, 16)).astype(np.float32)
    np.save(tmp / "z.npy", z)
    return tmp


@pytest.mark.parametrize("trainer", FRAMEWORKS)
def test_a_generator_trained_anywhere_samples_the_same_everywhere(trained, trainer):
    images = {}
    for fw in FRAMEWORKS:
        out = trained / f"{trainer}-by-{fw}.npy"
        r = run_cli(f"{fw}_impl.sample", "--weights", str(trained / trainer / "weights.npz"),
                    "--noise", str(trained / "z.npy"), "--out", str(out), "--device", "cpu")
        assert r.returncode == 0, f"{fw} cannot sample {trainer}'s weights:\n{r.stderr[-3000:]}"
        images[fw] = np.load(out)
    # a young generator's images are small (its last layer's kernels are N(0, 0.02)), so
    # agreement is judged against their spread: within 0.1% of it, and within TOL
    spread = float(images[trainer].std())
    assert images[trainer].shape == (12, 16, 16, 1) and spread > 1e-3
    for fw in FRAMEWORKS:
        diff = float(np.abs(images[fw] - images[trainer]).max())
        assert diff < min(TOL, 1e-3 * spread), (trainer, fw, diff, spread)
