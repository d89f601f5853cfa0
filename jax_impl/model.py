"""The generators and discriminators in Flax NNX (NHWC; kernels (kh, kw, in, out) and
(in, out), the portable layout): the tutorial's DCGAN, the paper's network and the CS231n
28x28 one (common/spec.py).

    python -m jax_impl.model --image-size 64 --channels 3   # layer table and totals
    python -m jax_impl.model --arch cs231n
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common import spec
from common.config import INIT_STD, LEAKY_SLOPE, Config
from common.spec import CS231N_SLOPE
from jax_impl.layers import BatchNorm, Conv, ConvTranspose, normal

# ----------------------------------------------------------------------------------------
# building blocks: shared by the three networks

class Block(nnx.Module):
    """One spec layer: [reshape] op [reshape] BatchNorm act [max-pool], or with the
    activation before BatchNorm (act_first). The op is a convolution (self.conv) or a
    fully connected layer (self.fc), named as in pytorch_impl. reshape_in / reshape_out:
    the shape, without the batch, that the op's input / output is viewed as: (H, W, C) for
    a vector seen as a map, (features,) for a flattened map. On NHWC arrays a plain reshape
    IS the portable (H, W, C) order (common/weights.py): unlike pytorch_impl, whose
    (C, H, W) view needs its kernels permuted, no kernel here is ever reordered."""

    def __init__(self, op, features, batchnorm, act, *, act_first=False, pool=0,
                 reshape_in=None, reshape_out=None, rngs):
        if isinstance(op, nnx.Linear):
            self.fc = op
        else:
            self.conv = op
        self.bn = BatchNorm(features, rngs=rngs) if batchnorm else None
        self.act, self.act_first, self.pool = act, act_first, pool
        self.reshape_in, self.reshape_out = reshape_in, reshape_out

    def __call__(self, x):
        if self.reshape_in:
            x = x.reshape(x.shape[0], *self.reshape_in)
        x = op(self)(x)
        if self.reshape_out:
            x = x.reshape(x.shape[0], *self.reshape_out)
        if self.act is not None and self.act_first:
            x = self.act(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None and not self.act_first:
            x = self.act(x)
        if self.pool:
            # window = stride = pool, no padding: PyTorch's MaxPool2d(pool). Flax's max_pool
            # has strides=None, that is stride 1, by default; pinned here.
            x = nnx.max_pool(x, (self.pool,) * 2, strides=(self.pool,) * 2, padding="VALID")
        return x


def op(blk):
    """The block's convolution or fully connected layer."""
    return blk.fc if hasattr(blk, "fc") else blk.conv


def conv(in_ch, out_ch, kernel, stride, padding, bias, rngs):
    """PyTorch's Conv2d(in_ch, out_ch, kernel, stride, padding, bias=bias); the same padding
    and, in NHWC, the portable kernel layout (kh, kw, in, out). Padding pinned: Flax's
    default "SAME" gives a 5x5 stride-2 layer PyTorch's output shape but pads (1, 2), not
    (2, 2). Kernels ~ N(0, 0.02), not Flax's lecun-normal; biases zero."""
    return Conv(in_ch, out_ch, (kernel, kernel), strides=stride, padding=((padding,) * 2,) * 2,
                use_bias=bias, kernel_init=normal(INIT_STD), bias_init=nnx.initializers.zeros_init(),
                rngs=rngs)


def linear(n_in, n_out, bias, rngs):
    """PyTorch's Linear(n_in, n_out, bias), its kernel (in, out): the portable layout, the
    transpose of Linear.weight. Kernel ~ N(0, 0.02), not Flax's lecun-normal; bias zero."""
    return nnx.Linear(n_in, n_out, use_bias=bias, kernel_init=normal(INIT_STD),
                      bias_init=nnx.initializers.zeros_init(), rngs=rngs)


# ----------------------------------------------------------------------------------------
# the tutorial's network (--arch dcgan)

