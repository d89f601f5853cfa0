"""Every layer of the Keras networks (the tutorial's, the paper's, the CS231n one) against
the spec, the pinned defaults, the DCGAN initialisation, the portable layout against a
NumPy reading of its definition and against common/reference.py, and the same numbers as
PyTorch with the same weights."""
# TensorFlow loads its libraries with RTLD_GLOBAL, after which importing Triton (which
# torch.optim pulls in through torch._dynamo) crashes the process. pytest runs the Keras and
# the PyTorch tests in one process, so Triton is loaded first, here.
import torch._dynamo  # noqa: F401,I001

import keras_impl  # noqa: F401  (KERAS_BACKEND, before keras)

import keras
import numpy as np
import pytest
import torch

from common import reference, spec, weights
from common.config import BN_EPS, LEAKY_SLOPE, Config
from keras_impl.layers import BatchNorm
from keras_impl.model import (batchnorm_of, blocks, build, layer_table, load_portable, op, summary,
                              to_portable)
from pytorch_impl import model as torch_model
from tests.helpers import layer_ref

L = keras.layers


def cfg(size, channels, ngf=64, ndf=64, nz=100, arch="dcgan"):
    return Config(arch=arch, image_size=size, channels=channels, nz=nz, ngf=ngf, ndf=ndf)


