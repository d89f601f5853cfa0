"""The spec against the published tutorial network and against conv arithmetic."""
import pytest

from common import spec
from common.config import Config, UserError


def cfg(size=64, channels=3, nz=100, ngf=64, ndf=64):
    return Config(image_size=size, channels=channels, nz=nz, ngf=ngf, ndf=ndf)


def test_published_parameter_counts():
    # PyTorch DCGAN tutorial network at 64x64 RGB, nz 100, ngf = ndf = 64.
    g, d = spec.generator_spec(cfg()), spec.discriminator_spec(cfg())
    assert spec.totals(g)[0] == 3_576_704
    assert spec.totals(d)[0] == 2_765_568
    # running mean + var of BatchNorm over 512+256+128+64 (G) and 128+256+512 (D) channels
    assert spec.totals(g)[1] == 2 * (512 + 256 + 128 + 64)
    assert spec.totals(d)[1] == 2 * (128 + 256 + 512)


def test_small_network_counted_by_hand():
    # 32x32 grey, nz 100, ngf = ndf = 32: G 100->128->64->32->1, D 1->32->64->128->1
    g = spec.generator_spec(cfg(32, 1, 100, 32, 32))
    d = spec.discriminator_spec(cfg(32, 1, 100, 32, 32))
    g_expected = (16 * 100 * 128 + 2 * 128) + (16 * 128 * 64 + 2 * 64) + (16 * 64 * 32 + 2 * 32) + 16 * 32
    d_expected = 16 * 32 + (16 * 32 * 64 + 2 * 64) + (16 * 64 * 128 + 2 * 128) + 16 * 128
    assert spec.totals(g)[0] == g_expected
    assert spec.totals(d)[0] == d_expected


def out_size(l, h):
    if l.kind == "conv":
        return (h + 2 * l.padding - l.kernel) // l.stride + 1
    return (h - 1) * l.stride - 2 * l.padding + l.kernel


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_follow_conv_arithmetic(size, channels):
    c = cfg(size, channels, 7, 5, 6)
    h, ch = 1, c.nz
    for l in spec.generator_spec(c):
        assert l.in_ch == ch
        h, ch = out_size(l, h), l.out_ch
        assert l.out_shape == (h, h, ch)
    assert (h, ch) == (size, channels)
    h, ch = size, channels
    for l in spec.discriminator_spec(c):
        assert l.in_ch == ch
        h, ch = out_size(l, h), l.out_ch
        assert l.out_shape == (h, h, ch)
    assert (h, ch) == (1, 1)


def test_dcgan_guidelines():
    g, d = spec.generator_spec(cfg()), spec.discriminator_spec(cfg())
    assert [l.activation for l in g] == ["relu"] * 4 + ["tanh"]
    assert [l.activation for l in d] == ["leaky_relu"] * 4 + [None]  # D returns logits
    assert not g[-1].batchnorm and not d[0].batchnorm and not d[-1].batchnorm
    assert all(l.batchnorm for l in g[:-1] + d[1:-1])
    assert not any(l.bias for l in g + d)


@pytest.mark.parametrize("size", [28, 48, 8, 1024, 100])
def test_impossible_image_size_is_a_clear_error(size):
    with pytest.raises(UserError, match=f"--image-size {size} cannot be made.*power of two"):
        spec.generator_spec(cfg(size))
