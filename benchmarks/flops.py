"""Floating-point operations of one training step, counted from the spec, and the machine's
measured matrix-multiply peak, so a step time can be read as a fraction of what the
machine can do. Framework-free: numpy only.

The convention, exactly:

- One multiply-add is 2 FLOPs. Only convolutions, transposed convolutions and fully
  connected layers are counted: BatchNorm, activations, max-pooling, the losses and Adam
  are elementwise, well under 1% of the total for these networks.
- A `conv` computes, for every output pixel and output channel, k*k*in_ch multiply-adds,
  taps on the zero padding included (as im2col + GEMM does):
      MACs = H_out * W_out * k * k * in_ch * out_ch   (= kernel size x output pixels)
  where H_out is the convolution's own output, before a max-pool that follows it.
- A `linear` layer computes in * out multiply-adds.
- A `conv_transpose` scatters, from every input pixel and input channel, k*k*out_ch
  multiply-adds, the ones landing on the cropped border included:
      MACs = H_in * W_in * k * k * in_ch * out_ch     (= kernel size x input pixels)
- The backward pass of a layer is an input gradient and a weight gradient, each with the
  forward's multiply-adds; a gradient nobody needs is not counted.
- One step (DESIGN section 3: D update, then G update on the same z), per image of the batch:
      G forward once                                   F_G   (the fake batch is reused)
      D forward three times: real, fake (D step), fake (G step)           3 F_D
      D step backward, for each of its two D calls: weight gradients of every D
      layer, input gradients of every D layer but the first (its input is data or
      a detached fake)                                 2 (F_D + F_D - F_d1)
      G step backward: input gradients through every D layer (no D weight
      gradients: only G is updated)                    F_D
      then weight gradients of every G layer and input gradients of every G layer
      but the first (z needs none)                     F_G + F_G - F_g1
  total = 3 F_G - F_g1 + 8 F_D - 2 F_d1 multiply-adds per image, times 2 FLOPs, times
  the batch size. This is the work the algorithm needs; an implementation may do more
  (PyTorch would compute D's weight gradients in the G step too if pytorch_impl did not
  switch them off there; a framework that recomputes G(z) in the G step runs G forward
  twice), so the achieved fraction of the peak measures useful work.
"""
from __future__ import annotations

import time

import numpy as np

from common.config import Config
from common.spec import Layer, discriminator_spec, generator_spec


def conv_output_size(layer: Layer) -> int:
    """Height (= width) of a convolution's own output: before the max-pool, if one follows."""
    return layer.out_shape[0] * (layer.pool or 1)


def input_size(layer: Layer) -> int:
    """Input height (= width) of a layer: the shape it reads where the spec gives it, else
    from its output and its stride, padding, kernel."""
    if layer.in_shape:
        return layer.in_shape[0]
    out = conv_output_size(layer)
    if layer.kind == "conv":                  # out = (in + 2p - k) // s + 1, taken as exact
        return (out - 1) * layer.stride - 2 * layer.padding + layer.kernel
    if layer.kind == "conv_transpose":        # out = (in - 1) s - 2p + k + output padding
        return (out + 2 * layer.padding - layer.kernel - layer.output_padding) // layer.stride + 1
    raise ValueError(f"no FLOP count for layer kind {layer.kind!r}")


def layer_macs(layer: Layer) -> int:
    """Multiply-adds of one layer's forward pass for one image (see the module docstring)."""
    if layer.kind == "linear":
        return layer.in_ch * layer.out_ch
    taps = layer.kernel * layer.kernel * layer.in_ch * layer.out_ch
    if layer.kind == "conv":
        return conv_output_size(layer) ** 2 * taps
    if layer.kind == "conv_transpose":
        return input_size(layer) ** 2 * taps
    raise ValueError(f"no FLOP count for layer kind {layer.kind!r}")


def forward_macs(layers: list[Layer]) -> int:
    return sum(layer_macs(l) for l in layers)


def step_flops(cfg: Config) -> dict:
    """FLOPs of one training step on a batch of cfg.batch_size images, and its parts."""
    g, d = generator_spec(cfg), discriminator_spec(cfg)
    fg, fd = forward_macs(g), forward_macs(d)
    fg1, fd1 = layer_macs(g[0]), layer_macs(d[0])
    per_image = {
        "G forward": fg,
        "D forward x3": 3 * fd,
        "D step backward": 2 * (2 * fd - fd1),
        "G step backward through D": fd,
        "G step backward through G": 2 * fg - fg1,
    }
    total = sum(per_image.values())
    b = cfg.batch_size
    return {"per_step": 2 * total * b, "g_forward_per_image": 2 * fg,
            "d_forward_per_image": 2 * fd, "batch_size": b,
            "parts": {k: 2 * v * b for k, v in per_image.items()}}


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Best float32 GFLOP/s of numpy's n x n x n matrix multiply (its BLAS, all threads):
    the machine's practical peak for the dense arithmetic a training step is made of."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), np.float32)
    b = rng.standard_normal((n, n), np.float32)
    c = a @ b                                 # warm-up: threads started, pages touched
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return {"gflops": 2 * n ** 3 / best / 1e9, "n": n, "repeats": repeats, "best_seconds": best}
