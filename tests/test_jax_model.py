"""Every layer of the Flax NNX networks of each architecture against the spec and
PyTorch's totals, the pinned BatchNorm, the DCGAN initialisation, the portable layout
against a NumPy reading of its definition, each network against the float64 reference,
Flax's own defaults shown to compute other layers, and the same weights giving PyTorch's
numbers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from common import reference, spec, weights
from common.config import BN_EPS, BN_MOMENTUM, LEAKY_SLOPE, Config
from jax_impl.layers import BatchNorm, Conv, ConvTranspose, conv_transpose
from jax_impl.model import build, layer_table, load_portable, summary, to_portable
from tests.helpers import layer_ref

# float32 against float64: rounding of about 6e-8 (2^-24) per operation, grown by sums of
# up to a few thousand products and by BatchNorm's division by the spread, leaves these
# networks' outputs within 3e-6 of the reference (measured over seeds and widths, up to the
# paper's 64x64 at ngf 16 and CS231n's full widths), relative to their scale, or absolute
# where that is below one: the error follows the internal activations, of order one, so a
# logit near 0 does not get a smaller one. 1e-5, the cross-framework tolerance,
# leaves a factor of three; each mistake the tests make on purpose moves the result by
# more than 100 times as much (0.1 to 7 in the measurements).
TOL = 1e-5


def cfg(size, channels, ngf=64, ndf=64, nz=100, arch="dcgan"):
    return Config(arch=arch, image_size=size, channels=channels, nz=nz, ngf=ngf, ndf=ndf)


def off_by(got, want):
    """The largest difference relative to the scale of want (its largest magnitude), or
    absolute where that scale is below one."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return np.abs(got - want).max() / max(1.0, np.abs(want).max())


OP = {"conv": Conv, "conv_transpose": ConvTranspose, "linear": nnx.Linear}   # Conv: nnx.Conv, small maps as one product
ACT = {"relu": nnx.relu, "leaky_relu": nnx.leaky_relu, "tanh": jnp.tanh, None: None}


def n_params(module, kind):
    return sum(v.size for v in nnx.to_flat_state(nnx.state(module, kind)).leaves)


@pytest.mark.parametrize("arch,size,channels", [("dcgan", 32, 1), ("dcgan", 32, 3), ("dcgan", 64, 1),
                                                 ("dcgan", 64, 3), ("paper", 32, 1), ("paper", 48, 3),
                                                 ("paper", 64, 3), ("cs231n", 28, 1), ("cs231n", 28, 3)])
def test_every_layer_matches_the_spec(arch, size, channels):
    c = cfg(size, channels, arch=arch)
    generator, discriminator = build(c)
    for model, layers, x in ((generator, spec.generator_spec(c), np.zeros((2, c.nz), np.float32)),
                             (discriminator, spec.discriminator_spec(c),
                              np.zeros((2, size, size, channels), np.float32))):
        rows = layer_table(model, x, layers)
        assert [r[0] for r in rows] == [l.name for l in layers]
        prev = x.shape[1:]
        for (name, _, shape, params, stats), l in zip(rows, layers):
            assert shape == l.out_shape, name
            assert (params, stats) == (l.params, l.stats), name
            blk = model.main[name]
            m = blk.fc if l.kind == "linear" else blk.conv
            assert type(m) is OP[l.kind], name
            # every kind holds its kernel in the portable layout, (kh, kw, in, out) or (in, out)
            assert m.kernel.shape == l.kernel_shape, name
            assert (m.bias is not None) == l.bias, name
            if l.kind == "conv_transpose":
                assert (m.stride, m.padding, m.output_padding) == (l.stride, l.padding, l.output_padding), name
            elif l.kind == "conv":
                assert m.strides == l.stride and m.padding == ((l.padding, l.padding),) * 2, name
            assert (blk.bn is not None) == l.batchnorm, name
            if l.batchnorm:
                assert blk.bn.mean.shape == (l.norm_features,), name
                if l.activation:                     # the order inside the block
                    assert blk.act_first == l.act_first, name
            assert getattr(blk.act, "func", blk.act) is ACT[l.activation], name
            if l.activation == "leaky_relu":
                assert blk.act.keywords["negative_slope"] == (l.slope or LEAKY_SLOPE), name
            assert blk.pool == l.pool, name
            # a flatten or a view of a vector as a map where the op reads another shape
            # than the layer before wrote; a projection viewed as a map right after it
            assert blk.reshape_in == (l.in_shape if l.in_shape and l.in_shape != prev else None), name
            assert blk.reshape_out == (l.out_shape if l.kind == "linear" and len(l.out_shape) == 3 else None), name
            prev = l.out_shape
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


