"""One GAN step in PyTorch: the losses, D's update, G's update, and G in inference mode.

Single-device code, read top to bottom. Data parallel (torchrun) happens around it, in
parallel.py: the nets it gets may be wrapped for it, and the loop averages the metrics
over the processes.
"""
import numpy as np
import torch
import torch.nn.functional as F

from common import runfiles


# ========================================================================================
# one GAN step

def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z, precision="fp32"):
    """One D update then one G update on the same z. Returns the step's metrics."""
    ones = torch.ones(real.shape[0], device=real.device)
    zeros = torch.zeros(real.shape[0], device=real.device)
    forward = lambda: mixed_precision(real.device, precision)   # the forward passes only

    # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
    with forward():
        fake = generator(z)
    d_optimizer.zero_grad(set_to_none=True)
    with forward():
        d_real = discriminator(real)              # real and fake in two calls, so that
        d_fake = discriminator(fake.detach())     # BatchNorm normalises each batch alone;
    d_real, d_fake = d_real.float(), d_fake.float()               # losses in float32;
    d_loss = (F.binary_cross_entropy_with_logits(d_real, ones)    # detach(): D's loss
              + F.binary_cross_entropy_with_logits(d_fake, zeros))  # must not reach G
    d_loss.backward()
    d_optimizer.step()

    # (2) Update G: maximize log D(G(z)) (the non-saturating loss), with the updated D
    g_optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)           # the gradient flows through D to G, but
    with forward():                               # D's own weight gradients are not needed
        d_fake_after = discriminator(fake).float()
    g_loss = F.binary_cross_entropy_with_logits(d_fake_after, ones)
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()

    # one device -> host copy per step instead of five
    values = torch.stack([d_loss, g_loss, torch.sigmoid(d_real).mean(),
                          torch.sigmoid(d_fake).mean(), torch.sigmoid(d_fake_after).mean()])
    return dict(zip(runfiles.METRICS, values.tolist()))


# ========================================================================================
# mixed precision

def mixed_precision(device: torch.device, precision: str):
    """--precision bf16: torch.autocast runs convolutions and matmuls in bfloat16 and leaves
    the parameters, their gradients and Adam's moments float32. BatchNorm gets bfloat16
    maps, keeps gamma, beta and its running statistics float32 (tests/test_precision.py).
    No GradScaler: bfloat16 has float32's 8-bit exponent, so small gradients do not
    underflow as they do in float16, whose 5-bit exponent is what the scaler is for."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# ========================================================================================
# sampling

@torch.no_grad()
def generate(generator, z: np.ndarray, device) -> np.ndarray:
    """G(z) in inference mode (BatchNorm running statistics) as (N, H, W, C) float32."""
    generator.eval()
    images = generator(torch.from_numpy(z).to(device)).permute(0, 2, 3, 1).cpu().numpy()
    generator.train()
    return images
