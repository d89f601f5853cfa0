"""The cross-framework driver's view of jax_impl, through its public functions."""
import jax
import numpy as np
import optax
from flax import nnx

from common.config import ADAM_EPS
from common.weights import RUNNING_STATS, running_stats
from jax_impl.model import build, load_portable, to_portable
from jax_impl.checkpoint import flat_state
from jax_impl.step import mixed_precision, step_metrics, train_step

def models(cfg, arrays):
    generator, discriminator = build(cfg)
    load_portable(generator, discriminator, arrays)
    return generator, discriminator


def roundtrip(cfg, arrays):
    return to_portable(*models(cfg, arrays))


def generate(cfg, arrays, z, train):
    generator, discriminator = models(cfg, arrays)
    generator.train() if train else generator.eval()
    images = np.asarray(generator(jax.numpy.asarray(z)))
    return images, running_stats(to_portable(generator, discriminator), "generator")


def discriminate(cfg, arrays, x, train):
    generator, discriminator = models(cfg, arrays)
    discriminator.train() if train else discriminator.eval()
    logits = np.asarray(discriminator(jax.numpy.asarray(x)))
    return logits, running_stats(to_portable(generator, discriminator), "discriminator")


class Stepper:
    def __init__(self, cfg, arrays):
        self.cfg = cfg
        self.generator, self.discriminator = models(cfg, arrays)
        mixed_precision(self.generator, cfg.precision)
        mixed_precision(self.discriminator, cfg.precision)
        tx = optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=ADAM_EPS)
        self.g_optimizer = nnx.Optimizer(self.generator, tx, wrt=nnx.Param)
        self.d_optimizer = nnx.Optimizer(self.discriminator, tx, wrt=nnx.Param)
        self.generator.train()
        self.discriminator.train()

    def step(self, real, z):
        return step_metrics(train_step(self.generator, self.discriminator, self.g_optimizer,
                                       self.d_optimizer, jax.numpy.asarray(real), jax.numpy.asarray(z)))

    def state(self):
        params = to_portable(self.generator, self.discriminator)
        moments = {}
        for slot, name in (("mu", "m"), ("nu", "v")):
            # twins whose parameters hold the moments, so the moments go through the same
            # layout conversion as the weights
            g, d = build(self.cfg)
            for model, twin, opt in ((self.generator, g, self.g_optimizer), (self.discriminator, d, self.d_optimizer)):
                opt_state = flat_state(opt)
                for path, var in flat_state(twin).items():
                    key = next((k for k in opt_state if k.endswith(f"/{slot}/{path}")), None)
                    if key is not None:
                        var[...] = opt_state[key][...]
            moments.update({f"{name}.{k}": v for k, v in to_portable(g, d).items() if not k.endswith(RUNNING_STATS)})
        return params, moments
