"""The networks as data: every layer's hyperparameters, output shape and parameter count.

This is what the tests trust. Each framework's model.py writes its layers out by hand;
tests compare every layer of it with the list built here. It is not a model builder.

A layer here is one block: a convolution (or transposed convolution), then an optional
BatchNorm, then an optional activation. Shapes are (H, W, C). Trainable parameters
(kernels, biases, BatchNorm gamma and beta) and BatchNorm running statistics (mean and
variance) are counted separately; PyTorch's extra `num_batches_tracked` counter is not a
statistic used by the network and is not counted.

Architectures are registered by name in ARCHITECTURES:
- "dcgan", the PyTorch DCGAN tutorial's network: 4x4 kernels, z as a 1x1 map in, one
  logit out of a last 4x4 convolution.
- "paper", the network of the DCGAN paper's Figure 1 (Radford et al. 2015, section 3):
  z projected by a fully connected layer to a 1024-channel map at 1/16 of the image size,
  four 5x5 stride-2 transposed convolutions; D of four 5x5 stride-2 convolutions and a
  fully connected layer to the logit.
- "cs231n", the 28x28 MNIST network of the CS231n GAN assignment: D of two 5x5
  convolutions with max-pooling and two fully connected layers, G of two fully connected
  layers and two transposed convolutions, with the activation BEFORE BatchNorm.

Fully connected layers ("linear") read and write vectors. Where a vector meets a feature
map, the map is flattened, or the vector viewed as a map, in (H, W, C) order: the order
common/weights.py defines for a fully connected kernel. A layer's `in_shape` is the shape
its operation reads; when it differs from the previous layer's `out_shape`, that is such a
flatten or reshape. A linear layer whose `out_shape` is a map is viewed as that map right
after the matrix product, before its BatchNorm (the paper's projection of z).
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import Config, UserError

KINDS = ("conv", "conv_transpose", "linear")
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
    out_shape: tuple[int, ...]        # (H, W, C), or (features,) after a linear layer
    # The block is: operation, bias, BatchNorm, activation, max-pool; the fields below
    # change it where a network needs it, and their defaults are the tutorial network's.
    output_padding: int = 0    # conv_transpose: rows/columns added at the bottom/right
    act_first: bool = False    # the activation BEFORE BatchNorm (the CS231n write-up)
    pool: int = 0              # max-pool with window = stride = pool after the activation
    slope: float | None = None  # leaky_relu's negative slope; None: config.LEAKY_SLOPE
    in_shape: tuple[int, ...] = ()   # what the operation reads; () = previous out_shape

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """The portable kernel's shape (common/weights.py): (kh, kw, in, out), or
        (in, out) for a linear layer."""
        if self.kind == "linear":
            return (self.in_ch, self.out_ch)
        return (self.kernel, self.kernel, self.in_ch, self.out_ch)

    @property
    def norm_features(self) -> int:
        """What BatchNorm normalises separately: the channels of a map, or the features
        of a vector (PyTorch's BatchNorm2d and BatchNorm1d)."""
        return self.out_shape[-1]

    @property
    def kernel_params(self) -> int:
        n = 1
        for d in self.kernel_shape:
            n *= d
        return n

    @property
    def params(self) -> int:
        """Trainable: kernel, bias, BatchNorm gamma and beta."""
        return (self.kernel_params + (self.out_ch if self.bias else 0)
                + (2 * self.norm_features if self.batchnorm else 0))

    @property
    def stats(self) -> int:
        """BatchNorm running mean and running variance (not trainable)."""
        return 2 * self.norm_features if self.batchnorm else 0


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


# ----------------------------------------------------------------------------------------
# The paper's network: a projection of z, then 5x5 stride-2 layers.
#
# Biases: a layer followed by BatchNorm has none (BatchNorm's beta is the same degree of
# freedom, and the paper's Figure 1 shows none); the layers BatchNorm does not follow, the
# first of D, the last of G and D's fully connected layer, have one.

def _check_paper_size(size: int) -> int:
    if size % 16 or not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(
            f"--image-size {size} cannot be made by --arch paper: its four stride-2 layers "
            f"start from 1/16 of the image size, so the size must be a multiple of 16 from "
            f"{MIN_SIZE} to {MAX_SIZE} (try --image-size {max(MIN_SIZE, min(MAX_SIZE, round(size / 16) * 16))})")
    return size // 16


def paper_generator(cfg: Config) -> list[Layer]:
    """z -> fully connected to (S/16, S/16, ngf*16), BatchNorm, ReLU ("affine - batchnorm -
    relu" in the paper; the PyTorch write-up leaves that ReLU out) -> four 5x5 stride-2
    transposed convolutions, each doubling the size and halving the width -> Tanh."""
    s0, ch = _check_paper_size(cfg.image_size), cfg.ngf * 16
    layers = [Layer("g1", "linear", cfg.nz, s0 * s0 * ch, 1, 1, 0, False, True, "relu",
                    (s0, s0, ch), in_shape=(cfg.nz,))]
    size = s0
    for i in range(2, 6):
        last = i == 5
        size, out = size * 2, cfg.channels if last else ch // 2
        # PyTorch: padding 2 crops 2 from each side, output_padding 1 adds one row and
        # column at the end, so that (size - 1) * 2 - 4 + 5 + 1 = 2 * size exactly
        layers.append(Layer(f"g{i}", "conv_transpose", ch, out, 5, 2, 2, last, not last,
                            "tanh" if last else "relu", (size, size, out), output_padding=1))
        ch = out
    return layers


def paper_discriminator(cfg: Config) -> list[Layer]:
    """image -> four 5x5 stride-2 convolutions, ndf*2 -> ndf*16 channels, BatchNorm on all
    but the first, LeakyReLU 0.2 -> flatten -> fully connected to one logit."""
    s0 = _check_paper_size(cfg.image_size)
    size, ch, layers = cfg.image_size, cfg.channels, []
    for i in range(1, 5):
        size, out = size // 2, cfg.ndf * 2 ** i
        layers.append(Layer(f"d{i}", "conv", ch, out, 5, 2, 2, i == 1, i > 1, "leaky_relu",
                            (size, size, out)))
        ch = out
    layers.append(Layer("d5", "linear", s0 * s0 * ch, 1, 1, 1, 0, True, False, None, (1,),
                        in_shape=(s0 * s0 * ch,)))
    return layers


# ----------------------------------------------------------------------------------------
# The CS231n-style 28x28 network. Every layer has a bias, as the write-up's PyTorch layers
# do by default: with the activation before BatchNorm, a bias is not redundant. Widths
# scale with ndf and ngf; the defaults (ndf 32, ngf 64, nz 96) give the write-up's.

CS231N_SIZE = 28
CS231N_SLOPE = 0.01            # the write-up's LeakyReLU, PyTorch's default slope


def _check_cs231n_size(size: int) -> None:
    if size != CS231N_SIZE:
        raise UserError(f"--image-size {size} cannot be made by --arch cs231n: it is built "
                        f"for MNIST's own {CS231N_SIZE}x{CS231N_SIZE} (leave --image-size out)")


def cs231n_generator(cfg: Config) -> list[Layer]:
    """z -> fully connected 16*ngf, ReLU, BatchNorm -> fully connected 7x7x(2*ngf), ReLU,
    BatchNorm (of each of those features) -> viewed as a 7x7 map -> 4x4 stride-2
    transposed convolution to ngf, ReLU, BatchNorm -> 4x4 stride-2 to the image, Tanh."""
    _check_cs231n_size(cfg.image_size)
    hidden, ch = 16 * cfg.ngf, 2 * cfg.ngf
    return [
        Layer("g1", "linear", cfg.nz, hidden, 1, 1, 0, True, True, "relu", (hidden,),
              act_first=True, in_shape=(cfg.nz,)),
        Layer("g2", "linear", hidden, 7 * 7 * ch, 1, 1, 0, True, True, "relu", (7 * 7 * ch,),
              act_first=True, in_shape=(hidden,)),
        Layer("g3", "conv_transpose", ch, cfg.ngf, 4, 2, 1, True, True, "relu",
              (14, 14, cfg.ngf), act_first=True, in_shape=(7, 7, ch)),
        Layer("g4", "conv_transpose", cfg.ngf, cfg.channels, 4, 2, 1, True, False, "tanh",
              (28, 28, cfg.channels)),
    ]


def cs231n_discriminator(cfg: Config) -> list[Layer]:
    """image (28x28) -> 5x5 convolution (no padding) to ndf, LeakyReLU 0.01, max-pool 2 ->
    5x5 to 2*ndf, LeakyReLU 0.01, max-pool 2 (4x4) -> flatten -> fully connected 32*ndf,
    LeakyReLU 0.01 -> fully connected to one logit. No BatchNorm in D."""
    _check_cs231n_size(cfg.image_size)
    flat, hidden = 4 * 4 * 2 * cfg.ndf, 32 * cfg.ndf
    return [
        Layer("d1", "conv", cfg.channels, cfg.ndf, 5, 1, 0, True, False, "leaky_relu",
              (12, 12, cfg.ndf), pool=2, slope=CS231N_SLOPE),
        Layer("d2", "conv", cfg.ndf, 2 * cfg.ndf, 5, 1, 0, True, False, "leaky_relu",
              (4, 4, 2 * cfg.ndf), pool=2, slope=CS231N_SLOPE),
        Layer("d3", "linear", flat, hidden, 1, 1, 0, True, False, "leaky_relu", (hidden,),
              slope=CS231N_SLOPE, in_shape=(flat,)),
        Layer("d4", "linear", hidden, 1, 1, 1, 0, True, False, None, (1,), in_shape=(hidden,)),
    ]


ARCHITECTURES = {"dcgan": (dcgan_generator, dcgan_discriminator),
                 "paper": (paper_generator, paper_discriminator),
                 "cs231n": (cs231n_generator, cs231n_discriminator)}


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
    w = max([44] + [len(r[1]) + 2 for r in rows])         # the kind column fits the longest
    lines = [title, f"{'layer':<6}{'kind':<{w}}{'output (H, W, C)':>18}{'params':>12}{'bn stats':>10}"]
    for name, desc, shape, p, s in rows:
        lines.append(f"{name:<6}{desc:<{w}}{str(tuple(shape)):>18}{p:>12,}{s:>10,}")
    lines.append(f"{'total':<{w + 24}}{sum(r[3] for r in rows):>12,}{sum(r[4] for r in rows):>10,}")
    return "\n".join(lines)


def describe(layer: Layer) -> str:
    """How a layer reads in the summary, e.g. 'conv_transpose 4x4/2 p1 100->512 +bn relu',
    'linear 1024->6272 +bias relu +bn' (activation first), 'conv 5x5/1 p0 1->32 +bias
    leaky_relu(0.01) maxpool2'."""
    if layer.kind == "linear":
        s = f"linear {layer.in_ch}->{layer.out_ch}"
    else:
        s = (f"{layer.kind} {layer.kernel}x{layer.kernel}/{layer.stride} p{layer.padding}"
             + (f" op{layer.output_padding}" if layer.output_padding else "")
             + f" {layer.in_ch}->{layer.out_ch}")
    if layer.bias:
        s += " +bias"
    act = layer.activation or ""
    if act == "leaky_relu" and layer.slope is not None:
        act += f"({layer.slope:g})"
    parts = [act, "+bn" if layer.batchnorm else ""]
    if not layer.act_first:
        parts.reverse()
    s += "".join(f" {p}" for p in parts if p)
    if layer.pool:
        s += f" maxpool{layer.pool}"
    return s
