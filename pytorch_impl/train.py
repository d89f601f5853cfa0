"""Train the DCGAN with PyTorch.

    python -m pytorch_impl.train                          # MNIST, defaults for this device
    python -m pytorch_impl.train --max-steps 20 --out runs/try
    python -m pytorch_impl.train --resume runs/try --max-steps 40
    python -m pytorch_impl.train --dataset celeba --data-dir data --device gpu
    torchrun --nproc-per-node 8 -m pytorch_impl.train --batch-size 1024  # 8 GPUs, 128 each

The loop: build, make the optimisers, resume, step, log, save. The GAN step is step.py's;
the devices and torchrun are parallel.py's; the checkpoint is checkpoint.py's.
"""
import contextlib
import io
import sys
import time

import torch

from common import data, runfiles
from common.config import UserError, build_parser, parse_config, run_main
from pytorch_impl import parallel
from pytorch_impl.layers import adam
from pytorch_impl.checkpoint import load_checkpoint, save_checkpoint
from pytorch_impl.model import build, load_portable, to_portable
from pytorch_impl.step import generate, train_step

FRAMEWORK = "pytorch"
CHECKPOINT = "checkpoint.pt"


# ========================================================================================
# the training loop

def train(cfg):
    """Train as cfg says and return the run directory. Tests call this directly."""
    rank, _, size = parallel.world()
    parallel.check_devices(cfg, size)        # UserError here: nothing is written yet
    device = parallel.pick_device(cfg.device)
    if size > 1:                             # torchrun: join the other processes
        device = parallel.start_processes(device)
    if rank == 0:
        print(f"device: {parallel.describe_device(device)}; devices: {size}{parallel.describe(cfg)}")
    with parallel.rank_zero_first():         # only rank 0 writes files
        run = runfiles.start_run(cfg, FRAMEWORK, "cpu" if device.type == "cpu" else "gpu", CHECKPOINT,
                                 writer=rank == 0, gpu_capability=parallel.gpu_capability(device))
    cfg = run.cfg

    generator, discriminator = build(cfg, cfg.seed)
    if run.init_weights:    # --init-weights: weights and BatchNorm statistics from the file
        load_portable(generator, discriminator, run.init_weights)
    # Channels-last memory for the 4-D weights: the batches arrive as NHWC viewed as NCHW
    # (the permute below), and oneDNN's convolutions then run without reordering. Measured on
    # our 2-core CPU, the real train_step alternating with the default format, idle: 1.18x as
    # fast at 32x32 (widths 32) and 1.14x at 64x64 (widths 64). The numbers are unchanged
    # up to float32 summation order; shapes and indexing stay NCHW.
    generator.to(device, memory_format=torch.channels_last)
    discriminator.to(device, memory_format=torch.channels_last)
    g_optimizer = adam(generator.parameters(), cfg)
    d_optimizer = adam(discriminator.parameters(), cfg)
    step = run.begin(lambda path: load_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, device, cfg))
    # what the step trains: with torchrun, the nets in DDP; checkpoints hold the nets inside
    g_train, d_train = (parallel.data_parallel(net, device) for net in (generator, discriminator))

    def checkpoint():
        run.checkpoint(step, lambda path: save_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, step, cfg))

    generator.train()
    discriminator.train()
    with runfiles.StepEndCtrlC() as ctrl_c:      # Ctrl-C and SIGTERM
        stop_asked = parallel.stop_at_step_end(ctrl_c)
        try:
            while step < run.last:
                epoch, start = divmod(step, run.per_epoch)
                for real in run.batches.epoch(epoch, start):
                    t0 = time.perf_counter()
                    z = data.noise(cfg.seed, step, cfg.batch_size, cfg.nz, cfg.z_dist)
                    real = torch.from_numpy(parallel.my_slice(real)).permute(0, 3, 1, 2).to(device)  # NHWC -> NCHW
                    z = torch.from_numpy(parallel.my_slice(z)).to(device)
                    m = train_step(g_train, d_train, g_optimizer, d_optimizer, real, z, cfg.precision)
                    step += 1
                    run.log_step(step, parallel.global_mean(m), time.perf_counter() - t0)
                    if step == run.last:
                        break
                    if stop_asked():     # Ctrl-C: stop after this whole step (under torchrun,
                        raise KeyboardInterrupt   # every process after the same one)
                    if run.checkpoint_due(step):       # --checkpoint-every
                        run.check_finite(step, generate(generator, run.fixed_noise, device))
                        checkpoint()
                run.end_epoch(step, generate(generator, run.fixed_noise, device))
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
    rank, _, size = parallel.world()
    prog = "python -m pytorch_impl.train"
    # Under torchrun every process reads the same command line and meets the same bad input
    # (rank 0 checks the run directory first). Rank 0 alone says what is wrong; the others
    # leave quietly, with status 0: leaving first with status 2 would make torchrun stop
    # rank 0 before it has said why.
    try:
        with contextlib.redirect_stderr(io.StringIO()) if rank else contextlib.nullcontext():
            cfg = parse_config(argv, prog)
            if "devices" not in vars(build_parser(prog).parse_args(argv)):
                cfg.devices = size         # not asked for: as many as torchrun started
        return train(cfg)
    except (UserError, SystemExit) as e:
        if rank == 0 or getattr(e, "code", None) == runfiles.TERMINATED:   # SIGTERM: 143 from all
            raise
        sys.exit(0)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    run_main(main)
