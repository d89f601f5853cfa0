# %% [markdown]
# # Lesson 1: shapes and parameters
#
# A DCGAN is two small convolutional networks: a generator G that turns a vector of noise
# `z` into an image, and a discriminator D that turns an image into one number, a logit
# that says "real" when it is large. Before training anything, know what every layer
# does to the shape of its input and how many numbers it learns.
#
# You will:
# - read the networks as data in `common.spec`, the description every test trusts;
# - run the three frameworks' `model` printouts and see that they are the same table;
# - work out, by code, where the PyTorch tutorial network's parameter counts come from;
# - compute a layer's output size and parameter count by hand (the exercise).
#
# Run each cell with Shift+Enter, top to bottom. The first cell finds the repository
# and makes it the working directory, wherever Jupyter was started.

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## The spec: the networks as data
#
# `common/spec.py` lists every layer: its kind, kernel, stride, padding, whether it has a
# bias or BatchNorm, its activation, its output shape `(H, W, C)` and its parameter
# count. It is not a model builder: each framework's `model.py` writes its layers out by
# hand, and the tests compare every layer with this list. Here is the tutorial's network
# at 64x64 RGB, the default of `python -m pytorch_impl.model`.

# %%
from common import spec
from common.config import parse_model_args

cfg = parse_model_args([], "lesson")          # the model command's defaults: 64x64x3, nz 100
G, D = spec.generator_spec(cfg), spec.discriminator_spec(cfg)
print(f"image {cfg.image_size}x{cfg.image_size}x{cfg.channels}, nz {cfg.nz}, ngf {cfg.ngf}, ndf {cfg.ndf}\n")
for layer in G + D:
    print(f"{layer.name}  {spec.describe(layer):<44} out {str(layer.out_shape):<14} "
          f"params {layer.params:>9,}  bn stats {layer.stats:>5,}")

# %% [markdown]
# Read G from the top: `z` (100 numbers, seen as a 1x1 map with 100 channels) becomes a
# 4x4 map of 512 channels, then each 4x4 stride-2 transposed convolution doubles the
# height and width and halves the channels, until a 64x64 map of 3 channels, squashed
# into [-1, 1] by tanh. D is the mirror image: each stride-2 convolution halves the size
# and doubles the channels, and a last 4x4 convolution without padding reads the 4x4 map
# into one number. No sigmoid at the end: the losses take logits (lesson 3).

# %% [markdown]
# ## Three frameworks, one table
#
# Each implementation prints its own layers, measured on its own model object (shapes
# from a forward pass, parameters counted by the framework), in one shared format. Run
# the three commands as separate processes (each framework in its own Python) and
# compare the outputs character by character.

# %% tags=["slow"]
import subprocess

printouts = {}
for fw in ("pytorch_impl", "jax_impl", "keras_impl"):
    run = subprocess.run([course.start.PYTHON, "-m", f"{fw}.model"], capture_output=True,
                         text=True, check=True)
    printouts[fw] = run.stdout
print(printouts["pytorch_impl"])
for fw in ("jax_impl", "keras_impl"):
    same = printouts[fw] == printouts["pytorch_impl"]
    print(f"python -m {fw}.model prints the same {len(printouts[fw].splitlines())} lines "
          f"as pytorch_impl: {same}")

# %% [markdown]
# The same table from PyTorch (NCHW, kernels stored out-in-height-width), Flax (NHWC,
# height-width-in-out) and Keras: three different memory layouts, one network. The tests
# go further (`tests/test_*_model.py` check each layer against the spec, and
# `tests/test_cross_framework.py` checks that the same weights give the same numbers).

# %% [markdown]
# ## Where the counts come from
#
# A convolution, or a transposed convolution, with a `k x k` kernel from `c_in` to
# `c_out` channels learns `k * k * c_in * c_out` weights, plus `c_out` biases if it has a
# bias. A BatchNorm learns a scale `gamma` and a shift `beta` per channel (`2 * c_out`),
# and keeps a running mean and variance per channel, which are not trained (the "bn
# stats" column). The tutorial's layers have no bias: the BatchNorm right after a layer
# would cancel it (its `beta` does the same job). Count it by code:

# %%
def count(layer):
    weights = layer.kernel * layer.kernel * layer.in_ch * layer.out_ch
    bias = layer.out_ch if layer.bias else 0
    bn = 2 * layer.out_ch if layer.batchnorm else 0
    return weights, bias, bn