def numpy_of(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


OP = {"conv": L.Conv2D, "conv_transpose": L.Conv2DTranspose, "linear": L.Dense}
ACT = {"relu": L.ReLU, "leaky_relu": L.LeakyReLU, "tanh": L.Activation}


def torch_padding(blk, conv):
    """(padding, output_padding) in PyTorch's terms that a block's Keras layers amount to:
    ZeroPadding2D(p) before a 'valid' Conv2D, Cropping2D(p) after a 'valid' Conv2DTranspose
    with output_padding q, or 'same', which is PyTorch's (k - s) / 2 on every side only
    where the total k - s that TF splits is even (on the even sizes these networks see)."""
    names = [l.name for l in blk.layers]
    q = conv.output_padding[0] if getattr(conv, "output_padding", None) else 0
    if conv.padding == "same":
        total = conv.kernel_size[0] - conv.strides[0]
        assert total % 2 == 0 and q == 0, f"{blk.name}: TF would split {total} unevenly"
        return total // 2, 0
    around = blk.get_layer("pad").padding if "pad" in names else \
        blk.get_layer("crop").cropping if "crop" in names else ((0, 0), (0, 0))
    (top, bottom), (left, right) = around
    assert top == bottom == left == right, blk.name
    return top, q


@pytest.mark.parametrize("arch,size,channels", [("dcgan", 32, 1), ("dcgan", 32, 3), ("dcgan", 64, 1),
                                                 ("dcgan", 64, 3), ("paper", 32, 1), ("paper", 48, 3),
                                                 ("paper", 64, 1), ("paper", 64, 3), ("cs231n", 28, 1),
                                                 ("cs231n", 28, 3)])
def test_every_layer_matches_the_spec(arch, size, channels):
    c = cfg(size, channels, arch=arch)
    generator, discriminator = build(c)
    torch_g, torch_d = torch_model.build(c)
    for model, torch_net, layers, x in (
            (generator, torch_g, spec.generator_spec(c), np.zeros((2, c.nz), np.float32)),
            (discriminator, torch_d, spec.discriminator_spec(c),
             np.zeros((2, size, size, channels), np.float32))):
        rows = layer_table(model, x, layers)
        assert [r[0] for r in rows] == [b.name for b in blocks(model)] == [l.name for l in layers]
        shapes = [x.shape[1:]] + [l.out_shape for l in layers]
        for (name, _, shape, params, stats), l, blk, before in zip(rows, layers, blocks(model), shapes):
            assert shape == l.out_shape, name
            assert (params, stats) == (l.params, l.stats), name
            m = op(blk)
            assert type(m) is OP[l.kind], name
            assert m.use_bias == l.bias, name
            names = [sub.name for sub in blk.layers]
            if l.kind == "linear":
                assert m.units == l.out_ch and m.kernel.shape == l.kernel_shape, name
                # a map flattened in, or the output viewed as a map: Keras' (H, W, C) order
                assert ("flatten" in names) == (len(before) == 3), name
                assert ("reshape" in names) == (len(l.out_shape) == 3), name
            else:
                assert (m.kernel_size, m.strides) == ((l.kernel,) * 2, (l.stride,) * 2), name
                assert m.filters == l.out_ch, name
                assert torch_padding(blk, m) == (l.padding, l.output_padding), name
                assert ("reshape" in names) == (len(before) == 1 and len(l.in_shape) == 3), name
            bn = batchnorm_of(blk)
            assert (bn is not None) == l.batchnorm, name
            if bn is not None:                      # Keras' defaults are 1e-3 and 0.99
                assert bn.epsilon == BN_EPS and bn.momentum == pytest.approx(0.9), name
            act = next((sub for sub in blk.layers if isinstance(sub, (L.ReLU, L.LeakyReLU, L.Activation))), None)
            assert (act is not None) == (l.activation is not None), name
            if act is not None:
                assert type(act) is ACT[l.activation], name
            if bn is not None and act is not None:  # the order inside the block
                assert (names.index(act.name) < names.index("bn")) == l.act_first, name
            if l.activation == "leaky_relu":        # Keras' default negative_slope is 0.3
                assert act.negative_slope == pytest.approx(l.slope or LEAKY_SLOPE), name
            assert ("pool" in names) == bool(l.pool), name
            if l.pool:                              # strides default to the window
                pool = blk.get_layer("pool")
                assert pool.pool_size == pool.strides == (l.pool,) * 2 and pool.padding == "valid"
        # Keras' count_params() includes the BatchNorm moving statistics: compare the parts.
        trainable, stats = spec.totals(layers)
        assert count(model.trainable_weights) == trainable
        assert count(model.non_trainable_weights) == stats
        assert model.count_params() == trainable + stats
        torch_stats = sum(b.numel() for n, b in torch_net.named_buffers() if "running" in n)
        assert (count(model.trainable_weights), count(model.non_trainable_weights)) == \
               (sum(p.numel() for p in torch_net.parameters()), torch_stats)


@pytest.mark.parametrize("c", [cfg(32, 1, 8, 8, 16), cfg(48, 3, 8, 8, 16, "paper"),
                               cfg(28, 1, 8, 4, 96, "cs231n")], ids=["dcgan", "paper", "cs231n"])
def test_summary_prints_what_pytorch_prints(c):
    assert summary(c) == torch_model.summary(c)


def test_batchnorm_pinned_to_pytorch_defaults():
    generator, discriminator = build(cfg(64, 3))
    bns = [batchnorm_of(b) for b in blocks(generator) + blocks(discriminator)]
    bns = [b for b in bns if b is not None]
    assert len(bns) == 7 and all(isinstance(b, BatchNorm) for b in bns)
    assert all(b.epsilon == BN_EPS == 1e-5 and b.momentum == pytest.approx(0.9) for b in bns)
    assert all(b.get_config()["epsilon"] == 1e-5 for b in bns)       # Keras' default is 1e-3


def test_running_stats_update_like_pytorch():
    """0.9 * old + 0.1 * batch, with the UNBIASED batch variance (Keras' own uses the
    biased one); the output is normalised with the biased variance."""
    generator, _ = build(cfg(32, 1, 8, 8))
    g1 = blocks(generator)[0]
    conv, bn = g1.get_layer("conv"), batchnorm_of(g1)
    gamma, beta = numpy_of([bn.gamma, bn.beta])
    z = np.random.default_rng(0).standard_normal((16, 1, 1, 100)).astype(np.float32)
    h = keras.ops.convert_to_numpy(conv(z)).astype(np.float64)        # (16, 4, 4, C)
    out = keras.ops.convert_to_numpy(bn(h.astype(np.float32), training=True))
    n = h.size // h.shape[-1]
    mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
    moving_mean, moving_var = numpy_of([bn.moving_mean, bn.moving_variance])
    np.testing.assert_allclose(moving_mean, 0.1 * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(moving_var, 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    np.testing.assert_allclose(out, (h - mean) / np.sqrt(var + 1e-5) * gamma + beta, atol=1e-4)


@pytest.mark.parametrize("c", [cfg(64, 3), cfg(64, 3, 16, 16, 100, "paper"), cfg(28, 1, 64, 32, 96, "cs231n")],
                         ids=["dcgan", "paper", "cs231n"])
def test_dcgan_initialisation_and_seed(c):
    """Conv, transposed conv and dense kernels ~ N(0, 0.02), biases 0, gamma ~ N(1, 0.02),
    beta 0, for every architecture, decided by the seed."""
    generator, discriminator = build(c, seed=1)
    ops = [op(b) for b in blocks(generator) + blocks(discriminator)]
    kernels = np.concatenate([k.ravel() for k in numpy_of([m.kernel for m in ops])])
    biases = numpy_of([m.bias for m in ops if m.use_bias])
    bns = [batchnorm_of(b) for b in blocks(generator) if batchnorm_of(b) is not None]
    gammas = np.concatenate(numpy_of([b.gamma for b in bns]))
    betas = np.concatenate(numpy_of([b.beta for b in bns]))
    assert abs(kernels.mean()) < 1e-3 and abs(kernels.std() - 0.02) < 1e-3   # not glorot-uniform
    assert abs(gammas.mean() - 1) < 3e-3 and abs(gammas.std() - 0.02) < 3e-3
    assert np.all(betas == 0) and all(np.all(b == 0) for b in biases)
    assert len(biases) == sum(l.bias for l in spec.generator_spec(c) + spec.discriminator_spec(c))
    again, _ = build(c, seed=1)
    other, _ = build(c, seed=2)
    for a, b, o in zip(numpy_of(generator.weights), numpy_of(again.weights), numpy_of(other.weights)):
        np.testing.assert_array_equal(a, b)
        if a.std() > 0:
            assert not np.array_equal(a, o)


def test_portable_layout_means_what_weights_py_says():
    """Keras' transposed kernel is (kh, kw, out, in) and must be swapped, not flipped, and
    'same' must pad like PyTorch's p1. The input is 6x6: on even sizes (all the networks
    see) a k4/s2 'same' conv pads 1 + 1; on odd ones TF would pad 1 + 2 and PyTorch 1 + 1."""
    c = cfg(16, 2, ngf=3, ndf=3, nz=4)
    generator, discriminator = build(c, seed=3)
    arrays = to_portable(generator, discriminator)
    rng = np.random.default_rng(0)
    for net, model, layers in (("generator", generator, spec.generator_spec(c)),
                               ("discriminator", discriminator, spec.discriminator_spec(c))):
        for blk, l in zip(blocks(model), layers):
            x = rng.standard_normal((6, 6, l.in_ch))
            k = arrays[f"{net}.{l.name}.kernel"].astype(np.float64)
            ref = layer_ref(l.kind)(x, k, l.stride, l.padding)
            got = keras.ops.convert_to_numpy(blk.get_layer("conv")(x[None].astype(np.float32)))[0]
            np.testing.assert_allclose(got, ref, atol=1e-5, err_msg=f"{net}.{l.name}")


# The cross-framework tolerance of the issue, 1e-5 absolute, for float32 against float64
# NumPy or float32 PyTorch. The outputs (tanh images, logits) are O(1); float32 rounds each
# product to ~6e-8 relative, and a layer sums at most a few thousand of them, so the
# error a layer can add is ~1e-6 at worst, and BatchNorm in training mode divides by
# batch standard deviations near 1 (the randomised gammas near 1 too), so it does not
# blow it up. Measured: at most 1e-6 against the reference, 4e-6 against PyTorch (cs231n
# G in training mode). Each wrong choice below moves the result by 100x the tolerance or more.
TOL = 1e-5
NETS = [cfg(32, 3, 4, 4, 16, "paper"), cfg(28, 1, 8, 4, 96, "cs231n"), cfg(16, 1, 4, 4, 16)]
IDS = ["paper", "cs231n", "dcgan"]


def randomise(arrays, seed):
    """Portable arrays with every bias and BatchNorm vector random (not their initial 0 and
    1), so that a misplaced element shows; the kernels stay the DCGAN initialisation."""
    rng = np.random.default_rng(seed)

    def draw(k, v):
        if k.endswith(".running_var"):
            return rng.uniform(0.5, 2, v.shape)
        if k.endswith(".gamma"):
            return rng.normal(1, 0.3, v.shape)
        if k.endswith((".running_mean", ".beta", ".bias")):
            return rng.standard_normal(v.shape)
        return v
    return {k: draw(k, v).astype(np.float32) for k, v in arrays.items()}


def randomised(c, seed):
    generator, discriminator = build(c, seed)
    load_portable(generator, discriminator, randomise(to_portable(generator, discriminator), seed))
    return generator, discriminator


def forward(model, x, training, swap=lambda layer: layer):
    """model(x) one layer at a time, the layers inside each block too, calling swap(layer)
    in place of each: what the network would compute with one Keras layer changed."""
    x = np.asarray(x, np.float32)
    for layer in model.layers:
        for sub in layer.layers if isinstance(layer, keras.Sequential) else [layer]:
            x = swap(sub)(x, training=training)
    return keras.ops.convert_to_numpy(x)


def twin(layer, **changes):
    """A layer like `layer` (same class, config and weights) but for `changes`."""
    config = {**layer.get_config(), **changes, "name": layer.name + "_twin"}
    new = type(layer).from_config(config)
    new.build(layer.input.shape)
    new.set_weights(layer.get_weights())
    return new


@pytest.mark.parametrize("c", NETS, ids=IDS)
def test_each_network_computes_what_the_reference_computes(c):
    """From its own portable export, each network gives the float64 NumPy reference's
    images, logits and updated BatchNorm statistics, in inference and in training mode.
    Keras needs no permutation for its Flatten and Reshape: the reference with PyTorch's
    (C, H, W) flatten order, or BatchNorm and activation swapped, is far off."""
    generator, discriminator = randomised(c, 1)
    a = to_portable(generator, discriminator)
    z = np.random.default_rng(0).standard_normal((6, c.nz))
    running = {k for k in a if k.endswith(weights.RUNNING_STATS)}
    for train in (False, True):
        want_x, g_stats = reference.generator(c, a, z, train)
        want_y, d_stats = reference.discriminator(c, a, want_x, train)
        x = keras.ops.convert_to_numpy(generator(z.astype(np.float32), training=train))
        y = keras.ops.convert_to_numpy(discriminator(want_x.astype(np.float32), training=train))
        np.testing.assert_allclose(x, want_x, atol=TOL)
        np.testing.assert_allclose(y, want_y, atol=TOL)
        after = to_portable(generator, discriminator)
        stats = {**g_stats, **d_stats} if train else {k: a[k] for k in running}
        assert stats.keys() == running
        for k, v in stats.items():
            np.testing.assert_allclose(after[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
        if not train:
            continue
        # In training mode, where BatchNorm normalises the activations themselves rather
        # than shifting small ones by random running statistics, a wrong order shows most.
        wrong = {"BatchNorm before the activation": reference.generator(
            c, a, z, train, swap_act_and_bn=True)[0] - x}
        if c.arch != "dcgan":                   # the tutorial's has no fully connected layer
            wrong["G, (C, H, W) order"] = reference.generator(c, a, z, train, flatten_order="chw")[0] - x
            wrong["D, (C, H, W) order"] = reference.discriminator(
                c, a, want_x, train, flatten_order="chw")[0] - y
        for what, diff in wrong.items():
            assert np.abs(diff).max() > 100 * TOL, what


def test_5x5_stride_2_layers_pad_and_crop_like_pytorch():
    """PyTorch's 5x5 stride-2 ConvTranspose2d(padding=2, output_padding=1) crops 2 rows at
    the top and 1 at the bottom. Keras' Conv2DTranspose(padding='same') gives the same
    2H x 2W, with or without output_padding=1, but crops 1 at the top and 2 at the bottom
    (TF splits the odd total k - s = 3 with the extra at the end of the conv's padding): the
    image shifted by one pixel, which loads and runs without a word. Likewise Conv2D(5, 2,
    'same') pads 1 + 2 where PyTorch's padding=2 pads 2 (+ 1 that no window reaches)."""
    c = NETS[0]
    generator, discriminator = randomised(c, 1)
    a = to_portable(generator, discriminator)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, c.nz))
    # one layer: g2 on a 2x2 map, against weights.py's definition (reference.conv_transpose)
    g2 = blocks(generator)[1]
    h = rng.standard_normal((2, 2, 2, c.ngf * 16))
    k = a["generator.g2.kernel"].astype(np.float64)
    want = reference.conv_transpose(h, k, 2, 2, output_padding=1)            # (2, 4, 4, ngf*8)
    ours = g2.get_layer("crop")(g2.get_layer("conv")(h.astype(np.float32)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), want, atol=TOL)
    for extra in ({}, {"output_padding": 1}):
        same = twin(g2.get_layer("conv"), padding="same", **extra)
        got = keras.ops.convert_to_numpy(same(h.astype(np.float32)))
        assert got.shape == want.shape                                        # silently the same shape
        np.testing.assert_allclose(got, reference.conv_transpose(h, k, 2, 2, pad=(1, 2)), atol=TOL)
        assert np.abs(got - want).max() > 100 * TOL
    # the whole generator with 'same' in place of 'valid' + output_padding + crop
    def same_padding(layer):
        if isinstance(layer, L.Conv2DTranspose):
            return twin(layer, padding="same", output_padding=1)
        return L.Identity() if isinstance(layer, (L.Cropping2D, L.ZeroPadding2D)) else layer
    for train in (False, True):
        want_x = reference.generator(c, a, z, train)[0]
        np.testing.assert_allclose(forward(generator, z, train), want_x, atol=TOL)
        got = forward(generator, z, train, same_padding)
        np.testing.assert_allclose(got, reference.generator(c, a, z, train, output_padding_first=True)[0],
                                   atol=TOL)
        assert np.abs(got - want_x).max() > 100 * TOL
        # and D with Conv2D(5, 2, 'same') in place of ZeroPadding2D(2) + 'valid'
        pad_same = lambda l: twin(l, padding="same") if isinstance(l, L.Conv2D) else same_padding(l)
        want_y = reference.discriminator(c, a, want_x, train)[0]
        np.testing.assert_allclose(forward(discriminator, want_x, train), want_y, atol=TOL)
        assert np.abs(forward(discriminator, want_x, train, pad_same) - want_y).max() > 100 * TOL


def test_keras_default_slope_and_batchnorm_are_far_off():
    """LeakyReLU() slopes 0.3 (the CS231n network's is 0.01), BatchNormalization() adds
    epsilon 1e-3 (PyTorch 1e-5) and keeps 0.99 of the old statistics with the biased batch
    variance: each alone moves the result far outside the tolerance."""
    c = NETS[1]
    generator, discriminator = randomised(c, 1)
    a = to_portable(generator, discriminator)
    z = np.random.default_rng(0).standard_normal((6, c.nz))
    want_x, want_stats = reference.generator(c, a, z, True)
    want_y = reference.discriminator(c, a, want_x, False)[0]
    slope = lambda l: L.LeakyReLU() if isinstance(l, L.LeakyReLU) else l
    assert L.LeakyReLU().negative_slope == pytest.approx(0.3)
    assert np.abs(forward(discriminator, want_x, False, slope) - want_y).max() > 100 * TOL
    stock_bn = []

    def plain(layer):
        """BatchNorm's weights in a plain BatchNormalization, with Keras' defaults."""
        if not isinstance(layer, BatchNorm):
            return layer
        stock_bn.append(L.BatchNormalization(name=f"plain_{len(stock_bn)}"))
        stock_bn[-1].build(layer.input.shape)
        stock_bn[-1].set_weights(layer.get_weights())
        return stock_bn[-1]
    assert L.BatchNormalization().epsilon == 1e-3
    got = forward(generator, z, True, plain)
    assert np.abs(got - want_x).max() > 100 * TOL
    means = numpy_of([b.moving_mean for b in stock_bn])
    want_means = [v for k, v in want_stats.items() if k.endswith("running_mean")]
    assert max(np.abs(m - w).max() for m, w in zip(means, want_means)) > 100 * TOL


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("c", [cfg(32, 3, 8, 8, 16), cfg(32, 3, 8, 8, 16, "paper"),
                               cfg(28, 1, 8, 4, 96, "cs231n")], ids=["dcgan", "paper", "cs231n"])
def test_same_numbers_as_pytorch_with_the_same_weights(c, training):
    torch_g, torch_d = torch_model.build(c, seed=1)
    # PyTorch's own weights, with its biases and BatchNorm vectors off their init
    torch_model.load_portable(torch_g, torch_d, randomise(torch_model.to_portable(torch_g, torch_d), 1))
    generator, discriminator = build(c)
    load_portable(generator, discriminator, torch_model.to_portable(torch_g, torch_d))
    rng = np.random.default_rng(0)
    z = rng.standard_normal((16, c.nz)).astype(np.float32)
    x = rng.uniform(-1, 1, (16, c.image_size, c.image_size, c.channels)).astype(np.float32)
    torch_g.train(training)
    torch_d.train(training)
    with torch.no_grad():
        want_g = torch_g(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
        want_d = torch_d(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    got_g = keras.ops.convert_to_numpy(generator(z, training=training))
    got_d = keras.ops.convert_to_numpy(discriminator(x, training=training))
    assert got_d.shape == want_d.shape == (16,)
    np.testing.assert_allclose(got_g, want_g, atol=TOL)
    np.testing.assert_allclose(got_d, want_d, atol=TOL)
    # in train mode both updated their running statistics, in the same way
    want, got = torch_model.to_portable(torch_g, torch_d), to_portable(generator, discriminator)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_portable_round_trip_and_shape_checks(tmp_path):
    c = cfg(32, 1, 8, 8)
    generator, discriminator = build(c, seed=1)
    generator(np.random.default_rng(0).standard_normal((32, 100)).astype(np.float32), training=True)
    weights.save(tmp_path / "w.npz", c, to_portable(generator, discriminator))
    file_cfg, arrays, _ = weights.load(tmp_path / "w.npz", c)
    g2, d2 = build(file_cfg, seed=2)
    load_portable(g2, d2, arrays)
    for m1, m2 in ((generator, g2), (discriminator, d2)):
        for a, b in zip(numpy_of(m1.weights), numpy_of(m2.weights)):
            np.testing.assert_array_equal(a, b)
    bad = dict(arrays)
    bad["generator.g1.kernel"] = bad["generator.g1.kernel"][..., :-1]
    with pytest.raises(AssertionError, match="does not fit"):
        load_portable(g2, d2, bad)
    with pytest.raises(ValueError, match="generator.g1.kernel has shape"):
        weights.save(tmp_path / "bad.npz", c, bad)


@pytest.mark.parametrize("c", NETS[:2], ids=IDS[:2])
def test_other_networks_round_trip_through_portable_files(c, tmp_path):
    generator, discriminator = randomised(c, 2)
    weights.save(tmp_path / "w.npz", c, to_portable(generator, discriminator))
    file_cfg, arrays, _ = weights.load(tmp_path / "w.npz", c)
    assert file_cfg.arch == c.arch
    g2, d2 = build(file_cfg, seed=3)
    load_portable(g2, d2, arrays)
    for m1, m2 in ((generator, g2), (discriminator, d2)):
        assert [v.path for v in m1.weights] == [v.path for v in m2.weights]
        for a, b in zip(numpy_of(m1.weights), numpy_of(m2.weights)):
            np.testing.assert_array_equal(a, b)
    bad = dict(arrays)                  # a fully connected kernel that is not (in, out)
    fc = next(f"discriminator.{l.name}.kernel" for l in spec.discriminator_spec(c) if l.kind == "linear")
    bad[fc] = bad[fc][None, None]
    with pytest.raises(AssertionError, match="does not fit"):
        load_portable(g2, d2, bad)


def test_model_command_rejects_impossible_size(cli):
    r = cli("keras_impl.model", "--image-size", "48")
    assert r.returncode == 2 and "power of two" in r.stderr and "Traceback" not in r.stderr
