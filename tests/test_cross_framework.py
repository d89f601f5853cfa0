"""The three implementations are one network: the same weights and inputs give the same
numbers, in inference, in training mode, and through whole GAN steps, for each of the
three architectures (--arch). And the tests are sensitive: each framework default of
DESIGN section 4 set the wrong way, and each porting mistake the other two networks invite
(flatten order, output padding side, BatchNorm before the activation, a padded max-pool),
moves the result far outside the tolerance.

Every framework runs in its own subprocess (tests/crossfw/driver.py, one process per
framework and architecture for the forward passes, the round trip and the steps) on
inputs written here; NumPy (common/reference.py, float64) referees the forward pass.
"""
import dataclasses
import functools
import itertools
import json
import os

import numpy as np
import pytest

from common import reference
from common.config import Config
from common.weights import expected_shapes

from .conftest import run_cli

FRAMEWORKS = ["pytorch", "jax", "keras"]
PAIRS = list(itertools.combinations(FRAMEWORKS, 2))
# Small widths for speed. The tutorial's network at 32x32 RGB has two stride-2 middle
# layers in each network; the paper's at 32x32 projects z to 2x2x64 and flattens D's
# 2x2x64 map into its fully connected layer, both with several channels and positions,
# so a wrong flatten order shows; the CS231n one is MNIST-shaped, with its own lr and z.
CFGS = {
    "dcgan": Config(image_size=32, channels=3, nz=16, ngf=8, ndf=8, batch_size=16),
    "paper": Config(arch="paper", image_size=32, channels=3, nz=16, ngf=4, ndf=4, batch_size=16),
    "cs231n": Config(arch="cs231n", image_size=28, channels=1, nz=16, ngf=8, ndf=8, batch_size=16,
                     lr=1e-3, z_dist="uniform"),
}
ARCHS = list(CFGS)
TOL = 1e-5          # max absolute difference, float32 arithmetic in every framework
# Weights after a step: Adam moves each by lr * m / (sqrt(v) + eps), about lr = 2e-4 for
# any gradient well above eps. Most weights agree to 1e-8, but a gradient that is tiny
# because terms cancel (|g| ~ 1e-7, seen in g2) comes out a few percent different with
# another float32 summation order, and Adam turns that into a few percent of lr. So the
# weights get the same TOL, which is 5% of one step.
K_STEPS = 10


def lr_scale(cfg):
    """The weights' tolerance is a fraction of Adam's step, which is lr: CS231n's lr of 1e-3
    makes the same relative disagreement five times as large as at the paper's 2e-4."""
    return max(1.0, cfg.lr / 2e-4)


def random_weights(cfg, seed=0):
    """Weights of order one (not the N(0, 0.02) init) and non-trivial running statistics,
    so that every parameter visibly matters."""
    rng = np.random.default_rng(seed)
    a = {}
    for k, shape in expected_shapes(cfg).items():
        kind = k.rsplit(".", 1)[1]
        if kind == "kernel":
            a[k] = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))     # 1 / sqrt(fan-in)
        elif kind == "gamma":
            a[k] = 1 + 0.2 * rng.standard_normal(shape)
        elif kind in ("beta", "running_mean", "bias"):
            a[k] = 0.2 * rng.standard_normal(shape)
        else:
            a[k] = rng.uniform(0.5, 1.5, shape)
    return {k: v.astype(np.float32) for k, v in a.items()}


def draw_inputs(cfg, rng, *lead):
    """Noise of the architecture's own distribution and tanh-squashed 'images'."""
    n = (*lead, cfg.batch_size)
    z = rng.uniform(-1, 1, (*n, cfg.nz)) if cfg.z_dist == "uniform" else rng.standard_normal((*n, cfg.nz))
    x = np.tanh(rng.standard_normal((*n, cfg.image_size, cfg.image_size, cfg.channels)))
    return z.astype(np.float32), x.astype(np.float32)


