"""Three classic mistakes in a GAN step, each written into lesson 4's train_step in each
framework, for the lesson to show what course.build_it's check says about them and for
tests/test_course_build_it.py to prove that it says it:

    REACH       D's loss reaches G: G's gradient is g_loss's plus d_loss's
    INFERENCE   BatchNorm in inference mode during the step (running statistics, not the batch's)
    SATURATING  G minimises log(1 - D(G(z))) instead of -log D(G(z))

    step = build_it_mistakes.train_step("pytorch", build_it_mistakes.REACH)

Each function is the lesson's solution of exercise 3 with the lines of one mistake switched
on (marked "the mistake"); with mistake=None it is the solution itself.
"""
from __future__ import annotations

import contextlib

REACH, INFERENCE, SATURATING = "D's loss reaches G", "BatchNorm in inference mode", "the saturating G loss"
MISTAKES = (REACH, INFERENCE, SATURATING)


def train_step(framework: str, mistake: str | None = None):
    if mistake not in MISTAKES + (None,):
        raise ValueError(f"mistake {mistake!r}; known: {MISTAKES}")
    return {"pytorch": pytorch_step, "jax": jax_step, "keras": keras_step}[framework](mistake)


def pytorch_step(mistake):
    import torch
    import torch.nn.functional as F

    def bce(logits, label):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

    def step(generator, discriminator, g_optimizer, d_optimizer, real, z):
        if mistake == INFERENCE:
            generator.eval(), discriminator.eval()           # the mistake
        if mistake == REACH:
            g_optimizer.zero_grad()              # the mistake: G's .grad emptied here, once
        fake = generator(z)
        d_optimizer.zero_grad()
        d_real = discriminator(real)
        d_fake = discriminator(fake if mistake == REACH else fake.detach())  # the mistake: no detach()
        d_loss = bce(d_real, 1.0) + bce(d_fake, 0.0)
        d_loss.backward(retain_graph=mistake == REACH)   # also into G's .grad, keeping G's graph
        d_optimizer.step()
        if mistake != REACH:
            g_optimizer.zero_grad()
        d_fake_after = discriminator(fake)
        g_loss = -bce(d_fake_after, 0.0) if mistake == SATURATING else bce(d_fake_after, 1.0)
        g_loss.backward()
        g_optimizer.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "d_real": torch.sigmoid(d_real).mean().item(),
                "d_fake": torch.sigmoid(d_fake).mean().item(),
                "d_fake_after": torch.sigmoid(d_fake_after).mean().item()}
    return step


def jax_step(mistake):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    def bce(logits, label):
        return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()

    @nnx.jit
    def jitted(generator, discriminator, g_optimizer, d_optimizer, real, z):
        fake, g_backward = nnx.vjp(lambda g: g(z), generator, graph=False)

        def d_loss_fn(d, fake):
            d_real, d_fake = d(real), d(fake)
            return bce(d_real, 1.0) + bce(d_fake, 0.0), (d_real, d_fake)

        # the gradient with respect to the fake images too, for the mistake to use
        (d_loss, (d_real, d_fake)), (d_grads, fake_grad_d) = nnx.value_and_grad(
            d_loss_fn, argnums=(0, 1), has_aux=True)(discriminator, fake)
        d_optimizer.update(discriminator, d_grads)

        def g_loss_fn(fake, d):
            d_fake_after = d(fake)
            loss = -bce(d_fake_after, 0.0) if mistake == SATURATING else bce(d_fake_after, 1.0)
            return loss, d_fake_after

        (g_loss, d_fake_after), fake_grad = nnx.value_and_grad(g_loss_fn, has_aux=True)(fake, discriminator)
        if mistake == REACH:
            fake_grad = fake_grad + fake_grad_d          # the mistake: d_loss's gradient into G
        (g_grads,) = g_backward(fake_grad)
        g_optimizer.update(generator, g_grads)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": jax.nn.sigmoid(d_real).mean(),
                "d_fake": jax.nn.sigmoid(d_fake).mean(),
                "d_fake_after": jax.nn.sigmoid(d_fake_after).mean()}

    def step(generator, discriminator, g_optimizer, d_optimizer, real, z):
        if mistake == INFERENCE:
            generator.eval(), discriminator.eval()           # the mistake
        return jitted(generator, discriminator, g_optimizer, d_optimizer, real, z)
    return step


def keras_step(mistake):
    import keras_impl  # noqa: F401  (backend set before keras is imported)
    import keras
    import tensorflow as tf
    from keras import ops

    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    # the mistake: no training=True, so BatchNorm runs in inference mode
    mode = {} if mistake == INFERENCE else {"training": True}

    def step(generator, discriminator, g_optimizer, d_optimizer, real, z):
        ones, zeros = ops.ones((len(real),)), ops.zeros((len(real),))
        with tf.GradientTape() as g_tape:
            fake = generator(z, **mode)
        # the mistake: D's step recorded on G's tape too
        on_g_tape = g_tape if mistake == REACH else contextlib.nullcontext()
        with on_g_tape, tf.GradientTape() as d_tape:
            d_real = discriminator(real, **mode)
            d_fake = discriminator(fake, **mode)
            d_loss = bce(ones, d_real) + bce(zeros, d_fake)
        d_vars = discriminator.trainable_variables
        d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)
        with g_tape:
            d_fake_after = discriminator(fake, **mode)
            g_loss = -bce(zeros, d_fake_after) if mistake == SATURATING else bce(ones, d_fake_after)
        g_vars = generator.trainable_variables
        target = [d_loss, g_loss] if mistake == REACH else g_loss     # a list: the sum's gradient
        g_optimizer.apply(g_tape.gradient(target, g_vars), g_vars)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": ops.mean(ops.sigmoid(d_real)),
                "d_fake": ops.mean(ops.sigmoid(d_fake)),
                "d_fake_after": ops.mean(ops.sigmoid(d_fake_after))}
    return step
