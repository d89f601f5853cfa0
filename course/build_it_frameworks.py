"""What course/build_it.py's check needs from each framework, one class per framework:
list a student's layers, load and read the portable arrays (common/weights.py) in and out
of them, run a layer or a network, make the optimizers as each train.py makes them, read a
gradient back from Adam's first moment, and run the repository's own step.

Arrays cross into and out of these classes as NumPy, images NHWC, kernels in the portable
layout (kh, kw, in, out). Each framework is imported when its adapter is first made, so a
PyTorch student never loads TensorFlow.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses

import numpy as np

from common import weights
from common.config import ADAM_EPS, Config
from common.runfiles import METRICS

FRAMEWORKS = ("pytorch", "jax", "keras")
BN_NAMES = ("gamma", "beta", "running_mean", "running_var")


def without_stats(arrays: dict, net: str = "") -> dict:
    """The parameters of a portable dict (of one network, if net is given)."""
    return {k: v for k, v in arrays.items() if k.startswith(net) and not k.endswith(weights.RUNNING_STATS)}


class Adapter:
    name = ""
    step_file = ""           # the repository's answer to exercise 3
    eval_fix = ""            # how to keep BatchNorm in training mode during the step
    detach_fix = ""          # how to keep D's loss out of G
    conv_notes = ""          # which defaults make a convolution compute another function
    bn_fix = ""              # a BatchNorm with PyTorch's numbers
    order = ""               # the order in which layers() lists a network's layers

    def prepare(self, net, which: str, cfg: Config) -> None:
        """Whatever must happen before the layers can be listed."""

    def track(self, net, layers) -> None:
        """Whatever first_moment needs to find a variable's moment."""

    def set_train(self, net, train: bool) -> None:
        """Training mode (batch statistics) or inference mode (running statistics)."""

    def on_cpu(self):
        """A context in which new arrays, variables and computations are on the CPU: JAX and
        TensorFlow compute float32 convolutions in TF32 by default on recent NVIDIA GPUs,
        further from float32 than the check's 1e-5. (PyTorch builds on the CPU unless told.)"""
        return contextlib.nullcontext()


# ========================================================================================
# PyTorch