def run_framework(fw, tasks, tmp_path, cfg, arrays, **inputs):
    """One subprocess of tests/crossfw/driver.py for `tasks`; {task: {name: array}}."""
    inp, out = tmp_path / f"{fw}-in.npz", tmp_path / f"{fw}-out.npz"
    config = json.dumps({k: getattr(cfg, k) for k in ("arch", "image_size", "channels", "nz", "ngf", "ndf",
                                                       "lr", "beta1", "beta2", "batch_size", "z_dist")})
    np.savez(inp, config=np.array(config), **{f"w.{k}": v for k, v in arrays.items()}, **inputs)
    r = run_cli("tests.crossfw.driver", fw, ",".join(tasks), str(inp), str(out))
    assert r.returncode == 0, f"{fw} {tasks} failed:\n{r.stderr[-3000:]}"
    results = {t: {} for t in tasks}
    with np.load(out) as f:
        for k in f.files:
            task, name = k.split(":", 1)
            results[task][name] = f[k]
    return results


def reference_outputs(cfg, weights, z, x, **pinned):
    out = {}
    for train in (True, False):
        tag = "train" if train else "eval"
        out[f"g_{tag}"], g_stats = reference.generator(cfg, weights, z, train, **pinned)
        out[f"d_{tag}"], d_stats = reference.discriminator(cfg, weights, x, train, **pinned)
        if train:
            out.update({f"g_stats.{k}": v for k, v in g_stats.items()})
            out.update({f"d_stats.{k}": v for k, v in d_stats.items()})
    return out


# Per architecture, computed once for the whole module (the subprocesses are the slow part)
# and shared by the fixtures below and by the tests parametrised over the architectures.
@functools.cache
def weights_of(arch):
    return random_weights(CFGS[arch])


@functools.cache
def step_weights_of(arch):
    """The steps start from the same weights with every bias and BatchNorm beta at zero, as
    at the real initialisation. CS231n's G puts each ReLU before its BatchNorm, and with
    shifts of 0.2 some of its features are positive for only one or two samples of the
    batch: their batch variance is near zero, BatchNorm divides float32 rounding by
    sqrt(var + eps), and Adam's steps at lr 1e-3 double the frameworks' disagreement with
    every step (measured: 4e-4 in the metrics after ten steps, 2e-7 from zero shifts,
    where each feature is positive for about half the batch). The forward passes above
    keep the shifts, so each bias and beta is still seen to load."""
    return {k: np.zeros_like(v) if k.endswith((".bias", ".beta")) else v
            for k, v in weights_of(arch).items()}


@functools.cache
def batch_of(arch):
    return draw_inputs(CFGS[arch], np.random.default_rng(1))


@functools.cache
def step_batches_of(arch):
    z, real = draw_inputs(CFGS[arch], np.random.default_rng(2), K_STEPS)
    return real, z


_computed = {}


def computed_of(arch, tmp_path_factory):
    """What each framework computes for arch: forward passes, the weights' round trip and
    K_STEPS GAN steps, {fw: {task: {name: array}}}."""
    if arch not in _computed:
        (z, x), (real, step_z) = batch_of(arch), step_batches_of(arch)
        steps_from = {f"sw.{k}": v for k, v in step_weights_of(arch).items()}
        _computed[arch] = {fw: run_framework(fw, ("forward", "roundtrip", "steps"),
                                             tmp_path_factory.mktemp(f"{arch}-{fw}"), CFGS[arch],
                                             weights_of(arch), z=z, x=x, real=real, step_z=step_z,
                                             **steps_from)
                           for fw in FRAMEWORKS}
    return _computed[arch]


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def cfg(arch):
    return CFGS[arch]


@pytest.fixture(scope="module")
def weights(arch):
    return weights_of(arch)


@pytest.fixture(scope="module")
def batch(arch):
    return batch_of(arch)


@pytest.fixture(scope="module")
def forward(arch, tmp_path_factory):
    return {fw: r["forward"] for fw, r in computed_of(arch, tmp_path_factory).items()}


@pytest.fixture(scope="module")
def steps(arch, tmp_path_factory):
    return {fw: r["steps"] for fw, r in computed_of(arch, tmp_path_factory).items()}


@pytest.fixture(scope="module")
def reference_forward(cfg, weights, batch):
    return reference_outputs(cfg, weights, *batch)


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

