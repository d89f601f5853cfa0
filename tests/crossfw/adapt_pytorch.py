"""The cross-framework driver's view of pytorch_impl, through its public functions."""
import copy

import torch

from common.config import ADAM_EPS
from common.weights import RUNNING_STATS, running_stats
from pytorch_impl.model import build, load_portable, to_portable
from pytorch_impl.step import train_step

def models(cfg, arrays):
    generator, discriminator = build(cfg)
    load_portable(generator, discriminator, arrays)
    return generator, discriminator


def roundtrip(cfg, arrays):
    return to_portable(*models(cfg, arrays))


@torch.no_grad()
def generate(cfg, arrays, z, train):
    generator, discriminator = models(cfg, arrays)
    generator.train(train)
    images = generator(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
    return images, running_stats(to_portable(generator, discriminator), "generator")


@torch.no_grad()
def discriminate(cfg, arrays, x, train):
    generator, discriminator = models(cfg, arrays)
    discriminator.train(train)
    logits = discriminator(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
    return logits, running_stats(to_portable(generator, discriminator), "discriminator")


class Stepper:
    def __init__(self, cfg, arrays):
        self.precision = cfg.precision
        self.generator, self.discriminator = models(cfg, arrays)
        adam = lambda m: torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS)
        self.g_optimizer, self.d_optimizer = adam(self.generator), adam(self.discriminator)

    def step(self, real, z):
        real = torch.from_numpy(real).permute(0, 3, 1, 2).contiguous()
        return train_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer,
                          real, torch.from_numpy(z), self.precision)

    def state(self):
        params = to_portable(self.generator, self.discriminator)
        moments = {}
        for slot, name in (("exp_avg", "m"), ("exp_avg_sq", "v")):
            # copies of the models whose parameters are the Adam moments, so the moments
            # go through the same layout conversion as the weights
            g, d = copy.deepcopy(self.generator), copy.deepcopy(self.discriminator)
            for model, twin, opt in ((self.generator, g, self.g_optimizer), (self.discriminator, d, self.d_optimizer)):
                for p, q in zip(model.parameters(), twin.parameters()):
                    q.data = opt.state[p][slot].clone()
            moments.update({f"{name}.{k}": v for k, v in to_portable(g, d).items() if not k.endswith(RUNNING_STATS)})
        return params, moments
