"""The layers JAX needs in order to match PyTorch's numerics: BatchNorm as PyTorch computes
it, and PyTorch's transposed convolution with a backward pass XLA:CPU runs fast. The
sections line up with pytorch_impl/layers.py and keras_impl/layers.py.
"""
import functools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype
from jax import lax

from common.config import ADAM_EPS, BN_EPS, BN_MOMENTUM, INIT_STD

DN = ("NHWC", "HWIO", "NHWC")   # lax's names for the layouts of input, kernel, output


def normal(stddev: float, mean: float = 0.0):
    """N(mean, stddev**2) initializer. It draws a flat vector and reshapes it because
    XLA:CPU compiles jax.random.normal for a 4-D shape several times slower (seconds per
    kernel) than for a 1-D one; the numbers are the same either way."""
    def init(key, shape, dtype=jnp.float32):
        return mean + stddev * jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)
    return init



# ========================================================================================
# batchnorm

class BatchNorm(nnx.Module):
    """PyTorch's BatchNorm2d and BatchNorm1d, written out: it normalises each feature of
    the last axis over all the others, (B, H, W) of a map or B of a vector. nnx.BatchNorm
    differs in two places that change the running statistics: its `momentum` is the weight
    of the OLD value (0.99 by default; PyTorch's 0.1 is the weight of the NEW one), and it
    averages the biased batch variance where PyTorch averages the unbiased one (times
    n / (n - 1), n = B*H*W or B) while normalising with the biased one, as both do."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.scale = nnx.Param(normal(INIT_STD, 1.0)(rngs.params(), (features,)))   # gamma
        self.bias = nnx.Param(jnp.zeros(features))                                     # beta
        self.mean = nnx.BatchStat(jnp.zeros(features))
        self.var = nnx.BatchStat(jnp.ones(features))
        self.use_running_average = False          # set by .train() / .eval()

    def __call__(self, x):                        # x: (B, H, W, C) or (B, features)
        dtype, x = x.dtype, x.astype(jnp.float32)  # float32 statistics under bf16 too
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(x.ndim - 1))       # all but the features
            mean = x.mean(axis=axes)
            var = jnp.square(x - mean).mean(axis=axes)        # two-pass, like PyTorch
            n = x.size // x.shape[-1]
            self.mean[...] = (1 - BN_MOMENTUM) * self.mean[...] + BN_MOMENTUM * mean
            self.var[...] = (1 - BN_MOMENTUM) * self.var[...] + BN_MOMENTUM * var * n / (n - 1)
        return ((x - mean) * jax.lax.rsqrt(var + BN_EPS) * self.scale[...] + self.bias[...]).astype(dtype)



# ========================================================================================
# transposed convolution

@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose(x, kernel, stride: int, padding: int, output_padding: int = 0):
    """PyTorch's conv_transpose2d in NHWC with the portable kernel (kh, kw, in, out):
    out[n, y*s - p + i, x*s - p + j, o] += x[n, y, x, c] * kernel[i, j, c, o],
    cropped by p at the top and left and by p - output_padding at the bottom and right.
    lax.conv_transpose correlates the stride-dilated, padded input with the kernel: the
    scatter above is that with the kernel flipped, and PyTorch's crop p is K - 1 - p of
    padding there, K - 1 - p + output_padding at the bottom and right."""
    k = kernel.shape[0]
    if x.shape[1:3] == (1, 1) and padding == 0 and output_padding == 0:
        # One input pixel (z, in the tutorial's first layer): the scatter is one matrix
        # product. As the convolution below, XLA would slide the kernel over k - 1 rows of
        # zero padding on each side, k * k times the multiply-adds (16 times here; found
        # by benchmarks.profile_jax).
        return jnp.einsum("nc,ijco->nijo", x[:, 0, 0], kernel)
    lo, hi = k - 1 - padding, k - 1 - padding + output_padding
    return lax.conv_transpose(x, jnp.flip(kernel, (0, 1)), (stride, stride), ((lo, hi),) * 2,
                              dimension_numbers=DN)


def _conv_transpose_fwd(x, kernel, stride, padding, output_padding):
    return conv_transpose(x, kernel, stride, padding, output_padding), (x, kernel)


def _conv_transpose_bwd(stride, padding, output_padding, residuals, g):
    """The exact gradients, written so that XLA:CPU runs them fast. JAX's own rule for the
    kernel gives an input-dilated convolution that XLA:CPU rewrites with a reversed window,
    which misses its Eigen fast path: 15 to 30 times slower than PyTorch at 64x64, and
    most of a training step."""
    x, kernel = residuals
    s, p, k = stride, padding, kernel.shape[0]
    # g padded back to the uncropped scatter: p before, p - output_padding after (a
    # negative pad crops, as lax.pad allows)
    pad = (p, p - output_padding)
    # d/dx: the ordinary strided convolution that this one is the transpose of
    dx = lax.conv_general_dilated(g, kernel.transpose(0, 1, 3, 2), (s, s), (pad, pad),
                                  dimension_numbers=DN)
    # d/dkernel[i, j]: the definition above read backwards, one matrix product per tap
    gp = lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), (*pad, 0), (*pad, 0), (0, 0, 0)))
    h, w = x.shape[1:3]
    dk = jnp.stack([jnp.stack([jnp.einsum("nyxc,nyxo->co", x, gp[:, i:i + s * h:s, j:j + s * w:s])
                               for j in range(k)]) for i in range(k)])
    return dx, dk


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def covers(kernel: int, x) -> bool:
    """Whether the kernel is larger than the input map: the paper's 5x5 layers on 2x2 and
    4x4 maps at 32x32. XLA:CPU runs those convolutions, and their gradients, with their
    operands swapped, at 2-4 GFLOP/s (benchmarks.profile_jax, --arch paper); as one matrix
    product each (small_map) they run as fast as any other dot. A one-pixel map (z, the
    tutorial's first layer) is conv_transpose's own case, with a gradient of its own."""
    return x.shape[1] * x.shape[2] > 1 and (kernel > x.shape[1] or kernel > x.shape[2])


@functools.cache
def taps(h: int, w: int, k: int, stride: int, padding: int, ho: int, wo: int, transpose: bool):
    """One-hot (h*w, ho*wo, k*k): which kernel tap joins input pixel a to output pixel b.
    A convolution reads out[oy, ox] from in[oy*s - p + i, ox*s - p + j] through tap (i, j);
    a transposed convolution scatters in[y, x] to out[y*s - p + i, x*s - p + j]."""
    t = np.zeros((h * w, ho * wo, k * k), np.float32)
    for y, x, oy, ox in np.ndindex(h, w, ho, wo):
        i, j = ((oy - y * stride + padding, ox - x * stride + padding) if transpose
                else (y + padding - oy * stride, x + padding - ox * stride))
        if 0 <= i < k and 0 <= j < k:
            t[y * w + x, oy * wo + ox, i * k + j] = 1
    return t


def small_map(x, kernel, stride: int, padding: int, out_hw: tuple, transpose: bool):
    """A convolution (PyTorch's Conv2d) or transposed convolution (ConvTranspose2d, cropped
    to out_hw) of a small map as one matrix product: the kernel spread into the dense
    (h*w*in, ho*wo*out) matrix of the layer, then x times it. Exact: the same products,
    summed in another order. Its gradients are matrix products too (autodiff of einsum)."""
    n, h, w, c = x.shape
    k, o = kernel.shape[0], kernel.shape[-1]
    t = jnp.asarray(taps(h, w, k, stride, padding, *out_hw, transpose), kernel.dtype)
    dense = jnp.einsum("abt,tco->acbo", t, kernel.reshape(k * k, c, o))      # (h*w, c, ho*wo, o)
    out = jnp.dot(x.reshape(n, h * w * c), dense.reshape(h * w * c, -1))
    return out.reshape(n, *out_hw, o)


class ConvTranspose(nnx.Module):
    """PyTorch's ConvTranspose2d(in_ch, out_ch, kernel, stride, padding, output_padding,
    bias), kernel in the portable layout. Not nnx.ConvTranspose: that one's `padding` pads
    the dilated input (PyTorch's p is Flax's K - 1 - p, and output_padding only exists as
    one more row of it at the end), its default padding "SAME" and unflipped kernel compute
    another layer of the same shape, and its gradient is the slow one described above."""

    def __init__(self, in_ch, out_ch, kernel, stride, padding, output_padding=0, *, bias=False,
                 rngs: nnx.Rngs):
        self.kernel = nnx.Param(normal(INIT_STD)(rngs.params(), (kernel, kernel, in_ch, out_ch)))
        self.bias = nnx.Param(jnp.zeros(out_ch)) if bias else None
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dtype = None         # the computation's dtype, as nnx.Conv's: None = the inputs'

    def __call__(self, x):
        bias = None if self.bias is None else self.bias[...]
        x, kernel, bias = promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
        k, s, p, q = kernel.shape[0], self.stride, self.padding, self.output_padding
        if covers(k, x):
            out_hw = tuple((d - 1) * s - 2 * p + k + q for d in x.shape[1:3])
            x = small_map(x, kernel, s, p, out_hw, transpose=True)
        else:
            x = conv_transpose(x, kernel, s, p, q)
        return x if bias is None else x + bias


class Conv(nnx.Conv):
    """nnx.Conv, with a kernel larger than its input map computed as one matrix product
    (small_map). The same parameters, so checkpoints and portable weights do not change."""

    def __call__(self, x):
        k = self.kernel.shape[0]
        if not covers(k, x):
            return super().__call__(x)
        (pad, _), _ = self.padding                 # ((p, p), (p, p)), as model.conv sets it
        s = self.strides if isinstance(self.strides, int) else self.strides[0]
        bias = None if self.bias is None else self.bias[...]
        x, kernel, bias = promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
        out_hw = tuple((d + 2 * pad - k) // s + 1 for d in x.shape[1:3])
        x = small_map(x, kernel, s, pad, out_hw, transpose=False)
        return x if bias is None else x + bias



# ========================================================================================
# adam

def adam(cfg) -> optax.GradientTransformation:
    """optax.adam as it is: like PyTorch, it adds eps 1e-8 to the bias-corrected sqrt(v)."""
    return optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=ADAM_EPS)
