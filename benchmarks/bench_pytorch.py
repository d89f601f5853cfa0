"""time_steps(cfg, n) for PyTorch: seconds of each of n GAN steps on random data."""
import time

import numpy as np
import torch

from common.config import ADAM_EPS
from common.data import draw_z
from pytorch_impl.model import build
from pytorch_impl.step import train_step


def time_steps(cfg, n):
    generator, discriminator = build(cfg)
    opt = lambda m: torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS)
    g_optimizer, d_optimizer = opt(generator), opt(discriminator)
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.uniform(-1, 1, (cfg.batch_size, cfg.channels, cfg.image_size, cfg.image_size)).astype(np.float32))
    times = []
    for i in range(n):
        z = torch.from_numpy(draw_z(rng, cfg.batch_size, cfg.nz, cfg.z_dist))
        t0 = time.perf_counter()
        train_step(generator, discriminator, g_optimizer, d_optimizer, real, z, cfg.precision)  # ends in .tolist(): synchronous
        times.append(time.perf_counter() - t0)
    return times
