"""Every layer of the Keras networks against the spec, the pinned defaults, the DCGAN
initialisation, the portable layout against a NumPy reading of its definition, and the
same numbers as PyTorch with the same weights."""
# TensorFlow loads its libraries with RTLD_GLOBAL, after which importing Triton (which
# torch.optim pulls in through torch._dynamo) crashes the process. pytest runs the Keras and
# the PyTorch tests in one process, so Triton is loaded first, here.
import torch._dynamo  # noqa: F401,I001

import keras_impl  # noqa: F401  (KERAS_BACKEND, before keras)

import keras
import numpy as np
import pytest
import torch

from common import spec, weights
from common.config import BN_EPS, Config
from keras_impl.model import (BatchNorm, batchnorm_of, blocks, build, layer_table,
                              load_portable, summary, to_portable)
from pytorch_impl import model as torch_model
from tests.helpers import layer_ref


def cfg(size, channels, ngf=64, ndf=64, nz=100):
    return Config(image_size=size, channels=channels, nz=nz, ngf=ngf, ndf=ndf)


def numpy_of(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_layer_matches_the_spec(size, channels):
    c = cfg(size, channels)
    generator, discriminator = build(c)
    torch_g, torch_d = torch_model.build(c)
    for model, torch_net, layers, x in (
            (generator, torch_g, spec.generator_spec(c), np.zeros((2, c.nz), np.float32)),
            (discriminator, torch_d, spec.discriminator_spec(c),
             np.zeros((2, size, size, channels), np.float32))):
        rows = layer_table(model, x, layers)
        assert [r[0] for r in rows] == [b.name for b in blocks(model)] == [l.name for l in layers]
        for (name, _, shape, params, stats), l, blk in zip(rows, layers, blocks(model)):
            assert shape == l.out_shape, name
            assert (params, stats) == (l.params, l.stats), name
            conv = blk.get_layer("conv")
            assert isinstance(conv, keras.layers.Conv2DTranspose if l.kind == "conv_transpose"
                              else keras.layers.Conv2D)
            padding = {0: "valid", 1: "same"}[l.padding]
            assert (conv.kernel_size, conv.strides, conv.padding) == ((l.kernel,) * 2, (l.stride,) * 2, padding)
            assert (conv.filters, conv.use_bias) == (l.out_ch, l.bias)
            assert (batchnorm_of(blk) is not None) == l.batchnorm
        # Keras' count_params() includes the BatchNorm moving statistics: compare the parts.
        trainable, stats = spec.totals(layers)
        assert count(model.trainable_weights) == trainable
        assert count(model.non_trainable_weights) == stats
        assert model.count_params() == trainable + stats
        torch_stats = sum(b.numel() for n, b in torch_net.named_buffers() if "running" in n)
        assert (count(model.trainable_weights), count(model.non_trainable_weights)) == \
               (sum(p.numel() for p in torch_net.parameters()), torch_stats)


def test_summary_prints_what_pytorch_prints():
    c = cfg(32, 1, ngf=8, ndf=8, nz=16)
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


def test_dcgan_initialisation_and_seed():
    generator, discriminator = build(cfg(64, 3), seed=1)
    kernels = np.concatenate([keras.ops.convert_to_numpy(b.get_layer("conv").kernel).ravel()
                              for b in blocks(generator) + blocks(discriminator)])
    bns = [batchnorm_of(b) for b in blocks(generator) if batchnorm_of(b) is not None]
    gammas = np.concatenate(numpy_of([b.gamma for b in bns]))
    betas = np.concatenate(numpy_of([b.beta for b in bns]))
    assert abs(kernels.mean()) < 1e-3 and abs(kernels.std() - 0.02) < 1e-3   # not glorot-uniform
    assert abs(gammas.mean() - 1) < 3e-3 and abs(gammas.std() - 0.02) < 3e-3
    assert np.all(betas == 0)
    again, _ = build(cfg(64, 3), seed=1)
    other, _ = build(cfg(64, 3), seed=2)
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


@pytest.mark.parametrize("training", [False, True])
def test_same_numbers_as_pytorch_with_the_same_weights(training):
    c = cfg(32, 3, ngf=8, ndf=8, nz=16)
    torch_g, torch_d = torch_model.build(c, seed=1)
    torch_g.train()
    with torch.no_grad():                 # move PyTorch's running statistics off their init
        torch_g(torch.randn(32, 16))
    generator, discriminator = build(c)
    load_portable(generator, discriminator, torch_model.to_portable(torch_g, torch_d))
    rng = np.random.default_rng(0)
    z = rng.standard_normal((16, 16)).astype(np.float32)
    x = rng.uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    torch_g.train(training)
    torch_d.train(training)
    with torch.no_grad():
        want_g = torch_g(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
        want_d = torch_d(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    got_g = keras.ops.convert_to_numpy(generator(z, training=training))
    got_d = keras.ops.convert_to_numpy(discriminator(x, training=training))
    assert got_d.shape == want_d.shape == (16,)
    np.testing.assert_allclose(got_g, want_g, atol=1e-5)
    np.testing.assert_allclose(got_d, want_d, atol=1e-5)
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


def test_model_command_rejects_impossible_size(cli):
    r = cli("keras_impl.model", "--image-size", "48")
    assert r.returncode == 2 and "power of two" in r.stderr and "Traceback" not in r.stderr
