"""Devices and data parallel for JAX: which device a run uses, and a one-axis mesh over
several (--devices N), on which jit partitions the one train_step.

    python -m jax_impl.train --devices 8 --batch-size 1024   # data parallel over 8 GPUs
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m jax_impl.train --devices 2
"""
import os

import jax
import numpy as np

from common.config import UserError


# ========================================================================================
# devices

def pick_device(wanted: str) -> jax.Device:
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:                  # "Unknown backend: 'gpu' requested": CPU-only jaxlib
        gpus = []
    if wanted == "gpu" and not gpus:
        raise UserError("--device gpu: JAX sees no GPU (the jax wheel from PyPI is CPU-only; "
                        "for CUDA: pip install -U \"jax[cuda12]==0.10.2\"); use --device cpu or auto")
    if wanted in ("auto", "gpu") and gpus:
        return gpus[0]
    return jax.devices("cpu")[0]


def describe_device(device: jax.Device) -> str:
    if device.platform == "gpu":
        return f"gpu ({device.device_kind})"
    if device.platform == "cpu":
        return f"cpu (XLA:CPU backend, {os.cpu_count()} cores)"    # JAX's one CPU path
    return device.platform


def gpu_capability(device: jax.Device):
    """The CUDA compute capability, "9.0" read as (9, 0), for --precision auto; None on a CPU."""
    capability = getattr(device, "compute_capability", None)
    if device.platform == "cpu" or not capability:
        return None
    return tuple(int(v) for v in str(capability).split(".")[:2])


# ========================================================================================
# data parallel

def pick_devices(cfg) -> list:
    """The cfg.devices local devices of the kind --device picks, checked before anything
    is written: a mesh needs that many, and each takes an equal slice of the batch."""
    first = pick_device(cfg.device)
    devices = jax.local_devices(backend=first.platform)
    n = cfg.devices
    if n > len(devices):
        raise UserError(f"--devices {n}: JAX sees {len(devices)} {first.platform} device"
                        f"{'s' if len(devices) != 1 else ''}; on a CPU, XLA_FLAGS="
                        f"--xla_force_host_platform_device_count={n} makes {n} of them")
    if cfg.batch_size % n:
        raise UserError(f"--devices {n}: --batch-size {cfg.batch_size} does not split into "
                        f"{n} equal slices; give a batch size divisible by {n}")
    return [first] + [d for d in devices if d != first][:n - 1]


def placements(devices: list):
    """Where the model and optimiser state go, and where a batch (real images, z) goes.
    One device: both on it. N devices: a one-axis Mesh named "batch"; the state is
    replicated on each device (PartitionSpec()), and the batch axis of real and z is cut
    into N slices, one per device (PartitionSpec("batch")). train_step is the same
    program either way: jit compiles it for its inputs' shardings (GSPMD) and inserts the
    all-reduces it needs. A mean over the batch, in the losses and in BatchNorm alike, is
    the mean of the GLOBAL array, so BatchNorm's batch statistics are those of the whole
    global batch, not of each device's slice: this is JAX's synchronised BatchNorm, for
    nothing. The gradients are those of the global loss, identical on every device, and
    so are the updated (replicated) weights."""
    if len(devices) == 1:
        return devices[0], devices[0]
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    P = jax.sharding.PartitionSpec
    return jax.sharding.NamedSharding(mesh, P()), jax.sharding.NamedSharding(mesh, P("batch"))


def describe(devices: list, cfg) -> str:
    """What the device line adds for a data-parallel run; nothing for one device."""
    if len(devices) == 1:
        return ""
    return (f"; data parallel over {len(devices)} devices (mesh axis 'batch', "
            f"{cfg.batch_size // len(devices)} images each)")
