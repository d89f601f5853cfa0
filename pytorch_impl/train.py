"""Train the DCGAN with PyTorch.

    python -m pytorch_impl.train                          # MNIST, defaults for this device
    python -m pytorch_impl.train --max-steps 20 --out runs/try
    python -m pytorch_impl.train --resume runs/try --max-steps 40
    python -m pytorch_impl.train --dataset celeba --data-dir data --device gpu
"""
import pickle
import time
import zipfile

import numpy as np
import torch
import torch.nn.functional as F

from common import data, runfiles
from common.config import ADAM_EPS, UserError, parse_config, run_main, single_device_only
from pytorch_impl.model import build, load_portable, to_portable

FRAMEWORK = "pytorch"
CHECKPOINT = "checkpoint.pt"


# ========================================================================================
# device

def pick_device(wanted: str) -> torch.device:
    has_cuda = torch.cuda.is_available()
    has_mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if wanted == "gpu" and not (has_cuda or has_mps):
        raise UserError("--device gpu: PyTorch sees no GPU (torch.cuda.is_available() is "
                        "False); use --device cpu or auto")
    if wanted in ("auto", "gpu") and has_cuda:
        return torch.device("cuda")
    if wanted in ("auto", "gpu") and has_mps:
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


# ========================================================================================
# one GAN step

def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    """One D update then one G update on the same z. Returns the step's metrics."""
    ones = torch.ones(real.shape[0], device=real.device)
    zeros = torch.zeros(real.shape[0], device=real.device)

    # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
    fake = generator(z)
    d_optimizer.zero_grad(set_to_none=True)
    d_real = discriminator(real)                  # real and fake in two calls, so that
    d_fake = discriminator(fake.detach())         # BatchNorm normalises each batch alone;
    d_loss = (F.binary_cross_entropy_with_logits(d_real, ones)    # detach(): D's loss
              + F.binary_cross_entropy_with_logits(d_fake, zeros))  # must not reach G
    d_loss.backward()
    d_optimizer.step()

    # (2) Update G: maximize log D(G(z)) (the non-saturating loss), with the updated D
    g_optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)           # the gradient flows through D to G, but
    d_fake_after = discriminator(fake)            # D's own weight gradients are not needed
    g_loss = F.binary_cross_entropy_with_logits(d_fake_after, ones)
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()

    # one device -> host copy per step instead of five
    values = torch.stack([d_loss, g_loss, torch.sigmoid(d_real).mean(),
                          torch.sigmoid(d_fake).mean(), torch.sigmoid(d_fake_after).mean()])
    return dict(zip(runfiles.METRICS, values.tolist()))


# ========================================================================================
# sampling

@torch.no_grad()
def generate(generator, z: np.ndarray, device) -> np.ndarray:
    """G(z) in inference mode (BatchNorm running statistics) as (N, H, W, C) float32."""
    generator.eval()
    images = generator(torch.from_numpy(z).to(device)).permute(0, 2, 3, 1).cpu().numpy()
    generator.train()
    return images


# ========================================================================================
# checkpoints

def save_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, step, cfg):
    # The data order and the noise are functions of (seed, step): step is all the position.
    state = {"generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
             "g_optimizer": g_optimizer.state_dict(), "d_optimizer": d_optimizer.state_dict(),
             "step": step, "config": cfg.to_json()}
    runfiles.atomic_save(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, device) -> int:
    # torch.save writes a zip. testzip() checks each entry's CRC, which torch.load does not
    # (a flipped byte inside a tensor would load silently), and turns a truncated, empty or
    # junk file into BadZipFile. torch.load would raise a RuntimeError of C++ internals for
    # another zip (an .npz, a .keras), and UnpicklingError for a pickle weights_only refuses.
    try:
        with zipfile.ZipFile(path) as z:
            damaged = z.testzip()
            if not any(n.endswith("/data.pkl") for n in z.namelist()):
                raise ValueError("no data.pkl in it: not a checkpoint of pytorch_impl.train")
        if damaged:
            raise ValueError(f"{damaged} fails its CRC check")
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or type(state.get("step")) is not int or state["step"] < 0:
            raise ValueError("no step in it: not a checkpoint of pytorch_impl.train")
        kind = lambda t: f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"
        for name, model in (("generator", generator), ("discriminator", discriminator)):
            saved = state[name]
            for key, t in model.state_dict().items():     # load_state_dict would cast dtypes
                a = saved.get(key)
                if not isinstance(a, torch.Tensor) or a.shape != t.shape or a.dtype != t.dtype:
                    what = kind(a) if isinstance(a, torch.Tensor) else type(a).__name__
                    raise ValueError(f"{name}/{key} is {what}, the model needs {kind(t)}")
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        g_optimizer.load_state_dict(state["g_optimizer"])
        d_optimizer.load_state_dict(state["d_optimizer"])
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError,
            zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise runfiles.checkpoint_error(path, e) from None
    return state["step"]


# ========================================================================================
# the training loop

def train(cfg):
    """Train as cfg says and return the run directory. Tests call this directly."""
    single_device_only(cfg)          # data parallel here is issue 16's, not built yet
    device = pick_device(cfg.device)
    print(f"device: {describe_device(device)}")
    run = runfiles.start_run(cfg, FRAMEWORK, "cpu" if device.type == "cpu" else "gpu", CHECKPOINT)
    cfg = run.cfg

    generator, discriminator = build(cfg, cfg.seed)
    if run.init_weights:    # --init-weights: weights and BatchNorm statistics from the file
        load_portable(generator, discriminator, run.init_weights)
    generator.to(device)
    discriminator.to(device)
    betas = (cfg.beta1, cfg.beta2)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=betas, eps=ADAM_EPS)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=betas, eps=ADAM_EPS)
    step = 0
    if run.resume_from:
        step = load_checkpoint(run.resume_from, generator, discriminator, g_optimizer, d_optimizer, device)
    run.begin(step)

    def checkpoint():
        save_checkpoint(run.dir / CHECKPOINT, generator, discriminator, g_optimizer, d_optimizer, step, cfg)

    generator.train()
    discriminator.train()
    try:
        while step < run.last:
            epoch, start = divmod(step, run.per_epoch)
            for real in run.batches.epoch(epoch, start):
                t0 = time.perf_counter()
                real = torch.from_numpy(real).permute(0, 3, 1, 2).to(device)  # NHWC -> NCHW
                z = torch.from_numpy(data.noise(cfg.seed, step, cfg.batch_size, cfg.nz, cfg.z_dist)).to(device)
                m = train_step(generator, discriminator, g_optimizer, d_optimizer, real, z)
                step += 1
                run.log_step(step, m, time.perf_counter() - t0)
                if step == run.last:
                    break
            run.end_epoch(step, generate(generator, run.fixed_noise, device))
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        run.interrupted(step)
        raise
    finally:
        run.save_weights(to_portable(generator, discriminator), step)
        run.close(step)
    return run.dir


def main(argv=None):
    return train(parse_config(argv, "python -m pytorch_impl.train"))


if __name__ == "__main__":
    run_main(main)
