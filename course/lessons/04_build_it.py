# %% [markdown]
# # Lesson 4: build it
#
# Lesson 3 took the repository's GAN step apart. Now you write one yourself: the
# tutorial's generator and discriminator and the step that trains them, in the framework
# of your choice: PyTorch, JAX (Flax NNX + optax) or Keras 3 (on TensorFlow).
#
# A check then does what the repository's own tests do to prove that its three
# implementations are one network: it loads one set of starting weights into your layers
# and into the repository's, runs your `train_step` and the repository's on the same
# batch and the same noise, and compares everything one step changes, to 1e-5. When
# something differs it names the first thing that does, and when the difference looks
# like a known mistake, which one.
#
# You will write, in this order:
# 1. the generator G (exercise 1), checked layer by layer against `common/spec.py`;
# 2. the discriminator D (exercise 2), checked the same way;
# 3. `train_step`: D's update, then G's, on the same `z` (exercise 3), checked against
#    `{pytorch,jax,keras}_impl/step.py`.
#
# Then you see what the check says about three classic mistakes: D's loss reaching G,
# BatchNorm in inference mode during the step, and the saturating G loss.

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## Choose your framework
#
# Set `FRAMEWORK` and run the cells from here down. The exercises have a part for each
# framework; fill in the one you chose (the solution notebook has all three, and ran with
# PyTorch). Only the chosen framework is imported; to change it, restart the kernel
# first, so that nothing of the other one stays loaded.
#
# The network is the tutorial's (`--arch dcgan`) at 32x32 with widths 8, small so that
# every check runs in seconds; the batch is 16 real MNIST digits from `common.data` and
# the noise the first step's `z` (`common.data.noise`), the same in every framework.

# %%
FRAMEWORK = "pytorch"      # or "jax" (Flax NNX + optax), or "keras" (Keras 3 on TensorFlow)

import numpy as np

from common import data
from common.config import Config
from common.spec import describe, discriminator_spec, generator_spec
from course import build_it, check

cfg = Config(image_size=32, channels=1, ngf=8, ndf=8, batch_size=16)
images, source = data.load_images(cfg)
real = data.to_float(images[:cfg.batch_size])             # (16, 32, 32, 1), NHWC, in [-1, 1]
z = data.noise(cfg.seed, 0, cfg.batch_size, cfg.nz)      # (16, 100)
print(f"real {real.shape} from {source}; z {z.shape}\n")
for title, layers in (("G", generator_spec(cfg)), ("D", discriminator_spec(cfg))):
    print(f"{title}, as common/spec.py describes it (output shapes H, W, C):")
    for l in layers:
        print(f"  {l.name}  {describe(l):<46} -> {l.out_shape}")

# %% [markdown]
# Read the tables: `conv_transpose 4x4/2 p1 32->16 +bn relu` is a transposed convolution
# with a 4x4 kernel, stride 2 and PyTorch's padding 1, from 32 to 16 channels, then
# BatchNorm, then ReLU. No layer has a bias: BatchNorm's beta would make it redundant,
# and the layers without BatchNorm (G's last, D's first and last) have none either.
#
# The imports for each framework. JAX and Keras take their BatchNorm from the
# repository; exercise 1 says why.

# %%
if FRAMEWORK == "pytorch":
    import torch
    import torch.nn.functional as F
    from torch import nn
elif FRAMEWORK == "jax":
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx
    from jax_impl.layers import BatchNorm, normal  # PyTorch's BatchNorm in Flax; N(0, std)
elif FRAMEWORK == "keras":
    import keras_impl  # noqa: F401  (sets KERAS_BACKEND=tensorflow before keras is imported)
    import keras
    import tensorflow as tf
    from keras import layers, ops
    from keras_impl.layers import BatchNorm        # PyTorch's BatchNorm, in Keras

