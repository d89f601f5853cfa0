"""DCGAN generator and discriminator in Keras 3 (NHWC; kernels HWIO, transposed HWOI).

    python -m keras_impl.model --image-size 64 --channels 3   # layer table and totals

keras_impl/__init__.py, which Python runs before this module, sets KERAS_BACKEND.
"""
import keras
import numpy as np
from keras import layers, ops

from common import spec
from common.config import BN_EPS, BN_MOMENTUM, INIT_STD, LEAKY_SLOPE, Config

# ----------------------------------------------------------------------------------------
# networks

class BatchNorm(layers.BatchNormalization):
    """BatchNormalization that behaves like PyTorch's BatchNorm2d. Keras' defaults differ:
    epsilon 1e-3 (PyTorch 1e-5) and momentum 0.99 = weight of the OLD value (PyTorch's 0.1
    is the weight of the NEW one, so 0.9 here). And Keras feeds its moving variance with
    the biased batch variance, where PyTorch feeds the unbiased one (times n / (n - 1),
    n = B*H*W) while normalising the batch with the biased one, as this call does."""

    def __init__(self, momentum=1 - BN_MOMENTUM, epsilon=BN_EPS, **kwargs):
        kwargs.setdefault("gamma_initializer", keras.initializers.RandomNormal(1.0, INIT_STD))
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def call(self, x, training=None):
        if not training:
            return super().call(x, training=False)     # moving statistics
        mean, var = ops.moments(x, axes=(0, 1, 2))       # biased variance, (C,)
        n = ops.cast(ops.size(x) // ops.shape(x)[-1], x.dtype)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
        self.moving_variance.assign(self.moving_variance * m + var * (n / (n - 1)) * (1 - m))
        return ops.batch_normalization(x, mean, var, axis=-1, offset=self.beta,
                                       scale=self.gamma, epsilon=self.epsilon)


def conv(out_ch, stride, padding, transpose=False):
    """4x4 kernels ~ N(0, 0.02) (Keras' default is glorot-uniform), no bias. For these
    shapes Keras' padding names are PyTorch's numbers: 'valid' is p0 and 'same' is p1 (TF
    pads 2 in total for k4/s2 and splits it 1 + 1; an odd total would go to the end)."""
    cls = layers.Conv2DTranspose if transpose else layers.Conv2D
    return cls(out_ch, 4, stride, padding, use_bias=False, name="conv",
               kernel_initializer=keras.initializers.RandomNormal(0.0, INIT_STD))


def block(name, conv_layer, batchnorm, act):
    """One spec layer: conv, optional BatchNorm, optional activation."""
    stack = [conv_layer]
    if batchnorm:
        stack.append(BatchNorm(name="bn"))
    if act is not None:
        stack.append(act)
    return keras.Sequential(stack, name=name)


def make_generator(cfg: Config) -> keras.Sequential:
    """z (B, nz) -> image (B, S, S, C) in [-1, 1]. For S = 64 this is the PyTorch
    tutorial's generator; each 4x4/2 'same' transposed conv doubles H and W."""
    n = cfg.image_size.bit_length() - 1          # S = 2**n; n - 1 blocks
    ch = cfg.ngf * 2 ** (n - 3)
    stack = [keras.Input((cfg.nz,)), layers.Reshape((1, 1, cfg.nz))]         # 1 x 1 x nz
    stack.append(block("g1", conv(ch, 1, "valid", True), True,
                       layers.ReLU()))                                    # 4 x 4 x (ngf*2^(n-3))
    for i in range(2, n - 1):
        stack.append(block(f"g{i}", conv(ch // 2, 2, "same", True), True,
                           layers.ReLU()))                                    # 2H x 2W x (ch/2)
        ch //= 2
    stack.append(block(f"g{n - 1}", conv(cfg.channels, 2, "same", True), False,
                       layers.Activation("tanh")))                            # S x S x C
    return keras.Sequential(stack, name="generator")


def make_discriminator(cfg: Config) -> keras.Sequential:
    """image (B, S, S, C) -> one logit per image (B,). No sigmoid: the losses take logits.
    LeakyReLU's slope is set: Keras' default negative_slope is 0.3, the paper's 0.2."""
    n = cfg.image_size.bit_length() - 1
    ch = cfg.ndf
    stack = [keras.Input((cfg.image_size, cfg.image_size, cfg.channels))]
    stack.append(block("d1", conv(ch, 2, "same"), False,
                       layers.LeakyReLU(LEAKY_SLOPE)))                        # S/2 x S/2 x ndf
    for i in range(2, n - 1):
        stack.append(block(f"d{i}", conv(ch * 2, 2, "same"), True,
                           layers.LeakyReLU(LEAKY_SLOPE)))                    # H/2 x W/2 x (2ch)
        ch *= 2
    stack.append(block(f"d{n - 1}", conv(1, 1, "valid"), False, None))      # 1 x 1 x 1
    stack.append(layers.Reshape(()))                                          # (B,)
    return keras.Sequential(stack, name="discriminator")


def blocks(model: keras.Sequential) -> list:
    """The spec's layers (g1.., d1..) of a network, without its reshapes."""
    return [l for l in model.layers if isinstance(l, keras.Sequential)]


def batchnorm_of(blk):
    return next((l for l in blk.layers if isinstance(l, BatchNorm)), None)


# ----------------------------------------------------------------------------------------
# initialisation

def build(cfg: Config, seed: int = 0):
    """DCGAN paper, section 4: weights ~ N(0, 0.02); BatchNorm gamma ~ N(1, 0.02), beta = 0
    (set by the initializers of conv() and BatchNorm). The initializers take no seed of
    their own, so keras' global seed decides them, as torch.manual_seed does in PyTorch."""
    keras.utils.set_random_seed(seed)
    return make_generator(cfg), make_discriminator(cfg)


# ----------------------------------------------------------------------------------------
# portable weights (layout: common/weights.py)

def kernel_perm(conv_layer) -> tuple:
    # Conv2D is (kh, kw, in, out), the portable layout. Conv2DTranspose is (kh, kw, out, in)
    # and TF computes it as the gradient of a conv2d with that kernel, which scatters each
    # input pixel times the kernel unflipped: PyTorch's ConvTranspose2d. Swap, never flip.
    return (0, 1, 3, 2) if isinstance(conv_layer, layers.Conv2DTranspose) else (0, 1, 2, 3)


BN_NAMES = (("gamma", "gamma"), ("beta", "beta"), ("running_mean", "moving_mean"),
            ("running_var", "moving_variance"))


def to_portable(generator, discriminator) -> dict:
    out = {}
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for blk in blocks(model):
            c = blk.get_layer("conv")
            kernel = ops.convert_to_numpy(c.kernel)
            out[f"{net}.{blk.name}.kernel"] = kernel.transpose(kernel_perm(c))
            if c.use_bias:
                out[f"{net}.{blk.name}.bias"] = ops.convert_to_numpy(c.bias)
            if (bn := batchnorm_of(blk)) is not None:
                for key, attr in BN_NAMES:
                    out[f"{net}.{blk.name}.{key}"] = ops.convert_to_numpy(getattr(bn, attr))
    return out


def load_portable(generator, discriminator, arrays: dict) -> None:
    """Copy portable arrays into the models, asserting every shape before it copies."""
    def put(v, a):
        assert tuple(v.shape) == a.shape, f"shape {a.shape} does not fit {tuple(v.shape)}"
        v.assign(a)

    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for blk in blocks(model):
            c = blk.get_layer("conv")
            put(c.kernel, arrays[f"{net}.{blk.name}.kernel"].transpose(kernel_perm(c)))
            if c.use_bias:
                put(c.bias, arrays[f"{net}.{blk.name}.bias"])
            if (bn := batchnorm_of(blk)) is not None:
                for key, attr in BN_NAMES:
                    put(getattr(bn, attr), arrays[f"{net}.{blk.name}.{key}"])


# ----------------------------------------------------------------------------------------
# summary: measured on the real modules, printed in the format shared by the three

def layer_table(model, x, layers_spec: list) -> list:
    """(name, description, out shape (H, W, C), trainable, bn stats) for each block.
    Keras' count_params() adds the BatchNorm moving statistics to the weights, so the
    trainable and the non-trainable variables are counted apart."""
    rows, described = [], {l.name: spec.describe(l) for l in layers_spec}
    for layer in model.layers:
        x = layer(x, training=False)
        if layer.name in described:
            count = lambda vs: sum(int(np.prod(v.shape)) for v in vs)
            rows.append((layer.name, described[layer.name], tuple(x.shape[1:]),
                         count(layer.trainable_weights), count(layer.non_trainable_weights)))
    return rows


def summary(cfg: Config) -> str:
    g_spec, d_spec = spec.generator_spec(cfg), spec.discriminator_spec(cfg)  # checks the size
    generator, discriminator = build(cfg)
    g = layer_table(generator, np.zeros((2, cfg.nz), np.float32), g_spec)
    d = layer_table(discriminator, np.zeros((2, cfg.image_size, cfg.image_size, cfg.channels),
                                            np.float32), d_spec)
    return spec.format_summary("Generator", g) + "\n\n" + spec.format_summary("Discriminator", d)


if __name__ == "__main__":
    from common.config import parse_model_args, run_main
    run_main(lambda argv: print(summary(parse_model_args(argv, "python -m keras_impl.model"))))
