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