class Generator(nnx.Module):
    """z (B, nz) -> image (B, S, S, C) in [-1, 1]. For S = 64 this is the PyTorch
    tutorial's generator; each 4x4/2 p1 transposed conv doubles H and W."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        n = cfg.image_size.bit_length() - 1          # S = 2**n; n - 1 blocks
        ch = cfg.ngf * 2 ** (n - 3)
        blocks = {"g1": Block(ConvTranspose(cfg.nz, ch, 4, 1, 0, rngs=rngs), ch, True, nnx.relu,
                              rngs=rngs)}                                   # (4, 4, ngf*2^(n-3))
        for i in range(2, n - 1):
            blocks[f"g{i}"] = Block(ConvTranspose(ch, ch // 2, 4, 2, 1, rngs=rngs), ch // 2, True,
                                    nnx.relu, rngs=rngs)                    # (2H, 2W, ch/2)
            ch //= 2
        blocks[f"g{n - 1}"] = Block(ConvTranspose(ch, cfg.channels, 4, 2, 1, rngs=rngs), cfg.channels,
                                    False, jnp.tanh, rngs=rngs)             # (S, S, C)
        self.main = nnx.Dict(blocks)

    def __call__(self, z):
        x = z.reshape(z.shape[0], 1, 1, -1)          # (B, 1, 1, nz)
        for blk in self.main.values():
            x = blk(x)
        return x


class Discriminator(nnx.Module):
    """image (B, S, S, C) -> one logit per image (B,). No sigmoid: the losses take logits
    (optax.sigmoid_binary_cross_entropy is the stable form of sigmoid + BCE)."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        n = cfg.image_size.bit_length() - 1
        ch = cfg.ndf
        leaky = partial(nnx.leaky_relu, negative_slope=LEAKY_SLOPE)  # Flax's default is 0.01
        blocks = {"d1": Block(conv(cfg.channels, ch, 4, 2, 1, False, rngs), ch, False, leaky,
                              rngs=rngs)}                                   # (S/2, S/2, ndf)
        for i in range(2, n - 1):
            blocks[f"d{i}"] = Block(conv(ch, ch * 2, 4, 2, 1, False, rngs), ch * 2, True, leaky,
                                    rngs=rngs)                              # (H/2, W/2, 2ch)
            ch *= 2
        blocks[f"d{n - 1}"] = Block(conv(ch, 1, 4, 1, 0, False, rngs), 1, False, None,
                                    rngs=rngs)                              # (1, 1, 1)
        self.main = nnx.Dict(blocks)

    def __call__(self, x):
        for blk in self.main.values():
            x = blk(x)
        return x.reshape(-1)


# ----------------------------------------------------------------------------------------
# the paper's network (--arch paper)

class PaperGenerator(nnx.Module):
    """z (B, nz) -> image (B, S, S, C): the DCGAN paper's Figure 1. A fully connected
    projection of z to (S/16, S/16, ngf*16) ("project and reshape"), BatchNorm and ReLU
    (the paper's; the PyTorch write-up leaves that ReLU out), then four 5x5 stride-2
    transposed convolutions (padding 2, output_padding 1)."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        s0, ch = cfg.image_size // 16, cfg.ngf * 16
        # the projection's output viewed as (s0, s0, ch): NHWC's reshape, the portable order
        blocks = {"g1": Block(linear(cfg.nz, s0 * s0 * ch, False, rngs), ch, True, nnx.relu,
                              reshape_out=(s0, s0, ch), rngs=rngs)}         # (S/16, S/16, ngf*16)
        for i in range(2, 5):
            blocks[f"g{i}"] = Block(ConvTranspose(ch, ch // 2, 5, 2, 2, 1, rngs=rngs), ch // 2, True,
                                    nnx.relu, rngs=rngs)                    # (2H, 2W, ch/2)
            ch //= 2
        blocks["g5"] = Block(ConvTranspose(ch, cfg.channels, 5, 2, 2, 1, bias=True, rngs=rngs),
                             cfg.channels, False, jnp.tanh, rngs=rngs)      # (S, S, C)
        self.main = nnx.Dict(blocks)

    def __call__(self, z):
        x = z.reshape(z.shape[0], -1)                # (B, nz)
        for blk in self.main.values():
            x = blk(x)
        return x


class PaperDiscriminator(nnx.Module):
    """image (B, S, S, C) -> one logit (B,): four 5x5 stride-2 convolutions (padding 2),
    ndf*2 -> ndf*16 channels, then flatten and one fully connected layer."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        s0, ch, blocks = cfg.image_size // 16, cfg.channels, {}
        leaky = partial(nnx.leaky_relu, negative_slope=LEAKY_SLOPE)  # Flax's default is 0.01
        for i in range(1, 5):
            out = cfg.ndf * 2 ** i
            blocks[f"d{i}"] = Block(conv(ch, out, 5, 2, 2, i == 1, rngs), out, i > 1, leaky,
                                    rngs=rngs)                              # (H/2, W/2, out)
            ch = out
        # flattened in (H, W, C) order by a plain reshape: the portable order
        blocks["d5"] = Block(linear(s0 * s0 * ch, 1, True, rngs), 1, False, None,
                             reshape_in=(s0 * s0 * ch,), rngs=rngs)         # (1,)
        self.main = nnx.Dict(blocks)

    def __call__(self, x):
        for blk in self.main.values():
            x = blk(x)
        return x.reshape(-1)


