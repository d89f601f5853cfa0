"""A slow, float64 NumPy forward pass of the DCGAN, read straight off the portable format.

It belongs to none of the three frameworks, so it can referee them: the cross-framework
tests check that each implementation computes what this computes from the same weights,
and that switching one of the framework defaults of DESIGN section 4 (BatchNorm epsilon and
momentum, padding, kernel flip, unbiased running variance) moves the result far outside
the tolerance. Each of those is a keyword argument here, defaulting to the pinned value.
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


def conv_transpose(x: np.ndarray, k: np.ndarray, s: int, p: int, pad=None) -> np.ndarray:
    """out[n, y*s - p + i, x*s - p + j, o] += in[n, y, x, c] K[i, j, c, o]: every input
    pixel scatters a copy of the kernel, and p rows/columns are cropped from each side."""
    n, h, w, _ = x.shape
    kh, kw, _, o = k.shape
    full = np.zeros((n, (h - 1) * s + kh, (w - 1) * s + kw, o))
    for i in range(kh):
        for j in range(kw):
            full[:, i:i + (h - 1) * s + 1:s, j:j + (w - 1) * s + 1:s] += x @ k[i, j]
    before, after = pad or (p, p)
    return full[:, before:full.shape[1] - after, before:full.shape[2] - after]


def batchnorm(x, a: dict, prefix: str, train: bool, eps: float, momentum: float,
              unbiased_running_var: bool):
    """Normalise over (N, H, W). In training mode, with the batch's biased variance, and
    return the running statistics updated PyTorch's way: new = (1 - m) old + m batch, the
    variance unbiased (n / (n - 1)). In inference mode, with the running statistics."""
    if train:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        n = x.shape[0] * x.shape[1] * x.shape[2]
        var_run = var * n / (n - 1) if unbiased_running_var else var
        stats = {f"{prefix}.running_mean": (1 - momentum) * a[f"{prefix}.running_mean"] + momentum * mean,
                 f"{prefix}.running_var": (1 - momentum) * a[f"{prefix}.running_var"] + momentum * var_run}
    else:
        mean, var, stats = a[f"{prefix}.running_mean"], a[f"{prefix}.running_var"], {}
    y = (x - mean) / np.sqrt(var + eps) * a[f"{prefix}.gamma"] + a[f"{prefix}.beta"]
    return y, stats


def activate(x, name):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "leaky_relu":
        return np.where(x > 0, x, LEAKY_SLOPE * x)
    if name == "tanh":
        return np.tanh(x)
    return x


def run(layers: list[Layer], net: str, a: dict, x: np.ndarray, train: bool, *,
        eps: float = BN_EPS, momentum: float = BN_MOMENTUM, unbiased_running_var: bool = True,
        flip_transposed_kernel: bool = False, pad=None) -> tuple[np.ndarray, dict]:
    """Run one network (a list of spec layers) on x; returns (output, updated statistics).
    The keywords are the pinned choices; change one to see what a mismatch does."""
    a = {k: np.asarray(v, np.float64) for k, v in a.items()}
    x = np.asarray(x, np.float64)
    stats = {}
    for l in layers:
        prefix = f"{net}.{l.name}"
        k = a[f"{prefix}.kernel"]
        if l.kind == "conv_transpose":
            if flip_transposed_kernel:
                k = k[::-1, ::-1]
            x = conv_transpose(x, k, l.stride, l.padding, pad if l.stride > 1 else None)
        else:
            x = conv(x, k, l.stride, l.padding, pad if l.stride > 1 else None)
        if l.bias:
            x = x + a[f"{prefix}.bias"]
        if l.batchnorm:
            x, s = batchnorm(x, a, prefix, train, eps, momentum, unbiased_running_var)
            stats.update(s)
        x = activate(x, l.activation)
    return x, stats


def generator(cfg: Config, a: dict, z: np.ndarray, train: bool, **pinned):
    """G(z): z (N, nz) -> images (N, H, W, C), and G's updated statistics if train."""
    return run(generator_spec(cfg), "generator", a, np.asarray(z).reshape(len(z), 1, 1, -1), train, **pinned)


def discriminator(cfg: Config, a: dict, x: np.ndarray, train: bool, **pinned):
    """D(x): images (N, H, W, C) -> logits (N,), and D's updated statistics if train."""
    out, stats = run(discriminator_spec(cfg), "discriminator", a, x, train, **pinned)
    return out.reshape(len(x)), stats
