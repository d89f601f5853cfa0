"""DCGAN generator and discriminator in Flax NNX (NHWC; kernels (kh, kw, in, out), the portable layout).

    python -m jax_impl.model --image-size 64 --channels 3   # layer table and totals
"""
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from common import spec
from common.config import BN_EPS, BN_MOMENTUM, INIT_STD, LEAKY_SLOPE, Config

K = 4  # every DCGAN kernel is 4x4

# ----------------------------------------------------------------------------------------
# networks

DN = ("NHWC", "HWIO", "NHWC")   # lax's names for the layouts of input, kernel, output


def normal(stddev: float, mean: float = 0.0):
    """N(mean, stddev**2) initializer. It draws a flat vector and reshapes it because
    XLA:CPU compiles jax.random.normal for a 4-D shape several times slower (seconds per
    kernel) than for a 1-D one; the numbers are the same either way."""
    def init(key, shape, dtype=jnp.float32):
        return mean + stddev * jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)
    return init


class BatchNorm(nnx.Module):
    """PyTorch's BatchNorm2d, written out. nnx.BatchNorm differs in two places that change
    the running statistics: its `momentum` is the weight of the OLD value (0.99 by
    default; PyTorch's 0.1 is the weight of the NEW one), and it averages the biased batch
    variance where PyTorch averages the unbiased one (times n / (n - 1), n = B*H*W) while
    normalising with the biased one, as both do."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.scale = nnx.Param(normal(INIT_STD, 1.0)(rngs.params(), (features,)))   # gamma
        self.bias = nnx.Param(jnp.zeros(features))                                     # beta
        self.mean = nnx.BatchStat(jnp.zeros(features))
        self.var = nnx.BatchStat(jnp.ones(features))
        self.use_running_average = False          # set by .train() / .eval()

    def __call__(self, x):                        # x: (B, H, W, C)
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            mean = x.mean(axis=(0, 1, 2))
            var = jnp.square(x - mean).mean(axis=(0, 1, 2))   # two-pass, like PyTorch
            n = x.size // x.shape[-1]
            self.mean[...] = (1 - BN_MOMENTUM) * self.mean[...] + BN_MOMENTUM * mean
            self.var[...] = (1 - BN_MOMENTUM) * self.var[...] + BN_MOMENTUM * var * n / (n - 1)
        return (x - mean) * jax.lax.rsqrt(var + BN_EPS) * self.scale[...] + self.bias[...]


class Block(nnx.Module):
    """One row of the spec: conv (or transposed conv), optional BatchNorm, activation."""

    def __init__(self, conv, out_ch, batchnorm, act, *, rngs):
        self.conv = conv
        self.bn = BatchNorm(out_ch, rngs=rngs) if batchnorm else None
        self.act = act

    def __call__(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.act is None else self.act(x)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, stride: int, padding: int):
    """PyTorch's conv_transpose2d in NHWC with the portable kernel (kh, kw, in, out):
    out[n, y*s - p + i, x*s - p + j, o] += x[n, y, x, c] * kernel[i, j, c, o].
    lax.conv_transpose correlates the stride-dilated, padded input with the kernel: the
    scatter above is that with the kernel flipped, and PyTorch's p (cropped from the
    output) is K - 1 - p of padding there."""
    k = kernel.shape[0]
    return lax.conv_transpose(x, jnp.flip(kernel, (0, 1)), (stride, stride),
                              ((k - 1 - padding,) * 2,) * 2, dimension_numbers=DN)


def _conv_transpose_fwd(x, kernel, stride, padding):
    return conv_transpose(x, kernel, stride, padding), (x, kernel)


def _conv_transpose_bwd(stride, padding, residuals, g):
    """The exact gradients, written so that XLA:CPU runs them fast. JAX's own rule for the
    kernel gives an input-dilated convolution that XLA:CPU rewrites with a reversed window,
    which misses its Eigen fast path: 15 to 30 times slower than PyTorch at 64x64, and
    most of a training step."""
    x, kernel = residuals
    s, p, k = stride, padding, kernel.shape[0]
    # d/dx: the ordinary strided convolution that this one is the transpose of
    dx = lax.conv_general_dilated(g, kernel.transpose(0, 1, 3, 2), (s, s), ((p, p),) * 2,
                                  dimension_numbers=DN)
    # d/dkernel[i, j]: the definition above read backwards, one matrix product per tap
    gp = jnp.pad(g, ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = x.shape[1:3]
    dk = jnp.stack([jnp.stack([jnp.einsum("nyxc,nyxo->co", x, gp[:, i:i + s * h:s, j:j + s * w:s])
                               for j in range(k)]) for i in range(k)])
    return dx, dk


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


class ConvTranspose(nnx.Module):
    """PyTorch's ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False), kernel in
    the portable layout. Not nnx.ConvTranspose: that one's `padding` pads the dilated input
    (PyTorch's p is Flax's K - 1 - p) and its gradient is the slow one described above."""

    def __init__(self, in_ch, out_ch, stride, padding, *, rngs: nnx.Rngs):
        self.kernel = nnx.Param(normal(INIT_STD)(rngs.params(), (K, K, in_ch, out_ch)))
        self.stride, self.padding = stride, padding

    def __call__(self, x):
        return conv_transpose(x, self.kernel[...], self.stride, self.padding)


def conv(in_ch, out_ch, stride, padding, rngs):
    """PyTorch's Conv2d(in_ch, out_ch, 4, stride, padding, bias=False); the same padding
    and, in NHWC, the portable kernel layout (kh, kw, in, out). Kernels ~ N(0, 0.02), not
    Flax's lecun-normal."""
    return nnx.Conv(in_ch, out_ch, (K, K), strides=stride, padding=((padding,) * 2,) * 2,
                    use_bias=False, kernel_init=normal(INIT_STD), rngs=rngs)


