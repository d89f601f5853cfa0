"""Train the DCGAN with PyTorch.

    python -m pytorch_impl.train                          # MNIST, defaults for this device
    python -m pytorch_impl.train --max-steps 20 --out runs/try
    python -m pytorch_impl.train --resume runs/try --max-steps 40
    python -m pytorch_impl.train --dataset celeba --data-dir data --device gpu
    torchrun --nproc-per-node 8 -m pytorch_impl.train --batch-size 1024  # 8 GPUs, 128 each
"""
import contextlib
import io
import os
import pickle
import sys
import time
import zipfile

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed import _functional_collectives as funcol
from torch.nn.parallel import DistributedDataParallel

from common import data, runfiles
from common.config import ADAM_EPS, UserError, build_parser, parse_config, run_main
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
# data parallel

# torchrun starts one process per device and tells each, in its environment, who it is;
# without torchrun the run is one process. Every process builds the same nets (the same
# seed), reads the same global batch and z, trains on its own contiguous slice of them, and
# DistributedDataParallel averages the gradients: the mean of N equal slices' mean losses
# is the global batch's mean loss, so the step is the one-process step on the whole batch.

def world() -> tuple[int, int, int]:
    """(rank, local rank, number of processes) as torchrun sets them; (0, 0, 1) without it."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 0, 1
    return int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])


def check_devices(cfg, size: int) -> None:
    """--devices N must be torchrun's process count, and the batch must split into N
    equal slices. Every process checks, before anything is written."""
    launch = f"torchrun --nproc-per-node {cfg.devices} -m pytorch_impl.train ..."
    if cfg.devices != size and size == 1:
        raise UserError(f"--devices {cfg.devices}: PyTorch trains on {cfg.devices} devices with "
                        f"one process each; start them with torchrun: {launch}")
    if cfg.devices != size:
        raise UserError(f"--devices {cfg.devices}: torchrun started {size} processes, one per "
                        f"device; leave --devices out, or start {launch}")
    if cfg.batch_size % size:
        raise UserError(f"--batch-size {cfg.batch_size} does not split into {size} equal slices, "
                        f"one per process; give a batch size divisible by {size}")


def start_processes(device: torch.device) -> torch.device:
    """Join torchrun's process group (NCCL between GPUs, gloo between CPU processes);
    returns this process's own device."""
    if device.type == "cpu":
        dist.init_process_group("gloo")
        return device
    if device.type != "cuda":
        raise UserError(f"--device: data parallel runs on CUDA GPUs or the CPU, not {device.type}")
    here, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", 1)), torch.cuda.device_count()
    if here > gpus:              # the same check on every process: rank 0 says it
        raise UserError(f"torchrun started {here} processes on this machine, which has {gpus} "
                        f"GPU{'s' if gpus != 1 else ''}: one per GPU, --nproc-per-node {gpus} at most")
    device = torch.device("cuda", world()[1])
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", device_id=device)   # bound to this GPU now, for barrier()
    return device


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """What nn.SyncBatchNorm does, for CPU tensors. torch 2.14 refuses them twice: the
    layer, in training mode ("ValueError: SyncBatchNorm expected input tensor to be on GPU
    or XPU or privateuseone"), and DDP, around it ("ValueError: SyncBatchNorm layers only
    work with GPU modules"). The same statistics by hand: one all-reduce of each channel's
    sum and sum of squares over all processes, inside autograd: the backward pass of
    funcol.all_reduce (which torch 2.14 names in place of its deprecated
    torch.distributed.nn.functional.all_reduce) all-reduces the gradient, so the backward
    pass is the whole batch's too."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected a batch of at least 2 dimensions, got {x.dim()}")

    def forward(self, x):
        if not self.training:              # running statistics: nothing to synchronise
            return super().forward(x)
        dims = [0, *range(2, x.dim())]     # all but the channels: (B, C, H, W) or (B, C)
        n = x.numel() // x.shape[1] * dist.get_world_size()      # values per channel, all slices
        sums = funcol.all_reduce(torch.stack([x.sum(dims), (x * x).sum(dims)]), "sum", dist.group.WORLD)
        mean = sums[0] / n
        var = sums[1] / n - mean * mean    # biased: what the batch is normalised with
        with torch.no_grad():              # PyTorch averages the UNBIASED variance in
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
            self.num_batches_tracked.add_(1)
        shape = [1, -1] + [1] * (x.dim() - 2)
        return ((x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
                * self.weight.view(shape) + self.bias.view(shape))


def data_parallel(net: nn.Module, device: torch.device) -> nn.Module:
    """The net with its BatchNorm synchronised across processes (each layer's statistics
    those of the global batch), wrapped in DistributedDataParallel; the net itself (its
    parameters, and the same module tree in its checkpoints) in a one-process run."""
    if not dist.is_initialized():
        return net
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(net)  # in place below the top: same parameters
    else:
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.__class__ = CPUSyncBatchNorm    # same parameters and buffers, its own forward
    # forward_sync_buffers=False: synchronised BatchNorm keeps the running statistics equal
    # on every process already; DDP would otherwise copy rank 0's before every forward pass
    return DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, DistributedDataParallel) else net


def my_slice(batch: np.ndarray) -> np.ndarray:
    """This process's contiguous rows of the global batch: rank r of N takes r*B/N to (r+1)*B/N."""
    rank, _, size = world()
    n = len(batch) // size
    return batch[rank * n:(rank + 1) * n]


