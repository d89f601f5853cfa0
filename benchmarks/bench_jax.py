"""time_steps(cfg, n) for JAX: seconds of each of n GAN steps on random data."""
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from common.config import ADAM_EPS
from common.data import draw_z
from jax_impl.model import build
from jax_impl.step import mixed_precision, train_step


def prepared_step(cfg):
    """The models, optimizers and a random batch of cfg; returns step(), which runs one
    full GAN step on a fresh z and waits for it (the first call compiles)."""
    generator, discriminator = build(cfg)
    mixed_precision(generator, cfg.precision)
    mixed_precision(discriminator, cfg.precision)
    adam = optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=ADAM_EPS)
    g_optimizer = nnx.Optimizer(generator, adam, wrt=nnx.Param)
    d_optimizer = nnx.Optimizer(discriminator, adam, wrt=nnx.Param)
    rng = np.random.default_rng(0)
    # jnp.asarray leaves arrays uncommitted, like the models' state: had real and z been
    # committed (jax.device_put), the step's outputs would be too and call 2 would compile again
    real = jnp.asarray(rng.uniform(-1, 1, (cfg.batch_size, cfg.image_size, cfg.image_size, cfg.channels)).astype(np.float32))

    def step():
        z = jnp.asarray(draw_z(rng, cfg.batch_size, cfg.nz, cfg.z_dist))
        m = train_step(generator, discriminator, g_optimizer, d_optimizer, real, z)
        jax.block_until_ready(m)      # JAX dispatches asynchronously: wait for the step's results
    return step


def time_steps(cfg, n):
    step = prepared_step(cfg)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times