# %% [markdown]
# ## Exercise 1: the generator
#
# Write `make_generator(cfg)`, which returns G: `z` of shape (N, 100) in, images out,
# (N, 1, 32, 32) in PyTorch, (N, 32, 32, 1) in JAX and Keras. Its layers, in order:
# four transposed convolutions, each but the last followed by BatchNorm and ReLU, and
# tanh at the end. `z` enters as a 1x1 map with 100 channels.
#
# The check reads the layers that have weights in the order your framework lists them
# (PyTorch: `nn.Sequential`'s order; Flax: an `nnx.Sequential`'s; Keras: the model's),
# compares each with the spec, loads the repository's starting weights into it
# (`common.weights.initial`), runs it alone against the definition in
# `common/weights.py`, then runs all of G in training mode. Your own initialisation
# does not matter to the check; a real run needs the DCGAN's, N(0, 0.02) kernels (each
# `model.py` sets it: `dcgan_init` in PyTorch, `kernel_init` in Flax,
# `kernel_initializer` in Keras).
#
# Where the frameworks bite (all of it in
# [docs/frameworks.md](../docs/frameworks.md#what-differs-between-the-frameworks)):
# - **PyTorch**: nothing; the spec's numbers are PyTorch's arguments.
# - **JAX**: Flax's `nnx.ConvTranspose` pads the stride-dilated input, so PyTorch's
#   padding `p` is Flax's `K - 1 - p` on each side, and it applies its kernel as PyTorch
#   does only with `transpose_kernel=True`. Flax's `nnx.BatchNorm` takes momentum as the
#   weight of the *old* running value (PyTorch's 0.1 is the weight of the new one) and
#   averages the biased batch variance into its running variance where PyTorch averages
#   the unbiased one: `jax_impl.layers.BatchNorm` is PyTorch's.
# - **Keras**: for a 4x4 kernel, `padding="valid"` is PyTorch's padding 0 and, at stride
#   2, `"same"` is its padding 1. `layers.BatchNormalization` has epsilon 1e-3 where
#   PyTorch has 1e-5, the same momentum convention as Flax, and the biased variance:
#   `keras_impl.layers.BatchNorm` is PyTorch's.
#
# The check recognises each of these defaults and names it: try one.

# %%
if FRAMEWORK == "pytorch":
    def make_generator(cfg):
        ### BEGIN SOLUTION
        w = cfg.ngf
        return nn.Sequential(
            nn.Unflatten(1, (cfg.nz, 1, 1)),                              # z as a 1x1 map
            nn.ConvTranspose2d(cfg.nz, 4 * w, 4, 1, 0, bias=False),       # 32 x 4 x 4
            nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False),        # 16 x 8 x 8
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False),            # 8 x 16 x 16
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, cfg.channels, 4, 2, 1, bias=False),     # 1 x 32 x 32
            nn.Tanh())
        ### END SOLUTION
        #: return None   # your code here: an nn.Sequential, z (N, 100) -> images (N, 1, 32, 32)

elif FRAMEWORK == "jax":
    def make_generator(cfg):
        ### BEGIN SOLUTION
        rngs, w = nnx.Rngs(0), cfg.ngf

        def up(c_in, c_out, stride, padding):
            # PyTorch's ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False); the
            # kernels N(0, 0.02), drawn flat (XLA:CPU compiles a 4-D draw for seconds)
            return nnx.ConvTranspose(c_in, c_out, (4, 4), strides=stride,
                                     padding=((3 - padding, 3 - padding),) * 2,
                                     transpose_kernel=True, use_bias=False,
                                     kernel_init=normal(0.02), rngs=rngs)

        class Generator(nnx.Module):
            def __init__(self):
                self.layers = nnx.Sequential(
                    up(cfg.nz, 4 * w, 1, 0), BatchNorm(4 * w, rngs=rngs), nnx.relu,   # 4 x 4 x 32
                    up(4 * w, 2 * w, 2, 1), BatchNorm(2 * w, rngs=rngs), nnx.relu,    # 8 x 8 x 16
                    up(2 * w, w, 2, 1), BatchNorm(w, rngs=rngs), nnx.relu,            # 16 x 16 x 8
                    up(w, cfg.channels, 2, 1), jnp.tanh)                              # 32 x 32 x 1

            def __call__(self, z):
                return self.layers(z.reshape(len(z), 1, 1, -1))                      # z as a 1x1 map

        return Generator()
        ### END SOLUTION
        #: return None   # your code here: an nnx.Module (its layers in an nnx.Sequential),
        #:               # z (N, 100) -> images (N, 32, 32, 1)

