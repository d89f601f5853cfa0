"""time_steps(cfg, n, xla) for Keras: seconds of each of n GAN steps on random data.

The steps run as in keras_impl.train, inside fit, and a callback times each one from
on_train_batch_begin to on_train_batch_end: the tf.function (or, with xla=True, the XLA
program) of train_step plus Keras' per-step work around it.
"""
import time

import keras_impl  # noqa: F401  (KERAS_BACKEND, before keras)

import keras
import numpy as np
import tensorflow as tf

from common.config import ADAM_EPS
from common.data import draw_z
from keras_impl.layers import PyTorchAdam
from keras_impl.step import GAN


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["d_loss"])          # the step's results on the host: the step is done
        self.times.append(time.perf_counter() - self.t0)


def time_steps(cfg, n, xla=False):
    gan = GAN(cfg)
    adam = lambda: PyTorchAdam(learning_rate=cfg.lr, beta_1=cfg.beta1, beta_2=cfg.beta2,
                               epsilon=ADAM_EPS)
    gan.compile(d_optimizer=adam(), g_optimizer=adam(), jit_compile=xla)
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (cfg.batch_size, cfg.image_size, cfg.image_size, cfg.channels)).astype(np.float32)
    z = np.stack([draw_z(rng, cfg.batch_size, cfg.nz, cfg.z_dist) for _ in range(n)])
    batches = tf.data.Dataset.from_tensor_slices(z).map(lambda z: (real, z))
    timer = StepTimer()
    gan.fit(batches, steps_per_epoch=n, callbacks=[timer], shuffle=False, verbose=0)
    return timer.times
