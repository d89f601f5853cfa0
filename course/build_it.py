"""The checks of lesson 4, "Build it": a generator, a discriminator and a train_step that the
student writes in PyTorch, JAX (Flax NNX + optax) or Keras 3, against the repository's.

    error = build_it.compare_generator(framework, make_generator, cfg)
    error = build_it.compare_discriminator(framework, make_discriminator, cfg)
    error = build_it.compare_step(framework, make_generator, make_discriminator, train_step,
                                  cfg, real, z)
    check.less("...", error, build_it.TOL)           # the lesson's check cell

Each returns the worst error of what it compared, or raises AssertionError at the first
thing that differs and names it. In this order:
1. the layers that have weights, in the order the framework lists them, against
   common/spec.py: kind, channels, kernel, stride, bias, a BatchNorm where the spec has one;
2. the starting weights common.weights.initial(cfg, SEED) loaded into them; each layer run
   alone against common/reference.py's float64 definition (a BatchNorm's running
   statistics too), then the whole network in training mode;
3. (compare_step) one step of the student's train_step and one of the repository's
   {framework}_impl/step.py from the same weights, batch, noise and Adam settings: the
   metrics, D's gradient and weights, G's gradient and weights, then the running
   statistics, in the order the step computes them. The gradients are read from Adam's
   first moment, which after one step is (1 - beta1) times the gradient.
Where a difference matches a known mistake (a framework default, D's loss reaching G,
BatchNorm in inference mode, the saturating G loss), the message says which.

The errors are course.check's relative errors, except for the weights after the step:
Adam's first step moves every weight by about lr (2e-4) whatever its gradient, so a
weight whose gradient float32 rounding decides moves by a rounding-sized fraction of lr;
there the error is the largest absolute difference, as in the repository's own proof
(tests/test_cross_framework.py, where 1e-5 is 5% of one step). Tolerance: 1e-5 for all.

A blank (a builder or a train_step that returns None) fails through course.check, as every
blank of the course does. The framework is imported on first use (build_it_frameworks).
"""
from __future__ import annotations

import dataclasses
import functools
from itertools import zip_longest

import numpy as np

from common import reference, weights
from common.config import BN_EPS, BN_MOMENTUM, Config
from common.runfiles import METRICS
from common.spec import Layer, discriminator_spec, generator_spec
from course import check
from course.build_it_frameworks import Adapter, adapter

TOL = 1e-5
SEED = 0                  # the starting weights: common.weights.initial(cfg, SEED)
NETS = {"generator": "G", "discriminator": "D"}

# What a message says when it recognises one of the three classic mistakes.
HINT_D_LOSS_REACHED_G = "D's loss reached G"
HINT_BN_INFERENCE = "BatchNorm ran in inference mode"
HINT_SATURATING = "the saturating loss"


def rel(x, y) -> float:
    return check.rel_error(x, y)


def blank(name: str, value) -> None:
    """None from the student's code fails through course.check: 'NAME is None: fill in the
    exercise above'."""
    if value is None:
        check.close(name, None, 0.0)


def student_call(what: str, fn, *args):
    """Call the student's code; an exception there becomes an AssertionError that says which
    call raised it (the traceback still shows where)."""
    try:
        return fn(*args)
    except AssertionError:
        raise
    except Exception as e:
        raise AssertionError(f"{what} raised {type(e).__name__}: {e}") from e


# ========================================================================================
# 1. the layers against the spec, and the starting weights loaded into them

class Slot:
    """One layer with weights that the spec asks for: a spec layer's operation, or its BatchNorm."""

    def __init__(self, net: str, layer: Layer, part: str):
        self.net, self.layer, self.part = net, layer, part
        self.prefix = f"{net}.{layer.name}"             # its portable keys' prefix

    @property
    def what(self) -> str:
        l = self.layer
        if self.part == "bn":
            return f"a BatchNorm of {l.norm_features} features (layer {l.name}'s)"
        return (f"a {l.kind} {l.kernel}x{l.kernel}, stride {l.stride}, padding {l.padding}, "
                f"{l.in_ch} -> {l.out_ch} channels, {'with' if l.bias else 'without'} a bias "
                f"(layer {l.name})")


def spec_of(which: str, cfg: Config) -> list[Layer]:
    return (generator_spec if which == "generator" else discriminator_spec)(cfg)


