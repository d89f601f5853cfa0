"""The diagnoses behind lesson 9 (spot the bug): what is still wrong with a student's repair
of seed 004's mistakes, each as a message that names the mistake.

    check.fixed("fixed_up", bugs.generator_problems(lambda: make_generator(fixed_up), cfg))

Every function returns a list of problems ([] when the repair is right), or None when the
exercise is blank (a function that returned None); the lesson's check cell hands it to
course.check.fixed. What is right comes from the repository, never from the lesson:
- a network's layers against common/spec.py (the DCGAN's layer list for cfg);
- a D loss and a training step against pytorch_impl/step.py's train_step, on the same
  weights (pytorch_impl.model.build), batch and z.
"""
from __future__ import annotations

import builtins
import dis
import types

import numpy as np
import torch
from torch import nn

from common import spec
from common.config import Config
from pytorch_impl.layers import adam
from pytorch_impl.model import build
from pytorch_impl.step import train_step

PAPER = "Radford et al. 2015, section 3"
OPS = ((nn.ConvTranspose2d, "conv_transpose"), (nn.Conv2d, "conv"), (nn.Linear, "linear"))
ACTIVATIONS = ((nn.ReLU, "relu"), (nn.LeakyReLU, "leaky_relu"), (nn.Tanh, "tanh"),
               (nn.Sigmoid, "sigmoid"))
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
FIELDS = ("kind", "in_ch", "out_ch", "kernel", "stride", "padding")     # bias: not a guideline
TOL = 1e-5


# ----------------------------------------------------------------------------------------
# networks: the layers a module runs, against the spec

def has_blank(model) -> bool:
    """None, or a module with a None where a block should be (a block function that
    returned None)."""
    if model is None:
        return True
    if not isinstance(model, nn.Module):
        return False
    return any(m is None or has_blank(m) for m in model._modules.values())


def run_layers(model: nn.Module, x: torch.Tensor) -> tuple[list[dict], torch.Tensor]:
    """The blocks a forward pass on x runs, in the order it runs them (forward hooks on the
    leaf modules): each an operation (convolution, transposed convolution, linear) with
    the BatchNorm and the activation that follow it, as the spec's layers are; and the
    output."""
    calls = []
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append(m)) for m in leaves]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    layers = []
    for m in calls:
        kind = next((k for t, k in OPS if isinstance(m, t)), None)
        if kind:
            conv = kind != "linear"
            layers.append(dict(
                kind=kind, batchnorm=False, activation=None, norm_before_op=False,
                in_ch=m.in_channels if conv else m.in_features,
                out_ch=m.out_channels if conv else m.out_features,
                kernel=m.kernel_size[0] if conv else 1, stride=m.stride[0] if conv else 1,
                padding=m.padding[0] if conv else 0))
        elif isinstance(m, NORMS):
            if layers:
                layers[-1]["batchnorm"] = True
            else:
                layers.append(dict(kind="batchnorm on the input", norm_before_op=True))
        else:
            act = next((a for t, a in ACTIVATIONS if isinstance(m, t)), None)
            if act and layers:
                layers[-1]["activation"] = act
    return layers, out


def layer_problems(who: str, layers: list[dict], expected: list) -> list[str]:
    """What differs between the layers a network ran and the spec's, as messages. who: "G"
    or "D"."""
    names = ", ".join(l.name for l in expected)
    if layers and layers[0].get("norm_before_op"):
        return [f"{who} normalises its input with BatchNorm before the first layer: the "
                f"spec ({names}; common/spec.py) starts with a convolution"]
    if len(layers) != len(expected):
        return [f"{who} runs {len(layers)} convolution layers, the spec has {len(expected)} "
                f"({names}; common/spec.py)"]
    problems = []
    for i, (got, want) in enumerate(zip(layers, expected)):
        first, last = i == 0, i == len(expected) - 1
        where = f"{who}'s layer {want.name}"
        for field in FIELDS:
            if got[field] != getattr(want, field):
                problems.append(f"{where}: {field} {got[field]!r} where the spec has "
                                f"{getattr(want, field)!r} (common/spec.py)")
        if got["batchnorm"] and not want.batchnorm:
            if who == "G" and last:
                problems.append(
                    f"G's last layer ({want.name}) is followed by BatchNorm: the DCGAN leaves G's "
                    f"output layer without it ({PAPER}; common/spec.py, {want.name}: batchnorm "
                    "False). BatchNorm there forces every batch of images to the same mean and "
                    "spread of pixel values before the tanh")
            elif who == "D" and first:
                problems.append(
                    f"D's first layer ({want.name}) is followed by BatchNorm: the DCGAN leaves "
                    f"D's input layer without it ({PAPER}; common/spec.py, {want.name}: "
                    "batchnorm False). BatchNorm there normalises each batch by its own "
                    "statistics before D has looked at them: a shift of a whole batch's "
                    "brightness is largely taken away before D sees it")
            else:
                problems.append(f"{where} is followed by BatchNorm, the spec has none there "
                                "(common/spec.py)")
        elif want.batchnorm and not got["batchnorm"]:
            problems.append(f"{where} has no BatchNorm, the spec has one there (common/spec.py; "
                            f"{PAPER}: BatchNorm in every other layer)")
        if got["activation"] != want.activation:
            problems.append(f"{where} ends in {got['activation'] or 'no activation'}, the spec "
                            f"has {want.activation or 'none'} (common/spec.py)")
    return problems


