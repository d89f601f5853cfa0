"""A slow, float64 NumPy forward pass of each architecture of common/spec.py, read
straight off the portable format.

It belongs to none of the three frameworks, so it can referee them: the cross-framework
tests check that each implementation computes what this computes from the same weights,
and that switching one of the framework defaults of DESIGN section 4 (BatchNorm epsilon and
momentum, padding, kernel flip, unbiased running variance, flatten order, output padding,
activation before BatchNorm) moves the result far outside the tolerance. Each of those is
a keyword argument here, defaulting to the pinned value.
"""
from __future__ import annotations

import numpy as np

from .config import BN_EPS, BN_MOMENTUM, LEAKY_SLOPE, Config
from .spec import Layer, discriminator_spec, generator_spec


def conv(x: np.ndarray, k: np.ndarray, s: int, p: int, pad=None) -> np.ndarray:
    """out[n, y, x, o] = sum_{i, j, c} in[n, y*s - p + i, x*s - p + j, c] K[i, j, c, o].
    pad=(before, after) overrides the symmetric p (to show what a one-sided pad does)."""
    before, after = pad or (p, p)
    xp = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
    kh, kw = k.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::s, ::s]
    return np.einsum("nyxcij,ijco->nyxo", win, k, optimize=True)


def conv_transpose(x: np.ndarray, k: np.ndarray, s: int, p: int, pad=None,
                   output_padding: int = 0) -> np.ndarray:
    """out[n, y*s - p + i, x*s - p + j, o] += in[n, y, x, c] K[i, j, c, o]: every input
    pixel scatters a copy of the kernel, and p rows/columns are cropped from each side,
    less `output_padding` at the bottom and right (the rows PyTorch adds at the end)."""
    n, h, w, _ = x.shape
    kh, kw, _, o = k.shape
    full = np.zeros((n, (h - 1) * s + kh, (w - 1) * s + kw, o))
    for i in range(kh):
        for j in range(kw):
            full[:, i:i + (h - 1) * s + 1:s, j:j + (w - 1) * s + 1:s] += x @ k[i, j]
    before, after = pad or (p, p - output_padding)
    extra = max(0, -before), max(0, -after)      # a crop below zero is a zero border
    full = np.pad(full, ((0, 0), extra, extra, (0, 0)))
    before, after = max(0, before), max(0, after)
    return full[:, before:full.shape[1] - after, before:full.shape[2] - after]


