"""Train the DCGAN with JAX (Flax NNX + optax).

    python -m jax_impl.train                              # MNIST, defaults for this device
    python -m jax_impl.train --max-steps 20 --out runs/try
    python -m jax_impl.train --resume runs/try --max-steps 40
    python -m jax_impl.train --dataset celeba --data-dir data --device gpu
    python -m jax_impl.train --devices 8 --batch-size 1024   # data parallel over 8 GPUs

The jax wheel from PyPI runs on the CPU only. For an NVIDIA GPU install the CUDA build
of the same version: pip install -U "jax[cuda12]==0.10.2" (or jax[cuda13] with a CUDA 13
driver); `--device auto` then uses it.
"""
import os
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from common import data, runfiles
from common.config import ADAM_EPS, UserError, parse_config, run_main
from jax_impl.model import build, load_portable, to_portable

FRAMEWORK = "jax"
CHECKPOINT = "checkpoint.npz"


# ========================================================================================
# device

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
        return f"cpu (XLA, {os.cpu_count()} cores)"
    return device.platform


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
    program either way: jit compiles it for its inputs' shardings."""
    if len(devices) == 1:
        return devices[0], devices[0]
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    P = jax.sharding.PartitionSpec
    return jax.sharding.NamedSharding(mesh, P()), jax.sharding.NamedSharding(mesh, P("batch"))


# ========================================================================================
# one GAN step

def mixed_precision(model: nnx.Module, precision: str) -> None:
    """--precision bf16: each convolution and fully connected layer computes in bfloat16
    (Flax's `dtype`, the computation's, set on the built layers; `param_dtype`, the
    parameters', stays float32). The layer casts its float32 parameters to bfloat16 as it
    reads them, so the gradients, optax's Adam state and the updates are float32;
    BatchNorm computes and keeps its statistics in float32 (model.py)."""
    if precision == "bf16":
        for _, layer in nnx.iter_modules(model):
            if hasattr(layer, "dtype"):           # nnx.Conv, nnx.Linear, our ConvTranspose
                layer.dtype = jnp.bfloat16


def bce(logits, label: float):
    """Binary cross-entropy with logits, mean over the batch (BCEWithLogitsLoss's default)."""
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


@nnx.jit
def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    """One D update then one G update on the same z. Returns the step's metrics.
    All four objects are updated in place: nnx.jit carries their new state out.

    Data parallel (--devices N) is this same function: with real and z sharded over the
    mesh's "batch" axis and the state replicated, jit partitions the one program over the
    devices (GSPMD) and inserts the all-reduces it needs. A mean over the batch, in the
    losses and in BatchNorm alike, is the mean of the GLOBAL array, so BatchNorm's batch
    statistics are those of the whole global batch, not of each device's slice: this is
    JAX's synchronised BatchNorm, for nothing. The gradients are those of the global loss,
    identical on every device, and so are the updated (replicated) weights."""
    # G's one forward pass. nnx.vjp keeps what backprop through G needs, the part that
    # autograd's graph of `fake` plays in PyTorch; g_backward(d loss / d fake) gives G's
    # gradients. Recomputing G(z) inside a G loss function instead would run G's
    # BatchNorm a second time and average its statistics in twice.
    fake, g_backward = nnx.vjp(lambda generator: generator(z), generator, graph=False)

    # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
    def d_loss_fn(discriminator):
        d_real = discriminator(real)              # real and fake in two calls, so that
        d_fake = discriminator(fake)              # BatchNorm normalises each batch alone
        d_real, d_fake = d_real.astype(jnp.float32), d_fake.astype(jnp.float32)  # losses in float32
        return bce(d_real, 1.0) + bce(d_fake, 0.0), (d_real, d_fake)

    # What plays the part of detach(): JAX differentiates only with respect to the
    # argument it is given, here D. `fake` is a plain array inside d_loss_fn, so no
    # gradient can reach G; no jax.lax.stop_gradient is needed.
    (d_loss, (d_real, d_fake)), d_grads = nnx.value_and_grad(d_loss_fn, has_aux=True)(discriminator)
    d_optimizer.update(discriminator, d_grads)

    # (2) Update G: maximize log D(G(z)) (the non-saturating loss), with the updated D
    def g_loss_fn(fake, discriminator):
        d_fake_after = discriminator(fake).astype(jnp.float32)
        return bce(d_fake_after, 1.0), d_fake_after

    (g_loss, d_fake_after), fake_grad = nnx.value_and_grad(g_loss_fn, has_aux=True)(fake, discriminator)
    (g_grads,) = g_backward(fake_grad)            # the chain rule on into G: loss.backward()
    g_optimizer.update(generator, g_grads)

    return jnp.stack([d_loss, g_loss, jax.nn.sigmoid(d_real).mean(),
                      jax.nn.sigmoid(d_fake).mean(), jax.nn.sigmoid(d_fake_after).mean()])


def step_metrics(values) -> dict:
    # one device -> host copy per step instead of five
    return dict(zip(runfiles.METRICS, np.asarray(values).tolist()))


# ========================================================================================
# sampling

@nnx.jit
def forward(generator, z):
    return generator(z)


def generate(generator, z: np.ndarray, device) -> np.ndarray:
    """G(z) in inference mode (BatchNorm running statistics) as (N, H, W, C) float32.
    device: a jax.Device, or the replicated sharding of a multi-device run."""
    generator.eval()
    images = np.asarray(forward(generator, jax.device_put(z, device)), np.float32)  # bf16: float32
    generator.train()
    return images


