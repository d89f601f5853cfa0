"""The layers JAX needs in order to match PyTorch's numerics: BatchNorm as PyTorch computes
it, and PyTorch's transposed convolution with a backward pass XLA:CPU runs fast. Under the
same banner, for speed only: convolutions of small maps under large kernels (the paper
network's) as one matrix product each, the same numbers to float32 rounding. The sections
line up with pytorch_impl/layers.py and keras_impl/layers.py.
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


# A layer runs as one matrix product (small_map) when that product's multiply-adds are at
# most this many times the layer's own (kernel taps over the padding included).
DENSE_RATIO = 3


def out_size(h: int, k: int, stride: int, padding: int, output_padding: int, transpose: bool) -> int:
    """The output's height (or width) of PyTorch's Conv2d or ConvTranspose2d."""
    if transpose:
        return (h - 1) * stride - 2 * padding + k + output_padding
    return (h + 2 * padding - k) // stride + 1


def as_matrix(k: int, x, out_hw: tuple, transpose: bool) -> bool:
    """Whether the layer is cheaper as one dense matrix product (small_map) than as a
    convolution: a map of more than one pixel (one pixel, z in the tutorial's first layer, is
    conv_transpose's own case) and a product at most DENSE_RATIO times the layer's taps.
    The dense product joins every input pixel to every output pixel, h*w*ho*wo per channel
    pair, where a convolution reads k*k input pixels for each output pixel (ho*wo*k*k) and a
    transposed one writes k*k output pixels for each input pixel (h*w*k*k); so a small map
    under a large kernel costs little more as a product. On XLA:CPU those layers are the slow
    ones: a kernel larger than the map (the paper's 5x5 layers on 2x2 and 4x4 maps at 32x32),
    and the input gradient of the paper D's 5x5 stride-2 convolution from 8x8 to 4x4, reach
    the kernel library with the operands swapped and run at 2-4 GFLOP/s
    (benchmarks.profile_jax, --arch paper); as matrix products they run as fast as any
    other dot."""
    h, w = x.shape[1:3]
    if h * w == 1:
        return False
    layer_macs = (h * w if transpose else out_hw[0] * out_hw[1]) * k * k      # per channel pair
    return h * w * out_hw[0] * out_hw[1] <= DENSE_RATIO * layer_macs


@functools.cache
def taps(h: int, w: int, k: int, stride: int, padding: int, ho: int, wo: int, transpose: bool):
    """(h*w, ho*wo) ints: which kernel tap, i*k + j, joins input pixel a to output pixel b,
    or k*k where none does. A convolution reads out[oy, ox] from in[oy*s - p + i,
    ox*s - p + j] through tap (i, j); a transposed convolution scatters in[y, x] to
    out[y*s - p + i, x*s - p + j]."""
    t = np.full((h * w, ho * wo), k * k, np.int32)
    for y, x, oy, ox in np.ndindex(h, w, ho, wo):
        i, j = ((oy - y * stride + padding, ox - x * stride + padding) if transpose
                else (y + padding - oy * stride, x + padding - ox * stride))
        if 0 <= i < k and 0 <= j < k:
            t[y * w + x, oy * wo + ox] = i * k + j
    return t


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def spread(kernel, layer: tuple):
    """The layer's dense matrix, (in, h*w, ho*wo, out): kernel[i, j, c, o] at [c, a, b, o]
    where taps() joins a to b through (i, j), 0 elsewhere; layer = taps()'s arguments. One
    gather, in the layout the product reads: a one-hot einsum computes the same, in another
    order, and the paper's 8x8 layers took 11-12 ms that way against 10 forward and back."""
    k, _, c, o = kernel.shape
    table = jnp.concatenate([kernel.reshape(k * k, c, o), jnp.zeros((1, c, o), kernel.dtype)])
    return jnp.take(table.transpose(1, 0, 2), jnp.asarray(taps(*layer)), axis=1)


def _spread_fwd(kernel, layer):
    return spread(kernel, layer), kernel.shape


def _spread_bwd(layer, shape, g):
    """d/dkernel[tap]: the sum of g over the (a, b) that tap joins, as one matrix product
    with the one-hot (a*b, k*k) (JAX's own rule for the gather is a scatter-add)."""
    k, _, c, o = shape
    onehot = np.eye(k * k + 1, k * k, dtype=np.float32)[taps(*layer).reshape(-1)]
    dk = jnp.einsum("cpo,pt->tco", g.reshape(c, -1, o), jnp.asarray(onehot, g.dtype))
    return (dk.reshape(shape),)


spread.defvjp(_spread_fwd, _spread_bwd)


def small_map(x, kernel, stride: int, padding: int, out_hw: tuple, transpose: bool):
    """A convolution (PyTorch's Conv2d) or transposed convolution (ConvTranspose2d, cropped
    to out_hw) of a small map as one matrix product: the kernel spread into the dense
    (in*h*w, ho*wo*out) matrix of the layer, then x, channels first, times it. Exact: the
    same products, summed in another order. Its gradients are matrix products too."""
    n, h, w, c = x.shape
    o = kernel.shape[-1]
    dense = spread(kernel, (h, w, kernel.shape[0], stride, padding, *out_hw, transpose))
    x = x.reshape(n, h * w, c).transpose(0, 2, 1).reshape(n, c * h * w)
    return jnp.dot(x, dense.reshape(c * h * w, -1)).reshape(n, *out_hw, o)


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
        out_hw = tuple(out_size(d, k, s, p, q, True) for d in x.shape[1:3])
        if as_matrix(k, x, out_hw, transpose=True):
            x = small_map(x, kernel, s, p, out_hw, transpose=True)
        else:
            x = conv_transpose(x, kernel, s, p, q)
        return x if bias is None else x + bias


class Conv(nnx.Conv):
    """nnx.Conv, with a small map under a large kernel computed as one matrix product
    (as_matrix, small_map). The same parameters, so checkpoints and portable weights do not
    change."""

    def __call__(self, x):
        k = self.kernel.shape[0]
        (pad, _), _ = self.padding                 # ((p, p), (p, p)), as model.conv sets it
        s = self.strides if isinstance(self.strides, int) else self.strides[0]
        out_hw = tuple(out_size(d, k, s, pad, 0, False) for d in x.shape[1:3])
        if not as_matrix(k, x, out_hw, transpose=False):
            return super().__call__(x)
        bias = None if self.bias is None else self.bias[...]
        x, kernel, bias = promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
        x = small_map(x, kernel, s, pad, out_hw, transpose=False)
        return x if bias is None else x + bias



# ========================================================================================
# adam

def adam(cfg) -> optax.GradientTransformation:
    """optax.adam as it is: like PyTorch, it adds eps 1e-8 to the bias-corrected sqrt(v)."""
    return optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=ADAM_EPS)
