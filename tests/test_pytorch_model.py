"""Every layer of the PyTorch networks against the spec, the pinned defaults, the DCGAN
initialisation, and the portable layout against a NumPy reading of its definition."""
import numpy as np
import pytest
import torch
from torch import nn

from common import spec, weights
from common.config import BN_EPS, BN_MOMENTUM, Config
from pytorch_impl.model import build, layer_table, load_portable, to_portable
from tests.helpers import layer_ref


def cfg(size, channels, ngf=64, ndf=64, nz=100):
    return Config(image_size=size, channels=channels, nz=nz, ngf=ngf, ndf=ndf)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_layer_matches_the_spec(size, channels):
    c = cfg(size, channels)
    generator, discriminator = build(c)
    for model, layers, x in ((generator, spec.generator_spec(c), torch.zeros(2, c.nz)),
                             (discriminator, spec.discriminator_spec(c), torch.zeros(2, channels, size, size))):
        rows = layer_table(model, x, layers)
        assert [r[0] for r in rows] == [l.name for l in layers]
        for (name, _, shape, params, stats), l, (_, blk) in zip(rows, layers, model.main.named_children()):
            assert shape == l.out_shape, name
            assert (params, stats) == (l.params, l.stats), name
            conv = blk.conv
            assert isinstance(conv, nn.ConvTranspose2d if l.kind == "conv_transpose" else nn.Conv2d)
            assert (conv.kernel_size, conv.stride, conv.padding) == ((l.kernel,) * 2, (l.stride,) * 2, (l.padding,) * 2)
            assert (conv.in_channels, conv.out_channels, conv.bias is not None) == (l.in_ch, l.out_ch, l.bias)
            assert hasattr(blk, "bn") == l.batchnorm
    assert sum(p.numel() for p in generator.parameters()) == spec.totals(spec.generator_spec(c))[0]
    assert sum(p.numel() for p in discriminator.parameters()) == spec.totals(spec.discriminator_spec(c))[0]


def test_batchnorm_pinned_to_pytorch_defaults():
    generator, discriminator = build(cfg(64, 3))
    bns = [m for m in list(generator.modules()) + list(discriminator.modules()) if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 7
    assert all(m.eps == BN_EPS == 1e-5 and m.momentum == BN_MOMENTUM == 0.1 for m in bns)


def test_running_stats_update_with_weight_0_1_on_the_new_value():
    generator, _ = build(cfg(32, 1, 8, 8))
    bn = generator.main.g1.bn
    generator.train()
    z = torch.randn(16, 100)
    with torch.no_grad():
        h = generator.main.g1.conv(z.view(16, 100, 1, 1))
        generator(z)
    batch_mean = h.mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, 0.9 * 0 + 0.1 * batch_mean)


def test_dcgan_initialisation():
    generator, discriminator = build(cfg(64, 3), seed=1)
    convs = torch.cat([m.weight.flatten() for m in list(generator.modules()) + list(discriminator.modules())
                       if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    gammas = torch.cat([m.weight for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    betas = torch.cat([m.bias for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(convs.mean()) < 1e-3 and abs(convs.std() - 0.02) < 1e-3   # not kaiming-uniform
    assert abs(gammas.mean() - 1) < 3e-3 and abs(gammas.std() - 0.02) < 3e-3
    assert torch.all(betas == 0)


def test_portable_layout_means_what_weights_py_says():
    c = cfg(16, 2, ngf=3, ndf=3, nz=4)
    generator, discriminator = build(c, seed=3)
    arrays = to_portable(generator, discriminator)
    rng = np.random.default_rng(0)
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for (name, blk), l in zip(model.main.named_children(),
                                  spec.generator_spec(c) if net == "generator" else spec.discriminator_spec(c)):
            x = rng.standard_normal((5, 5, l.in_ch))
            k = arrays[f"{net}.{name}.kernel"].astype(np.float64)
            ref = layer_ref(l.kind)(x, k, l.stride, l.padding)
            with torch.no_grad():
                got = blk.conv.double()(torch.from_numpy(x.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
            np.testing.assert_allclose(got, ref, atol=1e-12, err_msg=f"{net}.{name}")


def test_portable_round_trip_and_shape_checks(tmp_path):
    c = cfg(32, 1, 8, 8)
    generator, discriminator = build(c, seed=1)
    generator.train()
    generator(torch.randn(32, 100))                 # move running stats off their init
    weights.save(tmp_path / "w.npz", c, to_portable(generator, discriminator))
    file_cfg, arrays, _ = weights.load(tmp_path / "w.npz", c)
    g2, d2 = build(file_cfg, seed=2)
    load_portable(g2, d2, arrays)
    # everything but num_batches_tracked, which BatchNorm ignores when momentum is set
    for m1, m2 in ((generator, g2), (discriminator, d2)):
        s1, s2 = m1.state_dict(), m2.state_dict()
        for k in s1:
            if not k.endswith("num_batches_tracked"):
                torch.testing.assert_close(s1[k], s2[k], rtol=0, atol=0, msg=k)
    bad = dict(arrays)
    bad["generator.g1.kernel"] = bad["generator.g1.kernel"][..., :-1]
    with pytest.raises(AssertionError, match="does not fit"):
        load_portable(g2, d2, bad)
    with pytest.raises(ValueError, match="generator.g1.kernel has shape"):
        weights.save(tmp_path / "bad.npz", c, bad)


def test_portable_export_is_a_snapshot():
    generator, discriminator = build(cfg(16, 1, 4, 4, 8))
    before = to_portable(generator, discriminator)
    generator.train()
    generator(torch.randn(8, 8))                    # updates running stats in place
    after = to_portable(generator, discriminator)
    assert not np.allclose(before["generator.g1.running_mean"], after["generator.g1.running_mean"])