# ========================================================================================
# checkpoints

# checkpoint.npz, a plain NumPy archive: one array per variable of the four objects'
# nnx.state, under "generator/main/g1/conv/kernel", "g_optimizer/opt_state/0/mu/main/...",
# and so on, with dtypes kept (Adam's step counts are integers), plus "step" and
# "config" (JSON). np.load reads it without JAX; orbax would do the same job with more
# machinery than four small pytrees need.
PARTS = ("generator", "discriminator", "g_optimizer", "d_optimizer")


def flat_state(obj) -> dict:
    return {"/".join(map(str, path)): v for path, v in nnx.to_flat_state(nnx.state(obj))}


def save_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, step, cfg):
    # The data order and the noise are functions of (seed, step): step is all the position.
    arrays = {f"{name}/{k}": np.asarray(v) for name, obj in zip(PARTS, (generator, discriminator, g_optimizer, d_optimizer))
              for k, v in flat_state(obj).items()}
    arrays.update(step=np.array(step), config=np.array(cfg.to_json()))

    def write(tmp):
        with open(tmp, "wb") as f:                # a file object: np.savez(path) adds ".npz"
            np.savez(f, **arrays)
    runfiles.atomic_save(path, write)


def load_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, device) -> int:
    # np.load raises zipfile.BadZipFile for a truncated zip (and for a flipped byte: it
    # checks each array's CRC); another framework's zip loads as raw bytes under other
    # names, which the checks below refuse. A file that is no zip at all it would try as a
    # pickle, and advise loading that unsafely: the first bytes say so first.
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        step = arrays.get("step")
        if not isinstance(step, np.ndarray) or step.shape != () or step.dtype.kind not in "iu" or step < 0:
            raise ValueError("no step in it: not a checkpoint of jax_impl.train")
        for name, obj in zip(PARTS, (generator, discriminator, g_optimizer, d_optimizer)):
            new = []
            for key, v in flat_state(obj).items():
                a = arrays.get(f"{name}/{key}")
                if not isinstance(a, np.ndarray) or a.shape != v.shape or a.dtype != v.dtype:
                    what = f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
                    raise ValueError(f"{name}/{key} is {what}, the model needs {v.dtype}{list(v.shape)}")
                new.append((tuple(key.split("/")), a))
            state = nnx.state(obj)
            for (path, var), (_, a) in zip(nnx.to_flat_state(state), new):
                var.value = jax.device_put(a, device)
            nnx.update(obj, state)
        return int(step)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
        raise runfiles.checkpoint_error(path, e) from None


# ========================================================================================
# the training loop

def train(cfg):
    """Train as cfg says and return the run directory. Tests call this directly."""
    devices = pick_devices(cfg)          # UserError here: nothing is written yet
    device = devices[0]
    state_at, batch_at = placements(devices)
    parallel = (f"; data parallel over {len(devices)} devices (mesh axis 'batch', "
                f"{cfg.batch_size // len(devices)} images each)" if len(devices) > 1 else "")
    print(f"device: {describe_device(device)}; devices: {len(devices)}{parallel}")
    jax.config.update("jax_default_device", device)    # JAX's .to(device): arrays and jitted steps
    capability = getattr(device, "compute_capability", None)      # "9.0" on a CUDA GPU
    run = runfiles.start_run(cfg, FRAMEWORK, "cpu" if device.platform == "cpu" else "gpu", CHECKPOINT,
                             gpu_capability=None if device.platform == "cpu" or not capability
                             else tuple(int(v) for v in str(capability).split(".")[:2]))
    cfg = run.cfg

    generator, discriminator = build(cfg, cfg.seed)
    if run.init_weights:    # --init-weights: weights and BatchNorm statistics from the file
        load_portable(generator, discriminator, run.init_weights)
    mixed_precision(generator, cfg.precision)
    mixed_precision(discriminator, cfg.precision)
    tx = optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=ADAM_EPS)  # optax, like PyTorch, adds eps to the bias-corrected sqrt(v)
    g_optimizer = nnx.Optimizer(generator, tx, wrt=nnx.Param)        # BatchStat (running statistics) is not trained
    d_optimizer = nnx.Optimizer(discriminator, tx, wrt=nnx.Param)
    step = 0
    if run.resume_from:
        step = load_checkpoint(run.resume_from, generator, discriminator, g_optimizer, d_optimizer, state_at)
    # jit compiles for its inputs' placement, and the step's outputs come back committed to
    # the device: commit every array now, or step 2 compiles the whole step a second time
    for obj in (generator, discriminator, g_optimizer, d_optimizer):
        nnx.update(obj, jax.device_put(nnx.state(obj), state_at))   # replicated if N > 1
    run.begin(step)

    def checkpoint():
        save_checkpoint(run.dir / CHECKPOINT, generator, discriminator, g_optimizer, d_optimizer, step, cfg)

    generator.train()
    discriminator.train()
    with runfiles.StepEndCtrlC() as ctrl_c:
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
                run.end_epoch(step, generate(generator, run.fixed_noise, state_at))
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
    return train(parse_config(argv, "python -m jax_impl.train"))


if __name__ == "__main__":
    run_main(main)