def network_problems(who: str, make, cfg: Config, x: torch.Tensor, expected: list,
                     out_shape: tuple) -> list[str] | None:
    try:
        model = make()
    except Exception as e:                        # the student's code: report, do not crash
        return [f"building {who} raised {type(e).__name__}: {e}"]
    if has_blank(model):
        return None
    if not isinstance(model, nn.Module):
        return [f"building {who} gave a {type(model).__name__}, not a torch.nn.Module"]
    model.train()                                 # as in a training step: batch statistics
    try:
        layers, out = run_layers(model, x)
    except Exception as e:
        return [f"running {who} on a batch of shape {tuple(x.shape)} raised "
                f"{type(e).__name__}: {e}"]
    problems = layer_problems(who, layers, expected)
    if tuple(out.shape) != out_shape and out.numel() != int(np.prod(out_shape)):
        problems.append(f"{who}'s output has shape {tuple(out.shape)}, expected {out_shape}")
    return problems


def generator_problems(make, cfg: Config, n: int = 8) -> list[str] | None:
    """make() builds the student's G, which takes z (n, nz) and returns (n, C, S, S)."""
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((n, cfg.nz), np.float32))
    return network_problems("G", make, cfg, z, spec.generator_spec(cfg),
                            (n, cfg.channels, cfg.image_size, cfg.image_size))


def discriminator_problems(make, cfg: Config, n: int = 8) -> list[str] | None:
    """make() builds the student's D, which takes images (n, C, S, S) and returns n logits."""
    x = torch.from_numpy(np.random.default_rng(0).uniform(
        -1, 1, (n, cfg.channels, cfg.image_size, cfg.image_size)).astype(np.float32))
    return network_problems("D", make, cfg, x, spec.discriminator_spec(cfg), (n,))


# ----------------------------------------------------------------------------------------
# the D loss and the step, against the repository's train_step

def reference(cfg: Config, real, z, seed: int = 0):
    """The repository's networks after one train_step, and its metrics. D's .grad still
    holds the gradient of its loss: the G step switches D's gradients off."""
    generator, discriminator = build(cfg, seed)
    metrics = train_step(generator, discriminator, adam(generator.parameters(), cfg),
                         adam(discriminator.parameters(), cfg), real.clone(), z.clone())
    return generator, discriminator, metrics


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1e-12, float(np.max(np.abs(a) + np.abs(b)))))


FORMULAS = {"d_loss": "BCE(D(x), 1) + BCE(D(G(z)), 0), each a batch mean",
            "g_loss": "BCE(D(G(z)), 1) through the updated D, on the same fake batch"}


def loss_problem(what: str, got: float, expected: float) -> list[str]:
    """What is wrong with a loss against train_step's (what: "d_loss" or "g_loss")."""
    if rel(got, expected) <= TOL:
        return []
    if what == "d_loss" and abs(got / expected - 0.5) < 1e-3:
        return [f"d_loss is half the repository's ({got:.6f} where train_step has "
                f"{expected:.6f}): the real and fake terms are averaged instead of added. "
                "V(D, G) adds them (Goodfellow et al. 2014), and so does pytorch_impl/step.py: "
                "BCE(D(x), 1) + BCE(D(G(z)), 0)"]
    return [f"{what} is {got:.6f} where train_step has {expected:.6f} "
            f"(pytorch_impl/step.py: {FORMULAS[what]})"]