# Each mistake, and the outputs it must move: the pinned defaults of DESIGN section 4 set
# the way another framework sets them, and the porting mistakes the networks invite.
MISTAKES = {
    "dcgan": [
        (dict(eps=1e-3), "g_train"),                     # Keras' BatchNorm epsilon
        (dict(momentum=0.9), "stats"),                   # Flax/Keras momentum read as PyTorch's
        (dict(unbiased_running_var=False), "stats"),     # Flax/Keras biased running variance
        (dict(flip_transposed_kernel=True), "g_eval"),   # conv_transpose without the flip
        (dict(pad=(2, 0)), "g_eval"),                    # padding on one side only
        (dict(pad=(2, 0)), "d_eval"),
        (dict(swap_act_and_bn=True), "g_eval"),          # ReLU before BatchNorm
    ],
    "paper": [
        (dict(eps=1e-3), "g_train"),
        (dict(momentum=0.9), "stats"),
        (dict(flip_transposed_kernel=True), "g_eval"),
        (dict(flatten_order="chw"), "g_eval"),           # z's projection viewed (C, H, W)
        (dict(flatten_order="chw"), "d_eval"),           # D's map flattened (C, H, W)
        (dict(output_padding_first=True), "g_eval"),     # the extra row at the top/left
        (dict(swap_act_and_bn=True), "g_eval"),
        (dict(swap_act_and_bn=True), "d_eval"),
    ],
    "cs231n": [
        (dict(eps=1e-3), "g_train"),
        (dict(unbiased_running_var=False), "stats"),
        (dict(flatten_order="chw"), "g_eval"),           # the 7x7 map read (C, H, W)
        (dict(flatten_order="chw"), "d_eval"),
        (dict(swap_act_and_bn=True), "g_eval"),          # BatchNorm before the ReLU
    ],
}
MISTAKE_CASES = [(arch, wrong, what) for arch, cases in MISTAKES.items() for wrong, what in cases]


@pytest.mark.parametrize("which, wrong, what", MISTAKE_CASES,
                         ids=[f"{a}-{next(iter(w))}-{what}" for a, w, what in MISTAKE_CASES])
def test_each_pinned_default_and_porting_mistake_matters(which, wrong, what, tmp_path_factory):
    computed = computed_of(which, tmp_path_factory)
    out = reference_outputs(CFGS[which], weights_of(which), *batch_of(which), **wrong)
    keys = [k for k in out if "_stats." in k] if what == "stats" else [what]
    assert keys
    for fw in FRAMEWORKS:
        gap = max_diff(computed[fw]["forward"], out, keys)
        assert gap > 20 * TOL, (fw, wrong, gap)


# ----------------------------------------------------------------------------------------
# whole GAN steps

def groups(result, tag):
    keys = [k for k in result if k.startswith(tag + ".")]
    return {
        "parameters": [k for k in keys if not k.split(".", 1)[1].startswith(("m.", "v.")) and not k.endswith(("running_mean", "running_var"))],
        "statistics": [k for k in keys if k.endswith(("running_mean", "running_var"))],
        "adam m": [k for k in keys if k.split(".", 1)[1].startswith("m.")],
        "adam v": [k for k in keys if k.split(".", 1)[1].startswith("v.")],
    }


@pytest.mark.parametrize("a, b", PAIRS)
def test_one_gan_step_agrees(steps, cfg, a, b):
    np.testing.assert_allclose(steps[a]["metrics"][0], steps[b]["metrics"][0], rtol=0, atol=TOL)
    for group, keys in groups(steps["pytorch"], "step1").items():
        assert keys, group
        assert set(keys) <= set(steps[a]) and set(keys) <= set(steps[b]), group
        # the moments are of the order of grad and grad**2: compare them relative to their size
        if group in ("adam m", "adam v"):
            tol = TOL * max(float(np.abs(steps["pytorch"][k]).max()) for k in keys)
        elif group == "parameters":
            tol = TOL * lr_scale(cfg)
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


def test_the_steps_moved_the_weights(steps, arch):
    weights = step_weights_of(arch)
    # Adam's first step moves a weight by at most lr = 2e-4 = 20 TOL; ten steps by more
    for tag, least in (("step1", 10 * TOL), ("stepK", 100 * TOL)):
        keys = groups(steps["pytorch"], tag)["parameters"]
        moved = max(float(np.abs(steps["pytorch"][k] - weights[k.split(".", 1)[1]]).max()) for k in keys)
        assert moved > least, tag