elif FRAMEWORK == "keras":
    def make_generator(cfg):
        ### BEGIN SOLUTION
        w = cfg.ngf
        return keras.Sequential([
            keras.Input((cfg.nz,)), layers.Reshape((1, 1, cfg.nz)),          # z as a 1x1 map
            layers.Conv2DTranspose(4 * w, 4, 1, "valid", use_bias=False),    # 4 x 4 x 32
            BatchNorm(), layers.ReLU(),
            layers.Conv2DTranspose(2 * w, 4, 2, "same", use_bias=False),     # 8 x 8 x 16
            BatchNorm(), layers.ReLU(),
            layers.Conv2DTranspose(w, 4, 2, "same", use_bias=False),         # 16 x 16 x 8
            BatchNorm(), layers.ReLU(),
            layers.Conv2DTranspose(cfg.channels, 4, 2, "same", use_bias=False),  # 32 x 32 x 1
            layers.Activation("tanh")])
        ### END SOLUTION
        #: return None   # your code here: a keras.Sequential, z (N, 100) -> images (N, 32, 32, 1)

# %% tags=["check"]
error = build_it.compare_generator(FRAMEWORK, make_generator, cfg)
check.less("G, worst relative error", error, build_it.TOL)

# %% [markdown]
# ## Exercise 2: the discriminator
#
# Write `make_discriminator(cfg)`, which returns D: images in, (N, 1, 32, 32) in PyTorch
# and (N, 32, 32, 1) in JAX and Keras, and **one logit per image** out, shape (N,): no
# sigmoid, because the losses take logits (the numerically stable form of sigmoid and
# binary cross-entropy). Its layers: four convolutions; LeakyReLU with slope 0.2 after
# each but the last; BatchNorm before the LeakyReLU in the two middle ones only (the
# DCGAN paper, section 3, keeps it off D's first layer).
#
# Where the frameworks bite: LeakyReLU's default slope is 0.01 in PyTorch and Flax and
# 0.3 in Keras, and the DCGAN's is 0.2 in all three. Keras' `"same"` padding is PyTorch's
# padding 1 here as in G.

# %%
if FRAMEWORK == "pytorch":
    def make_discriminator(cfg):
        ### BEGIN SOLUTION
        w = cfg.ndf
        return nn.Sequential(
            nn.Conv2d(cfg.channels, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),    # 8 x 16 x 16
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False),                              # 16 x 8 x 8
            nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False),                          # 32 x 4 x 4
            nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 4, 1, 0, bias=False),                              # 1 x 1 x 1
            nn.Flatten(0))                                                         # (N,)
        ### END SOLUTION
        #: return None   # your code here: an nn.Sequential, images (N, 1, 32, 32) -> logits (N,)

elif FRAMEWORK == "jax":
    def make_discriminator(cfg):
        ### BEGIN SOLUTION
        rngs, w = nnx.Rngs(0), cfg.ndf

        def down(c_in, c_out, stride, padding):
            # PyTorch's Conv2d(c_in, c_out, 4, stride, padding, bias=False)
            return nnx.Conv(c_in, c_out, (4, 4), strides=stride,
                            padding=((padding, padding),) * 2, use_bias=False,
                            kernel_init=normal(0.02), rngs=rngs)

        def leaky(x):
            return nnx.leaky_relu(x, negative_slope=0.2)

        class Discriminator(nnx.Module):
            def __init__(self):
                self.layers = nnx.Sequential(
                    down(cfg.channels, w, 2, 1), leaky,                                # 16 x 16 x 8
                    down(w, 2 * w, 2, 1), BatchNorm(2 * w, rngs=rngs), leaky,         # 8 x 8 x 16
                    down(2 * w, 4 * w, 2, 1), BatchNorm(4 * w, rngs=rngs), leaky,     # 4 x 4 x 32
                    down(4 * w, 1, 1, 0))                                              # 1 x 1 x 1

            def __call__(self, x):
                return self.layers(x).reshape(-1)                                      # (N,)

        return Discriminator()
        ### END SOLUTION
        #: return None   # your code here: an nnx.Module, images (N, 32, 32, 1) -> logits (N,)

