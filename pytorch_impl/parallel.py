"""Devices and data parallel for PyTorch: which device a run uses, and torchrun.

    torchrun --nproc-per-node 8 -m pytorch_impl.train --batch-size 1024   # 8 GPUs, 128 each
    torchrun --nproc-per-node 2 -m pytorch_impl.train --device cpu        # 2 CPU processes
"""
import contextlib
import io
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import _functional_collectives as funcol
from torch.nn.parallel import DistributedDataParallel

from common import runfiles
from common.config import UserError


# ========================================================================================
# devices

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
    if device.type == "cpu":      # oneDNN: PyTorch's fast CPU convolutions, on by default
        onednn = "on" if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled else "off"
        return (f"cpu ({torch.get_num_threads()} threads, oneDNN {onednn}, "
                f"kernels {torch.backends.cpu.get_cpu_capability()})")
    return device.type


def gpu_capability(device: torch.device):
    """The CUDA compute capability (for --precision auto); None on any other device."""
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None


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


class DDP(DistributedDataParallel):
    """DistributedDataParallel, and the module alone while none of its weights trains.
    G's update freezes D (requires_grad_(False)) and backpropagates through it to G: DDP
    would wait for D's gradients after that pass, which never come, and fail at the next
    step ("Expected to have finished reduction in the prior iteration")."""

    def forward(self, *args, **kwargs):
        if not any(p.requires_grad for p in self.module.parameters()):
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)


def data_parallel(net: nn.Module, device: torch.device) -> nn.Module:
    """The net with its BatchNorm synchronised across processes (each layer's statistics
    those of the global batch), wrapped in DDP; the net itself (its parameters, and the
    same module tree in its checkpoints) in a one-process run."""
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
    return DDP(net, device_ids=[device] if device.type == "cuda" else None, forward_sync_buffers=False)


def describe(cfg) -> str:
    """What the device line adds for a data-parallel run; nothing for one process."""
    _, _, size = world()
    if size == 1:
        return ""
    return (f"; data parallel over {size} processes (torchrun, {dist.get_backend()}, "
            f"{cfg.batch_size // size} images each)")


@contextlib.contextmanager
def rank_zero_first():
    """Rank 0 runs the block first: it opens the run directory (or says what is wrong with
    it) and fetches the data. The other processes run it after, and print nothing."""
    rank, _, size = world()
    if rank > 0:
        dist.barrier()
    with contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext():
        yield
    if rank == 0 and size > 1:
        dist.barrier()


def my_slice(batch: np.ndarray) -> np.ndarray:
    """This process's contiguous rows of the global batch: rank r of N takes r*B/N to (r+1)*B/N."""
    rank, _, size = world()
    n = len(batch) // size
    return batch[rank * n:(rank + 1) * n]


def global_mean(metrics: dict) -> dict:
    """The mean over processes of each one's metrics over its slice: the global batch's."""
    if not dist.is_initialized():
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float32,
                          device="cuda" if dist.get_backend() == "nccl" else "cpu")  # NCCL: GPU tensors
    dist.all_reduce(values)                # gloo has no ReduceOp.AVG: sum, then divide
    return dict(zip(metrics, (values / dist.get_world_size()).tolist()))


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
