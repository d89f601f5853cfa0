"""The layers Keras needs in order to match PyTorch's numerics: BatchNorm as PyTorch
computes it, and Adam as PyTorch computes it. The sections line up with
pytorch_impl/layers.py and jax_impl/layers.py.
"""
import keras
import tensorflow as tf  # BatchNorm and Adam ask tf.distribute how many replicas share the batch
from keras import layers, ops

from common.config import ADAM_EPS, BN_EPS, BN_MOMENTUM, INIT_STD


# ========================================================================================
# batchnorm

class BatchNorm(layers.BatchNormalization):
    """BatchNormalization that behaves like PyTorch's BatchNorm2d on a map (statistics
    over B, H, W for each channel) and BatchNorm1d on a vector (over B for each feature):
    Keras normalises every axis but the last either way. Keras' defaults differ:
    epsilon 1e-3 (PyTorch 1e-5) and momentum 0.99 = weight of the OLD value (PyTorch's 0.1
    is the weight of the NEW one, so 0.9 here). And Keras feeds its moving variance with
    the biased batch variance, where PyTorch feeds the unbiased one (times n / (n - 1),
    n = B*H*W, or B) while normalising the batch with the biased one, as this call does.

    synchronized (Keras' flag, on here): under a tf.distribute strategy of N > 1 replicas
    (keras_impl.train --devices N) each replica holds a slice of the batch, and the
    statistics are all-reduced across the replicas (ops.moments(synchronized=True): sums
    of x and x^2 and the counts), so they are the whole global batch's, as on one device;
    n is then the global count. With one replica this call keeps the plain moments, as
    Keras' synchronised path would compute the variance as E[x^2] - E[x]^2 even there."""

    def __init__(self, momentum=1 - BN_MOMENTUM, epsilon=BN_EPS, synchronized=True, **kwargs):
        kwargs.setdefault("gamma_initializer", keras.initializers.RandomNormal(1.0, INIT_STD))
        super().__init__(momentum=momentum, epsilon=epsilon, synchronized=synchronized, **kwargs)

    def call(self, x, training=None):
        # --precision bf16: bfloat16 maps in, statistics in float32, bfloat16 out; the
        # variables are float32 under Keras' mixed policy (its variable_dtype)
        dtype, x = x.dtype, ops.cast(x, "float32")
        if not training:
            return ops.cast(super().call(x, training=False), dtype)     # moving statistics
        replica = tf.distribute.get_replica_context()   # None in a strategy's cross-replica context
        replicas = replica.num_replicas_in_sync if self.synchronized and replica else 1
        mean, var = ops.moments(x, axes=tuple(range(len(x.shape) - 1)),   # biased, (C,)
                                synchronized=replicas > 1)
        n = ops.cast(ops.size(x) // ops.shape(x)[-1] * replicas, x.dtype)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
        self.moving_variance.assign(self.moving_variance * m + var * (n / (n - 1)) * (1 - m))
        return ops.cast(ops.batch_normalization(x, mean, var, axis=-1, offset=self.beta,
                                                scale=self.gamma, epsilon=self.epsilon), dtype)


# ========================================================================================
# transposed convolution

# layers.Conv2DTranspose as it is, with the kernel (kh, kw, out, in): TF computes it as the
# gradient of a convolution, which scatters each input pixel times the kernel unflipped,
# as PyTorch does. Its padding names reach PyTorch's numbers for 4x4 kernels ('valid' p0,
# 'same' p1); the paper's 5x5 stride-2 layers pad and crop by hand (model.py).


# ========================================================================================
# adam

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
    1 - 0.999^t is 1.3e-5 off at t = 1.

    Data parallel (a tf.distribute strategy of N > 1 replicas): each replica's gradient is
    that of its slice's mean loss, and apply() all-reduces them with a SUM, where PyTorch's
    DDP averages them. Divided by N first, the sum is the mean of N equal slices' means:
    the global batch's gradient, the one-device update."""

    def apply(self, grads, trainable_variables=None):
        replica = tf.distribute.get_replica_context()    # None in a strategy's cross-replica context
        n = replica.num_replicas_in_sync if replica else 1
        if n > 1:
            grads = [g / n for g in grads]
        return super().apply(grads, trainable_variables)

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


def adam(cfg) -> PyTorchAdam:
    return PyTorchAdam(learning_rate=cfg.lr, beta_1=cfg.beta1, beta_2=cfg.beta2, epsilon=ADAM_EPS)
