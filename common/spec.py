"""The networks as data: every layer's hyperparameters, output shape and parameter count.

This is what the tests trust. Each framework's model.py writes its layers out by hand;
tests compare every layer of it with the list built here. It is not a model builder.

A layer here is one block: a convolution (or transposed convolution), then an optional
BatchNorm, then an optional activation. Shapes are (H, W, C). Trainable parameters
(kernels, biases, BatchNorm gamma and beta) and BatchNorm running statistics (mean and
variance) are counted separately; PyTorch's extra `num_batches_tracked` counter is not a
statistic used by the network and is not counted.

Architectures are registered by name in ARCHITECTURES, so the other DCGAN variants of the
write-ups this project started from can be added beside "dcgan" with their own builder:
one with a linear projection of z to 1024x4x4 and 5x5 kernels (a "linear" kind), or a
28x28 one with fully connected layers and max-pooling in D ("linear", "maxpool" kinds).
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import Config, UserError

KINDS = ("conv", "conv_transpose")          # implemented; later: "linear", "maxpool"
ACTIVATIONS = (None, "relu", "leaky_relu", "tanh")
MIN_SIZE, MAX_SIZE = 16, 512


@dataclass(frozen=True)
class Layer:
    name: str                  # the same in every framework and in the portable weights
    kind: str                  # one of KINDS
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    padding: int               # PyTorch meaning (see common/weights.py for conv_transpose)
    bias: bool
    batchnorm: bool
    activation: str | None
    out_shape: tuple[int, int, int]   # (H, W, C)

    @property
    def kernel_params(self) -> int:
        return self.kernel * self.kernel * self.in_ch * self.out_ch

    @property
    def params(self) -> int:
        """Trainable: kernel, bias, BatchNorm gamma and beta."""
        return (self.kernel_params + (self.out_ch if self.bias else 0)
                + (2 * self.out_ch if self.batchnorm else 0))

    @property
    def stats(self) -> int:
        """BatchNorm running mean and running variance (not trainable)."""
        return 2 * self.out_ch if self.batchnorm else 0


def _check_size(size: int) -> int:
    n = size.bit_length() - 1
    if size != 1 << n or not MIN_SIZE <= size <= MAX_SIZE:
        hint = 1 << max(4, min(9, round(size).bit_length()))
        raise UserError(
            f"--image-size {size} cannot be made by the DCGAN: it starts at 4x4 and doubles "
            f"each layer, so the size must be a power of two from {MIN_SIZE} to {MAX_SIZE} "
            f"(try --image-size {hint}; smaller images are resized up)")
    return n


def dcgan_generator(cfg: Config) -> list[Layer]:
    """z (1x1xnz) -> 4x4 -> 8x8 -> ... -> image. Widths halve as resolution doubles."""
    n = _check_size(cfg.image_size)
    mult = 2 ** (n - 3)          # 64 px: ngf*8 at 4x4, as in the PyTorch tutorial
    layers = [Layer("g1", "conv_transpose", cfg.nz, cfg.ngf * mult, 4, 1, 0, False, True,
                    "relu", (4, 4, cfg.ngf * mult))]
    size, ch = 4, cfg.ngf * mult
    for i in range(2, n - 1):
        size, out = size * 2, ch // 2
        layers.append(Layer(f"g{i}", "conv_transpose", ch, out, 4, 2, 1, False, True,
                            "relu", (size, size, out)))
        ch = out
    layers.append(Layer(f"g{n - 1}", "conv_transpose", ch, cfg.channels, 4, 2, 1, False,
                        False, "tanh", (size * 2, size * 2, cfg.channels)))
    return layers


def dcgan_discriminator(cfg: Config) -> list[Layer]:
    """image -> ... -> 4x4 -> one logit. No BatchNorm on the first layer (paper, sec. 3);
    no sigmoid at the end: the losses take logits."""
    n = _check_size(cfg.image_size)
    size, ch = cfg.image_size // 2, cfg.ndf
    layers = [Layer("d1", "conv", cfg.channels, ch, 4, 2, 1, False, False, "leaky_relu",
                    (size, size, ch))]
    for i in range(2, n - 1):
        size, out = size // 2, ch * 2
        layers.append(Layer(f"d{i}", "conv", ch, out, 4, 2, 1, False, True, "leaky_relu",
                            (size, size, out)))
        ch = out
    layers.append(Layer(f"d{n - 1}", "conv", ch, 1, 4, 1, 0, False, False, None, (1, 1, 1)))
    return layers


ARCHITECTURES = {"dcgan": (dcgan_generator, dcgan_discriminator)}


def generator_spec(cfg: Config) -> list[Layer]:
    return ARCHITECTURES[cfg.arch][0](cfg)


def discriminator_spec(cfg: Config) -> list[Layer]:
    return ARCHITECTURES[cfg.arch][1](cfg)


def totals(layers: list[Layer]) -> tuple[int, int]:
    return sum(l.params for l in layers), sum(l.stats for l in layers)


# ----------------------------------------------------------------------------------------
# The summary printed by `python -m <fw>_impl.model`, one format for all three frameworks.
# Each framework measures its own layers (output shape, trainable count, statistics count)
# and passes them here, so a diff of the three printouts compares real models.

def format_summary(title: str, rows: list[tuple[str, str, tuple, int, int]]) -> str:
    """rows: (name, description, out_shape (H, W, C), trainable, stats)."""
    lines = [title, f"{'layer':<6}{'kind':<44}{'output (H, W, C)':>18}{'params':>12}{'bn stats':>10}"]
    for name, desc, shape, p, s in rows:
        lines.append(f"{name:<6}{desc:<44}{str(tuple(shape)):>18}{p:>12,}{s:>10,}")
    lines.append(f"{'total':<68}{sum(r[3] for r in rows):>12,}{sum(r[4] for r in rows):>10,}")
    return "\n".join(lines)


def describe(layer: Layer) -> str:
    """How a layer reads in the summary, e.g. 'conv_transpose 4x4/2 p1 100->512 +bn relu'."""
    s = f"{layer.kind} {layer.kernel}x{layer.kernel}/{layer.stride} p{layer.padding} " \
        f"{layer.in_ch}->{layer.out_ch}"
    if layer.bias:
        s += " +bias"
    if layer.batchnorm:
        s += " +bn"
    if layer.activation:
        s += f" {layer.activation}"
    return s
