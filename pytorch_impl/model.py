"""DCGAN generator and discriminator in PyTorch (NCHW; kernels OIHW, transposed IOHW).

    python -m pytorch_impl.model --image-size 64 --channels 3   # layer table and totals
"""
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from common import spec
from common.config import BN_EPS, BN_MOMENTUM, INIT_STD, LEAKY_SLOPE, Config

# ----------------------------------------------------------------------------------------
# networks

def block(conv, out_ch, batchnorm, act):
    layers = [("conv", conv)]
    if batchnorm:
        # PyTorch's defaults, pinned: eps 1e-5, momentum 0.1 = weight of the NEW statistic.
        layers.append(("bn", nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)))
    if act is not None:
        layers.append(("act", act))
    return nn.Sequential(OrderedDict(layers))


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
# initialisation

def dcgan_init(module: nn.Module) -> None:
    """DCGAN paper, section 4: weights ~ N(0, 0.02); BatchNorm gamma ~ N(1, 0.02), beta = 0.
    Replaces PyTorch's default kaiming-uniform init."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def build(cfg: Config, seed: int = 0):
    torch.manual_seed(seed)
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    generator.apply(dcgan_init)
    discriminator.apply(dcgan_init)
    return generator, discriminator


# ----------------------------------------------------------------------------------------
# portable weights (layout: common/weights.py)

def to_portable(generator, discriminator) -> dict:
    """A snapshot: .numpy() would share memory with the live tensors, so every array is
    copied (np.array) and later training steps cannot change an exported dict."""
    out = {}
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for name, blk in model.main.named_children():
            w = np.array(blk.conv.weight.detach().cpu())
            # Conv2d (O, I, kh, kw) -> (kh, kw, I, O); ConvTranspose2d (I, O, kh, kw) -> same
            perm = (2, 3, 0, 1) if isinstance(blk.conv, nn.ConvTranspose2d) else (2, 3, 1, 0)
            out[f"{net}.{name}.kernel"] = w.transpose(perm)
            if blk.conv.bias is not None:
                out[f"{net}.{name}.bias"] = np.array(blk.conv.bias.detach().cpu())
            if hasattr(blk, "bn"):
                for k, t in (("gamma", blk.bn.weight), ("beta", blk.bn.bias),
                             ("running_mean", blk.bn.running_mean), ("running_var", blk.bn.running_var)):
                    out[f"{net}.{name}.{k}"] = np.array(t.detach().cpu())
    return out


def load_portable(generator, discriminator, arrays: dict) -> None:
    """Copy portable arrays into the models, asserting every shape before it copies."""
    def put(t, a):
        a = torch.from_numpy(np.ascontiguousarray(a))
        assert t.shape == a.shape, f"shape {tuple(a.shape)} does not fit {tuple(t.shape)}"
        with torch.no_grad():
            t.copy_(a)

    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for name, blk in model.main.named_children():
            perm = (2, 3, 0, 1) if isinstance(blk.conv, nn.ConvTranspose2d) else (3, 2, 0, 1)
            put(blk.conv.weight, arrays[f"{net}.{name}.kernel"].transpose(perm))
            if blk.conv.bias is not None:
                put(blk.conv.bias, arrays[f"{net}.{name}.bias"])
            if hasattr(blk, "bn"):
                put(blk.bn.weight, arrays[f"{net}.{name}.gamma"])
                put(blk.bn.bias, arrays[f"{net}.{name}.beta"])
                put(blk.bn.running_mean, arrays[f"{net}.{name}.running_mean"])
                put(blk.bn.running_var, arrays[f"{net}.{name}.running_var"])


# ----------------------------------------------------------------------------------------
# summary: measured on the real modules, printed in the format shared by the three

def layer_table(model: nn.Module, x: torch.Tensor, layers: list) -> list:
    """(name, description, out shape (H, W, C), trainable, bn stats) for each block."""
    rows = []
    model.eval()
    with torch.no_grad():
        for (name, blk), l in zip(model.main.named_children(), layers):
            x = blk(x.view(x.shape[0], -1, 1, 1) if name == "g1" else x)
            trainable = sum(p.numel() for p in blk.parameters() if p.requires_grad)
            stats = (blk.bn.running_mean.numel() + blk.bn.running_var.numel()) if hasattr(blk, "bn") else 0
            rows.append((name, spec.describe(l), tuple(x.shape[2:]) + (x.shape[1],), trainable, stats))
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
