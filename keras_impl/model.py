"""The generators and discriminators in Keras 3 (NHWC; kernels HWIO, transposed HWOI,
dense (in, out)): the tutorial's DCGAN, the paper's network and the CS231n 28x28 one
(common/spec.py).

    python -m keras_impl.model --image-size 64 --channels 3   # layer table and totals
    python -m keras_impl.model --arch cs231n

keras_impl/__init__.py, which Python runs before this module, sets KERAS_BACKEND.
"""
import keras
import numpy as np
from keras import layers, ops

from common import spec
from common.config import INIT_STD, LEAKY_SLOPE, Config
from common.spec import CS231N_SLOPE
from keras_impl.layers import BatchNorm

# ----------------------------------------------------------------------------------------
# building blocks: shared by the three networks

def init():
    return keras.initializers.RandomNormal(0.0, INIT_STD)   # Keras' default: glorot-uniform


def conv(out_ch, stride, padding, transpose=False, kernel=4, bias=False, output_padding=None):
    """Kernels ~ N(0, 0.02), biases (Keras' default initializer) zero. For 4x4 kernels
    Keras' padding names are PyTorch's numbers: 'valid' is p0 and 'same' is p1 (TF pads
    k - s = 2 in total for k4/s2 and splits it 1 + 1). Where k - s is odd (5x5, stride 2)
    TF puts the extra row at the END of a conv's padding and so at the START of a
    transposed conv's output: never PyTorch's, so those layers pad and crop by hand."""
    cls = layers.Conv2DTranspose if transpose else layers.Conv2D
    extra = {"output_padding": output_padding} if transpose else {}
    return cls(out_ch, kernel, stride, padding, use_bias=bias, name="conv",
               kernel_initializer=init(), **extra)


def conv5x5_s2(out_ch, bias):
    """PyTorch's Conv2d(k=5, s=2, padding=2): zeros 2 on every side, then 'valid'.
    Conv2D(padding='same') would pad 1 at the top/left and 2 at the bottom/right."""
    return [layers.ZeroPadding2D(2, name="pad"), conv(out_ch, 2, "valid", kernel=5, bias=bias)]


def conv_transpose5x5_s2(out_ch, bias):
    """PyTorch's ConvTranspose2d(k=5, s=2, padding=2, output_padding=1) = 2H x 2W: 'valid'
    (2H + 3), output_padding 1 adds a row and a column at the bottom/right (2H + 4), then 2
    cropped from every side. Conv2DTranspose(padding='same') gives 2H x 2W too but crops
    1 at the top/left, 2 at the bottom/right, with or without output_padding=1: a shift by
    one pixel (tests/test_keras_model.py shows how far off that is)."""
    return [conv(out_ch, 2, "valid", True, kernel=5, bias=bias, output_padding=1),
            layers.Cropping2D(2, name="crop")]


def dense(units, bias):
    """Kernel (in, out), the portable layout as it is, ~ N(0, 0.02); bias zero."""
    return layers.Dense(units, use_bias=bias, name="fc", kernel_initializer=init())


def block(name, op, batchnorm, act, act_first=False, pool=0):
    """One spec layer: op (a layer, or a list: flatten/reshape/pad, the conv or dense,
    crop/reshape), optional BatchNorm and activation in that order, or the activation
    first (act_first), then an optional max-pool."""
    stack = list(op) if isinstance(op, list) else [op]
    norm = [BatchNorm(name="bn")] if batchnorm else []
    if act is not None:
        norm.insert(0 if act_first else len(norm), act)
    stack += norm
    if pool:
        # strides default to pool_size (window = stride, as PyTorch's MaxPool2d(pool));
        # padding 'valid' (PyTorch's padding 0) is the default too, pinned here anyway
        stack.append(layers.MaxPooling2D(pool, padding="valid", name="pool"))
    return keras.Sequential(stack, name=name)