# ----------------------------------------------------------------------------------------
# the CS231n network (--arch cs231n)

class CS231nGenerator(nnx.Module):
    """z (B, nz) -> image (B, 28, 28, C), the CS231n assignment's: two fully connected
    layers and two 4x4 stride-2 transposed convolutions, each activation BEFORE its
    BatchNorm (as the write-up has it)."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        hidden, ch = 16 * cfg.ngf, 2 * cfg.ngf
        self.main = nnx.Dict(
            g1=Block(linear(cfg.nz, hidden, True, rngs), hidden, True, nnx.relu, act_first=True,
                     rngs=rngs),                                                  # (16 ngf,)
            # BatchNorm1d over 7*7*ch features, which g3 then views as a (7, 7, ch) map
            g2=Block(linear(hidden, 7 * 7 * ch, True, rngs), 7 * 7 * ch, True, nnx.relu,
                     act_first=True, rngs=rngs),                                  # (7*7*2ngf,)
            g3=Block(ConvTranspose(ch, cfg.ngf, 4, 2, 1, bias=True, rngs=rngs), cfg.ngf, True,
                     nnx.relu, act_first=True, reshape_in=(7, 7, ch), rngs=rngs),  # (14, 14, ngf)
            g4=Block(ConvTranspose(cfg.ngf, cfg.channels, 4, 2, 1, bias=True, rngs=rngs),
                     cfg.channels, False, jnp.tanh, rngs=rngs),                   # (28, 28, C)
        )

    def __call__(self, z):
        x = z.reshape(z.shape[0], -1)                # (B, nz)
        for blk in self.main.values():
            x = blk(x)
        return x


class CS231nDiscriminator(nnx.Module):
    """image (B, 28, 28, C) -> one logit (B,): two 5x5 convolutions with max-pooling, two
    fully connected layers, LeakyReLU 0.01 (the write-up's, and by chance Flax's default)."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        ch, hidden = 2 * cfg.ndf, 32 * cfg.ndf
        leaky = partial(nnx.leaky_relu, negative_slope=CS231N_SLOPE)
        self.main = nnx.Dict(
            d1=Block(conv(cfg.channels, cfg.ndf, 5, 1, 0, True, rngs), cfg.ndf, False, leaky,
                     pool=2, rngs=rngs),                                          # (12, 12, ndf)
            d2=Block(conv(cfg.ndf, ch, 5, 1, 0, True, rngs), ch, False, leaky, pool=2,
                     rngs=rngs),                                                  # (4, 4, 2ndf)
            d3=Block(linear(16 * ch, hidden, True, rngs), hidden, False, leaky,
                     reshape_in=(16 * ch,), rngs=rngs),                           # (32 ndf,)
            d4=Block(linear(hidden, 1, True, rngs), 1, False, None, rngs=rngs),   # (1,)
        )

    def __call__(self, x):
        for blk in self.main.values():
            x = blk(x)
        return x.reshape(-1)


# ----------------------------------------------------------------------------------------
# initialisation

NETWORKS = {"dcgan": (Generator, Discriminator), "paper": (PaperGenerator, PaperDiscriminator),
            "cs231n": (CS231nGenerator, CS231nDiscriminator)}


