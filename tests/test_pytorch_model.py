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


def cfg(size, channels, ngf=64, ndf=64, nz=100, arch="dcgan"):
    return Config(arch=arch, image_size=size, channels=channels, nz=nz, ngf=ngf, ndf=ndf)


OP = {"conv": nn.Conv2d, "conv_transpose": nn.ConvTranspose2d, "linear": nn.Linear}


@pytest.mark.parametrize("arch,size,channels", [("dcgan", 32, 1), ("dcgan", 32, 3), ("dcgan", 64, 1),
                                                 ("dcgan", 64, 3), ("paper", 32, 1), ("paper", 64, 3),
                                                 ("paper", 48, 1), ("cs231n", 28, 1), ("cs231n", 28, 3)])
def test_every_layer_matches_the_spec(arch, size, channels):
    c = cfg(size, channels, arch=arch)
    generator, discriminator = build(c)
    for model, layers, x in ((generator, spec.generator_spec(c), torch.zeros(2, c.nz)),
                             (discriminator, spec.discriminator_spec(c), torch.zeros(2, channels, size, size))):
        rows = layer_table(model, x, layers)
        assert [r[0] for r in rows] == [l.name for l in layers]
        for (name, _, shape, params, stats), l, (_, blk) in zip(rows, layers, model.main.named_children()):
            assert shape == l.out_shape, name
            assert (params, stats) == (l.params, l.stats), name
            m = blk.fc if l.kind == "linear" else blk.conv
            assert type(m) is OP[l.kind], name
            assert (m.bias is not None) == l.bias, name
            if l.kind == "linear":
                assert (m.in_features, m.out_features) == (l.in_ch, l.out_ch)
            else:
                assert (m.kernel_size, m.stride, m.padding) == ((l.kernel,) * 2, (l.stride,) * 2, (l.padding,) * 2)
                assert (m.in_channels, m.out_channels) == (l.in_ch, l.out_ch)
            if l.kind == "conv_transpose":
                assert m.output_padding == (l.output_padding,) * 2, name
            assert hasattr(blk, "bn") == l.batchnorm
            names = [n for n, _ in blk.named_children()]
            if l.batchnorm and l.activation:        # the order inside the block
                assert (names.index("act") < names.index("bn")) == l.act_first, name
            assert hasattr(blk, "pool") == bool(l.pool)
            if l.pool:
                assert blk.pool.kernel_size == blk.pool.stride == l.pool and blk.pool.padding == 0
            if l.activation == "leaky_relu":
                assert blk.act.negative_slope == (l.slope or 0.2), name
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


def randomised(c, seed):
    """G and D of c in float64, with every weight, bias and BatchNorm vector random (not
    their initial 0 / 1), so that a misplaced element shows."""
    generator, discriminator = build(c, seed)
    generator.double(), discriminator.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in list(generator.modules()) + list(discriminator.modules()):
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(generator=g)
                m.running_var.uniform_(0.5, 2, generator=g)
                m.weight.normal_(1, 0.3, generator=g)
                m.bias.normal_(generator=g)
            elif getattr(m, "bias", None) is not None and isinstance(m, tuple(OP.values())):
                m.bias.normal_(generator=g)
    return generator, discriminator


@pytest.mark.parametrize("c", [cfg(32, 3, 4, 4, 16, "paper"), cfg(28, 1, 8, 4, 96, "cs231n"),
                               cfg(16, 1, 4, 4, 16)], ids=["paper", "cs231n", "dcgan"])
def test_each_network_computes_what_the_reference_computes(c):
    """From its own portable export, each network gives the float64 NumPy reference's
    images, logits and updated statistics, in training and in inference mode. This is
    what proves the (C, H, W) <-> (H, W, C) conversion of the fully connected layers:
    the same check with the flatten order left as PyTorch's is far off."""
    from common import reference
    generator, discriminator = randomised(c, 1)
    a = to_portable(generator, discriminator)
    z = np.random.default_rng(0).standard_normal((6, c.nz))
    for train in (False, True):
        generator.train(train), discriminator.train(train)
        want_x, g_stats = reference.generator(c, a, z, train)
        want_y, d_stats = reference.discriminator(c, a, want_x, train)
        with torch.no_grad():
            x = generator(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
            y = discriminator(torch.from_numpy(want_x).permute(0, 3, 1, 2)).numpy()
        np.testing.assert_allclose(x, want_x, atol=1e-12)
        np.testing.assert_allclose(y, want_y, atol=1e-12)
        after = to_portable(generator, discriminator)
        for k, v in {**g_stats, **d_stats}.items():
            np.testing.assert_allclose(after[k], v, atol=1e-12, err_msg=k)
    if c.arch != "dcgan":                        # no fully connected layer in the tutorial's
        x, _ = reference.generator(c, a, z, False)
        wrong, _ = reference.discriminator(c, a, x, False, flatten_order="chw")
        # 100x the cross-framework tests' tolerance of 1e-5
        assert np.abs(wrong - reference.discriminator(c, a, x, False)[0]).max() > 1e-3


@pytest.mark.parametrize("c", [cfg(32, 3, 4, 4, 16, "paper"), cfg(28, 1, 8, 4, 96, "cs231n")],
                         ids=["paper", "cs231n"])
def test_other_networks_round_trip_through_portable_files(c, tmp_path):
    generator, discriminator = randomised(c, 2)
    weights.save(tmp_path / "w.npz", c, to_portable(generator, discriminator))
    file_cfg, arrays, _ = weights.load(tmp_path / "w.npz", c)
    assert file_cfg.arch == c.arch
    g2, d2 = build(file_cfg, seed=3)
    load_portable(g2.double(), d2.double(), arrays)
    for m1, m2 in ((generator, g2), (discriminator, d2)):
        s1, s2 = m1.state_dict(), m2.state_dict()
        for k in s1:
            if not k.endswith("num_batches_tracked"):
                # the file is float32: what it holds is the float64 model rounded once
                torch.testing.assert_close(s1[k].float(), s2[k].float(), rtol=0, atol=0, msg=k)