def blocks(model: keras.Sequential) -> list:
    """The spec's layers (g1.., d1..) of a network, without its reshapes."""
    return [l for l in model.layers if isinstance(l, keras.Sequential)]


def batchnorm_of(blk):
    return next((l for l in blk.layers if isinstance(l, BatchNorm)), None)


def op(blk):
    """The block's convolution or fully connected layer."""
    return next(l for l in blk.layers if l.name in ("conv", "fc"))


# ----------------------------------------------------------------------------------------
# the tutorial's network (--arch dcgan)

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


# ----------------------------------------------------------------------------------------
# the paper's network (--arch paper)

def paper_generator(cfg: Config) -> keras.Sequential:
    """z (B, nz) -> image (B, S, S, C): the DCGAN paper's Figure 1. A fully connected
    projection of z, reshaped to S/16 x S/16 x ngf*16, BatchNorm and ReLU (the paper's;
    the PyTorch write-up leaves that ReLU out), then four 5x5 stride-2 transposed
    convolutions (PyTorch: padding 2, output_padding 1)."""
    s0, ch = cfg.image_size // 16, cfg.ngf * 16
    # Reshape reads the dense output in (H, W, C) order: the portable order (weights.py)
    stack = [keras.Input((cfg.nz,)),
             block("g1", [dense(s0 * s0 * ch, False), layers.Reshape((s0, s0, ch), name="reshape")],
                   True, layers.ReLU())]                                     # S/16 x S/16 x ch
    for i in range(2, 5):
        stack.append(block(f"g{i}", conv_transpose5x5_s2(ch // 2, False), True,
                           layers.ReLU()))                                    # 2H x 2W x (ch/2)
        ch //= 2
    stack.append(block("g5", conv_transpose5x5_s2(cfg.channels, True), False,
                       layers.Activation("tanh")))                            # S x S x C
    return keras.Sequential(stack, name="generator")


def paper_discriminator(cfg: Config) -> keras.Sequential:
    """image (B, S, S, C) -> one logit (B,): four 5x5 stride-2 convolutions (padding 2),
    ndf*2 -> ndf*16 channels, then flatten and one fully connected layer."""
    stack = [keras.Input((cfg.image_size, cfg.image_size, cfg.channels))]
    for i in range(1, 5):
        stack.append(block(f"d{i}", conv5x5_s2(cfg.ndf * 2 ** i, i == 1), i > 1,
                           layers.LeakyReLU(negative_slope=LEAKY_SLOPE)))   # H/2 x W/2 x ndf*2^i
    # Flatten of NHWC is (H, W, C) order, the portable one: no permutation of the dense
    # kernel, where pytorch_impl must permute the rows of its (C, H, W)-flattened Linear
    stack.append(block("d5", [layers.Flatten(name="flatten"), dense(1, True)], False, None))  # 1
    stack.append(layers.Reshape(()))                                          # (B,)
    return keras.Sequential(stack, name="discriminator")


# ----------------------------------------------------------------------------------------
# the CS231n network (--arch cs231n)

def cs231n_generator(cfg: Config) -> keras.Sequential:
    """z (B, nz) -> image (B, 28, 28, C), the CS231n assignment's: two fully connected
    layers and two 4x4 stride-2 transposed convolutions, each activation BEFORE its
    BatchNorm (as the write-up has it)."""
    hidden, ch = 16 * cfg.ngf, 2 * cfg.ngf
    return keras.Sequential([
        keras.Input((cfg.nz,)),
        block("g1", dense(hidden, True), True, layers.ReLU(), act_first=True),          # 16ngf
        # BatchNorm of each of the 7*7*ch features, which g3 then views as a 7x7 map
        block("g2", dense(7 * 7 * ch, True), True, layers.ReLU(), act_first=True),      # 49ch
        block("g3", [layers.Reshape((7, 7, ch), name="reshape"), conv(cfg.ngf, 2, "same", True, bias=True)],
              True, layers.ReLU(), act_first=True),                                      # 14 x 14 x ngf
        block("g4", conv(cfg.channels, 2, "same", True, bias=True), False,
              layers.Activation("tanh")),                                                # 28 x 28 x C
    ], name="generator")


def cs231n_discriminator(cfg: Config) -> keras.Sequential:
    """image (B, 28, 28, C) -> one logit (B,): two 5x5 convolutions with max-pooling, two
    fully connected layers. LeakyReLU 0.01, the write-up's (Keras' default is 0.3)."""
    ch, hidden = 2 * cfg.ndf, 32 * cfg.ndf
    lrelu = lambda: layers.LeakyReLU(negative_slope=CS231N_SLOPE)
    return keras.Sequential([
        keras.Input((cfg.image_size, cfg.image_size, cfg.channels)),
        block("d1", conv(cfg.ndf, 1, "valid", kernel=5, bias=True), False, lrelu(), pool=2),  # 12 x 12 x ndf
        block("d2", conv(ch, 1, "valid", kernel=5, bias=True), False, lrelu(), pool=2),       # 4 x 4 x 2ndf
        # Flatten in (H, W, C) order, the portable one (see kernel_perm)
        block("d3", [layers.Flatten(name="flatten"), dense(hidden, True)], False, lrelu()),   # 32ndf
        block("d4", dense(1, True), False, None),                                             # 1
        layers.Reshape(()),                                                                   # (B,)
    ], name="discriminator")


# ----------------------------------------------------------------------------------------
# initialisation

NETWORKS = {"dcgan": (make_generator, make_discriminator),
            "paper": (paper_generator, paper_discriminator),
            "cs231n": (cs231n_generator, cs231n_discriminator)}


def build(cfg: Config, seed: int = 0):
    """DCGAN paper, section 4: weights ~ N(0, 0.02); BatchNorm gamma ~ N(1, 0.02), beta = 0
    (set by the initializers of conv(), dense() and BatchNorm). The initializers take no
    seed of their own, so keras' global seed decides them, as torch.manual_seed does in
    PyTorch."""
    spec.generator_spec(cfg), spec.discriminator_spec(cfg)     # a size the network cannot make
    keras.utils.set_random_seed(seed)
    make_g, make_d = NETWORKS[cfg.arch]
    return make_g(cfg), make_d(cfg)


# ----------------------------------------------------------------------------------------
# portable weights (layout: common/weights.py)

def kernel_perm(layer) -> tuple:
    # Conv2D is (kh, kw, in, out), the portable layout. Conv2DTranspose is (kh, kw, out, in)
    # and TF computes it as the gradient of a conv2d with that kernel, which scatters each
    # input pixel times the kernel unflipped: PyTorch's ConvTranspose2d. Swap, never flip.
    # Dense is (in, out), and its rows (after Flatten) and columns (before Reshape) are
    # in NHWC's (H, W, C) order, the portable one: nothing to permute, where pytorch_impl
    # reorders the (C, H, W) features of its Linear layers (weights.chw_to_hwc).
    if isinstance(layer, layers.Dense):
        return (0, 1)
    return (0, 1, 3, 2) if isinstance(layer, layers.Conv2DTranspose) else (0, 1, 2, 3)


BN_NAMES = (("gamma", "gamma"), ("beta", "beta"), ("running_mean", "moving_mean"),
            ("running_var", "moving_variance"))


def to_portable(generator, discriminator) -> dict:
    out = {}
    for net, model in (("generator", generator), ("discriminator", discriminator)):
        for blk in blocks(model):
            c = op(blk)
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
            c = op(blk)
            k = arrays[f"{net}.{blk.name}.kernel"]
            assert k.ndim == len(c.kernel.shape), \
                f"{net}.{blk.name}.kernel: shape {k.shape} does not fit {tuple(c.kernel.shape)}"
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
