"""common/reference.py's vectorised convolutions, which referee the three frameworks in
test_cross_framework, against the portable layout's definition written out one pixel at
a time (tests/helpers.py)."""
import numpy as np
import pytest

from common import reference
from tests.helpers import conv_ref, conv_transpose_ref


@pytest.mark.parametrize("kind,size,s,p", [
    ("conv", 8, 2, 1), ("conv", 4, 1, 0), ("conv", 7, 2, 0), ("conv", 6, 1, 1), ("conv", 9, 3, 2),
    ("conv_transpose", 1, 1, 0), ("conv_transpose", 4, 2, 1), ("conv_transpose", 5, 2, 0),
    ("conv_transpose", 3, 1, 1), ("conv_transpose", 3, 3, 2)])
def test_reference_convolutions_are_the_definition(kind, size, s, p):
    rng = np.random.default_rng(size * 10 + s)
    x = rng.standard_normal((3, size, size, 2))
    k = rng.standard_normal((4, 4, 2, 5))
    got = getattr(reference, kind)(x, k, s, p)
    want = np.stack([(conv_ref if kind == "conv" else conv_transpose_ref)(xi, k, s, p) for xi in x])
    out = (size + 2 * p - 4) // s + 1 if kind == "conv" else (size - 1) * s + 4 - 2 * p
    assert got.shape == want.shape == (3, out, out, 5)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_the_definitions_are_each_others_transpose():
    """<conv(x), y> = <x, conv_transpose(y)> for the same kernel: the two definitions in
    tests/helpers.py are adjoint, as PyTorch's conv2d and conv_transpose2d are."""
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((8, 8, 3)), rng.standard_normal((4, 4, 3, 5))
    y = rng.standard_normal((4, 4, 5))
    lhs = np.sum(conv_ref(x, k, 2, 1) * y)
    rhs = np.sum(x * conv_transpose_ref(y, k.transpose(0, 1, 3, 2), 2, 1))
    assert lhs == pytest.approx(rhs, rel=1e-12)


# ----------------------------------------------------------------------------------------
# The layer kinds of the paper's and the CS231n network, against PyTorch's functional ops
# (torch is a referee here only; common/reference.py never imports it).

def test_output_padding_adds_the_row_and_column_at_the_end_as_pytorch_does():
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal((2, 4, 4, 3)), rng.standard_normal((5, 5, 3, 6))
    got = reference.conv_transpose(x, k, 2, 2, output_padding=1)
    want = F.conv_transpose2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(k).permute(2, 3, 0, 1),
                              stride=2, padding=2, output_padding=1).permute(0, 2, 3, 1).numpy()
    assert got.shape == want.shape == (2, 8, 8, 6)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # the extra row at the top instead: same shape, another image
    other = reference.conv_transpose(x, k, 2, 2, pad=(1, 2), output_padding=1)
    assert other.shape == got.shape and np.abs(other - got).max() > 0.1


def test_max_pool_and_the_flatten_order_as_pytorch_computes_them():
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 8, 8, 3))
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
    pooled = reference.max_pool(x, 2)
    np.testing.assert_array_equal(pooled, F.max_pool2d(nchw, 2).permute(0, 2, 3, 1).numpy())
    # flatten: the portable (H, W, C) order is NHWC's own reshape; PyTorch's view of NCHW
    # is (C, H, W), and order="chw" reproduces it
    np.testing.assert_array_equal(reference.to_shape(x, (192,)), x.reshape(2, -1))
    np.testing.assert_array_equal(reference.to_shape(x, (192,), "chw"), nchw.reshape(2, -1).numpy())
    v = rng.standard_normal((2, 192))
    np.testing.assert_array_equal(reference.to_shape(v, (8, 8, 3)), v.reshape(2, 8, 8, 3))
    np.testing.assert_array_equal(reference.to_shape(v, (8, 8, 3), "chw"),
                                  torch.from_numpy(v).view(2, 3, 8, 8).permute(0, 2, 3, 1).numpy())


def test_a_padded_max_pool_is_another_network():
    """MaxPool2d(2, padding=1) (or a "SAME" pool on an odd map) keeps a border row that
    MaxPool2d(2) drops: CS231n's D would read a 5x5 map where the spec says 4x4, so its
    fully connected layer no longer fits the weights, and one layer alone moves far."""
    import torch
    import torch.nn.functional as F
    from common.config import Config
    from tests.test_cross_framework import random_weights
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 24, 24, 3))
    padded = reference.max_pool(x, 2, pad=1)
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
    np.testing.assert_array_equal(padded, F.max_pool2d(nchw, 2, padding=1).permute(0, 2, 3, 1).numpy())
    assert padded.shape == (2, 13, 13, 3) and reference.max_pool(x, 2).shape == (2, 12, 12, 3)
    assert np.abs(padded[:, 1:, 1:][:, :12, :12] - reference.max_pool(x, 2)).max() > 1
    cfg = Config(arch="cs231n", image_size=28, channels=1, nz=16, ngf=8, ndf=8)
    a, images = random_weights(cfg), np.tanh(rng.standard_normal((4, 28, 28, 1)))
    assert reference.discriminator(cfg, a, images, False)[0].shape == (4,)
    with pytest.raises(ValueError):
        reference.discriminator(cfg, a, images, False, pool_pad=1)


def test_batchnorm_of_a_vector_normalises_each_feature():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 6)) * np.arange(1, 7) + np.arange(6)
    a = {"n.l.gamma": np.ones(6), "n.l.beta": np.zeros(6), "n.l.running_mean": np.zeros(6),
         "n.l.running_var": np.ones(6)}
    y, stats = reference.batchnorm(x, a, "n.l", True, 1e-5, 0.1, True)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), 1, atol=1e-4)
    np.testing.assert_allclose(stats["n.l.running_var"], 0.9 + 0.1 * x.var(0, ddof=1))
