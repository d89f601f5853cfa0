"""The generators and discriminators in PyTorch (NCHW; kernels OIHW, transposed IOHW):
the tutorial's DCGAN, the paper's network and the CS231n 28x28 one (common/spec.py).

    python -m pytorch_impl.model --image-size 64 --channels 3   # layer table and totals
    python -m pytorch_impl.model --arch cs231n
"""
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from common import spec, weights
from common.config import INIT_STD, LEAKY_SLOPE, Config
from common.spec import CS231N_SLOPE
from pytorch_impl import layers

# ----------------------------------------------------------------------------------------
# building blocks: shared by the three networks

def block(conv, out_ch, batchnorm, act, act_first=False, pool=0, flatten_in=False,
          reshape_in=None, reshape_out=None):
    """One spec layer: [reshape] op [reshape] BatchNorm act [max-pool], or with the
    activation before BatchNorm. batchnorm: False, True (BatchNorm2d) or "1d". flatten_in:
    a map in, flattened for a fully connected layer; reshape_in / reshape_out: a vector
    viewed as a (C, H, W) map before / after the operation. PyTorch does both in (C, H, W)
    order; to_portable converts to the portable (H, W, C) (common/weights.py)."""
    parts = []
    if flatten_in:
        parts.append(("flatten", nn.Flatten()))
    if reshape_in:
        parts.append(("unflatten", nn.Unflatten(1, reshape_in)))
    parts.append(("fc" if isinstance(conv, nn.Linear) else "conv", conv))
    if reshape_out:
        parts.append(("unflatten", nn.Unflatten(1, reshape_out)))
    norm = [("bn", layers.batchnorm(out_ch, vector=batchnorm == "1d"))] if batchnorm else []
    if act is not None:
        norm.insert(0 if act_first else len(norm), ("act", act))
    parts += norm
    if pool:
        parts.append(("pool", nn.MaxPool2d(pool)))         # window = stride = pool, no padding
    return nn.Sequential(OrderedDict(parts))


def linear(n_in, n_out, bias, in_map=None, out_map=None):
    """nn.Linear that remembers the (C, H, W) maps its input comes from (in_map) or its
    output becomes (out_map), for the conversion to and from the portable order."""
    fc = nn.Linear(n_in, n_out, bias=bias)
    fc.in_map, fc.out_map = in_map, out_map
    return fc


def op(blk):
    """The block's convolution or fully connected layer."""
    return blk.fc if hasattr(blk, "fc") else blk.conv


# ----------------------------------------------------------------------------------------
# the tutorial's network (--arch dcgan)