elif FRAMEWORK == "keras":
    def make_discriminator(cfg):
        ### BEGIN SOLUTION
        w = cfg.ndf
        return keras.Sequential([
            keras.Input((cfg.image_size, cfg.image_size, cfg.channels)),
            layers.Conv2D(w, 4, 2, "same", use_bias=False), layers.LeakyReLU(0.2),           # 16 x 16 x 8
            layers.Conv2D(2 * w, 4, 2, "same", use_bias=False), BatchNorm(), layers.LeakyReLU(0.2),
            layers.Conv2D(4 * w, 4, 2, "same", use_bias=False), BatchNorm(), layers.LeakyReLU(0.2),
            layers.Conv2D(1, 4, 1, "valid", use_bias=False),                                  # 1 x 1 x 1
            layers.Reshape(())])                                                              # (N,)
        ### END SOLUTION
        #: return None   # your code here: a keras.Sequential, images (N, 32, 32, 1) -> logits (N,)

# %% tags=["check"]
error = build_it.compare_discriminator(FRAMEWORK, make_discriminator, cfg)
check.less("D, worst relative error", error, build_it.TOL)

# %% [markdown]
# ## Exercise 3: the step
#
# Write `train_step(generator, discriminator, g_optimizer, d_optimizer, real, z)`: one
# D update, then one G update on the same `z`, as lesson 3 took them apart.
#
# 1. **D**: `fake = G(z)`; D on the real batch and on the fake batch in two calls (so
#    that BatchNorm normalises each batch alone); `d_loss = BCE(D(x), 1) +
#    BCE(D(G(z)), 0)` with logits, each the mean over the batch; one step of
#    `d_optimizer` on D's parameters. D's loss must not reach G.
# 2. **G**: the *updated* D on the same `fake`; `g_loss = BCE(D(G(z)), 1)`, the
#    non-saturating loss; one step of `g_optimizer` on G's parameters. Run G once per
#    step: each training-mode call moves its BatchNorm's running statistics.
#
# Return a dict of five numbers: `d_loss`, `g_loss`, and the mean of `sigmoid(logits)`
# for `d_real` (D on the real batch), `d_fake` (D on the fakes, before D's update) and
# `d_fake_after` (the updated D on the same fakes): the log line of every `train`.
#
# What you get, as each `train.py` makes it:
# - **PyTorch**: `real` (N, 1, 32, 32) and `z` (N, 100) tensors; two `torch.optim.Adam`
#   (`zero_grad()`, `step()`).
# - **JAX**: `real` (N, 32, 32, 1) and `z` as arrays; two `nnx.Optimizer`s over
#   `optax.adam` (`optimizer.update(model, grads)`). G's gradient needs G's forward pass
#   kept: `fake, g_backward = nnx.vjp(lambda g: g(z), generator, graph=False)` gives it, and
#   `g_backward(d g_loss / d fake)` returns `(G's gradients,)`.
# - **Keras**: `real` and `z` as tensors; two `keras_impl.layers.PyTorchAdam`
#   (`optimizer.apply(grads, variables)`), Adam as PyTorch computes it (Keras' own adds
#   its epsilon elsewhere: docs/frameworks.md); gradients from `tf.GradientTape`.
#
# Both networks start in training mode (the check calls `.train()` where the framework
# has it); Keras decides at each call: pass `training=True`.