def slots(which: str, cfg: Config) -> list[Slot]:
    return [Slot(which, l, part) for l in spec_of(which, cfg)
            for part in (("op", "bn") if l.batchnorm else ("op",))]


def match(fw: Adapter, net, which: str, cfg: Config) -> list[tuple[Slot, tuple]]:
    """The student's layers paired with the spec's, in order; an AssertionError names the
    first that does not fit."""
    fw.prepare(net, which, cfg)
    found, want = fw.layers(net), slots(which, cfg)
    table = "\n".join(f"  {i + 1}. {s.what}" for i, s in enumerate(want))
    listing = f" The check reads your layers {fw.order}. The spec's, in order:\n{table}"
    pairs = []
    for i, (slot, hit) in enumerate(zip_longest(want, found)):
        if hit is None:
            raise AssertionError(f"your {which} has {len(found)} layers with weights, common/spec.py's "
                                 f"{len(want)}: from number {i + 1} on they are missing, "
                                 f"{slot.what} first.{listing}")
        path, m, kind = hit
        where = f"your {which}'s layer number {i + 1} ({fw.describe(m)} at {path})"
        if slot is None:
            raise AssertionError(f"{where} is one more than common/spec.py's {len(want)}.{listing}")
        l = slot.layer
        if (kind == "bn") != (slot.part == "bn") or (slot.part == "op" and kind != l.kind):
            raise AssertionError(f"{where} is a {'BatchNorm' if kind == 'bn' else kind}; it should "
                                 f"be {slot.what}.{listing}")
        if slot.part == "bn":
            if fw.bn_features(m) != l.norm_features:
                raise AssertionError(f"{where} normalises {fw.bn_features(m)} features; it should "
                                     f"be {slot.what}")
        else:
            info = fw.op_info(m)
            for key, name in (("in_ch", "input channels"), ("out_ch", "output channels"),
                              ("kernel", "a kernel size of"), ("stride", "stride"),
                              ("padding", "padding"), ("output_padding", "output padding")):
                if key in info and info[key] is not None and info[key] != getattr(l, key):
                    raise AssertionError(f"{where} has {info[key]} {name}; it should be {slot.what}")
            if info["bias"] != l.bias:
                raise AssertionError(f"{where} has {'a' if info['bias'] else 'no'} bias; it should "
                                     f"be {slot.what}: the DCGAN's layers have none (BatchNorm's "
                                     "beta makes one redundant)")
        pairs.append((slot, hit))
    return pairs


def load(fw: Adapter, pairs, arrays: dict) -> None:
    for slot, (path, m, kind) in pairs:
        for name, (v, _, back) in fw.variables(m, kind).items():
            a = arrays[f"{slot.prefix}.{name}"]
            a = a.transpose(back) if back else a
            if tuple(v.shape) != a.shape:
                raise AssertionError(f"{portable_name(f'{slot.prefix}.{name}')}: your {fw.describe(m)} "
                                     f"at {path} holds it as {tuple(v.shape)}, where the portable "
                                     f"{arrays[f'{slot.prefix}.{name}'].shape} should fit as {a.shape}")
            fw.write(v, a)


def export(fw: Adapter, pairs, value=None) -> dict:
    """The matched layers' arrays in the portable layout. value(variable), if given, reads
    something else for each variable (Adam's moment of it), or None for nothing."""
    out = {}
    for slot, (path, m, kind) in pairs:
        for name, (v, perm, _) in fw.variables(m, kind).items():
            a = fw.read(v) if value is None else value(v)
            if a is not None:
                out[f"{slot.prefix}.{name}"] = a.transpose(perm) if perm else a
    return out


def portable_name(key: str) -> str:
    """'discriminator.d2.running_var' -> "D's layer d2 BatchNorm running variance"."""
    net, layer, what = key.split(".")
    what = {"kernel": "kernel", "bias": "bias", "gamma": "BatchNorm gamma", "beta": "BatchNorm beta",
            "running_mean": "BatchNorm running mean", "running_var": "BatchNorm running variance"}[what]
    return f"{NETS[net]}'s layer {layer} {what}"