class TorchAdapter(Adapter):
    name = "pytorch"
    step_file = "pytorch_impl/step.py"
    eval_fix = ("PyTorch modules are in training mode unless .eval() is called: no .eval() in "
                "train_step (and .train() again after sampling)")
    detach_fix = ("In the D step D must read fake.detach(), so that d_loss.backward() stops at "
                  "the fake images and leaves G's .grad alone")
    conv_notes = "PyTorch's layers take the spec's numbers as they are"
    bn_fix = "nn.BatchNorm2d(features) with its defaults (eps 1e-5, momentum 0.1) is the definition"
    order = "in the order they are registered (an nn.Sequential's order)"

    def __init__(self):
        import torch
        from torch import nn
        self.torch, self.nn = torch, nn

    def layers(self, net):
        nn = self.nn
        if not isinstance(net, nn.Module):
            raise AssertionError(f"the network is a {type(net).__name__}, not a torch.nn.Module")
        out = []
        for path, m in net.named_modules():
            kind = ("conv_transpose" if isinstance(m, nn.ConvTranspose2d) else
                    "conv" if isinstance(m, nn.Conv2d) else
                    "bn" if isinstance(m, nn.modules.batchnorm._BatchNorm) else
                    "linear" if isinstance(m, nn.Linear) else None)
            if kind:
                out.append((path or "(the network)", m, kind))
        return out

    def describe(self, m) -> str:
        return type(m).__name__

    def op_info(self, m) -> dict:
        if isinstance(m, self.nn.Linear):
            return dict(in_ch=m.in_features, out_ch=m.out_features, bias=m.bias is not None)
        pad = m.padding if isinstance(m.padding, str) else m.padding[0]   # 'same' is checked by numbers
        return dict(in_ch=m.in_channels, out_ch=m.out_channels, kernel=m.kernel_size[0],
                    stride=m.stride[0], padding=pad if isinstance(pad, int) else None,
                    bias=m.bias is not None, output_padding=getattr(m, "output_padding", (0,))[0])

    def bn_features(self, m) -> int:
        return m.num_features

    def variables(self, m, kind) -> dict:
        if kind == "bn":
            if m.weight is None or m.running_mean is None:
                raise AssertionError(f"a {type(m).__name__}(affine={m.affine}, track_running_stats="
                                     f"{m.track_running_stats}): the DCGAN's BatchNorm has gamma, "
                                     "beta and running statistics (the defaults)")
            return dict(zip(BN_NAMES, ((t, None, None) for t in
                                       (m.weight, m.bias, m.running_mean, m.running_var))))
        # Conv2d (O, I, kh, kw), ConvTranspose2d (I, O, kh, kw) <-> portable (kh, kw, I, O)
        perm, back = ((2, 3, 0, 1), (2, 3, 0, 1)) if kind == "conv_transpose" else ((2, 3, 1, 0), (3, 2, 0, 1))
        out = {"kernel": (m.weight, perm, back)}
        if m.bias is not None:
            out["bias"] = (m.bias, None, None)
        return out

    def read(self, t) -> np.ndarray:
        return np.array(t.detach().cpu(), np.float32)

    def write(self, t, a: np.ndarray) -> None:
        with self.torch.no_grad():
            t.copy_(self.torch.from_numpy(np.ascontiguousarray(a, np.float32)))

    def set_train(self, net, train):
        net.train(train)

    def apply(self, m, x, train):
        m.train(train)
        with self.torch.no_grad():
            y = m(self.torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
        return self.read(y).transpose(0, 2, 3, 1)

    def to_model(self, x, which):
        if which == "discriminator":                     # NHWC -> NCHW at the boundary
            x = x.transpose(0, 3, 1, 2)
        return self.torch.from_numpy(np.ascontiguousarray(x, np.float32))

    def forward(self, net, x, which, train):
        net.train(train)
        with self.torch.no_grad():
            y = self.read(net(self.to_model(x, which)))
        return y.transpose(0, 2, 3, 1) if which == "generator" and y.ndim == 4 else y

    def optimizer(self, net, cfg):
        return self.torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                     eps=ADAM_EPS)

    def first_moment(self, opt, t):
        state = opt.state.get(t, {})
        return self.read(state["exp_avg"]) if "exp_avg" in state else None

    def metrics(self, values):
        return {k: float(self.read(v) if hasattr(v, "detach") else np.asarray(v)) for k, v in values.items()}

    def reference_step(self, cfg, arrays, real, z):
        from pytorch_impl.model import build, load_portable, to_portable
        from pytorch_impl.step import train_step
        generator, discriminator = build(cfg)
        load_portable(generator, discriminator, arrays)
        g_opt, d_opt = self.optimizer(generator, cfg), self.optimizer(discriminator, cfg)
        metrics = train_step(generator, discriminator, g_opt, d_opt,
                             self.to_model(real, "discriminator"), self.to_model(z, "generator"))
        after = to_portable(generator, discriminator)
        g2, d2 = copy.deepcopy(generator), copy.deepcopy(discriminator)   # twins holding gradients
        for model, twin, opt in ((generator, g2, g_opt), (discriminator, d2, d_opt)):
            for p, q in zip(model.parameters(), twin.parameters()):
                q.data = opt.state[p]["exp_avg"] / (1 - cfg.beta1)
        return metrics, after, without_stats(to_portable(g2, d2))

    def g_gradient(self, cfg, arrays, z, label: float) -> dict:
        """The gradient with respect to G of BCE(D(G(z)), label), both in training mode."""
        import torch.nn.functional as F
        from pytorch_impl.model import build, load_portable, to_portable
        generator, discriminator = build(cfg)
        load_portable(generator, discriminator, arrays)
        logits = discriminator(generator(self.to_model(z, "generator")))
        F.binary_cross_entropy_with_logits(logits, self.torch.full_like(logits, label)).backward()
        for p in generator.parameters():
            p.data = p.grad
        return without_stats(to_portable(generator, discriminator), "generator.")


# ========================================================================================
# JAX: Flax NNX and optax