def max_pool(x: np.ndarray, k: int, pad: int = 0) -> np.ndarray:
    """Max over k x k windows with stride k (PyTorch's MaxPool2d(k), no padding). pad > 0
    pads each side with -inf first (MaxPool2d(k, padding=pad)), to show what that changes."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
    n, h, w, c = x.shape
    h, w = h // k * k, w // k * k
    return x[:, :h, :w].reshape(n, h // k, k, w // k, k, c).max(axis=(2, 4))


def to_shape(x: np.ndarray, shape: tuple, order: str = "hwc") -> np.ndarray:
    """Flatten a batch of maps, or view a batch of vectors as maps, in the portable (H, W,
    C) order (common/weights.py); order="chw" does it PyTorch's way on NHWC data, the
    porting bug."""
    n = len(x)
    if len(shape) == 1:                          # flatten
        return (x.transpose(0, 3, 1, 2) if order == "chw" else x).reshape(n, -1)
    h, w, c = shape                              # vector -> map
    return x.reshape(n, c, h, w).transpose(0, 2, 3, 1) if order == "chw" else x.reshape(n, h, w, c)


def batchnorm(x, a: dict, prefix: str, train: bool, eps: float, momentum: float,
              unbiased_running_var: bool):
    """Normalise over every axis but the last: (N, H, W) of a map (BatchNorm2d), N of a
    vector (BatchNorm1d). In training mode, with the batch's biased variance, and return
    the running statistics updated PyTorch's way: new = (1 - m) old + m batch, the
    variance unbiased (n / (n - 1)). In inference mode, with the running statistics."""
    if train:
        axes = tuple(range(x.ndim - 1))
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        n = x.size // x.shape[-1]
        var_run = var * n / (n - 1) if unbiased_running_var else var
        stats = {f"{prefix}.running_mean": (1 - momentum) * a[f"{prefix}.running_mean"] + momentum * mean,
                 f"{prefix}.running_var": (1 - momentum) * a[f"{prefix}.running_var"] + momentum * var_run}
    else:
        mean, var, stats = a[f"{prefix}.running_mean"], a[f"{prefix}.running_var"], {}
    y = (x - mean) / np.sqrt(var + eps) * a[f"{prefix}.gamma"] + a[f"{prefix}.beta"]
    return y, stats


def activate(x, name, slope=None):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "leaky_relu":
        return np.where(x > 0, x, (LEAKY_SLOPE if slope is None else slope) * x)
    if name == "tanh":
        return np.tanh(x)
    return x


def run(layers: list[Layer], net: str, a: dict, x: np.ndarray, train: bool, *,
        eps: float = BN_EPS, momentum: float = BN_MOMENTUM, unbiased_running_var: bool = True,
        flip_transposed_kernel: bool = False, pad=None, flatten_order: str = "hwc",
        output_padding_first: bool = False, pool_pad: int = 0,
        swap_act_and_bn: bool = False) -> tuple[np.ndarray, dict]:
    """Run one network (a list of spec layers) on x; returns (output, updated statistics).
    The keywords are the pinned choices; change one to see what a mismatch does:
    flatten_order="chw" (PyTorch's view on NHWC data), output_padding_first (the extra row
    at the top/left instead of the bottom/right), pool_pad (a padded max-pool),
    swap_act_and_bn (BatchNorm and activation the other way round)."""
    a = {k: np.asarray(v, np.float64) for k, v in a.items()}
    x = np.asarray(x, np.float64)
    stats = {}
    for l in layers:
        prefix = f"{net}.{l.name}"
        k = a[f"{prefix}.kernel"]
        if l.in_shape and x.shape[1:] != l.in_shape:
            x = to_shape(x, l.in_shape, flatten_order)          # flatten, or vector -> map
        if l.kind == "linear":
            x = x @ k
            if l.bias:
                x = x + a[f"{prefix}.bias"]
            if len(l.out_shape) == 3:                           # the paper's projection of z
                x = to_shape(x, l.out_shape, flatten_order)
        elif l.kind == "conv_transpose":
            if flip_transposed_kernel:
                k = k[::-1, ::-1]
            op = l.output_padding
            layer_pad = pad if l.stride > 1 else None
            if op and output_padding_first:
                layer_pad = (l.padding - op, l.padding)
            x = conv_transpose(x, k, l.stride, l.padding, layer_pad, op)
        else:
            x = conv(x, k, l.stride, l.padding, pad if l.stride > 1 else None)
        if l.bias and l.kind != "linear":
            x = x + a[f"{prefix}.bias"]
        act_first = l.act_first != swap_act_and_bn if l.batchnorm and l.activation else l.act_first
        if act_first:
            x = activate(x, l.activation, l.slope)
        if l.batchnorm:
            x, s = batchnorm(x, a, prefix, train, eps, momentum, unbiased_running_var)
            stats.update(s)
        if not act_first:
            x = activate(x, l.activation, l.slope)
        if l.pool:
            x = max_pool(x, l.pool, pool_pad)
    return x, stats


def generator(cfg: Config, a: dict, z: np.ndarray, train: bool, **pinned):
    """G(z): z (N, nz) -> images (N, H, W, C), and G's updated statistics if train. z is a
    1x1 map for a network that starts with a convolution, a vector for one that starts
    with a linear layer."""
    layers = generator_spec(cfg)
    z = np.asarray(z).reshape(len(z), -1)
    return run(layers, "generator", a, z if layers[0].kind == "linear" else z.reshape(len(z), 1, 1, -1),
               train, **pinned)


def discriminator(cfg: Config, a: dict, x: np.ndarray, train: bool, **pinned):
    """D(x): images (N, H, W, C) -> logits (N,), and D's updated statistics if train."""
    out, stats = run(discriminator_spec(cfg), "discriminator", a, x, train, **pinned)
    return out.reshape(len(x)), stats