def build_student(fw: Adapter, make, which: str, cfg: Config, arrays: dict):
    net = student_call(f"make_{which}(cfg)", make, cfg)
    blank(f"make_{which}(cfg)", net)
    pairs = match(fw, net, which, cfg)
    load(fw, pairs, arrays)
    return net, pairs


# ========================================================================================
# 2. each layer alone, then the whole network

def layer_input(slot: Slot, cfg: Config, rng) -> np.ndarray:
    specs = spec_of(slot.net, cfg)
    i = specs.index(slot.layer)
    shape = (specs[i - 1].out_shape if i else (1, 1, cfg.nz) if slot.net == "generator"
             else (cfg.image_size, cfg.image_size, cfg.channels))
    return rng.standard_normal((2, *shape)).astype(np.float32)


def op_alone(fw: Adapter, slot: Slot, m, path: str, arrays: dict, cfg: Config, rng) -> float:
    """A convolution alone, against the definition in common/weights.py; if it differs, whether
    a flipped kernel or another split of the padding gives what it computes."""
    l = slot.layer
    x = layer_input(slot, cfg, rng)
    k = np.asarray(arrays[f"{slot.prefix}.kernel"], np.float64)
    bias = arrays.get(f"{slot.prefix}.bias", 0.0)
    name = f"{NETS[slot.net]}'s layer {l.name} ({fw.describe(m)} at {path})"
    y = student_call(f"calling {name} alone", fw.apply, m, x, True)
    if l.kind == "conv_transpose":
        total = 2 * l.padding - l.output_padding

        def want(k, pad=None):
            return reference.conv_transpose(x, k, l.stride, l.padding, pad, l.output_padding) + bias
    else:
        total = 2 * l.padding

        def want(k, pad=None):
            return reference.conv(x, k, l.stride, l.padding, pad) + bias
    expected = want(k)
    if y.shape != expected.shape:
        raise AssertionError(f"{name}, given a map of {x.shape[1:]} (H, W, C), outputs "
                             f"{y.shape[1:]} where common/spec.py's {l.name} outputs "
                             f"{expected.shape[1:]}: check its stride and padding; {fw.conv_notes}")
    err = rel(y, expected)
    if err < TOL:
        return err
    verb = "crops" if l.kind == "conv_transpose" else "pads"
    for flip in (False, True):
        for before in range(total + 1):
            pad = (before, total - before)
            alt = want(k[::-1, ::-1] if flip else k, pad)
            if (flip or before != l.padding) and alt.shape == y.shape and rel(y, alt) < TOL:
                what = ["with its kernel flipped (rotated by 180 degrees)"] if flip else []
                if before != l.padding:
                    what.append(f"as if it {verb} {pad[0]} rows and columns at the top and left and "
                                f"{pad[1]} at the bottom and right, where PyTorch's padding "
                                f"{l.padding} {verb} {l.padding} and {total - l.padding}")
                raise AssertionError(f"{name}, loaded with the starting kernel, computes the "
                                     f"{l.kind} {' and '.join(what)}: {fw.conv_notes}")
    raise AssertionError(f"{name}, loaded with the starting kernel, computes another function than "
                         f"common/spec.py's {l.name} as common/weights.py defines it (relative error "
                         f"{err:.1e} > {TOL:.0e}): {fw.conv_notes}")