# %%
if FRAMEWORK == "pytorch":
    def bce(logits, label):
        """Binary cross-entropy with logits, the mean over the batch."""
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

    def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
        ### BEGIN SOLUTION
        # (1) D: real and fake in two calls; detach(): d_loss stops at the fake images
        fake = generator(z)
        d_optimizer.zero_grad()
        d_real = discriminator(real)
        d_fake = discriminator(fake.detach())
        d_loss = bce(d_real, 1.0) + bce(d_fake, 0.0)
        d_loss.backward()
        d_optimizer.step()

        # (2) G: the updated D on the same fakes, the non-saturating loss
        g_optimizer.zero_grad()
        d_fake_after = discriminator(fake)
        g_loss = bce(d_fake_after, 1.0)
        g_loss.backward()                # also fills D's .grad: D's next zero_grad() drops it
        g_optimizer.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "d_real": torch.sigmoid(d_real).mean().item(),
                "d_fake": torch.sigmoid(d_fake).mean().item(),
                "d_fake_after": torch.sigmoid(d_fake_after).mean().item()}
        ### END SOLUTION
        #: return None   # your code here: D's update, then G's; a dict of the 5 metrics

elif FRAMEWORK == "jax":
    def bce(logits, label):
        """Binary cross-entropy with logits, the mean over the batch."""
        return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()

    @nnx.jit
    def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
        ### BEGIN SOLUTION
        fake, g_backward = nnx.vjp(lambda g: g(z), generator, graph=False)  # G's one forward pass

        # (1) D: the gradient with respect to D only; fake is a plain array in here
        def d_loss_fn(d):
            d_real, d_fake = d(real), d(fake)
            return bce(d_real, 1.0) + bce(d_fake, 0.0), (d_real, d_fake)

        (d_loss, (d_real, d_fake)), d_grads = nnx.value_and_grad(d_loss_fn, has_aux=True)(discriminator)
        d_optimizer.update(discriminator, d_grads)

        # (2) G: the updated D; d g_loss / d fake, then on into G through its vjp
        def g_loss_fn(fake, d):
            d_fake_after = d(fake)
            return bce(d_fake_after, 1.0), d_fake_after

        (g_loss, d_fake_after), fake_grad = nnx.value_and_grad(g_loss_fn, has_aux=True)(fake, discriminator)
        (g_grads,) = g_backward(fake_grad)
        g_optimizer.update(generator, g_grads)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": jax.nn.sigmoid(d_real).mean(),
                "d_fake": jax.nn.sigmoid(d_fake).mean(),
                "d_fake_after": jax.nn.sigmoid(d_fake_after).mean()}
        ### END SOLUTION
        #: return None   # your code here: D's update, then G's; a dict of the 5 metrics

elif FRAMEWORK == "keras":
    bce = keras.losses.BinaryCrossentropy(from_logits=True)   # bce(labels, logits): the batch mean

    def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
        ### BEGIN SOLUTION
        ones, zeros = ops.ones((len(real),)), ops.zeros((len(real),))
        with tf.GradientTape() as g_tape:
            fake = generator(z, training=True)       # on G's tape only

        # (1) D: fake was made outside D's tape, so d_loss cannot reach G
        with tf.GradientTape() as d_tape:
            d_real = discriminator(real, training=True)
            d_fake = discriminator(fake, training=True)
            d_loss = bce(ones, d_real) + bce(zeros, d_fake)
        d_vars = discriminator.trainable_variables
        d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)

        # (2) G: back on the tape that recorded G(z), through the updated D
        with g_tape:
            d_fake_after = discriminator(fake, training=True)
            g_loss = bce(ones, d_fake_after)
        g_vars = generator.trainable_variables
        g_optimizer.apply(g_tape.gradient(g_loss, g_vars), g_vars)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": ops.mean(ops.sigmoid(d_real)),
                "d_fake": ops.mean(ops.sigmoid(d_fake)),
                "d_fake_after": ops.mean(ops.sigmoid(d_fake_after))}
        ### END SOLUTION
        #: return None   # your code here: D's update, then G's; a dict of the 5 metrics

