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


# ----------------------------------------------------------------------------------------
# The seeds' two other networks, counted by hand from the write-ups' layer lists.

def test_paper_network_counted_by_hand():
    # seed 003 at 64x64 RGB, nz 100, ngf = ndf = 64: G projects z to 1024 x 4 x 4, then
    # 5x5 transposed convolutions 1024 -> 512 -> 256 -> 128 -> 3; D 3 -> 128 -> ... -> 1024,
    # then one fully connected layer from 1024 x 4 x 4 to the logit
    c = Config(arch="paper", image_size=64, channels=3, nz=100, ngf=64, ndf=64)
    g, d = spec.generator_spec(c), spec.discriminator_spec(c)
    g_expected = (100 * 1024 * 16 + 2 * 1024) + sum(25 * a * b + 2 * b for a, b in
                                                   [(1024, 512), (512, 256), (256, 128)]) + (25 * 128 * 3 + 3)
    d_expected = (25 * 3 * 128 + 128) + sum(25 * a * b + 2 * b for a, b in
                                            [(128, 256), (256, 512), (512, 1024)]) + (1024 * 16 + 1)
    assert spec.totals(g) == (g_expected, 2 * (1024 + 512 + 256 + 128))
    assert spec.totals(d) == (d_expected, 2 * (256 + 512 + 1024))
    assert [l.out_shape for l in g] == [(4, 4, 1024), (8, 8, 512), (16, 16, 256), (32, 32, 128), (64, 64, 3)]
    assert all(l.kernel == 5 and l.stride == 2 and l.padding == 2 and l.output_padding == 1 for l in g[1:])
    assert [l.bias for l in g + d] == [False] * 4 + [True] + [True] + [False] * 3 + [True]
    assert d[-1].kind == "linear" and d[-1].in_shape == (1024 * 16,) and d[-1].activation is None


def test_cs231n_network_counted_by_hand():
    # seed 002: D conv 5x5 1->32, pool, conv 5x5 32->64, pool, fc 1024->1024, fc 1024->1;
    # G fc 96->1024, BatchNorm1d(1024), fc 1024->6272, BatchNorm1d(6272), 4x4 transposed
    # convolutions 128->64 (BatchNorm2d) and 64->1; PyTorch's default biases everywhere
    c = Config(arch="cs231n", image_size=28, channels=1, nz=96, ngf=64, ndf=32)
    g, d = spec.generator_spec(c), spec.discriminator_spec(c)
    d_expected = (25 * 32 + 32) + (25 * 32 * 64 + 64) + (1024 * 1024 + 1024) + (1024 + 1)
    g_expected = ((96 * 1024 + 1024 + 2 * 1024) + (1024 * 6272 + 6272 + 2 * 6272)
                  + (16 * 128 * 64 + 64 + 2 * 64) + (16 * 64 + 1))
    assert spec.totals(d) == (d_expected, 0)
    assert spec.totals(g) == (g_expected, 2 * (1024 + 6272 + 64))
    assert [l.out_shape for l in d] == [(12, 12, 32), (4, 4, 64), (1024,), (1,)]
    assert [l.out_shape for l in g] == [(1024,), (6272,), (14, 14, 64), (28, 28, 1)]
    assert g[2].in_shape == (7, 7, 128)                  # the vector viewed as a map
    assert all(l.act_first for l in g[:3]) and all(l.slope == 0.01 for l in d[:3])
    assert [l.pool for l in d] == [2, 2, 0, 0]


@pytest.mark.parametrize("size", [16, 32, 48, 64, 128])
def test_paper_shapes_follow_conv_arithmetic(size):
    c = Config(arch="paper", image_size=size, channels=3, nz=7, ngf=2, ndf=3)
    g = spec.generator_spec(c)
    h, ch = size // 16, 32
    assert g[0].out_shape == (h, h, ch) and g[0].params == 7 * h * h * ch + 2 * ch
    for l in g[1:]:
        assert l.in_ch == ch
        h = (h - 1) * l.stride - 2 * l.padding + l.kernel + l.output_padding   # PyTorch's formula
        ch = l.out_ch
        assert l.out_shape == (h, h, ch)
    assert (h, ch) == (size, 3)
    h, ch = size, 3
    for l in spec.discriminator_spec(c)[:-1]:
        assert l.in_ch == ch
        h, ch = (h + 2 * l.padding - l.kernel) // l.stride + 1, l.out_ch
        assert l.out_shape == (h, h, ch)
    assert spec.discriminator_spec(c)[-1].in_ch == h * h * ch


@pytest.mark.parametrize("arch,size,hint", [("paper", 40, "multiple of 16"), ("paper", 8, "multiple of 16"),
                                            ("cs231n", 32, "28x28"), ("cs231n", 64, "28x28")])
def test_sizes_the_other_networks_cannot_make_are_clear_errors(arch, size, hint):
    c = Config(arch=arch, image_size=size, channels=1, nz=10, ngf=4, ndf=4)
    with pytest.raises(UserError, match=f"--image-size {size} cannot be made by --arch {arch}.*{hint}"):
        spec.generator_spec(c)
    with pytest.raises(UserError, match="cannot be made"):
        spec.discriminator_spec(c)


def test_summary_descriptions_name_the_new_layer_kinds():
    c = Config(arch="cs231n", image_size=28, channels=1, nz=96, ngf=64, ndf=32)
    g, d = spec.generator_spec(c), spec.discriminator_spec(c)
    assert spec.describe(g[1]) == "linear 1024->6272 +bias relu +bn"          # activation first
    assert spec.describe(d[0]) == "conv 5x5/1 p0 1->32 +bias leaky_relu(0.01) maxpool2"
    p = spec.generator_spec(Config(arch="paper", image_size=64, channels=3, nz=100, ngf=64, ndf=64))
    assert spec.describe(p[1]) == "conv_transpose 5x5/2 p2 op1 1024->512 +bn relu"


def test_the_command_line_offers_exactly_the_spec_s_architectures():
    from common import config
    assert tuple(spec.ARCHITECTURES) == config.ARCHS == tuple(config.ARCH_DEFAULTS)