def bn_alone(fw: Adapter, slot: Slot, m, path: str, arrays: dict, rng) -> float:
    """A BatchNorm alone in training mode, on a small batch (16 values a feature: the biased
    and the unbiased variance differ by 7%): its output and its running statistics; if they
    differ, whether another epsilon, momentum or variance gives them."""
    x = (0.5 + rng.standard_normal((4, 2, 2, slot.layer.norm_features))).astype(np.float32)
    name = f"{NETS[slot.net]}'s layer {slot.layer.name} BatchNorm ({fw.describe(m)} at {path})"
    y = student_call(f"calling {name} alone", fw.apply, m, x, True)
    stats = export(fw, [(slot, (path, m, "bn"))])
    a = {k: np.asarray(v, np.float64) for k, v in arrays.items() if k.startswith(slot.prefix + ".")}

    def err(eps, momentum, unbiased):
        want_y, want_stats = reference.batchnorm(x, a, slot.prefix, True, eps, momentum, unbiased)
        return max(rel(y, want_y), *(rel(stats[k], want_stats[k]) for k in want_stats))

    e = err(BN_EPS, BN_MOMENTUM, True)
    if e < TOL:
        return e
    for eps in (BN_EPS, 1e-3):
        for momentum in (BN_MOMENTUM, 0.01, 0.9):
            for unbiased in (True, False):
                if err(eps, momentum, unbiased) < TOL:
                    what = []
                    if eps != BN_EPS:
                        what.append(f"epsilon {eps:g} where PyTorch's is {BN_EPS:g}")
                    if momentum != BN_MOMENTUM:
                        what.append(f"running statistics that move {momentum:g} of the way to the "
                                    f"batch's where PyTorch's move {BN_MOMENTUM:g}: Flax and Keras call "
                                    "the weight of the OLD value momentum, so PyTorch's 0.1 is their 0.9")
                    if not unbiased:
                        what.append("a running variance that averages the biased batch variance, where "
                                    "PyTorch averages the unbiased one (times n / (n - 1)) while both "
                                    "normalise with the biased one")
                    raise AssertionError(f"{name} computes BatchNorm with " + "; and ".join(what)
                                         + f". {fw.bn_fix} (docs/frameworks.md)")
    raise AssertionError(f"{name} computes another BatchNorm than PyTorch's BatchNorm2d in training "
                         f"mode (relative error {e:.1e} > {TOL:.0e} in its output or its running "
                         f"statistics). {fw.bn_fix}")


def compare_network(fw: Adapter, make, which: str, cfg: Config, arrays: dict, x: np.ndarray) -> float:
    """Steps 1 and 2 for one network; the worst relative error."""
    rng = np.random.default_rng(1)
    net, pairs = build_student(fw, make, which, cfg, arrays)      # each layer alone: this copy
    errors = [bn_alone(fw, slot, m, path, arrays, rng) if slot.part == "bn" else
              op_alone(fw, slot, m, path, arrays, cfg, rng) for slot, (path, m, _) in pairs]
    net, pairs = build_student(fw, make, which, cfg, arrays)      # all of it: a fresh one
    run = reference.generator if which == "generator" else reference.discriminator
    want, want_stats = run(cfg, arrays, x, True)
    y = student_call(f"calling your {which} on an input of shape {x.shape}", fw.forward, net, x, which, True)
    if y.shape != want.shape:
        expected = want.shape if which == "discriminator" else \
            (len(x), cfg.channels, cfg.image_size, cfg.image_size) if fw.name == "pytorch" else want.shape
        got = y.shape if which == "discriminator" or fw.name != "pytorch" or y.ndim != 4 else \
            (y.shape[0], y.shape[3], y.shape[1], y.shape[2])
        raise AssertionError(f"your {which} returns shape {got}; the repository's returns {expected}"
                             + ("" if which == "generator" else ": one logit per image, flattened, "
                                "for the losses to compare with a vector of labels"))
    e = rel(y, want)
    what = "G(z)" if which == "generator" else "D(x)"
    if not e < TOL:
        raise AssertionError(f"{what} in training mode differs from the repository's (relative "
                             f"error {e:.1e} > {TOL:.0e}), though each layer alone agrees: "
                             + activation_hint(which, cfg, arrays, x, y))
    stats = export(fw, pairs)
    for k in sorted(want_stats):
        if not rel(stats[k], want_stats[k]) < TOL:
            raise AssertionError(f"{what} agrees, but the pass left {portable_name(k)} elsewhere "
                                 f"(relative error {rel(stats[k], want_stats[k]):.1e}): does a "
                                 "BatchNorm run twice, or one that the output does not go through?")
        errors.append(rel(stats[k], want_stats[k]))
    return max(errors + [e])


