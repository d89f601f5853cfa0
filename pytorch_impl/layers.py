"""The layers PyTorch needs in order to match PyTorch's numerics: its own. PyTorch is the
reference the other two are held to, so its layers are used as they are, with the
defaults that matter pinned here. jax_impl/layers.py and keras_impl/layers.py hold what
JAX and Keras must write to compute the same numbers; the sections line up with theirs.
"""
import torch
from torch import nn

from common.config import ADAM_EPS, BN_EPS, BN_MOMENTUM


# ========================================================================================
# batchnorm

def batchnorm(features: int, vector: bool = False) -> nn.Module:
    """nn.BatchNorm2d normalises each channel of a map, nn.BatchNorm1d each feature of a
    vector. PyTorch's defaults, pinned: eps 1e-5, momentum 0.1 = the weight of the NEW
    statistic; the running variance averages the unbiased batch variance."""
    return (nn.BatchNorm1d if vector else nn.BatchNorm2d)(features, eps=BN_EPS, momentum=BN_MOMENTUM)


# ========================================================================================
# transposed convolution

# nn.ConvTranspose2d as it is (model.py): padding p crops p from every side of the
# scattered output, and output_padding q gives q of it back at the bottom and right.


# ========================================================================================
# adam

def adam(params, cfg) -> torch.optim.Adam:
    """torch.optim.Adam: eps 1e-8 added to the bias-corrected sqrt(v)."""
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS)