# %% tags=["check"]
error = build_it.compare_step(FRAMEWORK, make_generator, make_discriminator, train_step, cfg, real, z)
check.less("train_step, worst error", error, build_it.TOL)

# %% [markdown]
# ## Three classic mistakes, and what the check says
#
# `course/build_it_mistakes.py` holds the solution of exercise 3 with one classic
# mistake switched on at a time, in each framework:
#
# - **D's loss reaches G.** In PyTorch: D reads `fake` without `.detach()` and G's
#   `.grad` is emptied only once, at the start, so `d_loss.backward()` adds d_loss's
#   gradient to G's. G is then pushed to make fakes that D rejects *more* easily.
# - **BatchNorm in inference mode** (`.eval()` left on, or Keras called without
#   `training=True`): BatchNorm normalises with its running statistics, not the batch's,
#   and the running statistics stop moving.
# - **The saturating G loss**: G minimises `log(1 - D(G(z)))`, the minimax game's term,
#   instead of `-log D(G(z))`; lesson 3 showed why its gradient vanishes when D wins.
#
# Each is run through the check with your G and D (or fill in exercises 1 and 2 first):

# %% tags=["slow"]
from course import build_it_mistakes

for mistake in build_it_mistakes.MISTAKES:
    try:
        build_it.compare_step(FRAMEWORK, make_generator, make_discriminator,
                              build_it_mistakes.train_step(FRAMEWORK, mistake), cfg, real, z)
        print(f"{mistake}: the check passed it (it should not)")
    except AssertionError as e:
        print(f"{mistake}:\n  {e}\n")

# %% [markdown]
# Read where each one shows first. BatchNorm in inference mode changes `D(x)` before any
# update; the saturating loss leaves everything up to `g_loss` alone; D's loss reaching G
# changes nothing that the step reports, neither a loss nor `D(G(z))`: only G's
# gradient, which is why the check reads the gradients (from Adam's first moment, which
# after one step is `(1 - beta1)` times the gradient) and not only the losses.
#
# ## Why 1e-5
#
# 1e-5 is the tolerance of the repository's proof that its three implementations are one
# network (`tests/test_cross_framework.py`,
# [docs/frameworks.md, "The proof"](../docs/frameworks.md#the-proof)). Two correct
# implementations differ only in the order of their float32 arithmetic; the checks above
# printed how far yours is from the repository's. The errors are `course.check`'s
# relative errors (an array's worst difference relative to the array's scale), with one
# exception: Adam's first step moves every weight by about the learning rate, 2e-4,
# whatever the size of its gradient, so a weight whose gradient is nearly zero moves by
# whatever float32 rounding makes of it. The weights after the step are compared as the
# proof compares them, by their largest difference, and 1e-5 is 5% of one step there. The
# three mistakes above are off by orders of magnitude more, as their messages printed: a
# tolerance between the two tells them apart. (On a recent NVIDIA GPU, JAX and TensorFlow
# compute float32 convolutions in TF32 unless told otherwise, which is further from
# float32 than 1e-5: the check runs everything on the CPU.)
#
# ## The repository's answer
#
# Your `train_step` is the repository's, which is longer only for what a real run needs
# (mixed precision, data parallel, the metrics copied off the device in one go):
# - `pytorch_impl/step.py`: `train_step`, with `detach()` and D's `requires_grad_(False)`
#   in the G step (D's weight gradients are not needed there);
# - `jax_impl/step.py`: `train_step` under `nnx.jit`, with `nnx.vjp` as above;
# - `keras_impl/step.py`: the same lines in `GAN.train_step`, a `keras.Model` method, so
#   that `fit()` can drive the loop.
#
# `diff pytorch_impl/step.py jax_impl/step.py` shows only framework code: the three
# share their section banners. The networks are in each `model.py`, the layers that make
# Flax and Keras compute PyTorch's numbers in each `layers.py`, and every default that
# differs, with the test that guards it, in
# [docs/frameworks.md](../docs/frameworks.md#what-differs-between-the-frameworks).