def activation_hint(which: str, cfg: Config, arrays: dict, x, y) -> str:
    """Which activation, or which order of BatchNorm and activation, gives what the student's
    network computes: changed in every layer, or in one."""
    layers = spec_of(which, cfg)
    x = x if which == "discriminator" else np.asarray(x).reshape(len(x), 1, 1, -1)

    def out(ls):
        return reference.run(ls, which, arrays, x, True)[0].reshape(y.shape)

    changes = [("BatchNorm after the activation instead of before it",
                lambda l: l.batchnorm and l.activation, lambda l: dataclasses.replace(l, act_first=True))]
    if which == "discriminator":
        for slope, who in ((0.01, "PyTorch's and Flax's default"), (0.3, "Keras' default"), (0.0, "a ReLU")):
            changes.append((f"LeakyReLU with slope {slope:g} ({who}) where the DCGAN's is 0.2",
                            lambda l: l.activation == "leaky_relu", lambda l, s=slope: dataclasses.replace(l, slope=s)))
    else:
        changes.append(("LeakyReLU where G has ReLU", lambda l: l.activation == "relu",
                        lambda l: dataclasses.replace(l, activation="leaky_relu")))
    for what, where, change in changes:
        hits = [i for i, l in enumerate(layers) if where(l)]
        for chosen in [hits] + [[i] for i in hits]:
            alt = out([change(l) if i in chosen else l for i, l in enumerate(layers)])
            if rel(y, alt) < 1e-4:
                at = "" if len(chosen) > 1 else f", in layer {layers[chosen[0]].name},"
                return f"your {which} computes{at} {what}"
    if which == "discriminator" and rel(y, 1 / (1 + np.exp(-out(layers)))) < 1e-4:
        return ("your discriminator returns probabilities, sigmoid(logits), where the repository's "
                "returns logits (the losses take logits)")
    if which == "generator" and rel(y, out(layers[:-1] + [dataclasses.replace(layers[-1], activation=None)])) < 1e-4:
        return "your generator has no tanh at the end"
    return ("check the activations between the layers (G: ReLU, tanh at the end; D: LeakyReLU 0.2, "
            "nothing at the end) and their place after each BatchNorm")


def on_cpu(compare):
    """Run a compare_* function with the framework's arrays and computations on the CPU
    (Adapter.on_cpu says why)."""
    @functools.wraps(compare)
    def run(framework, *args):
        with adapter(framework).on_cpu():
            return compare(framework, *args)
    return run


@on_cpu
def compare_generator(framework: str, make_generator, cfg: Config) -> float:
    """Exercise 1: G's layers against the spec, each alone, and G(z) in training mode."""
    fw = adapter(framework)
    z = np.random.default_rng(2).standard_normal((4, cfg.nz)).astype(np.float32)
    err = compare_network(fw, make_generator, "generator", cfg, weights.initial(cfg, SEED), z)
    print(f"G: the {len(generator_spec(cfg))} layers of common/spec.py; each alone, G(z) and the "
          "running statistics compared with the repository's, from the same starting weights")
    return err


@on_cpu
def compare_discriminator(framework: str, make_discriminator, cfg: Config) -> float:
    """Exercise 2: D's layers against the spec, each alone, and D(x) in training mode."""
    fw = adapter(framework)
    x = np.random.default_rng(3).uniform(-1, 1, (4, cfg.image_size, cfg.image_size, cfg.channels))
    err = compare_network(fw, make_discriminator, "discriminator", cfg, weights.initial(cfg, SEED),
                          x.astype(np.float32))
    print(f"D: the {len(discriminator_spec(cfg))} layers of common/spec.py; each alone, D(x) and the "
          "running statistics compared with the repository's, from the same starting weights")
    return err


# ========================================================================================
# 3. one step against the repository's

