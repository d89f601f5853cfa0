"""One GAN step in Keras 3: a GAN(keras.Model) whose train_step updates D, then G, and
G in inference mode. fit() drives it (train.py), as keras-io's DCGAN does.

Single-device code, read top to bottom. Data parallel (parallel.py) runs this same
train_step on every replica; the optimizers average the replicas' gradients
(layers.PyTorchAdam) and fit averages the metrics it returns.
"""
import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from common import runfiles
from common.config import Config
from keras_impl.model import build


# ========================================================================================
# one GAN step

@keras.saving.register_keras_serializable(package="dcgan")
class GAN(keras.Model):
    """Both networks and both optimizers as one keras.Model, so that fit() can train them:
    fit calls train_step once per (real, z) batch."""

    def train_step(self, batch):
        """One D update then one G update on the same z. Returns the step's metrics.
        tf.GradientTape is what ties this method, and this file, to the TensorFlow backend:
        under JAX a train_step is a pure function of the variables, under PyTorch it calls
        backward()."""
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
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)

        # (2) Update G: maximize log D(G(z)) (the non-saturating loss), with the updated D
        with g_tape:                  # back on the tape that recorded G(z) above
            d_fake_after = ops.cast(self.discriminator(fake, training=True), "float32")
            g_loss = self.bce(ones, d_fake_after)
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply(g_tape.gradient(g_loss, g_vars), g_vars)

        values = [d_loss, g_loss] + [ops.mean(ops.sigmoid(d)) for d in (d_real, d_fake, d_fake_after)]
        values = dict(zip(runfiles.METRICS, values))
        for mean, v in zip(self.means, values.values()):
            mean.update_state(v)
        return {**values, **{m.name: m.result() for m in self.means}}

    # ------------------------------------------------------------------------------------
    # what fit() and the checkpoints need around it

    def __init__(self, cfg: Config, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        with mixed_precision(cfg.precision):
            self.generator, self.discriminator = build(cfg, cfg.seed)
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


# ========================================================================================
# mixed precision

@contextlib.contextmanager
def mixed_precision(precision: str):
    """--precision bf16: Keras' "mixed_bfloat16" policy, bfloat16 computation with float32
    variables, for the layers built inside the block; the global policy is put back after.
    BatchNorm computes its statistics in float32 (layers.py), and train_step casts D's
    logits to float32 before the losses."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ========================================================================================
# sampling

def generate(generator, z: np.ndarray) -> np.ndarray:
    """G(z) in inference mode (BatchNorm running statistics) as (N, H, W, C) float32."""
    return ops.convert_to_numpy(generator(z, training=False)).astype(np.float32)   # bf16: float32
