"""Every layer of the Flax NNX networks against the spec and PyTorch's totals, the pinned
BatchNorm, the DCGAN initialisation, the portable layout against a NumPy reading of its
definition, and the same weights giving PyTorch's numbers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from common import spec, weights
from common.config import BN_EPS, BN_MOMENTUM, Config
from jax_impl.model import BatchNorm, ConvTranspose, build, conv_transpose, layer_table, load_portable, to_portable
from tests.helpers import layer_ref


def cfg(size, channels, ngf=64, ndf=64, nz=100):
    return Config(image_size=size, channels=channels, nz=nz, ngf=ngf, ndf=ndf)


def n_params(module, kind):
    return sum(v.size for v in nnx.to_flat_state(nnx.state(module, kind)).leaves)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_layer_matches_the_spec(size, channels):
    c = cfg(size, channels)
    generator, discriminator = build(c)
    for model, layers, x in ((generator, spec.generator_spec(c), np.zeros((2, c.nz), np.float32)),
                             (discriminator, spec.discriminator_spec(c),
                              np.zeros((2, size, size, channels), np.float32))):
        rows = layer_table(model, x, layers)
        assert [r[0] for r in rows] == [l.name for l in layers]
        for (name, _, shape, params, stats), l in zip(rows, layers):
            assert shape == l.out_shape, name
            assert (params, stats) == (l.params, l.stats), name
            blk = model.main[name]
            conv = blk.conv
            # both kinds hold their kernel in the portable layout (kh, kw, in, out)
            assert conv.kernel.shape == (l.kernel, l.kernel, l.in_ch, l.out_ch), name
            assert not l.bias and getattr(conv, "bias", None) is None, name
            if l.kind == "conv_transpose":
                assert isinstance(conv, ConvTranspose) and (conv.stride, conv.padding) == (l.stride, l.padding), name
            else:
                assert isinstance(conv, nnx.Conv) and conv.strides == l.stride, name
                assert conv.padding == ((l.padding, l.padding),) * 2, name
            assert (blk.bn is not None) == l.batchnorm, name
    # totals, trainable and BatchNorm statistics apart, equal the spec's and PyTorch's
    from pytorch_impl.model import build as torch_build
    tg, td = torch_build(c)
    for model, tmodel, layers in ((generator, tg, spec.generator_spec(c)),
                                  (discriminator, td, spec.discriminator_spec(c))):
        trainable, stats = n_params(model, nnx.Param), n_params(model, nnx.BatchStat)
        assert (trainable, stats) == spec.totals(layers)
        assert trainable == sum(p.numel() for p in tmodel.parameters())
        assert stats == sum(b.numel() for n, b in tmodel.named_buffers() if n.endswith(("running_mean", "running_var")))


def test_the_paper_network_has_the_published_counts():
    generator, discriminator = build(cfg(64, 3))
    assert n_params(generator, nnx.Param) == 3_576_704
    assert n_params(discriminator, nnx.Param) == 2_765_568


def test_summary_prints_the_same_table_as_pytorch(cli):
    a = cli("jax_impl.model", "--image-size", "32", "--channels", "1", "--ngf", "8", "--ndf", "8")
    b = cli("pytorch_impl.model", "--image-size", "32", "--channels", "1", "--ngf", "8", "--ndf", "8")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and "Discriminator" in a.stdout
    r = cli("jax_impl.model", "--image-size", "48")
    assert r.returncode == 2 and "power of two" in r.stderr and "Traceback" not in r.stderr


def test_batchnorm_is_pytorch_s():
    """eps 1e-5; running stats: new = 0.9 old + 0.1 batch, the variance unbiased. nnx.BatchNorm
    (momentum 0.99 = weight of the old value, biased variance) would fail both asserts."""
    assert (BN_EPS, BN_MOMENTUM) == (1e-5, 0.1)
    bn = BatchNorm(3, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 3)).astype(np.float32) * 2 + 1
    y = np.asarray(bn(x))
    flat = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(bn.mean[...], 0.1 * flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.var[...], 0.9 * 1 + 0.1 * flat.var(0, ddof=1), rtol=1e-5)
    gamma = np.asarray(bn.scale[...])
    want = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5) * gamma   # normalised with the biased one
    np.testing.assert_allclose(y.reshape(-1, 3), want, atol=1e-5)
    bn.eval()
    np.testing.assert_allclose(np.asarray(bn(x)).reshape(-1, 3),
                               (flat - np.asarray(bn.mean[...])) / np.sqrt(np.asarray(bn.var[...]) + 1e-5) * gamma,
                               atol=1e-5)


def test_dcgan_initialisation():
    generator, discriminator = build(cfg(64, 3), seed=1)
    kernels = np.concatenate([np.asarray(b.conv.kernel[...]).ravel()
                              for m in (generator, discriminator) for b in m.main.values()])
    bns = [b.bn for b in generator.main.values() if b.bn is not None]
    gammas = np.concatenate([np.asarray(bn.scale[...]) for bn in bns])
    betas = np.concatenate([np.asarray(bn.bias[...]) for bn in bns])
    assert abs(kernels.mean()) < 1e-3 and abs(kernels.std() - 0.02) < 1e-3   # not lecun-normal
    assert abs(gammas.mean() - 1) < 3e-3 and abs(gammas.std() - 0.02) < 3e-3
    assert np.all(betas == 0)
    g2, _ = build(cfg(64, 3), seed=1)
    np.testing.assert_array_equal(generator.main["g2"].conv.kernel[...], g2.main["g2"].conv.kernel[...])


def test_portable_layout_means_what_weights_py_says():
    c = cfg(16, 2, ngf=3, ndf=3, nz=4)
    generator, discriminator = build(c, seed=3)
    arrays = to_portable(generator, discriminator)
    rng = np.random.default_rng(0)
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for (name, blk), l in zip(model.main.items(),
                                  spec.generator_spec(c) if net == "generator" else spec.discriminator_spec(c)):
            x = rng.standard_normal((5, 5, l.in_ch)).astype(np.float32)
            k = arrays[f"{net}.{name}.kernel"].astype(np.float64)
            ref = layer_ref(l.kind)(x, k, l.stride, l.padding)
            got = np.asarray(blk.conv(x[None]))[0]
            np.testing.assert_allclose(got, ref, atol=1e-5, err_msg=f"{net}.{name}")


def test_conv_transpose_gradients_are_the_exact_ones():
    """The hand-written backward pass of conv_transpose (there for XLA:CPU's speed) gives
    the gradients JAX derives itself from lax.conv_transpose."""
    rng = np.random.default_rng(0)
    for s, p, h in ((2, 1, 3), (1, 0, 1), (2, 0, 2)):
        x = jnp.asarray(rng.standard_normal((2, h, h, 3)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((4, 4, 3, 5)), jnp.float32)
        plain = lambda x, k: lax.conv_transpose(x, jnp.flip(k, (0, 1)), (s, s), ((3 - p, 3 - p),) * 2,
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y, ours = jax.vjp(lambda x, k: conv_transpose(x, k, s, p), x, k)
        y_ref, theirs = jax.vjp(plain, x, k)
        np.testing.assert_allclose(y, y_ref, atol=1e-5)
        g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
        for a, b, what in zip(ours(g), theirs(g), ("d/dx", "d/dkernel")):
            assert np.abs(b).max() > 0.1
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4, err_msg=f"{what} s={s} p={p}")


def test_portable_round_trip_and_shape_checks(tmp_path):
    c = cfg(32, 1, 8, 8)
    generator, discriminator = build(c, seed=1)
    generator(np.random.default_rng(0).standard_normal((32, 100)).astype(np.float32))  # move stats
    weights.save(tmp_path / "w.npz", c, to_portable(generator, discriminator))
    file_cfg, arrays, _ = weights.load(tmp_path / "w.npz", c)
    g2, d2 = build(file_cfg, seed=2)
    load_portable(g2, d2, arrays)
    for m1, m2 in ((generator, g2), (discriminator, d2)):
        s1, s2 = nnx.to_flat_state(nnx.state(m1)), nnx.to_flat_state(nnx.state(m2))
        assert [p for p, _ in s1] == [p for p, _ in s2]
        for (path, a), (_, b) in zip(s1, s2):
            np.testing.assert_array_equal(a[...], b[...], err_msg=str(path))
    bad = dict(arrays)
    bad["generator.g1.kernel"] = bad["generator.g1.kernel"][..., :-1]
    with pytest.raises(AssertionError, match="does not fit"):
        load_portable(g2, d2, bad)


def test_same_weights_give_pytorch_s_numbers():
    """Weights exported by pytorch_impl, loaded here: G(z), D(x) and the statistics a
    training-mode pass leaves behind agree to float32 rounding, in both modes."""
    import torch
    from pytorch_impl.model import build as torch_build, to_portable as torch_to_portable
    c = cfg(32, 3, 8, 8, nz=16)
    tg, td = torch_build(c, seed=4)
    rng = np.random.default_rng(1)
    arrays = {}                    # of order one, not the N(0, 0.02) init, so every weight shows
    for k, v in torch_to_portable(tg, td).items():
        kind = k.rsplit(".", 1)[1]
        a = {"kernel": lambda: rng.standard_normal(v.shape) / np.sqrt(np.prod(v.shape[:3])),
             "gamma": lambda: 1 + 0.2 * rng.standard_normal(v.shape),
             "running_var": lambda: rng.uniform(0.5, 1.5, v.shape)}.get(kind, lambda: 0.2 * rng.standard_normal(v.shape))()
        arrays[k] = a.astype(np.float32)
    z = rng.standard_normal((16, 16)).astype(np.float32)
    x = np.tanh(rng.standard_normal((16, 32, 32, 3))).astype(np.float32)
    for train in (True, False):
        from pytorch_impl.model import load_portable as torch_load_portable
        torch_load_portable(tg, td, arrays)
        generator, discriminator = build(c)
        load_portable(generator, discriminator, arrays)
        tg.train(train), td.train(train)
        for m in (generator, discriminator):
            m.train() if train else m.eval()
        with torch.no_grad():
            want_g = tg(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
            want_d = td(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
        got_g, got_d = np.asarray(generator(z)), np.asarray(discriminator(x))
        assert np.abs(want_g).mean() > 0.05 and np.abs(want_d).mean() > 0.05   # not trivially small
        np.testing.assert_allclose(got_g, want_g, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got_d, want_d, rtol=0, atol=1e-5)
        ours, theirs = to_portable(generator, discriminator), torch_to_portable(tg, td)
        for k in theirs:
            np.testing.assert_allclose(ours[k], theirs[k], rtol=0, atol=1e-5, err_msg=k)
        if train:                                     # the statistics did move
            assert not np.allclose(ours["generator.g1.running_var"], arrays["generator.g1.running_var"])