for name, net in (("G", G), ("D", D)):
    total = 0
    for layer in net:
        w, b, bn = count(layer)
        total += w + b + bn
        product = f"{layer.kernel}*{layer.kernel}*{layer.in_ch}*{layer.out_ch}"
        print(f"{layer.name}: {product:<12} = {w:>9,} weights + {b} bias + {bn:>4} BatchNorm"
              f" = {w + b + bn:>9,}")
    print(f"{name} total {total:,} (the spec says {spec.totals(net)[0]:,})\n")

# %% [markdown]
# Most of the parameters sit where the channels are widest, next to the 4x4 maps. Per
# pixel of output those layers are cheap, though; lesson 12 counts the arithmetic, which
# is spread differently.

# %%
import matplotlib.pyplot as plt

for name, net in (("G", G), ("D", D)):
    big = max(net, key=lambda l: l.params)
    print(f"{name}'s largest layer, {big.name} ({big.in_ch} -> {big.out_ch} channels): "
          f"{big.params:,} parameters, {big.params / spec.totals(net)[0]:.0%} of {name}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, (name, net) in zip(axes, (("generator", G), ("discriminator", D))):
    ax.bar([l.name for l in net], [l.params / 1e6 for l in net], color="tab:blue")
    ax.set_title(f"{name}: {spec.totals(net)[0]:,} parameters")
    ax.set_xlabel("layer")
axes[0].set_ylabel("trainable parameters (millions)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Exercise 1: output sizes
#
# A convolution with kernel `k`, stride `s` and padding `p` reads an `h x h` map and
# writes `(h + 2p - k) // s + 1` rows. A transposed convolution goes the other way: each
# input pixel scatters a `k x k` copy of the kernel at stride `s`, and PyTorch's padding
# `p` crops `p` rows at each side, so it writes `(h - 1) * s - 2p + k` rows.
#
# Write both functions. The check runs them on every layer of G and D and compares with
# the spec.

# %%
### BEGIN SOLUTION
def conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1

def conv_transpose_out(h, k, s, p):
    return (h - 1) * s - 2 * p + k
### END SOLUTION
#: def conv_out(h, k, s, p):
#:     return None   # your code here
#:
#: def conv_transpose_out(h, k, s, p):
#:     return None   # your code here

# %% tags=["check"]
from course import check

h, yours = 1, []                              # z is a 1x1 map
for layer in G:
    h = conv_transpose_out(h, layer.kernel, layer.stride, layer.padding)
    yours.append(h)
check.equal("G's output sizes", tuple(yours), tuple(l.out_shape[0] for l in G))
h, yours = cfg.image_size, []
for layer in D:
    h = conv_out(h, layer.kernel, layer.stride, layer.padding)
    yours.append(h)
check.equal("D's output sizes", tuple(yours), tuple(l.out_shape[0] for l in D))

# %% [markdown]
# ## Exercise 2: one layer's parameters, by hand
#
# Take D's third layer, `d3`: a 4x4 convolution from 128 to 256 channels, no bias,
# followed by BatchNorm. Write its trainable parameter count and its number of BatchNorm
# running statistics as plain arithmetic on numbers (not with `count` above).

# %%
### BEGIN SOLUTION
d3_params = 4 * 4 * 128 * 256 + 2 * 256
d3_stats = 2 * 256
### END SOLUTION
#: d3_params = None   # your code here
#: d3_stats = None    # your code here

# %% tags=["check"]
d3 = next(l for l in D if l.name == "d3")
check.equal("d3's trainable parameters", d3_params, d3.params)
check.equal("d3's BatchNorm statistics", d3_stats, d3.stats)

# %% [markdown]
# ## Try it
#
# The model commands take the shape as flags. The CPU default of `train` is a 32x32
# network with half the widths; MNIST has one channel:

# %% tags=["slow"]
import subprocess

run = subprocess.run([course.start.PYTHON, "-m", "pytorch_impl.model", "--image-size", "32",
                      "--channels", "1", "--ngf", "32", "--ndf", "32"],
                     capture_output=True, text=True, check=True)
print(run.stdout)

# %% [markdown]
# One layer fewer in each network (32 = 4 * 2**3), and a quarter of the weights per
# layer at half the widths. Next, lesson 2: the game these two networks play, on paper and
# on toy problems; then lesson 3: one training step of this GAN, and where its gradients
# must stop.