class JaxAdapter(Adapter):
    name = "jax"
    step_file = "jax_impl/step.py"
    eval_fix = ("Flax NNX modules use the batch's statistics until .eval() is called: .train() "
                "on both networks before the step, no .eval() in it")
    detach_fix = ("Differentiate d_loss with respect to D only (nnx.value_and_grad(d_loss_fn)"
                  "(discriminator), the fake images a plain array inside it), and give G's "
                  "backward function (from nnx.vjp) the gradient of g_loss alone")
    conv_notes = ("Flax's ConvTranspose pads the stride-dilated input, so PyTorch's padding p is "
                  "Flax's K - 1 - p on each side, and applies the kernel as PyTorch does only with "
                  "transpose_kernel=True (docs/frameworks.md)")
    bn_fix = ("nnx.BatchNorm averages the biased variance into its running variance and calls the "
              "weight of the old value momentum: jax_impl.layers.BatchNorm computes PyTorch's")
    order = ("in the order nnx.iter_modules lists them: a list's or an nnx.Sequential's in order, "
             "but attributes by their names, alphabetically (keep the layers in an nnx.Sequential)")

    def __init__(self):
        import jax.numpy as jnp
        from flax import nnx
        from jax_impl import layers as jl
        self.jnp, self.nnx, self.jl = jnp, nnx, jl
        self.paths, self.tx = {}, {}
        # under jit: one compilation for a whole call, where eager JAX compiles each
        # operation for each new shape (a second or more each, on a CPU)
        self.call = nnx.jit(lambda m, x: m(x))

    def layers(self, net):
        nnx, jl = self.nnx, self.jl
        if not isinstance(net, nnx.Module):
            raise AssertionError(f"the network is a {type(net).__name__}, not a flax.nnx.Module")
        out = []
        for path, m in nnx.iter_modules(net):
            kind = ("conv_transpose" if isinstance(m, (nnx.ConvTranspose, jl.ConvTranspose)) else
                    "conv" if isinstance(m, nnx.Conv) else
                    "bn" if isinstance(m, (nnx.BatchNorm, jl.BatchNorm)) else
                    "linear" if isinstance(m, nnx.Linear) else None)
            if kind:
                out.append(("/".join(map(str, path)), m, kind))
        return out

    def on_cpu(self):
        import jax
        return jax.default_device(jax.devices("cpu")[0])

    def describe(self, m):
        return ("nnx." if type(m).__module__.startswith("flax") else "jax_impl.layers.") + type(m).__name__

    def _swapped(self, m) -> bool:
        """nnx.ConvTranspose(transpose_kernel=True) keeps its kernel (kh, kw, out, in)."""
        return isinstance(m, self.nnx.ConvTranspose) and m.transpose_kernel

    def op_info(self, m):
        shape = m.kernel.shape
        if isinstance(m, self.nnx.Linear):
            return dict(in_ch=shape[0], out_ch=shape[1], bias=m.bias is not None)
        i, o = (3, 2) if self._swapped(m) else (2, 3)
        info = dict(in_ch=shape[i], out_ch=shape[o], kernel=shape[0], bias=m.bias is not None)
        if isinstance(m, self.jl.ConvTranspose):
            info.update(stride=m.stride, padding=m.padding, output_padding=m.output_padding)
        else:                                   # Flax's padding is checked by the numbers
            info.update(stride=m.strides if isinstance(m.strides, int) else (m.strides or (1,))[0])
        return info

    def bn_features(self, m):
        return m.mean.shape[0]

    def variables(self, m, kind):
        if kind == "bn":
            if m.scale is None or m.bias is None:
                raise AssertionError("a BatchNorm without scale or bias (use_scale or use_bias "
                                     "False): the DCGAN's BatchNorm has gamma and beta")
            return dict(zip(BN_NAMES, ((v, None, None) for v in (m.scale, m.bias, m.mean, m.var))))
        swap = (0, 1, 3, 2) if self._swapped(m) else None
        out = {"kernel": (m.kernel, swap, swap)}
        if m.bias is not None:
            out["bias"] = (m.bias, None, None)
        return out

    def read(self, v):
        return np.array(v[...], np.float32)

    def write(self, v, a):
        v[...] = self.jnp.asarray(a, v.dtype)

    def set_train(self, net, train):
        net.train() if train else net.eval()

    def apply(self, m, x, train):
        if hasattr(m, "use_running_average"):          # a BatchNorm
            m.use_running_average = not train
        return np.array(self.call(m, self.jnp.asarray(x)), np.float32)

    def to_model(self, x, which):
        return self.jnp.asarray(x, self.jnp.float32)

    def forward(self, net, x, which, train):
        self.set_train(net, train)
        return np.array(self.call(net, self.to_model(x, which)), np.float32)

    def optimizer(self, net, cfg):
        # one optax transformation per setting: nnx.jit compiles a step anew for a new one
        key = (cfg.lr, cfg.beta1, cfg.beta2)
        if key not in self.tx:
            self.tx[key] = self.jl.adam(cfg)
        return self.nnx.Optimizer(net, self.tx[key], wrt=self.nnx.Param)

    def track(self, net, layers):
        """optax's state is a tree shaped like the parameters: remember each variable's path."""
        attrs = {"gamma": "scale", "beta": "bias", "running_mean": "mean", "running_var": "var"}
        for path, m, kind in layers:
            for name, (v, _, _) in self.variables(m, kind).items():
                self.paths[id(v)] = f"{path}/{attrs.get(name, name)}".lstrip("/")

    def first_moment(self, opt, v):
        from jax_impl.checkpoint import flat_state
        path = self.paths.get(id(v))
        hit = next((s for k, s in flat_state(opt).items() if path and k.endswith(f"/mu/{path}")), None)
        return None if hit is None else self.read(hit)

    def metrics(self, values):
        return {k: float(np.asarray(v)) for k, v in values.items()}

    def reference_step(self, cfg, arrays, real, z):
        from jax_impl.checkpoint import flat_state
        from jax_impl.model import build, load_portable, to_portable
        from jax_impl.step import step_metrics, train_step
        generator, discriminator = build(cfg)
        load_portable(generator, discriminator, arrays)
        g_opt, d_opt = self.optimizer(generator, cfg), self.optimizer(discriminator, cfg)
        generator.train(), discriminator.train()
        metrics = step_metrics(train_step(generator, discriminator, g_opt, d_opt,
                                          self.to_model(real, ""), self.to_model(z, "")))
        after = to_portable(generator, discriminator)
        g2, d2 = build(cfg)                             # twins whose parameters hold the gradients
        for twin, opt in ((g2, g_opt), (d2, d_opt)):
            state = flat_state(opt)
            for path, var in flat_state(twin).items():
                key = next((k for k in state if k.endswith(f"/mu/{path}")), None)
                if key is not None:
                    var[...] = state[key][...] / (1 - cfg.beta1)
        return metrics, after, without_stats(to_portable(g2, d2))

    def g_gradient(self, cfg, arrays, z, label):
        nnx = self.nnx
        from jax_impl.model import build, load_portable, to_portable
        from jax_impl.step import bce
        if not hasattr(self, "_g_gradient"):
            @nnx.jit(static_argnames="label")
            def grad(generator, discriminator, z, label):
                fake, g_backward = nnx.vjp(lambda g: g(z), generator, graph=False)
                fake_grad = nnx.grad(lambda f, d: bce(d(f), label))(fake, discriminator)
                return g_backward(fake_grad)[0]       # a Generator whose parameters are the gradients
            self._g_gradient = grad
        generator, discriminator = build(cfg)
        load_portable(generator, discriminator, arrays)
        generator.train(), discriminator.train()
        grads = self._g_gradient(generator, discriminator, self.jnp.asarray(z), label=label)
        return without_stats(to_portable(grads, discriminator), "generator.")