def global_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean over processes of each one's means over its slice: the global batch's."""
    if dist.is_initialized():
        dist.all_reduce(values)            # gloo has no ReduceOp.AVG: sum, then divide
        values = values / dist.get_world_size()
    return values


def stop_at_step_end(ctrl_c: runfiles.StepEndCtrlC):
    """Whether to stop after this step: Ctrl-C is a flag read after each step
    (runfiles.StepEndCtrlC), so a checkpoint never holds D updated and G not. Under torchrun,
    which passes SIGINT on to every process, each meets it at its own point of a step: the
    processes compare their flags after each step, so that all stop after the same one and
    rank 0 saves it."""
    if not dist.is_initialized():
        return lambda: ctrl_c.asked

    def any_asked() -> bool:
        flag = torch.tensor([float(ctrl_c.asked)],
                            device="cuda" if dist.get_backend() == "nccl" else "cpu")  # NCCL: GPU tensors
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
    return any_asked


# ========================================================================================
# one GAN step

def mixed_precision(device: torch.device, precision: str):
    """--precision bf16: torch.autocast runs convolutions and matmuls in bfloat16 and leaves
    the parameters, their gradients and Adam's moments float32. BatchNorm gets bfloat16
    maps, keeps gamma, beta and its running statistics float32 (tests/test_precision.py).
    No GradScaler: bfloat16 has float32's 8-bit exponent, so small gradients do not
    underflow as they do in float16, whose 5-bit exponent is what the scaler is for."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


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
        d_fake_after = unwrap(discriminator)(fake).float()   # (DDP, outside, would wait for them)
    g_loss = F.binary_cross_entropy_with_logits(d_fake_after, ones)
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()

    # one device -> host copy per step instead of five
    values = global_mean(torch.stack([d_loss, g_loss, torch.sigmoid(d_real).mean(),
                                      torch.sigmoid(d_fake).mean(), torch.sigmoid(d_fake_after).mean()]))
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
    rank, _, size = world()
    check_devices(cfg, size)         # UserError here: nothing is written yet
    device = pick_device(cfg.device)
    if size > 1:
        device = start_processes(device)
    parallel = (f"; data parallel over {size} processes (torchrun, {dist.get_backend()}, "
                f"{cfg.batch_size // size} images each)" if size > 1 else "")
    if rank == 0:
        print(f"device: {describe_device(device)}; devices: {size}{parallel}")
    if rank > 0:                     # rank 0 first: it opens the run directory (or says what
        dist.barrier()               # is wrong with it) and fetches the data if need be
    with contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext():
        run = runfiles.start_run(cfg, FRAMEWORK, "cpu" if device.type == "cpu" else "gpu",
                                 CHECKPOINT, writer=rank == 0,   # only rank 0 writes files
                                 gpu_capability=torch.cuda.get_device_capability(device)
                                 if device.type == "cuda" else None)
    if rank == 0 and size > 1:
        dist.barrier()
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
    betas = (cfg.beta1, cfg.beta2)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=betas, eps=ADAM_EPS)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=betas, eps=ADAM_EPS)
    step = 0
    if run.resume_from:
        step = load_checkpoint(run.resume_from, generator, discriminator, g_optimizer, d_optimizer, device)
    # what the step trains: with torchrun, the nets in DDP; checkpoints hold the nets inside
    g_train, d_train = data_parallel(generator, device), data_parallel(discriminator, device)
    run.begin(step)

    def checkpoint():
        if run.writer:
            save_checkpoint(run.dir / CHECKPOINT, generator, discriminator, g_optimizer, d_optimizer, step, cfg)

    generator.train()
    discriminator.train()
    with runfiles.StepEndCtrlC() as ctrl_c:
        stop_asked = stop_at_step_end(ctrl_c)
        try:
            while step < run.last:
                epoch, start = divmod(step, run.per_epoch)
                for real in run.batches.epoch(epoch, start):
                    t0 = time.perf_counter()
                    real = torch.from_numpy(my_slice(real)).permute(0, 3, 1, 2).to(device)  # NHWC -> NCHW
                    z = torch.from_numpy(my_slice(data.noise(cfg.seed, step, cfg.batch_size, cfg.nz, cfg.z_dist))).to(device)
                    m = train_step(g_train, d_train, g_optimizer, d_optimizer, real, z, cfg.precision)
                    step += 1
                    run.log_step(step, m, time.perf_counter() - t0)
                    if step == run.last:
                        break
                    if stop_asked():     # Ctrl-C: stop after this whole step (under torchrun,
                        raise KeyboardInterrupt   # every process after the same one)
                run.end_epoch(step, generate(generator, run.fixed_noise, device))
                checkpoint()
        except KeyboardInterrupt:
            if not ctrl_c.hard:  # a second Ctrl-C may have fallen mid-step: keep the epoch's files
                checkpoint()
            run.interrupted(step, hard=ctrl_c.hard)
            raise
        finally:
            if not ctrl_c.hard:
                run.save_weights(to_portable(generator, discriminator), step)
            run.close(step)
    return run.dir


def main(argv=None):
    rank, _, size = world()
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
    except (UserError, SystemExit):
        if rank == 0:
            raise
        sys.exit(0)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    run_main(main)