@pytest.mark.parametrize("c", [cfg(48, 1, 8, 8, arch="paper"), cfg(28, 3, 8, 4, 96, "cs231n")],
                         ids=["paper", "cs231n"])
def test_summary_of_the_other_networks_is_pytorch_s(c):
    from pytorch_impl.model import summary as torch_summary
    s = summary(c)
    assert s == torch_summary(c)
    assert ("op1" in s) == (c.arch == "paper") and ("maxpool2" in s) == (c.arch == "cs231n")


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


def test_batchnorm_of_a_vector_is_pytorch_s_batchnorm1d():
    """The same BatchNorm, on (B, features), normalises each feature over the batch alone."""
    import torch
    bn, tbn = BatchNorm(6, rngs=nnx.Rngs(0)), torch.nn.BatchNorm1d(6, eps=BN_EPS, momentum=BN_MOMENTUM)
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(np.array(bn.scale[...])))
    x = (np.random.default_rng(1).standard_normal((16, 6)) * np.arange(1, 7) + np.arange(6)).astype(np.float32)
    for train in (True, False):
        bn.use_running_average = not train
        tbn.train(train)
        with torch.no_grad():
            want = tbn(torch.from_numpy(x)).numpy()
        assert off_by(bn(x), want) < TOL
        np.testing.assert_allclose(bn.mean[...], tbn.running_mean.numpy(), rtol=TOL)
        np.testing.assert_allclose(bn.var[...], tbn.running_var.numpy(), rtol=TOL)


@pytest.mark.parametrize("c", [cfg(64, 3), cfg(32, 3, arch="paper"), cfg(28, 1, 64, 32, 96, "cs231n")],
                         ids=["dcgan", "paper", "cs231n"])
def test_dcgan_initialisation(c):
    """Every kernel, convolution, transposed or fully connected, N(0, 0.02) (not Flax's
    lecun-normal, whose std is 1/sqrt(fan_in)); biases 0; BatchNorm gamma N(1, 0.02), beta 0."""
    generator, discriminator = build(c, seed=1)
    ops = [b.fc if hasattr(b, "fc") else b.conv for m in (generator, discriminator) for b in m.main.values()]
    for m in ops:
        k = np.asarray(m.kernel[...])
        assert abs(k.mean()) < 0.004 and abs(k.std() - 0.02) < 0.004, k.shape   # each has >= 800 numbers
        assert m.bias is None or np.all(np.asarray(m.bias[...]) == 0)
    kernels = np.concatenate([np.asarray(m.kernel[...]).ravel() for m in ops])
    assert abs(kernels.mean()) < 1e-3 and abs(kernels.std() - 0.02) < 1e-3
    bns = [b.bn for b in generator.main.values() if b.bn is not None]
    gammas = np.concatenate([np.asarray(bn.scale[...]) for bn in bns])
    betas = np.concatenate([np.asarray(bn.bias[...]) for bn in bns])
    assert abs(gammas.mean() - 1) < 3e-3 and abs(gammas.std() - 0.02) < 3e-3
    assert np.all(betas == 0)
    g2, _ = build(c, seed=1)
    np.testing.assert_array_equal(generator.main["g2"].conv.kernel[...] if c.arch != "cs231n" else
                                  generator.main["g2"].fc.kernel[...],
                                  g2.main["g2"].conv.kernel[...] if c.arch != "cs231n" else g2.main["g2"].fc.kernel[...])


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


