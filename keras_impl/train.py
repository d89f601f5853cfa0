"""Train the DCGAN with Keras 3 on TensorFlow: a GAN(keras.Model) with its own train_step,
driven by fit() and callbacks.

    python -m keras_impl.train                          # MNIST, defaults for this device
    python -m keras_impl.train --max-steps 20 --out runs/try
    python -m keras_impl.train --resume runs/try --max-steps 40
    python -m keras_impl.train --dataset celeba --data-dir data --device gpu
    python -m keras_impl.train --devices 8 --batch-size 1024    # data parallel over 8 GPUs
    python -m keras_impl.train --devices 2 --dataset synthetic --max-steps 6   # 2 CPU "devices"
"""
import dataclasses
import functools
import json
import os
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from common import data, runfiles
from common.config import ADAM_EPS, Config, UserError, parse_config, run_main
from common.weights import network_diff
from keras_impl.model import build, load_portable, to_portable

FRAMEWORK = "keras"
CHECKPOINT = "checkpoint.keras"


# ========================================================================================
# device

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
    return f"cpu ({threads} threads)"


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


def distribute(strategy, batches, cfg):
    """fit's data: the global (real, z) batches that batches() yields, as a tf.data.Dataset
    cut into one slice per replica: experimental_distribute_dataset gives replica r the rows
    r*B/N..(r+1)*B/N of each batch (the default strategy: the whole batch). A dataset and not
    the generator itself, because fit under a strategy takes one batch to build the model
    and then starts the epoch over (TensorFlowTrainer._maybe_symbolic_build): a generator
    would lose that batch, a dataset calls batches() again from its first. The batch axis
    is left unknown, as Keras leaves it for a generator: a known one lets TensorFlow pick
    other kernels, and one device's numbers would move in their last bit (--arch cs231n)."""
    spec = (tf.TensorSpec((None, cfg.image_size, cfg.image_size, cfg.channels), tf.float32),
            tf.TensorSpec((None, cfg.nz), tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    return strategy.experimental_distribute_dataset(dataset.prefetch(tf.data.AUTOTUNE))


# ========================================================================================
# one GAN step

class PyTorchAdam(keras.optimizers.Adam):
    """Adam as PyTorch (and optax) computes it. Keras adds epsilon to the uncorrected sqrt(v)
    and folds both bias corrections into the step size:
        keras    w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
        pytorch  w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    so Keras' eps acts like PyTorch's times 1 / sqrt(1 - b2^t): 32x at step 1, 10x at 10,
    3.2x at 100, 1.26x at 1000. With eps 1e-8 that moves a weight whose |gradient| is g by
    about lr * 3e-7 / g at the first step: 6e-8 for g = 1e-3, but 6e-5 for g = 1e-6, which
    would break a 1e-5 comparison. This update_step is PyTorch's, in PyTorch's order, with
    the bias corrections in float64 as PyTorch has them (Python floats): in float32,
    1 - 0.999^t is 1.3e-5 off at t = 1."""

    def update_step(self, gradient, variable, learning_rate):
        g = ops.cast(gradient, variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, (g - m) * (1 - self.beta_1))
        self.assign(v, v * self.beta_2 + ops.square(g) * (1 - self.beta_2))
        t = ops.cast(self.iterations + 1, "float64")
        bias1 = 1 - ops.power(ops.convert_to_tensor(self.beta_1, "float64"), t)
        bias2 = 1 - ops.power(ops.convert_to_tensor(self.beta_2, "float64"), t)
        step_size = ops.cast(ops.cast(learning_rate, "float64") / bias1, variable.dtype)
        denom = ops.sqrt(v) / ops.cast(ops.sqrt(bias2), variable.dtype) + self.epsilon
        self.assign_sub(variable, step_size * (m / denom))


@keras.saving.register_keras_serializable(package="dcgan")
class GAN(keras.Model):
    """Both networks and both optimizers as one keras.Model, so that fit() can train them:
    fit calls train_step once per (real, z) batch."""

    def __init__(self, cfg: Config, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        # --precision bf16: Keras' "mixed_bfloat16" policy, bfloat16 computation with float32
        # variables, for the layers built now; the global policy is put back after
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16" if cfg.precision == "bf16" else "float32")
        try:
            self.generator, self.discriminator = build(cfg, cfg.seed)
        finally:
            keras.config.set_dtype_policy(previous)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)  # mean over the batch
        # keras.metrics are running means, reset by fit when an epoch begins: what fit's
        # History reports. The run files take each step's own values from train_step.
        self.means = [keras.metrics.Mean(name=f"mean_{k}") for k in runfiles.METRICS]
        self.built = True         # the networks are built from cfg; the GAN has no call()

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        # Made now rather than at the first step, so that a checkpoint can be loaded into them.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return self.means

    @property
    def step(self) -> int:
        """Steps trained so far: the optimizers count their updates and save the count."""
        return int(self.g_optimizer.iterations.numpy())    # int() of a mirrored one fails

    def get_config(self):
        return {"config": dataclasses.asdict(self.cfg)}

    @classmethod
    def from_config(cls, config):
        return cls(Config.from_dict(config["config"]))

    def train_step(self, batch):
        """One D update then one G update on the same z. Returns the step's metrics.
        tf.GradientTape is what ties this method, and this file, to the TensorFlow backend:
        under JAX a train_step is a pure function of the variables, under PyTorch it calls
        backward().

        Data parallel (--devices N, a MirroredStrategy): fit runs this method on every
        replica at once, each on its own slice of the global batch (B/N rows of real and
        z), and each optimizer's apply() all-reduces the gradients with a SUM before it
        updates the mirrored variables. So each replica differentiates its slice's mean
        loss divided by N: the sum over the replicas is the global batch's mean, and every
        replica applies the one-device gradient. (Keras' losses divide by N themselves only
        when they return one value per sample; BCE of (B,) logits returns their mean, a
        scalar, unscaled.) BatchNorm all-reduces its statistics (model.BatchNorm)."""
        replica = tf.distribute.get_replica_context()  # without a strategy: the one replica
        n = replica.num_replicas_in_sync
        # (real, z) from fit's data, or (real, z, None) from train_on_batch(real, z)
        real, z, _ = keras.utils.unpack_x_y_sample_weight(batch)
        ones = ops.ones((ops.shape(real)[0],))
        zeros = ops.zeros((ops.shape(real)[0],))
        with tf.GradientTape() as g_tape:
            fake = self.generator(z, training=True)   # the step's only G forward, so G's
                                                      # BatchNorm statistics move once

        # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
        with tf.GradientTape() as d_tape:
            d_real = self.discriminator(real, training=True)  # real and fake in two calls, so
            d_fake = self.discriminator(fake, training=True)  # BatchNorm normalises each alone;
            d_real, d_fake = ops.cast(d_real, "float32"), ops.cast(d_fake, "float32")  # float32
            d_loss = (self.bce(ones, d_real)                   # fake was made outside d_tape, so
                      + self.bce(zeros, d_fake))               # D's loss cannot reach G (detach())
            d_share = d_loss / n                               # this replica's share (see above)
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply(d_tape.gradient(d_share, d_vars), d_vars)

        # (2) Update G: maximize log D(G(z)) (the non-saturating loss), with the updated D
        with g_tape:                  # back on the tape that recorded G(z) above
            d_fake_after = ops.cast(self.discriminator(fake, training=True), "float32")
            g_loss = self.bce(ones, d_fake_after)
            g_share = g_loss / n
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply(g_tape.gradient(g_share, g_vars), g_vars)

        values = [d_loss, g_loss] + [ops.mean(ops.sigmoid(d)) for d in (d_real, d_fake, d_fake_after)]
        if n > 1:      # the global batch's: the mean over the replicas' equal slices' means
            values = replica.all_reduce("MEAN", values)
        values = dict(zip(runfiles.METRICS, values))
        for mean, v in zip(self.means, values.values()):
            mean.update_state(v)
        return {**values, **{m.name: m.result() for m in self.means}}


# ========================================================================================
# sampling

def generate(generator, z: np.ndarray) -> np.ndarray:
    """G(z) in inference mode (BatchNorm running statistics) as (N, H, W, C) float32."""
    return ops.convert_to_numpy(generator(z, training=False)).astype(np.float32)   # bf16: float32


# ========================================================================================
# checkpoints

def save_checkpoint(path, gan):
    # Keras' own format: the GAN's config, and every variable it tracks (both networks, the
    # optimizers' moments and step counts). The data order and the noise are functions of
    # (seed, step): the step is all the position.
    runfiles.atomic_save(path, gan.save)


def load_checkpoint(path, gan) -> int:
    # A .keras file is a zip: a truncated or non-zip file raises zipfile.BadZipFile (a
    # flipped byte too: the zip's CRC), another framework's zip has no config.json (and no
    # model.weights.h5: KeyError). A .keras of another network would fail in load_weights
    # with a page about an optimizer variable; its config.json says which network it holds.
    try:
        with zipfile.ZipFile(path) as z:
            if "config.json" not in z.namelist():
                raise ValueError("no config.json in it: not a checkpoint of keras_impl.train")
            saved = json.loads(z.read("config.json"))["config"]["config"]
        if network_diff(saved, gan.cfg):
            raise ValueError(f"it holds another network: {network_diff(saved, gan.cfg)}")
        gan.load_weights(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise runfiles.checkpoint_error(path, e) from None
    return gan.step


# ========================================================================================
# the training loop
#
# fit() is the loop and callbacks are its body's bookkeeping. fit runs one epoch of the data
# per call: Keras gives every epoch of a fit the same number of steps, and a run resumed
# mid-epoch, or stopped by --max-steps, has a shorter first or last one.

def epoch_batches(run, epoch, start):
    """(real, z) for each step of `epoch` from batch `start`; z is common's noise of the
    step, made here and not in the model, so that every framework trains on the same z."""
    cfg = run.cfg
    for step, real in enumerate(run.batches.epoch(epoch, start), epoch * run.per_epoch + start):
        yield real, data.noise(cfg.seed, step, cfg.batch_size, cfg.nz, cfg.z_dist)


class RunFiles(keras.callbacks.Callback):
    """After each step: a metrics row and the progress bar. After each epoch: the log line,
    the fixed-noise grid and the checkpoint. The first Ctrl-C (runfiles.StepEndCtrlC, as in
    the other two) sets model.stop_training, which fit reads after each step, as
    EarlyStopping does: the checkpoint, the weights and metrics.csv all end at a step that
    was logged. The epoch that stops is not ended here: train saves its checkpoint."""

    def __init__(self, run, checkpoint, ctrl_c):
        super().__init__()
        self.run, self.checkpoint, self.ctrl_c = run, checkpoint, ctrl_c

    def on_train_batch_begin(self, batch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        m = {k: float(logs[k]) for k in runfiles.METRICS}
        self.run.log_step(self.model.step, m, time.perf_counter() - self.t0)
        if self.ctrl_c.asked:      # also when Ctrl-C fell between two fits (fit resets the flag)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if not self.ctrl_c.asked:
            images = generate(self.model.generator, self.run.fixed_noise)
            self.run.end_epoch(self.model.step, images)
            self.checkpoint()


def train(cfg):
    """Train as cfg says and return the run directory. Tests call this directly."""
    device = pick_device(cfg.device)
    strategy = pick_strategy(cfg, device)        # UserError here: nothing is written yet
    n = strategy.num_replicas_in_sync
    parallel = (f"; data parallel over {n} replicas (tf.distribute.MirroredStrategy, "
                f"{cfg.batch_size // n} images each)" if n > 1 else "")
    print(f"device: {describe_device(device)}; devices: {n}{parallel}")
    run = runfiles.start_run(cfg, FRAMEWORK, device, CHECKPOINT, gpu_capability=gpu_capability(device))
    cfg = run.cfg

    # Made in the strategy's scope, the variables (weights, BatchNorm statistics, Adam's
    # moments) are mirrored on every replica, and fit runs train_step on each of them.
    with strategy.scope():
        gan = GAN(cfg)              # generator and discriminator, initialised from cfg.seed
        if run.init_weights:  # --init-weights: weights and BatchNorm statistics from the file
            load_portable(gan.generator, gan.discriminator, run.init_weights)
        adam = lambda: PyTorchAdam(learning_rate=cfg.lr, beta_1=cfg.beta1, beta_2=cfg.beta2,
                                   epsilon=ADAM_EPS)
        # Keras' default jit_compile="auto" would compile train_step with XLA; this is the
        # plain tf.function (benchmarks/bench_keras.py times both).
        gan.compile(d_optimizer=adam(), g_optimizer=adam(), jit_compile=False)
        if run.resume_from:
            load_checkpoint(run.resume_from, gan)
    run.begin(gan.step)

    def checkpoint():
        save_checkpoint(run.dir / CHECKPOINT, gan)

    def stop_fit():
        gan.stop_training = True

    with runfiles.StepEndCtrlC(on_ask=stop_fit) as ctrl_c:
        files = RunFiles(run, checkpoint, ctrl_c)
        try:
            while gan.step < run.last and not ctrl_c.asked:
                epoch, start = divmod(gan.step, run.per_epoch)
                steps = min(run.per_epoch, run.last - epoch * run.per_epoch) - start
                batches = distribute(strategy, lambda: epoch_batches(run, epoch, start), cfg)
                gan.fit(batches, steps_per_epoch=steps,
                        initial_epoch=epoch, epochs=epoch + 1, callbacks=[files], shuffle=False,
                        verbose=0)
            if ctrl_c.asked:            # fit stopped after the step that Ctrl-C fell in
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not ctrl_c.hard:  # a second Ctrl-C may have fallen mid-step: keep the epoch's files
                checkpoint()
            run.interrupted(gan.step, hard=ctrl_c.hard)
            raise
        finally:
            if not ctrl_c.hard:
                run.save_weights(to_portable(gan.generator, gan.discriminator), gan.step)
            run.close(gan.step)
    return run.dir


def main(argv=None):
    return train(parse_config(argv, "python -m keras_impl.train"))


if __name__ == "__main__":
    run_main(main)