# ========================================================================================
# Keras 3 on TensorFlow

class KerasAdapter(Adapter):
    name = "keras"
    step_file = "keras_impl/step.py"
    eval_fix = ("A Keras model called without training=True runs BatchNorm in inference mode: "
                "pass training=True in every call of G and D in train_step")
    detach_fix = ("Make the fake images outside D's tape and take G's gradient of g_loss alone "
                  "(g_tape.gradient(g_loss, ...)): d_loss must not be recorded on G's tape")
    conv_notes = ("for a 4x4 kernel Keras' padding 'valid' is PyTorch's padding 0, and at stride 2 "
                  "'same' is its padding 1")
    bn_fix = ("layers.BatchNormalization has epsilon 1e-3, calls the weight of the old value "
              "momentum, and averages the biased variance: keras_impl.layers.BatchNorm computes "
              "PyTorch's")
    order = "in the order of the model's layers"

    def __init__(self):
        import keras_impl  # noqa: F401  (backend and logging set before keras is imported)
        import keras
        self.keras, self.kl = keras, keras.layers

    def on_cpu(self):
        import tensorflow as tf
        return tf.device("/CPU:0")

    def prepare(self, net, which, cfg):
        if not isinstance(net, self.keras.layers.Layer):
            raise AssertionError(f"the network is a {type(net).__name__}, not a Keras model")
        if not net.built:                               # its variables appear at its first call
            shape = (2, cfg.nz) if which == "generator" else (2, cfg.image_size, cfg.image_size, cfg.channels)
            try:
                net(np.zeros(shape, np.float32))
            except Exception as e:
                raise AssertionError(f"calling your {which} on an input of shape {shape} raised "
                                     f"{type(e).__name__}: {e}") from e

    def layers(self, net):
        kl, out = self.kl, []
        for m in net._flatten_layers(include_self=False, recursive=True):
            kind = ("conv_transpose" if isinstance(m, kl.Conv2DTranspose) else
                    "conv" if isinstance(m, kl.Conv2D) else
                    "bn" if isinstance(m, kl.BatchNormalization) else
                    "linear" if isinstance(m, kl.Dense) else None)
            if kind:
                out.append((m.name, m, kind))
        return out

    def describe(self, m):
        return type(m).__name__

    def op_info(self, m):
        shape = tuple(m.kernel.shape)
        if isinstance(m, self.kl.Dense):
            return dict(in_ch=shape[0], out_ch=shape[1], bias=m.use_bias)
        i, o = (3, 2) if isinstance(m, self.kl.Conv2DTranspose) else (2, 3)   # (kh, kw, out, in)
        return dict(in_ch=shape[i], out_ch=shape[o], kernel=shape[0], stride=m.strides[0],
                    bias=m.use_bias)          # 'same' / 'valid': checked by the numbers

    def bn_features(self, m):
        return int(m.moving_mean.shape[0])

    def variables(self, m, kind):
        if kind == "bn":
            if m.gamma is None or m.beta is None:
                raise AssertionError("a BatchNormalization without gamma or beta (scale or center "
                                     "False): the DCGAN's BatchNorm has both")
            return dict(zip(BN_NAMES, ((v, None, None) for v in
                                       (m.gamma, m.beta, m.moving_mean, m.moving_variance))))
        swap = (0, 1, 3, 2) if kind == "conv_transpose" else None
        out = {"kernel": (m.kernel, swap, swap)}
        if m.use_bias:
            out["bias"] = (m.bias, None, None)
        return out

    def read(self, v):
        return np.array(self.keras.ops.convert_to_numpy(v), np.float32)

    def write(self, v, a):
        v.assign(np.asarray(a, np.float32))

    def apply(self, m, x, train):
        return self.read(m(x, training=train))

    def to_model(self, x, which):
        return self.keras.ops.convert_to_tensor(np.asarray(x, np.float32))

    def forward(self, net, x, which, train):
        return self.read(net(self.to_model(x, which), training=train))

    def optimizer(self, net, cfg):
        from keras_impl.layers import adam      # PyTorch's Adam: Keras' adds epsilon elsewhere
        return adam(cfg)

    def first_moment(self, opt, v):
        try:
            return self.read(opt._momentums[opt._get_variable_index(v)])
        except (AttributeError, KeyError, IndexError, ValueError):     # never applied to v
            return None

    def metrics(self, values):
        return {k: float(self.read(v)) for k, v in values.items()}

    def reference_step(self, cfg, arrays, real, z):
        from keras_impl.layers import adam
        from keras_impl.model import build, load_portable, to_portable
        from keras_impl.step import GAN
        gan = GAN(dataclasses.replace(cfg, precision="fp32"))
        gan.compile(d_optimizer=adam(cfg), g_optimizer=adam(cfg))
        load_portable(gan.generator, gan.discriminator, arrays)
        out = gan.train_step((self.to_model(real, ""), self.to_model(z, "")))
        metrics = {k: float(self.read(out[k])) for k in METRICS}
        after = to_portable(gan.generator, gan.discriminator)
        g2, d2 = build(cfg)                             # twins whose variables hold the gradients
        for model, twin, opt in ((gan.generator, g2, gan.g_optimizer),
                                 (gan.discriminator, d2, gan.d_optimizer)):
            for var, twin_var in zip(model.trainable_variables, twin.trainable_variables):
                twin_var.assign(opt._momentums[opt._get_variable_index(var)] / (1 - cfg.beta1))
        return metrics, after, without_stats(to_portable(g2, d2))

    def g_gradient(self, cfg, arrays, z, label):
        import tensorflow as tf
        from keras_impl.model import build, load_portable, to_portable
        generator, discriminator = build(cfg)
        load_portable(generator, discriminator, arrays)
        bce = self.keras.losses.BinaryCrossentropy(from_logits=True)
        with tf.GradientTape() as tape:
            logits = discriminator(generator(self.to_model(z, ""), training=True), training=True)
            loss = bce(np.full(len(z), label, np.float32), logits)
        for var, g in zip(generator.trainable_variables, tape.gradient(loss, generator.trainable_variables)):
            var.assign(g)
        return without_stats(to_portable(generator, discriminator), "generator.")


_ADAPTERS: dict[str, Adapter] = {}


def adapter(framework: str) -> Adapter:
    """One per framework and process: JAX's compiled functions are kept in it."""
    if framework not in FRAMEWORKS:
        raise AssertionError(f"FRAMEWORK is {framework!r}; choose one of {list(FRAMEWORKS)}")
    if framework not in _ADAPTERS:
        _ADAPTERS[framework] = {"pytorch": TorchAdapter, "jax": JaxAdapter, "keras": KerasAdapter}[framework]()
    return _ADAPTERS[framework]