# kernel, stride, padding, output padding, input size: the tutorial's layers, the paper's
# 5x5/2 p2 op1, and an output padding larger than the padding (a crop below zero)
CONV_TRANSPOSES = [(4, 2, 1, 0, 3), (4, 1, 0, 0, 1), (4, 2, 0, 0, 2), (5, 2, 2, 1, 3), (4, 2, 1, 1, 2),
                   (3, 2, 0, 1, 2)]


def test_conv_transpose_gradients_are_the_exact_ones():
    """The hand-written backward pass of conv_transpose (there for XLA:CPU's speed) gives
    the gradients JAX derives itself from lax.conv_transpose, output padding included."""
    rng = np.random.default_rng(0)
    for k_, s, p, q, h in CONV_TRANSPOSES:
        x = jnp.asarray(rng.standard_normal((2, h, h, 3)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((k_, k_, 3, 5)), jnp.float32)
        lo = k_ - 1 - p
        plain = lambda x, k: lax.conv_transpose(x, jnp.flip(k, (0, 1)), (s, s), ((lo, lo + q),) * 2,
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y, ours = jax.vjp(lambda x, k: conv_transpose(x, k, s, p, q), x, k)
        y_ref, theirs = jax.vjp(plain, x, k)
        assert y.shape[1] == (h - 1) * s - 2 * p + k_ + q
        np.testing.assert_allclose(y, y_ref, atol=1e-5)
        g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
        for a, b, what in zip(ours(g), theirs(g), ("d/dx", "d/dkernel")):
            assert np.abs(b).max() > 0.1
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4, err_msg=f"{what} k={k_} s={s} p={p} q={q}")


def test_conv_transpose_with_output_padding_is_pytorch_s():
    """ConvTranspose (bias included) against torch's conv_transpose2d: output_padding adds
    the row and column at the bottom and right; the reference agrees, and its other side
    (the extra row at the top and left) is another image."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(3)
    for k_, s, p, q, h in CONV_TRANSPOSES:
        layer = ConvTranspose(3, 5, k_, s, p, q, bias=True, rngs=nnx.Rngs(0))
        k = rng.standard_normal((k_, k_, 3, 5)).astype(np.float32)
        b = rng.standard_normal(5).astype(np.float32)
        layer.kernel[...], layer.bias[...] = jnp.asarray(k), jnp.asarray(b)
        x = rng.standard_normal((2, h, h, 3)).astype(np.float32)
        want = F.conv_transpose2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(k).permute(2, 3, 0, 1),
                                  torch.from_numpy(b), stride=s, padding=p, output_padding=q)
        want = want.permute(0, 2, 3, 1).numpy()
        got = np.asarray(layer(x))
        assert off_by(got, want) < TOL, (k_, s, p, q)
        ref = reference.conv_transpose(x, k, s, p, output_padding=q) + b
        assert off_by(got, ref) < TOL
        if q:
            other = reference.conv_transpose(x, k, s, p, pad=(p - q, p), output_padding=q) + b
            assert off_by(other, want) > 100 * TOL


def test_flax_s_own_layers_with_their_defaults_compute_other_layers():
    """Where Flax's layers, left at their defaults, would silently be other layers than the
    spec's (same output shape, other numbers), or change the shape."""
    rng = np.random.default_rng(5)
    # the paper's 5x5 stride-2 transposed convolution, padding 2, output_padding 1
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    k = (rng.standard_normal((5, 5, 3, 6)) / 8).astype(np.float32)
    ours = np.asarray(conv_transpose(x, k, 2, 2, 1))                       # (2, 8, 8, 6)
    flax_default = nnx.ConvTranspose(3, 6, (5, 5), strides=2, use_bias=False, rngs=nnx.Rngs(0))
    flax_default.kernel[...] = jnp.asarray(k)                              # padding "SAME", no flip
    assert off_by(flax_default(x), ours) > 100 * TOL                       # the same shape, not the same layer
    # what nnx.ConvTranspose needs to be PyTorch's: padding (K-1-p, K-1-p+op) of the dilated
    # input, and transpose_kernel (flip, and the kernel given as (kh, kw, out, in))
    pinned = nnx.ConvTranspose(3, 6, (5, 5), strides=2, padding=((2, 3), (2, 3)), transpose_kernel=True,
                               use_bias=False, rngs=nnx.Rngs(0))
    pinned.kernel[...] = jnp.asarray(k.transpose(0, 1, 3, 2))
    assert off_by(pinned(x), ours) < TOL
    # the paper's D: a 5x5 stride-2 convolution with nnx.Conv's default "SAME" pads (1, 2),
    # PyTorch's padding 2 pads (2, 2): the same 16x16 output of a 32x32 image, other numbers
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    same = nnx.Conv(3, 6, (5, 5), strides=2, use_bias=False, rngs=nnx.Rngs(0))
    same.kernel[...] = jnp.asarray(k)
    want = reference.conv(x, k, 2, 2)
    assert off_by(same(x), want) > 100 * TOL
    d1 = build(cfg(32, 3, 4, 3, 16, "paper"))[1].main["d1"].conv         # ours: 3 -> 2 ndf = 6
    d1.kernel[...], d1.bias[...] = jnp.asarray(k), jnp.zeros(6)
    assert off_by(d1(x), want) < TOL
    # the CS231n D: "SAME" keeps 28x28 where PyTorch's 5x5 padding 0 gives 24x24, and
    # max_pool's default stride of 1 gives 23x23 where MaxPool2d(2) gives 12x12
    x = rng.standard_normal((2, 28, 28, 1)).astype(np.float32)
    assert nnx.Conv(1, 4, (5, 5), rngs=nnx.Rngs(0))(x).shape == (2, 28, 28, 4)
    d1 = build(cfg(28, 1, 8, 4, 96, "cs231n"))[1].main["d1"]
    h = d1.conv(x)
    assert h.shape == (2, 24, 24, 4)
    assert nnx.max_pool(h, (2, 2)).shape == (2, 23, 23, 4)
    np.testing.assert_array_equal(d1(x), reference.max_pool(np.asarray(nnx.leaky_relu(h, 0.01)), 2))


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


def randomised(c, seed):
    """Portable arrays for c with every weight, bias and BatchNorm vector random (not their
    initial 0 / 1), so that a misplaced element shows; kernels scaled by 1/sqrt(fan-in) so
    that activations stay of order one. Biases and betas small: a larger shift would leave
    some of the CS231n G's 6272 features positive for one sample of the batch only, after
    the ReLU that comes before their BatchNorm; such a feature's batch variance is far
    below eps, and the normalisation multiplies its float32 rounding by up to
    1/sqrt(eps) = 316 (an ill-conditioned input, not a difference between frameworks)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in weights.expected_shapes(c).items():
        kind = k.rsplit(".", 1)[1]
        a = {"kernel": lambda: rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1])),
             "gamma": lambda: 1 + 0.3 * rng.standard_normal(shape),
             "running_mean": lambda: 0.5 * rng.standard_normal(shape),
             "running_var": lambda: rng.uniform(0.5, 2, shape)}.get(kind, lambda: 0.1 * rng.standard_normal(shape))()
        out[k] = a.astype(np.float32)
    return out


def models(c, arrays):
    generator, discriminator = build(c)
    load_portable(generator, discriminator, arrays)
    return generator, discriminator


@pytest.mark.parametrize("c", [cfg(32, 3, 4, 4, 16, "paper"), cfg(28, 1, 8, 4, 96, "cs231n")],
                         ids=["paper", "cs231n"])
def test_other_networks_round_trip_through_portable_files(c, tmp_path):
    generator, discriminator = models(c, randomised(c, 2))
    weights.save(tmp_path / "w.npz", c, to_portable(generator, discriminator))
    file_cfg, arrays, _ = weights.load(tmp_path / "w.npz", c)
    assert file_cfg.arch == c.arch
    g2, d2 = models(file_cfg, arrays)
    for m1, m2 in ((generator, g2), (discriminator, d2)):
        s1, s2 = nnx.to_flat_state(nnx.state(m1)), nnx.to_flat_state(nnx.state(m2))
        assert [p for p, _ in s1] == [p for p, _ in s2]
        for (path, a), (_, b) in zip(s1, s2):
            np.testing.assert_array_equal(a[...], b[...], err_msg=str(path))
    # a fully connected kernel given as PyTorch's Linear.weight (out, in) does not load
    bad = dict(arrays)
    bad["generator.g1.kernel"] = np.ascontiguousarray(bad["generator.g1.kernel"].T)
    with pytest.raises(AssertionError, match="does not fit"):
        load_portable(g2, d2, bad)


# The pinned choices of common/reference.py that each network depends on, each switched:
# flatten order (C, H, W), the extra row of output padding at the top, BatchNorm and the
# activation the other way round, the transposed kernel flipped.
MISTAKES = {"paper": [dict(flatten_order="chw"), dict(output_padding_first=True), dict(swap_act_and_bn=True)],
            "cs231n": [dict(flatten_order="chw"), dict(swap_act_and_bn=True)],
            "dcgan": [dict(flip_transposed_kernel=True), dict(swap_act_and_bn=True)]}


@pytest.mark.parametrize("c", [cfg(32, 3, 4, 4, 16, "paper"), cfg(48, 1, 2, 2, 8, "paper"),
                               cfg(28, 1, 8, 4, 96, "cs231n"), cfg(16, 1, 4, 4, 16)],
                         ids=["paper32", "paper48", "cs231n", "dcgan"])
def test_each_network_computes_what_the_reference_computes(c):
    """From its own portable export, each network gives the float64 NumPy reference's
    images, logits and updated statistics, in training and in inference mode; the
    reference with one of the pinned choices switched is far off. The flatten and the
    reshape are NHWC's own, in the portable (H, W, C) order: no permutation anywhere."""
    generator, discriminator = models(c, randomised(c, 1))
    a = to_portable(generator, discriminator)
    z = np.random.default_rng(0).standard_normal((16, c.nz)).astype(np.float32)
    for train in (False, True):
        for m in (generator, discriminator):
            m.train() if train else m.eval()
        want_x, g_stats = reference.generator(c, a, z, train)
        want_y, d_stats = reference.discriminator(c, a, want_x, train)
        x, y = generator(z), discriminator(want_x.astype(np.float32))
        assert off_by(x, want_x) < TOL and off_by(y, want_y) < TOL, train
        assert np.abs(want_y).max() > 0.01            # 1000 times TOL: not trivially small
        after = to_portable(generator, discriminator)
        assert after.keys() == a.keys()
        for k, v in {**g_stats, **d_stats}.items():
            assert off_by(after[k], v) < TOL, k
        if train:                                    # every statistic of G's, and they moved
            assert len(g_stats) == 2 * sum(l.batchnorm for l in spec.generator_spec(c))
            assert all(not np.allclose(after[k], a[k]) for k in g_stats)
        else:
            x_eval, y_eval = x, y
    for mistake in MISTAKES[c.arch]:
        wrong_x, _ = reference.generator(c, a, z, False, **mistake)
        wrong_y, _ = reference.discriminator(c, a, want_x, False, **mistake)
        assert max(off_by(x_eval, wrong_x), off_by(y_eval, wrong_y)) > 100 * TOL, mistake


@pytest.mark.parametrize("c", [cfg(32, 3, 8, 8, nz=16), cfg(32, 3, 4, 4, 16, "paper"),
                               cfg(28, 1, 8, 4, 96, "cs231n")], ids=["dcgan", "paper", "cs231n"])
def test_same_weights_give_pytorch_s_numbers(c):
    """Weights exported by pytorch_impl (through its (C, H, W) -> (H, W, C) conversion of
    the fully connected layers), loaded here: G(z), D(x) and the statistics a
    training-mode pass leaves behind agree to float32 rounding, in both modes."""
    import torch
    from pytorch_impl.model import build as torch_build, load_portable as torch_load_portable
    from pytorch_impl.model import to_portable as torch_to_portable
    tg, td = torch_build(c, seed=4)
    arrays = randomised(c, 1)      # of order one, not the N(0, 0.02) init, so every weight shows
    assert arrays.keys() == torch_to_portable(tg, td).keys()
    rng = np.random.default_rng(1)
    z = rng.standard_normal((16, c.nz)).astype(np.float32)
    x = np.tanh(rng.standard_normal((16, c.image_size, c.image_size, c.channels))).astype(np.float32)
    for train in (True, False):
        torch_load_portable(tg, td, arrays)
        generator, discriminator = models(c, arrays)
        tg.train(train), td.train(train)
        for m in (generator, discriminator):
            m.train() if train else m.eval()
        with torch.no_grad():
            want_g = tg(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
            want_d = td(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
        got_g, got_d = np.asarray(generator(z)), np.asarray(discriminator(x))
        assert np.abs(want_g).mean() > 0.05 and np.abs(want_d).mean() > 0.05   # not trivially small
        assert off_by(got_g, want_g) < TOL and off_by(got_d, want_d) < TOL
        ours, theirs = to_portable(generator, discriminator), torch_to_portable(tg, td)
        assert ours.keys() == theirs.keys()
        for k in theirs:
            assert off_by(ours[k], theirs[k]) < TOL, k
        if train:                                     # the statistics did move
            assert not np.allclose(ours["generator.g1.running_var"], arrays["generator.g1.running_var"])


@pytest.mark.parametrize("c", [cfg(32, 1, 2, 2, 8, "paper"), cfg(28, 1, 4, 2, 96, "cs231n")],
                         ids=["paper", "cs231n"])
def test_train_step_and_generate_run_the_other_networks(c):
    """jax_impl.train's jitted step and generate, unchanged, on the new networks (their G
    takes z as (B, nz), as the tutorial's does)."""
    import optax
    from common.config import ADAM_EPS
    from jax_impl.step import generate, train_step
    generator, discriminator = build(c)
    tx = optax.adam(c.lr, b1=c.beta1, b2=c.beta2, eps=ADAM_EPS)
    g_optimizer = nnx.Optimizer(generator, tx, wrt=nnx.Param)
    d_optimizer = nnx.Optimizer(discriminator, tx, wrt=nnx.Param)
    before = to_portable(generator, discriminator)
    rng = np.random.default_rng(0)
    real = jnp.asarray(rng.uniform(-1, 1, (8, c.image_size, c.image_size, 1)).astype(np.float32))
    metrics = np.asarray(train_step(generator, discriminator, g_optimizer, d_optimizer, real,
                                    jnp.asarray(rng.standard_normal((8, c.nz)).astype(np.float32))))
    assert np.all(np.isfinite(metrics))
    after = to_portable(generator, discriminator)
    assert all(not np.array_equal(before[k], after[k]) for k in before if k.endswith(".kernel"))
    images = generate(generator, rng.standard_normal((3, c.nz)).astype(np.float32), jax.devices("cpu")[0])
    assert images.shape == (3, c.image_size, c.image_size, 1) and np.abs(images).max() <= 1


# ----------------------------------------------------------------------------------------
# a small map under a large kernel: one matrix product (issue 27), the same numbers

@pytest.mark.parametrize("transpose,h,k,s,p,q", [(True, 2, 5, 2, 2, 1), (True, 4, 5, 2, 2, 1),
                                                 (False, 8, 5, 2, 2, 0), (False, 4, 5, 2, 2, 0),
                                                 (False, 2, 5, 2, 2, 0), (False, 4, 4, 1, 0, 0)])
def test_small_map_layers_equal_the_convolution_with_their_gradients(transpose, h, k, s, p, q):
    """The layers that run as one matrix product each (layers.small_map: the paper's 5x5
    layers on 2x2, 4x4 and 8x8 maps, the tutorial D's last 4x4 layer); values and both
    gradients agree with lax's convolution (and the transposed one's hand-written gradient)
    to float32 rounding, relative to their size."""
    from jax import lax
    from jax_impl.layers import DN, as_matrix, out_size, small_map
    rng = np.random.default_rng(h * 10 + transpose)
    x = jnp.asarray(rng.standard_normal((3, h, h, 6)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((k, k, 6, 5)), jnp.float32)
    ho = out_size(h, k, s, p, q, transpose)
    assert as_matrix(k, x, (ho, ho), transpose)
    if transpose:
        ref = lambda x, w: conv_transpose(x, w, s, p, q)
    else:
        ref = lambda x, w: lax.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)), dimension_numbers=DN)
    ours = lambda x, w: small_map(x, w, s, p, (ho, ho), transpose)
    cot = jnp.asarray(rng.standard_normal((3, ho, ho, 5)), jnp.float32)   # a random upstream gradient
    for f in (ours, ref):
        assert f(x, kernel).shape == (3, ho, ho, 5)
    (a, a_vjp), (b, b_vjp) = jax.vjp(ours, x, kernel), jax.vjp(ref, x, kernel)
    scale = lambda t: float(jnp.abs(t).max())
    assert scale(a - b) <= 1e-6 * scale(b), scale(a - b)
    for ga, gb in zip(a_vjp(cot), b_vjp(cot)):
        assert scale(ga - gb) <= 1e-6 * scale(gb), scale(ga - gb)
    # and a wrong tap map would show: the same product with the kernel flipped differs
    assert scale(ours(x, jnp.flip(kernel, (0, 1))) - b) > 1e-2 * scale(b)


def test_the_matrix_path_takes_the_small_maps_under_large_kernels():
    """as_matrix() picks the layers whose dense product costs at most DENSE_RATIO times
    their taps: at 32x32 with the paper's network, G's 5x5 transposed convolutions on 2x2 and
    4x4 maps and D's 5x5 convolutions on 8x8 and 4x4 maps (at 64x64 the 4x4 and 8x8 ones);
    of the tutorial network only D's last layer (a 4x4 kernel on a 4x4 map, one output
    pixel); none of the CS231n network's. Every other layer, 16x16 and up, stays a
    convolution. Recorded as the layers ask during real forward passes of each network."""
    from jax_impl import layers
    seen, original = [], layers.as_matrix

    def recording(k, x, out_hw, transpose):
        taken = original(k, x, out_hw, transpose)
        seen.append((x.shape[1], out_hw[0], "T" if transpose else "C", taken))
        return taken

    taken = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layers, "as_matrix", recording)
        for arch, size in (("paper", 32), ("paper", 64), ("dcgan", 32), ("dcgan", 64), ("cs231n", 28)):
            c = Config(arch=arch, image_size=size, channels=1, ngf=8, ndf=8)
            generator, discriminator = build(c)
            seen.clear()
            generator(jnp.zeros((2, c.nz)))
            discriminator(jnp.zeros((2, size, size, 1)))
            assert len(seen) >= 4                    # every conv layer asked
            taken[arch, size] = [s[:3] for s in seen if s[3]]
    assert taken == {("paper", 32): [(2, 4, "T"), (4, 8, "T"), (8, 4, "C"), (4, 2, "C")],
                     ("paper", 64): [(4, 8, "T"), (8, 4, "C")],
                     ("dcgan", 32): [(4, 1, "C")], ("dcgan", 64): [(4, 1, "C")],
                     ("cs231n", 28): []}