def d_loss_problems(d_loss_fn, cfg: Config, real, z, seed: int = 0) -> list[str] | None:
    """d_loss_fn(logits_real, logits_fake) -> the D loss as a tensor. Compared with
    train_step's d_loss and D's gradient, on the same weights, batch and z."""
    generator, discriminator = build(cfg, seed)
    with torch.no_grad():
        fake = generator(z.clone())
    logits_real, logits_fake = discriminator(real.clone()), discriminator(fake)   # two calls
    try:
        loss = d_loss_fn(logits_real, logits_fake)
    except Exception as e:
        return [f"d_loss_fn raised {type(e).__name__}: {e}"]
    if loss is None:
        return None
    if not torch.is_tensor(loss) or loss.numel() != 1:
        return [f"the D loss is a {type(loss).__name__}"
                + (f" of shape {tuple(loss.shape)}" if torch.is_tensor(loss) else "")
                + ": return one number as a tensor, so that backward() reaches D's weights"]
    if not loss.requires_grad:
        return ["the D loss is cut off from D's weights (detached, or rebuilt from plain "
                "numbers): backward() could not train D with it"]
    loss.reshape(()).backward()
    _, ref_d, metrics = reference(cfg, real, z, seed)
    problems = loss_problem("d_loss", loss.item(), metrics["d_loss"])
    got = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel())
                     for p in discriminator.parameters()]).numpy()
    want = torch.cat([p.grad.reshape(-1) for p in ref_d.parameters()]).numpy()
    if rel(got, want) > TOL:
        scale = float(got @ want / (want @ want))
        if abs(scale - 0.5) < 1e-3:
            problems.append("D's gradient is half of train_step's: a halved loss halves every "
                            "gradient D learns from")
        else:
            problems.append(f"D's gradient differs from train_step's (relative error "
                            f"{rel(got, want):.1e})")
    return problems


def undefined_names(fn) -> list[str]:
    """The global names fn (and the functions and comprehensions inside it) reads that are
    defined neither in its module (the notebook) nor in builtins: the NameErrors to come,
    all of them, before the first line runs."""
    names = set()

    def walk(code):
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                names.add(ins.argval)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const)

    walk(fn.__code__)
    return sorted(n for n in names if n not in fn.__globals__ and not hasattr(builtins, n))


def step_problems(step, cfg: Config, real, z, seed: int = 0) -> list[str] | None:
    """step(generator, discriminator, g_optimizer, d_optimizer, real, z) -> {"d_loss": ...,
    "g_loss": ...}: one GAN step. Run on the repository's networks and compared with
    train_step: the two losses and every weight after the step."""
    if not callable(step):
        return None if step is None else [f"it is a {type(step).__name__}, not a function"]
    missing = undefined_names(step)
    if missing:
        return [f"it uses names it never defines: {', '.join(missing)}. Python reports "
                "only the first, when its line runs; each must be made inside the "
                "function, passed in, or defined in the notebook"]
    generator, discriminator = build(cfg, seed)
    try:
        metrics = step(generator, discriminator, adam(generator.parameters(), cfg),
                       adam(discriminator.parameters(), cfg), real.clone(), z.clone())
    except Exception as e:
        return [f"it raised {type(e).__name__}: {e}"]
    if metrics is None:
        return None
    ref_g, ref_d, expected = reference(cfg, real, z, seed)
    problems = []
    for key in ("d_loss", "g_loss"):
        try:
            value = float(metrics[key])
        except (TypeError, KeyError, IndexError, ValueError):
            problems.append(f"it returns no number under {key!r} (it returned {metrics!r})")
            continue
        problems += loss_problem(key, value, expected[key])
    for who, net, ref in (("G", generator, ref_g), ("D", discriminator, ref_d)):
        worst = max(((rel(p.detach(), q.detach()), k) for (k, p), q in
                     zip(net.named_parameters(), ref.parameters())), default=(0.0, ""))
        if worst[0] > TOL:
            problems.append(f"after the step, {who}'s weights differ from train_step's (worst: "
                            f"{worst[1]}, relative error {worst[0]:.1e})")
    return problems
