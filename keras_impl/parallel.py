"""Devices and data parallel for Keras: which device a run uses, and
tf.distribute.MirroredStrategy over several (--devices N).

    python -m keras_impl.train --devices 8 --batch-size 1024    # data parallel over 8 GPUs
    python -m keras_impl.train --devices 2 --dataset synthetic --max-steps 6   # 2 CPU "devices"
"""
import functools
import os

import tensorflow as tf

from common.config import UserError


# ========================================================================================
# devices

def pick_device(wanted: str) -> str:
    """'gpu' or 'cpu'. TensorFlow puts every op on a GPU when it sees one, so --device cpu
    hides the GPUs, which it can only do before it runs its first op."""
    gpus = tf.config.list_physical_devices("GPU")
    if wanted == "gpu" and not gpus:
        raise UserError("--device gpu: TensorFlow sees no GPU (tf.config.list_physical_devices"
                        "('GPU') is empty); use --device cpu or auto")
    if wanted == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            raise UserError("--device cpu: TensorFlow has started on the GPU already in this "
                            "process; start a new one") from None
    return "gpu" if gpus and wanted != "cpu" else "cpu"


def gpu_capability(device: str) -> tuple[int, int] | None:
    """The CUDA compute capability of the GPU a run uses (for --precision auto); None on a CPU."""
    if device != "gpu":
        return None
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    return tuple(details.get("compute_capability", (0, 0)))


def describe_device(device: str) -> str:
    if device == "gpu":
        gpu = tf.config.list_physical_devices("GPU")[0]
        details = tf.config.experimental.get_device_details(gpu)
        return f"gpu ({details.get('device_name', gpu.name)})"
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return f"cpu ({threads} threads, {onednn()})"


def onednn() -> str:
    """Whether TensorFlow runs its oneDNN kernels, as TensorFlow itself decides (the build,
    this CPU and TF_ENABLE_ONEDNN_OPTS, which keras_impl/__init__.py sets unless you did)."""
    import keras_impl
    try:
        from tensorflow.python.util import _pywrap_util_port     # what TF asks itself
        on = _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):
        return "oneDNN unknown"
    who = "yours" if keras_impl.ONEDNN_ASKED_BY_USER else "set by keras_impl"
    return f"oneDNN {'on' if on else 'off'}, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')} ({who})"


# ========================================================================================
# data parallel

def pick_strategy(cfg, device: str) -> tf.distribute.Strategy:
    """tf.distribute.MirroredStrategy over cfg.devices local devices of the kind --device
    picked: one replica per device, every variable mirrored on each, the batch cut into N
    equal slices. One device: TensorFlow's default strategy, i.e. no replicas and no
    all-reduce, the single-device run as it always was. Checked before anything is written."""
    n = cfg.devices
    if cfg.batch_size % n:
        raise UserError(f"--devices {n}: --batch-size {cfg.batch_size} does not split into "
                        f"{n} equal slices; give a batch size divisible by {n}")
    if n == 1:
        return tf.distribute.get_strategy()
    if device == "gpu":
        found = len(tf.config.list_physical_devices("GPU"))
        if n > found:
            raise UserError(f"--devices {n}: TensorFlow sees {found} GPU{'s' if found != 1 else ''}"
                            f" (tf.config.list_physical_devices('GPU'))")
        return mirrored(tuple(f"/gpu:{i}" for i in range(n)))
    return mirrored(tuple(logical_cpus(n)))


@functools.cache
def mirrored(devices: tuple) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per device list and process, however often train() runs: a
    second one over the same devices numbers its all-reduces as the first did, and its
    first all-reduce then fails with "Shape mismatch in the collective instance 100"
    (tensorflow/tensorflow#62790)."""
    return tf.distribute.MirroredStrategy(list(devices))


def logical_cpus(n: int) -> list:
    """TensorFlow sees the CPU as one device; it splits it into n logical devices, but only
    before it initialises its devices (its first op does that). keras_impl/__init__.py and
    pick_device only look at the physical devices, which leaves that still possible."""
    if n > os.cpu_count():
        raise UserError(f"--devices {n}: this machine has {os.cpu_count()} CPU cores; on a CPU, "
                        f"--devices makes one logical TensorFlow device per core at most")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:                # "Virtual devices cannot be modified after being initialized"
        have = len(tf.config.list_logical_devices("CPU"))
        if have < n:
            raise UserError(f"--devices {n}: TensorFlow has started in this process with {have} "
                            f"CPU device{'s' if have != 1 else ''} already; run keras_impl.train "
                            f"in a new process") from None
    return [f"/cpu:{i}" for i in range(n)]


def distribute(strategy, batch_of_step, first, last, cfg):
    """fit's data: the global (real, z) batch of each step from first to last (batch_of_step
    gives one), as a tf.data.Dataset cut into one slice per replica:
    experimental_distribute_dataset gives replica r the rows r*B/N..(r+1)*B/N of each batch
    (the default strategy: the whole batch). A dataset of step numbers, each mapped to its
    batch by tf.numpy_function, because fit under a strategy takes one batch to build the
    model and then starts the epoch over (TensorFlowTrainer._maybe_symbolic_build): the
    dataset starts again from `first`. Not Dataset.from_generator: with TensorFlow's own
    (Eigen) kernels, TF_ENABLE_ONEDNN_OPTS=0, a from_generator pipeline made every step of
    the bare command 1.9x slower (0.34 against 0.18 s on a 2-core Xeon, model 167; the same
    batches from a list through from_generator too; docs/speed.md). The batch axis is left
    unknown: a known one lets TensorFlow pick other kernels, and one device's numbers would
    move in their last bit (--arch cs231n)."""
    shapes = ((None, cfg.image_size, cfg.image_size, cfg.channels), (None, cfg.nz))

    def batch(step):
        real, z = tf.numpy_function(batch_of_step, [step], (tf.float32, tf.float32), stateful=False)
        real.set_shape(shapes[0])
        z.set_shape(shapes[1])
        return real, z
    dataset = tf.data.Dataset.range(first, last).map(batch)      # in order, one at a time
    return strategy.experimental_distribute_dataset(dataset.prefetch(tf.data.AUTOTUNE))


def describe(strategy, cfg) -> str:
    """What the device line adds for a data-parallel run; nothing for one device."""
    n = strategy.num_replicas_in_sync
    if n == 1:
        return ""
    return (f"; data parallel over {n} replicas (tf.distribute.MirroredStrategy, "
            f"{cfg.batch_size // n} images each)")