class Generator(nnx.Module):
    """z (B, nz) -> image (B, S, S, C) in [-1, 1]. For S = 64 this is the PyTorch
    tutorial's generator; each 4x4/2 p1 transposed conv doubles H and W."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        n = cfg.image_size.bit_length() - 1          # S = 2**n; n - 1 blocks
        ch = cfg.ngf * 2 ** (n - 3)
        blocks = {"g1": Block(ConvTranspose(cfg.nz, ch, 1, 0, rngs=rngs), ch, True, nnx.relu,
                              rngs=rngs)}                                   # (4, 4, ngf*2^(n-3))
        for i in range(2, n - 1):
            blocks[f"g{i}"] = Block(ConvTranspose(ch, ch // 2, 2, 1, rngs=rngs), ch // 2, True,
                                    nnx.relu, rngs=rngs)                    # (2H, 2W, ch/2)
            ch //= 2
        blocks[f"g{n - 1}"] = Block(ConvTranspose(ch, cfg.channels, 2, 1, rngs=rngs), cfg.channels,
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
        blocks = {"d1": Block(conv(cfg.channels, ch, 2, 1, rngs), ch, False, leaky,
                              rngs=rngs)}                                   # (S/2, S/2, ndf)
        for i in range(2, n - 1):
            blocks[f"d{i}"] = Block(conv(ch, ch * 2, 2, 1, rngs), ch * 2, True, leaky,
                                    rngs=rngs)                              # (H/2, W/2, 2ch)
            ch *= 2
        blocks[f"d{n - 1}"] = Block(conv(ch, 1, 1, 0, rngs), 1, False, None, rngs=rngs)  # (1, 1, 1)
        self.main = nnx.Dict(blocks)

    def __call__(self, x):
        for blk in self.main.values():
            x = blk(x)
        return x.reshape(-1)


# ----------------------------------------------------------------------------------------
# initialisation

def build(cfg: Config, seed: int = 0):
    """DCGAN paper, section 4: kernels ~ N(0, 0.02) (kernel_init above, not Flax's
    lecun-normal); BatchNorm gamma ~ N(1, 0.02), beta = 0 (BatchNorm above). The random
    numbers come from explicit keys split off nnx.Rngs(seed), never from global state."""
    rngs = nnx.Rngs(seed)
    return Generator(cfg, rngs=rngs), Discriminator(cfg, rngs=rngs)


# ----------------------------------------------------------------------------------------
# portable weights (layout: common/weights.py)

def to_portable(generator, discriminator) -> dict:
    out = {}
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for name, blk in model.main.items():
            # both kinds keep their kernel in the portable layout (kh, kw, in, out)
            out[f"{net}.{name}.kernel"] = np.asarray(blk.conv.kernel[...])
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
            put(blk.conv.kernel, arrays[f"{net}.{name}.kernel"])
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
    for (name, blk), l in zip(model.main.items(), layers):
        x = blk(x.reshape(x.shape[0], 1, 1, -1) if name == "g1" else x)
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