def test_adam_epsilon_placement_matters(steps, arch, cfg):
    """Keras' stock Adam adds epsilon (1e-7) to the uncorrected sqrt(v) and folds the bias
    corrections into the learning rate; PyTorch and optax add 1e-8 to the corrected one.
    Applied to the first step's moments, the two formulas put the weights this far apart;
    every framework must land on the PyTorch side."""
    lr, b1, b2 = cfg.lr, cfg.beta1, cfg.beta2
    for fw in FRAMEWORKS:
        r = steps[fw]
        torch_err = keras_gap = 0.0
        for k in groups(r, "step1")["parameters"]:
            name = k.split(".", 1)[1]
            m, v, p0 = r[f"step1.m.{name}"], r[f"step1.v.{name}"], step_weights_of(arch)[name]
            torch_p1 = p0 - lr * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + 1e-8)
            keras_p1 = p0 - lr * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + 1e-7)
            torch_err = max(torch_err, float(np.abs(torch_p1 - r[k]).max()))
            keras_gap = max(keras_gap, float(np.abs(keras_p1 - r[k]).max()))
        assert torch_err < TOL, fw
        assert keras_gap > 10 * TOL, fw       # measured: 1.7e-4 = 17 TOL


# ----------------------------------------------------------------------------------------
# portable weights travel between the frameworks

def test_portable_weights_round_trip_through_every_framework(arch, weights, tmp_path_factory):
    # each framework loads the portable file and writes it back bit for bit, so a file
    # written by any of them is read the same by the others
    for fw, r in computed_of(arch, tmp_path_factory).items():
        arrays = r["roundtrip"]
        assert set(arrays) == set(weights), fw
        for k in weights:
            np.testing.assert_array_equal(arrays[k], weights[k], err_msg=f"{fw}: {k}")


# 16 steps: running statistics (momentum 0.1) have mostly left their init, so inference-
# mode samples are not ~0. Each architecture at its smallest size.
TINY = ["--dataset", "synthetic", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "64",
        "--max-steps", "16", "--device", "cpu"]
TINY_SIZE = {"dcgan": 16, "paper": 16, "cs231n": 28}


@pytest.fixture(scope="module")
def trained(arch, tmp_path_factory):
    """A short real training run by each framework's train command."""
    tmp = tmp_path_factory.mktemp(f"trained-{arch}")
    for fw in FRAMEWORKS:
        r = run_cli(f"{fw}_impl.train", *TINY, "--arch", arch, "--image-size", str(TINY_SIZE[arch]),
                    "--out", str(tmp / fw))
        assert r.returncode == 0, f"{fw} train failed:\n{r.stderr[-3000:]}"
    z, _ = draw_inputs(dataclasses.replace(CFGS[arch], nz=16, batch_size=12), np.random.default_rng(5))
    np.save(tmp / "z.npy", z)
    return tmp


@pytest.mark.parametrize("trainer", FRAMEWORKS)
def test_a_generator_trained_anywhere_samples_the_same_everywhere(arch, trained, trainer):
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
    size = TINY_SIZE[arch]
    assert images[trainer].shape == (12, size, size, 1) and spread > 1e-3
    for fw in FRAMEWORKS:
        diff = float(np.abs(images[fw] - images[trainer]).max())
        assert diff < min(TOL, 1e-3 * spread), (trainer, fw, diff, spread)


# ----------------------------------------------------------------------------------------
# subnormal floats: TensorFlow and XLA flush them to zero on a CPU, PyTorch does not unless
# told to (pytorch_impl/__init__.py tells it), so the three compute the same arithmetic.
# 1000 x 1000, so that the work is spread over threads, where the setting must hold too.

SUBNORMAL = {
    "pytorch": "import pytorch_impl, torch; x = torch.full((1000, 1000), 1e-39) * 0.5; print(float(x.abs().max()), float((x @ x.T + 1e-39).abs().max()))",
    "jax": "import jax_impl.model, jax.numpy as jnp; x = jnp.full((1000, 1000), 1e-39) * 0.5; print(float(jnp.abs(x).max()), float(jnp.abs(x @ x.T + 1e-39).max()))",
    "keras": "import keras_impl, tensorflow as tf; x = tf.fill((1000, 1000), 1e-39) * 0.5; print(float(tf.reduce_max(tf.abs(x))), float(tf.reduce_max(tf.abs(x @ tf.transpose(x) + 1e-39))))",
}


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_subnormal_floats_are_flushed_to_zero_in_every_framework(fw):
    import subprocess
    import sys
    from .conftest import THREAD_VARS
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}   # every core's threads
    r = subprocess.run([sys.executable, "-c", SUBNORMAL[fw]], capture_output=True, text=True,
                       cwd=reference.__file__.rsplit("/common/", 1)[0], env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [float(v) for v in r.stdout.split()] == [0.0, 0.0], (fw, r.stdout)
