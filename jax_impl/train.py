"""Train the DCGAN with JAX (Flax NNX + optax).

    python -m jax_impl.train                              # MNIST, defaults for this device
    python -m jax_impl.train --max-steps 20 --out runs/try
    python -m jax_impl.train --resume runs/try --max-steps 40
    python -m jax_impl.train --dataset celeba --data-dir data --device gpu
    python -m jax_impl.train --devices 8 --batch-size 1024   # data parallel over 8 GPUs

The jax wheel from PyPI runs on the CPU only. For an NVIDIA GPU install the CUDA build
of the same version: pip install -U "jax[cuda12]==0.10.2" (or jax[cuda13] with a CUDA 13
driver); `--device auto` then uses it.

The loop: build, make the optimisers, resume, step, log, save. The GAN step is step.py's;
the devices and the mesh are parallel.py's; the checkpoint is checkpoint.py's.
"""
import time

import jax
from flax import nnx

from common import data, runfiles
from common.config import parse_config, run_main
from jax_impl import parallel
from jax_impl.checkpoint import load_checkpoint, save_checkpoint
from jax_impl.layers import adam
from jax_impl.model import build, load_portable, to_portable
from jax_impl.step import generate, mixed_precision, step_metrics, train_step

FRAMEWORK = "jax"
CHECKPOINT = "checkpoint.npz"


# ========================================================================================
# the training loop

def train(cfg):
    """Train as cfg says and return the run directory. Tests call this directly."""
    devices = parallel.pick_devices(cfg)         # UserError here: nothing is written yet
    device = devices[0]
    state_at, batch_at = parallel.placements(devices)
    print(f"device: {parallel.describe_device(device)}; devices: {len(devices)}{parallel.describe(devices, cfg)}")
    jax.config.update("jax_default_device", device)    # JAX's .to(device): arrays and jitted steps
    run = runfiles.start_run(cfg, FRAMEWORK, "cpu" if device.platform == "cpu" else "gpu", CHECKPOINT,
                             gpu_capability=parallel.gpu_capability(device))
    cfg = run.cfg

    generator, discriminator = build(cfg, cfg.seed)
    if run.init_weights:    # --init-weights: weights and BatchNorm statistics from the file
        load_portable(generator, discriminator, run.init_weights)
    mixed_precision(generator, cfg.precision)
    mixed_precision(discriminator, cfg.precision)
    g_optimizer = nnx.Optimizer(generator, adam(cfg), wrt=nnx.Param)   # BatchStat (running
    d_optimizer = nnx.Optimizer(discriminator, adam(cfg), wrt=nnx.Param)  # statistics) not trained
    step = run.begin(lambda path: load_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, state_at, cfg))
    # jit compiles for its inputs' placement, and the step's outputs come back committed to
    # the device: commit every array now, or step 2 compiles the whole step a second time
    for obj in (generator, discriminator, g_optimizer, d_optimizer):
        nnx.update(obj, jax.device_put(nnx.state(obj), state_at))   # replicated if N > 1

    def checkpoint():
        run.checkpoint(step, lambda path: save_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, step, cfg))

    generator.train()
    discriminator.train()
    with runfiles.StepEndCtrlC() as ctrl_c:      # Ctrl-C and SIGTERM
        try:
            while step < run.last:
                epoch, start = divmod(step, run.per_epoch)
                for real in run.batches.epoch(epoch, start):
                    t0 = time.perf_counter()
                    real = jax.device_put(real, batch_at)               # NHWC already: JAX's layout
                    z = jax.device_put(data.noise(cfg.seed, step, cfg.batch_size, cfg.nz, cfg.z_dist), batch_at)
                    m = step_metrics(train_step(generator, discriminator, g_optimizer, d_optimizer, real, z))
                    step += 1
                    run.log_step(step, m, time.perf_counter() - t0)
                    if step == run.last:
                        break
                    if ctrl_c.asked:     # Ctrl-C: stop after this whole step (runfiles.StepEndCtrlC)
                        raise KeyboardInterrupt
                    if run.checkpoint_due(step):       # --checkpoint-every
                        run.check_finite(step, generate(generator, run.fixed_noise, state_at))
                        checkpoint()
                run.end_epoch(step, generate(generator, run.fixed_noise, state_at))
                checkpoint()
        except KeyboardInterrupt:
            if not ctrl_c.hard:  # a second Ctrl-C may have fallen mid-step: keep the last checkpoint
                checkpoint()
            run.interrupted(step, ctrl_c)
            raise
        finally:
            if not ctrl_c.hard:
                run.save_weights(to_portable(generator, discriminator), step)
            run.close(step)
    return run.dir


def main(argv=None):
    return train(parse_config(argv, "python -m jax_impl.train"))


if __name__ == "__main__":
    run_main(main)