@on_cpu
def compare_step(framework: str, make_generator, make_discriminator, train_step, cfg: Config,
                 real: np.ndarray, z: np.ndarray) -> float:
    """Exercise 3: one step of the student's train_step against the repository's. real:
    (N, H, W, C) float32 in [-1, 1] (PyTorch gets it as (N, C, H, W)); z: (N, nz)."""
    fw = adapter(framework)
    arrays = weights.initial(cfg, SEED)
    real, z = np.asarray(real, np.float32), np.asarray(z, np.float32)
    compare_network(fw, make_generator, "generator", cfg, arrays, z)   # a network's mistake is
    compare_network(fw, make_discriminator, "discriminator", cfg, arrays, real)  # named as one

    ref_metrics, ref_after, ref_grads = fw.reference_step(cfg, arrays, real, z)

    generator, g_pairs = build_student(fw, make_generator, "generator", cfg, arrays)
    discriminator, d_pairs = build_student(fw, make_discriminator, "discriminator", cfg, arrays)
    fw.track(generator, [hit for _, hit in g_pairs])
    fw.track(discriminator, [hit for _, hit in d_pairs])
    fw.set_train(generator, True)                # as every train.py leaves them
    fw.set_train(discriminator, True)
    g_opt, d_opt = fw.optimizer(generator, cfg), fw.optimizer(discriminator, cfg)
    values = student_call("train_step(generator, discriminator, g_optimizer, d_optimizer, real, z)",
                          train_step, generator, discriminator, g_opt, d_opt,
                          fw.to_model(real, "discriminator"), fw.to_model(z, "generator"))
    blank("train_step(...)", values)
    if not isinstance(values, dict) or set(METRICS) - set(values):
        have = sorted(values) if isinstance(values, dict) else type(values).__name__
        raise AssertionError(f"train_step returned {have}; it should return a dict of "
                             f"{list(METRICS)}, as {fw.step_file}'s does")
    metrics = fw.metrics({k: values[k] for k in METRICS})
    pairs = g_pairs + d_pairs
    after = export(fw, pairs)
    optimizer_of = {id(v): opt for opt, ps in ((g_opt, g_pairs), (d_opt, d_pairs))
                    for _, (_, m, kind) in ps for v, _, _ in fw.variables(m, kind).values()}

    def gradient(v):
        m = fw.first_moment(optimizer_of[id(v)], v)
        return None if m is None else m / (1 - cfg.beta1)

    grads = {k: g for k, g in export(fw, pairs, gradient).items() if not k.endswith(weights.RUNNING_STATS)}
    worst = Diagnosis(fw, cfg, arrays, z, metrics, ref_metrics, after, ref_after, grads, ref_grads).run()
    print(f"one step from the same starting weights, batch and z as {fw.step_file}'s train_step: "
          "the 5 metrics, the gradients and weights of G and D, every BatchNorm running statistic")
    print(f"{'':14}{'yours':>12}{'repository':>12}")
    for k in METRICS:
        print(f"{k:<14}{metrics[k]:>12.6f}{ref_metrics[k]:>12.6f}")
    return worst


