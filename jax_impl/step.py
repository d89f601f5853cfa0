"""One GAN step in JAX (Flax NNX + optax): the losses, D's update, G's update, and G in
inference mode.

Single-device code, read top to bottom. Data parallel (--devices N) is this same code:
parallel.py places its inputs over a mesh, and jit partitions the program.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from common import runfiles


# ========================================================================================
# one GAN step

@nnx.jit
def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    """One D update then one G update on the same z. Returns the step's metrics.
    All four objects are updated in place: nnx.jit carries their new state out.
    Data parallel runs this same function on sharded inputs (parallel.placements)."""
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


def bce(logits, label: float):
    """Binary cross-entropy with logits, mean over the batch (BCEWithLogitsLoss's default)."""
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


# ========================================================================================
# mixed precision

def mixed_precision(model: nnx.Module, precision: str) -> None:
    """--precision bf16: each convolution and fully connected layer computes in bfloat16
    (Flax's `dtype`, the computation's, set on the built layers; `param_dtype`, the
    parameters', stays float32). The layer casts its float32 parameters to bfloat16 as it
    reads them, so the gradients, optax's Adam state and the updates are float32;
    BatchNorm computes and keeps its statistics in float32 (layers.py)."""
    if precision == "bf16":
        for _, layer in nnx.iter_modules(model):
            if hasattr(layer, "dtype"):           # nnx.Conv, nnx.Linear, our ConvTranspose
                layer.dtype = jnp.bfloat16


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