def build(cfg: Config, seed: int = 0):
    """DCGAN paper, section 4: kernels ~ N(0, 0.02) (kernel_init above, not Flax's
    lecun-normal), biases 0; BatchNorm gamma ~ N(1, 0.02), beta = 0 (BatchNorm above). The
    random numbers come from explicit keys split off nnx.Rngs(seed), never from global
    state."""
    spec.generator_spec(cfg), spec.discriminator_spec(cfg)     # a size the network cannot make
    rngs = nnx.Rngs(seed)
    g_cls, d_cls = NETWORKS[cfg.arch]
    return g_cls(cfg, rngs=rngs), d_cls(cfg, rngs=rngs)


# ----------------------------------------------------------------------------------------
# portable weights (layout: common/weights.py)

def to_portable(generator, discriminator) -> dict:
    out = {}
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for name, blk in model.main.items():
            # every kernel is kept in the portable layout, (kh, kw, in, out) or (in, out),
            # and every reshape is NHWC's own (H, W, C) one: nothing to permute, where
            # pytorch_impl reorders a fully connected layer's rows or columns from (C, H, W)
            m = op(blk)
            out[f"{net}.{name}.kernel"] = np.asarray(m.kernel[...])
            if m.bias is not None:
                out[f"{net}.{name}.bias"] = np.asarray(m.bias[...])
            if blk.bn is not None:
                for k, v in (("gamma", blk.bn.scale), ("beta", blk.bn.bias),
                             ("running_mean", blk.bn.mean), ("running_var", blk.bn.var)):
                    out[f"{net}.{name}.{k}"] = np.asarray(v[...])
    return out


def load_portable(generator, discriminator, arrays: dict) -> None:
    """Copy portable arrays into the models, asserting every shape before it copies."""
    def put(var, a):
        assert var.shape == a.shape, f"shape {tuple(a.shape)} does not fit {tuple(var.shape)}"
        var[...] = jnp.asarray(a, var.dtype)

    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for name, blk in model.main.items():
            m = op(blk)
            put(m.kernel, arrays[f"{net}.{name}.kernel"])
            if m.bias is not None:
                put(m.bias, arrays[f"{net}.{name}.bias"])
            if blk.bn is not None:
                put(blk.bn.scale, arrays[f"{net}.{name}.gamma"])
                put(blk.bn.bias, arrays[f"{net}.{name}.beta"])
                put(blk.bn.mean, arrays[f"{net}.{name}.running_mean"])
                put(blk.bn.var, arrays[f"{net}.{name}.running_var"])


# ----------------------------------------------------------------------------------------
# summary: measured on the real modules, printed in the format shared by the three

def count(module, kind) -> int:
    return sum(v.size for v in jax.tree.leaves(nnx.state(module, kind)))


def layer_table(model: nnx.Module, x: jax.Array, layers: list) -> list:
    """(name, description, out shape (H, W, C), trainable, bn stats) for each block."""
    rows = []
    model.eval()
    for i, ((name, blk), l) in enumerate(zip(model.main.items(), layers)):
        if i == 0 and x.ndim == 2 and hasattr(blk, "conv"):
            x = x.reshape(x.shape[0], 1, 1, -1)      # z as a 1x1 map (the tutorial's G)
        x = blk(x)
        rows.append((name, spec.describe(l), tuple(x.shape[1:]), count(blk, nnx.Param),
                     count(blk, nnx.BatchStat)))
    model.train()
    return rows


def summary(cfg: Config) -> str:
    g_spec, d_spec = spec.generator_spec(cfg), spec.discriminator_spec(cfg)  # checks the size
    generator, discriminator = build(cfg)
    g = layer_table(generator, jnp.zeros((2, cfg.nz)), g_spec)
    d = layer_table(discriminator, jnp.zeros((2, cfg.image_size, cfg.image_size, cfg.channels)), d_spec)
    return spec.format_summary("Generator", g) + "\n\n" + spec.format_summary("Discriminator", d)


if __name__ == "__main__":
    from common.config import parse_model_args, run_main
    run_main(lambda argv: print(summary(parse_model_args(argv, "python -m jax_impl.model"))))