class Generator(nn.Module):
    """z (B, nz, 1, 1) -> image (B, C, S, S) in [-1, 1]. For S = 64 this is the PyTorch
    tutorial's generator; each 4x4/2 p1 transposed conv doubles H and W."""

    def __init__(self, cfg: Config):
        super().__init__()
        n = cfg.image_size.bit_length() - 1          # S = 2**n; n - 1 blocks
        ch = cfg.ngf * 2 ** (n - 3)
        blocks = OrderedDict()
        blocks["g1"] = block(nn.ConvTranspose2d(cfg.nz, ch, 4, 1, 0, bias=False), ch, True,
                             nn.ReLU(True))                                 # (ngf*2^(n-3)) x 4 x 4
        for i in range(2, n - 1):
            blocks[f"g{i}"] = block(nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                                    ch // 2, True, nn.ReLU(True))           # (ch/2) x 2H x 2W
            ch //= 2
        blocks[f"g{n - 1}"] = block(nn.ConvTranspose2d(ch, cfg.channels, 4, 2, 1, bias=False),
                                    cfg.channels, False, nn.Tanh())         # C x S x S
        self.main = nn.Sequential(blocks)

    def forward(self, z):
        return self.main(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    """image (B, C, S, S) -> one logit per image (B,). No sigmoid: the losses take logits
    (BCEWithLogitsLoss is the numerically stable form of Sigmoid + BCELoss)."""

    def __init__(self, cfg: Config):
        super().__init__()
        n = cfg.image_size.bit_length() - 1
        ch = cfg.ndf
        blocks = OrderedDict()
        blocks["d1"] = block(nn.Conv2d(cfg.channels, ch, 4, 2, 1, bias=False), ch, False,
                             nn.LeakyReLU(LEAKY_SLOPE, True))               # ndf x S/2 x S/2
        for i in range(2, n - 1):
            blocks[f"d{i}"] = block(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), ch * 2, True,
                                    nn.LeakyReLU(LEAKY_SLOPE, True))        # (2ch) x H/2 x W/2
            ch *= 2
        blocks[f"d{n - 1}"] = block(nn.Conv2d(ch, 1, 4, 1, 0, bias=False), 1, False, None)  # 1 x 1 x 1
        self.main = nn.Sequential(blocks)

    def forward(self, x):
        return self.main(x).view(-1)


# ----------------------------------------------------------------------------------------
# the paper's network (--arch paper)

class PaperGenerator(nn.Module):
    """z (B, nz) -> image (B, C, S, S): the DCGAN paper's Figure 1. A fully connected
    projection of z to ngf*16 x S/16 x S/16 ("project and reshape"), BatchNorm and ReLU,
    then four 5x5 stride-2 transposed convolutions (padding 2, output_padding 1)."""

    def __init__(self, cfg: Config):
        super().__init__()
        s0, ch = cfg.image_size // 16, cfg.ngf * 16
        blocks = OrderedDict()
        # the projection's output is viewed as (ch, s0, s0): PyTorch's order, not portable's
        blocks["g1"] = block(linear(cfg.nz, ch * s0 * s0, False, out_map=(ch, s0, s0)), ch, True,
                             nn.ReLU(True), reshape_out=(ch, s0, s0))     # ch x S/16 x S/16
        for i in range(2, 5):
            blocks[f"g{i}"] = block(nn.ConvTranspose2d(ch, ch // 2, 5, 2, 2, output_padding=1, bias=False),
                                    ch // 2, True, nn.ReLU(True))           # (ch/2) x 2H x 2W
            ch //= 2
        blocks["g5"] = block(nn.ConvTranspose2d(ch, cfg.channels, 5, 2, 2, output_padding=1),
                             cfg.channels, False, nn.Tanh())                # C x S x S
        self.main = nn.Sequential(blocks)

    def forward(self, z):
        return self.main(z.view(z.shape[0], -1))


class PaperDiscriminator(nn.Module):
    """image (B, C, S, S) -> one logit (B,): four 5x5 stride-2 convolutions (padding 2),
    ndf*2 -> ndf*16 channels, then flatten and one fully connected layer."""

    def __init__(self, cfg: Config):
        super().__init__()
        s0, ch, blocks = cfg.image_size // 16, cfg.channels, OrderedDict()
        for i in range(1, 5):
            out = cfg.ndf * 2 ** i
            blocks[f"d{i}"] = block(nn.Conv2d(ch, out, 5, 2, 2, bias=i == 1), out, i > 1,
                                    nn.LeakyReLU(LEAKY_SLOPE, True))         # out x H/2 x W/2
            ch = out
        blocks["d5"] = block(linear(ch * s0 * s0, 1, True, in_map=(ch, s0, s0)), 1, False, None,
                             flatten_in=True)                                # 1
        self.main = nn.Sequential(blocks)

    def forward(self, x):
        return self.main(x).view(-1)


# ----------------------------------------------------------------------------------------
# the CS231n network (--arch cs231n)

class CS231nGenerator(nn.Module):
    """z (B, nz) -> image (B, C, 28, 28), the CS231n assignment's: two fully connected
    layers and two 4x4 stride-2 transposed convolutions, each activation BEFORE its
    BatchNorm (as the write-up has it)."""

    def __init__(self, cfg: Config):
        super().__init__()
        hidden, ch = 16 * cfg.ngf, 2 * cfg.ngf
        relu = lambda: nn.ReLU(True)
        self.main = nn.Sequential(OrderedDict(
            g1=block(linear(cfg.nz, hidden, True), hidden, "1d", relu(), act_first=True),          # 1024
            # BatchNorm1d over 7*7*ch features, which g3 then views as a (ch, 7, 7) map
            g2=block(linear(hidden, 7 * 7 * ch, True, out_map=(ch, 7, 7)), 7 * 7 * ch, "1d", relu(),
                     act_first=True),                                                            # 6272
            g3=block(nn.ConvTranspose2d(ch, cfg.ngf, 4, 2, 1), cfg.ngf, True, relu(), act_first=True,
                     reshape_in=(ch, 7, 7)),                                                     # ngf x 14 x 14
            g4=block(nn.ConvTranspose2d(cfg.ngf, cfg.channels, 4, 2, 1), cfg.channels, False,
                     nn.Tanh()),                                                                 # C x 28 x 28
        ))

    def forward(self, z):
        return self.main(z.view(z.shape[0], -1))


class CS231nDiscriminator(nn.Module):
    """image (B, C, 28, 28) -> one logit (B,): two 5x5 convolutions with max-pooling, two
    fully connected layers, LeakyReLU 0.01 (PyTorch's default slope, the write-up's)."""

    def __init__(self, cfg: Config):
        super().__init__()
        ch, hidden = 2 * cfg.ndf, 32 * cfg.ndf
        lrelu = lambda: nn.LeakyReLU(CS231N_SLOPE, True)
        self.main = nn.Sequential(OrderedDict(
            d1=block(nn.Conv2d(cfg.channels, cfg.ndf, 5, 1), cfg.ndf, False, lrelu(), pool=2),    # ndf x 12 x 12
            d2=block(nn.Conv2d(cfg.ndf, ch, 5, 1), ch, False, lrelu(), pool=2),                   # 2ndf x 4 x 4
            d3=block(linear(ch * 16, hidden, True, in_map=(ch, 4, 4)), hidden, False, lrelu(),
                     flatten_in=True),                                                          # 1024
            d4=block(linear(hidden, 1, True), 1, False, None),                                  # 1
        ))

    def forward(self, x):
        return self.main(x).view(-1)


# ----------------------------------------------------------------------------------------
# initialisation

def dcgan_init(module: nn.Module) -> None:
    """DCGAN paper, section 4: weights ~ N(0, 0.02); BatchNorm gamma ~ N(1, 0.02), beta = 0.
    Replaces PyTorch's default kaiming-uniform init."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:                  # the layers BatchNorm does not follow
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


NETWORKS = {"dcgan": (Generator, Discriminator), "paper": (PaperGenerator, PaperDiscriminator),
            "cs231n": (CS231nGenerator, CS231nDiscriminator)}


def build(cfg: Config, seed: int = 0):
    spec.generator_spec(cfg), spec.discriminator_spec(cfg)     # a size the network cannot make
    torch.manual_seed(seed)
    g_cls, d_cls = NETWORKS[cfg.arch]
    generator, discriminator = g_cls(cfg), d_cls(cfg)
    generator.apply(dcgan_init)
    discriminator.apply(dcgan_init)
    return generator, discriminator


# ----------------------------------------------------------------------------------------
# portable weights (layout: common/weights.py)

def kernel_to_portable(m: nn.Module) -> np.ndarray:
    w = np.array(m.weight.detach().cpu())
    if isinstance(m, nn.Linear):                 # weight (out, in) -> (in, out)
        k = w.T
        if m.in_map:                             # rows from a flattened (C, H, W) map
            k = k[weights.chw_to_hwc(m.in_map)]
        if m.out_map:                            # columns that become a (C, H, W) map
            k = k[:, weights.chw_to_hwc(m.out_map)]
        return np.ascontiguousarray(k)
    # Conv2d (O, I, kh, kw) -> (kh, kw, I, O); ConvTranspose2d (I, O, kh, kw) -> same
    return w.transpose((2, 3, 0, 1) if isinstance(m, nn.ConvTranspose2d) else (2, 3, 1, 0))


def kernel_from_portable(m: nn.Module, k: np.ndarray) -> np.ndarray:
    if isinstance(m, nn.Linear):
        if m.in_map:
            k = k[np.argsort(weights.chw_to_hwc(m.in_map))]
        if m.out_map:
            k = k[:, np.argsort(weights.chw_to_hwc(m.out_map))]
        return k.T
    return k.transpose((2, 3, 0, 1) if isinstance(m, nn.ConvTranspose2d) else (3, 2, 0, 1))


def feature_order(blk, param: nn.Module):
    """Where a vector of a linear layer's output features (its bias, a BatchNorm1d's
    statistics) is in PyTorch's (C, H, W) order: the permutation to the portable order."""
    m = op(blk)
    if isinstance(m, nn.Linear) and m.out_map and param.weight.shape[0] == m.out_features:
        return weights.chw_to_hwc(m.out_map)
    return slice(None)


def to_portable(generator, discriminator) -> dict:
    """A snapshot: .numpy() would share memory with the live tensors, so every array is
    copied (np.array) and later training steps cannot change an exported dict."""
    out = {}
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for name, blk in model.main.named_children():
            m = op(blk)
            out[f"{net}.{name}.kernel"] = kernel_to_portable(m)
            if m.bias is not None:
                out[f"{net}.{name}.bias"] = np.array(m.bias.detach().cpu())[feature_order(blk, m)]
            if hasattr(blk, "bn"):
                order = feature_order(blk, blk.bn)
                for k, t in (("gamma", blk.bn.weight), ("beta", blk.bn.bias),
                             ("running_mean", blk.bn.running_mean), ("running_var", blk.bn.running_var)):
                    out[f"{net}.{name}.{k}"] = np.array(t.detach().cpu())[order]
    return out


def load_portable(generator, discriminator, arrays: dict) -> None:
    """Copy portable arrays into the models, asserting every shape before it copies."""
    def put(t, a, order=slice(None)):
        if not isinstance(order, slice):
            a = a[np.argsort(order)]
        a = torch.from_numpy(np.ascontiguousarray(a))
        assert t.shape == a.shape, f"shape {tuple(a.shape)} does not fit {tuple(t.shape)}"
        with torch.no_grad():
            t.copy_(a)

    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for name, blk in model.main.named_children():
            m = op(blk)
            k = arrays[f"{net}.{name}.kernel"]
            assert k.ndim == (2 if isinstance(m, nn.Linear) else 4), \
                f"{net}.{name}.kernel: shape {k.shape} does not fit {tuple(m.weight.shape)}"
            put(m.weight, kernel_from_portable(m, k))
            if m.bias is not None:
                put(m.bias, arrays[f"{net}.{name}.bias"], feature_order(blk, m))
            if hasattr(blk, "bn"):
                order = feature_order(blk, blk.bn)
                put(blk.bn.weight, arrays[f"{net}.{name}.gamma"], order)
                put(blk.bn.bias, arrays[f"{net}.{name}.beta"], order)
                put(blk.bn.running_mean, arrays[f"{net}.{name}.running_mean"], order)
                put(blk.bn.running_var, arrays[f"{net}.{name}.running_var"], order)


# ----------------------------------------------------------------------------------------
# summary: measured on the real modules, printed in the format shared by the three

def layer_table(model: nn.Module, x: torch.Tensor, layers: list) -> list:
    """(name, description, out shape (H, W, C), trainable, bn stats) for each block."""
    rows = []
    model.eval()
    with torch.no_grad():
        for i, ((name, blk), l) in enumerate(zip(model.main.named_children(), layers)):
            if i == 0 and x.ndim == 2 and hasattr(blk, "conv"):
                x = x.view(x.shape[0], -1, 1, 1)             # z as a 1x1 map (the tutorial's G)
            x = blk(x)
            trainable = sum(p.numel() for p in blk.parameters() if p.requires_grad)
            stats = (blk.bn.running_mean.numel() + blk.bn.running_var.numel()) if hasattr(blk, "bn") else 0
            shape = tuple(x.shape[2:]) + (x.shape[1],) if x.ndim == 4 else tuple(x.shape[1:])
            rows.append((name, spec.describe(l), shape, trainable, stats))
    return rows


def summary(cfg: Config) -> str:
    g_spec, d_spec = spec.generator_spec(cfg), spec.discriminator_spec(cfg)  # checks the size
    generator, discriminator = build(cfg)
    g = layer_table(generator, torch.zeros(2, cfg.nz), g_spec)
    d = layer_table(discriminator, torch.zeros(2, cfg.channels, cfg.image_size, cfg.image_size), d_spec)
    return spec.format_summary("Generator", g) + "\n\n" + spec.format_summary("Discriminator", d)


if __name__ == "__main__":
    from common.config import parse_model_args, run_main
    run_main(lambda argv: print(summary(parse_model_args(argv, "python -m pytorch_impl.model"))))