class Diagnosis:
    """A student's step against the repository's, in the order the step computes things,
    with the known mistakes recognised."""

    ORDER = ("d_real", "d_fake", "d_loss", "D's gradient", "D's weights", "d_fake_after", "g_loss",
             "G's gradient", "G's weights")
    WHEN = {"d_real": "D(x) before any update", "d_fake": "D(G(z)) before any update",
            "d_loss": "before any update", "d_fake_after": "D(G(z)) after D's update",
            "g_loss": "after D's update"}

    def __init__(self, fw, cfg, arrays, z, metrics, ref_metrics, after, ref_after, grads, ref_grads):
        self.fw, self.cfg, self.arrays, self.z = fw, cfg, arrays, z
        self.metrics, self.ref_metrics = metrics, ref_metrics
        self.after, self.ref_after, self.grads, self.ref_grads = after, ref_after, grads, ref_grads
        self.worst = 0.0
        # a network whose running statistics did not move ran its BatchNorms in inference mode
        self.frozen = [net for net in NETS if (stats := weights.running_stats(arrays, net))
                       and all(np.array_equal(after[k], arrays[k]) for k in stats)]

    def run(self) -> float:
        for k in ("d_real", "d_fake", "d_loss"):
            self.metric(k)
        d, g = self.parameters("discriminator"), self.parameters("generator")
        self.compare_arrays("D's gradient", self.grads, self.ref_grads, d, lambda key: (
            "d_loss agrees, so D's update used another gradient than d_loss's with respect to D's "
            "parameters, or more than one d_optimizer step (the check reads the gradient from Adam's "
            "first moment)"))
        self.compare_arrays("D's weights", self.after, self.ref_after, d, lambda key: (
            "D's gradient agrees: one d_optimizer step and nothing else changes D's weights"), absolute=True)
        self.metric("d_fake_after")
        self.metric("g_loss")
        self.compare_arrays("G's gradient", self.grads, self.ref_grads, g, self.g_gradient_hint)
        self.compare_arrays("G's weights", self.after, self.ref_after, g, lambda key: (
            "G's gradient agrees: one g_optimizer step and nothing else changes G's weights"), absolute=True)
        for net in NETS:
            keys = sorted(weights.running_stats(self.arrays, net))
            self.compare_arrays(f"{NETS[net]}'s running statistics", self.after, self.ref_after, keys,
                        lambda key, net=net: self.stats_hint(net))
        return self.worst

    def parameters(self, net: str) -> list[str]:
        """The portable keys of a network's parameters, in the spec's order."""
        return [k for k in weights.expected_shapes(self.cfg)
                if k.startswith(net + ".") and not k.endswith(weights.RUNNING_STATS)]

    # ----------------------------------------------------------------------------------
    # the metrics

    def metric(self, k: str) -> None:
        have, want = self.metrics[k], self.ref_metrics[k]
        err = rel(have, want)
        if err < TOL:
            self.worst = max(self.worst, err)
            return
        raise AssertionError(f"{k} ({self.WHEN[k]}) differs: yours {have:.6g}, the repository's "
                             f"{want:.6g} (relative error {err:.1e} > {TOL:.0e}); {self.agreed(k)}. "
                             + self.metric_hint(k, have))

    def updated(self) -> dict:
        """The starting arrays with D's as the repository's step leaves them."""
        return {**self.arrays, **{k: v for k, v in self.ref_after.items() if k.startswith("discriminator.")}}

    def fake_logits(self, arrays: dict) -> np.ndarray:
        """D's logits on G(z), G as it starts, in float64 (common/reference.py)."""
        fake, _ = reference.generator(self.cfg, self.arrays, self.z, True)
        return reference.discriminator(self.cfg, arrays, fake, True)[0]

    def metric_hint(self, k: str, have: float) -> str:
        if self.frozen and k != "g_loss" and (k != "d_real" or "discriminator" in self.frozen):
            return self.frozen_hint()
        if k in ("d_real", "d_fake", "d_fake_after"):
            if k == "d_fake_after" and rel(have, self.ref_metrics["d_fake"]) < TOL:
                return ("It equals D(G(z)) before the update: G's loss and D(G(z)) after come from the "
                        "updated D, a call of D on the same fake images after d_optimizer's step.")
            return ({"d_real": "D(x)", "d_fake": "D(G(z))", "d_fake_after": "D(G(z)) after"}[k]
                    + " is the mean over the batch of sigmoid(D's logits), " +
                    {"d_real": "D on the real batch in training mode, in a call of its own.",
                     "d_fake": "G and D in training mode, the fake batch in a call of D of its own "
                               "(not one call on real and fake together: BatchNorm would see both "
                               "batches at once).",
                     "d_fake_after": "the updated D on the same fake images."}[k])
        if k == "d_loss":
            if rel(have, self.ref_metrics["d_loss"] / 2) < 1e-4:
                return "It is half the repository's: d_loss is the SUM of the two BCEs, not their mean."
            return "d_loss = BCE(D(x), 1) + BCE(D(G(z)), 0): binary cross-entropy with logits, each the mean over the batch."
        after, before = self.fake_logits(self.updated()), self.fake_logits(self.arrays)   # g_loss
        if rel(have, np.mean(-np.logaddexp(0, after))) < 1e-4:   # mean log(1 - sigmoid(l))
            return (f"Your g_loss is mean log(1 - D(G(z))): {HINT_SATURATING}, the minimax game's "
                    "term, whose gradient vanishes when D rejects the fakes (lesson 3). G minimises "
                    "the non-saturating -log D(G(z)) = BCE(D(G(z)), 1).")
        if rel(have, np.mean(np.logaddexp(0, after))) < 1e-4:
            return ("Your g_loss is BCE(D(G(z)), 0): G trained toward 'fake'. G's loss takes the real "
                    "images' label, 1: BCE(D(G(z)), 1).")
        if rel(have, np.mean(np.logaddexp(0, -before))) < 1e-4:
            return ("Your g_loss is BCE(D(G(z)), 1) through D BEFORE its update: the G step runs the "
                    "updated D, a call of D after d_optimizer's step.")
        return "g_loss = BCE(D(G(z)), 1) through the updated D, the mean over the batch."

    def frozen_hint(self) -> str:
        nets = " and ".join(NETS[n] for n in self.frozen)
        return (f"{HINT_BN_INFERENCE}: your step left every BatchNorm running statistic of {nets} "
                "where it started, where a training-mode pass moves them, and in inference mode "
                "BatchNorm normalises with those running statistics instead of the batch's. "
                f"{self.fw.eval_fix}.")

    # ----------------------------------------------------------------------------------
    # gradients, weights, running statistics

    def compare_arrays(self, what: str, have: dict, want: dict, keys, hint, absolute=False) -> None:
        for key in keys:
            if key not in have:
                opt = "d_optimizer" if key.startswith("discriminator") else "g_optimizer"
                raise AssertionError(f"after one step, {opt}, the optimizer train_step is given, holds "
                                     f"no gradient for {portable_name(key)}: was its step taken, on "
                                     f"{NETS[key.split('.')[0]]}'s parameters?")
            err = float(np.abs(have[key] - want[key]).max()) if absolute else rel(have[key], want[key])
            if not err < TOL:
                measure = "largest difference" if absolute else "relative error"
                raise AssertionError(f"after one step, {what} differ{'s' * what.endswith('gradient')} "
                                     f"first at {portable_name(key)} "
                                     f"({measure} {err:.1e} > {TOL:.0e}); {self.agreed(what)}. " + hint(key))
            self.worst = max(self.worst, err)

    def agreed(self, what: str) -> str:
        if what not in self.ORDER:                    # the running statistics, compared last
            return "everything else agrees"
        done = self.ORDER[:self.ORDER.index(what)]
        return ("what comes before it agrees (" + ", ".join(done) + ")") if done else \
            "it is the first number the step computes"

    def stats_hint(self, net: str) -> str:
        if net in self.frozen:
            return self.frozen_hint()
        runs = ("once, on z" if net == "generator" else
                "three times: on the real batch, on the fake batch, and on the fake batch after D's update")
        hint = (f"In one step the repository runs {NETS[net]} in training mode {runs}, each batch in a "
                "call of its own; each such call moves the running statistics once.")
        if net == "generator":                 # G run more than once (G(z) made again for G's loss)
            stats = {}
            for n in range(1, 4):
                _, stats = reference.generator(self.cfg, {**self.arrays, **stats}, self.z, True)
                if n > 1 and all(rel(self.after[k], stats[k]) < 1e-4 for k in stats):
                    return (f"G's running statistics moved as if G ran {n} times in training mode. " + hint
                            + " Compute G(z) once and use it in both updates (PyTorch: fake.detach() for "
                            "D; JAX: nnx.vjp; Keras: G's tape kept open).")
        return hint

    def g_gradient_hint(self, key: str) -> str:
        """Whose gradient G got instead: g_loss's plus d_loss's (D's loss reached G), the
        saturating loss's, the wrong label's, or through D before its update."""
        fw, cfg, g = self.fw, self.cfg, self.parameters("generator")

        def same(candidate: dict) -> bool:
            return all(rel(self.grads[k], candidate[k]) < 1e-4 for k in g)

        d_loss_part = fw.g_gradient(cfg, self.arrays, self.z, 0.0)    # of BCE(D(G(z)), 0), D as it starts
        if same({k: self.ref_grads[k] + d_loss_part[k] for k in g}):
            return (f"G's gradient is g_loss's PLUS d_loss's: {HINT_D_LOSS_REACHED_G}. D's update "
                    "must change D only; with d_loss's gradient G is pushed to make fakes that D "
                    f"rejects more easily. {fw.detach_fix}.")
        fake_label = fw.g_gradient(cfg, self.updated(), self.z, 0.0)  # of BCE(D'(G(z)), 0)
        if same({k: -fake_label[k] for k in g}):
            return (f"G's gradient is that of log(1 - D(G(z))), {HINT_SATURATING}, though the g_loss "
                    "you report agrees: G minimises the non-saturating -log D(G(z)) = BCE(D(G(z)), 1).")
        if same(fake_label):
            return "G's gradient is that of BCE(D(G(z)), 0): G trained toward 'fake'; its label is 1."
        if same(fw.g_gradient(cfg, self.arrays, self.z, 1.0)):
            return "G's gradient is that of BCE(D(G(z)), 1) through D BEFORE its update: the G step runs the updated D."
        return ("g_loss agrees, so G's update used another gradient than g_loss's with respect to "
                "G's parameters, or more than one g_optimizer step (the check reads the gradient "
                "from Adam's first moment).")
