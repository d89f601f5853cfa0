# %% [markdown]
# # Lesson 10: porting a network between frameworks
#
# Porting a model means copying its weights into another framework's layers. The copy
# almost always *runs*: the shapes fit, no error is raised. Whether it computes the same
# function depends on a handful of defaults that the frameworks set differently, and
# each of them fails silently.
#
# You will:
# - see the portable weights format (`common/weights.py`) that all three implementations
#   write and read, and a NumPy forward pass (`common/reference.py`) that referees them;
# - switch each default that differs the wrong way (BatchNorm epsilon and momentum, the
#   running variance, padding, the transposed kernel's flip, the flatten order, Adam's
#   epsilon) and print how far the result moves;
# - convert PyTorch kernels to the portable layout yourself (the exercise).

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## One layout for everyone
#
# PyTorch stores a convolution's kernel as (out, in, height, width) and a transposed
# convolution's as (in, out, height, width); Flax as (height, width, in, out); Keras'
# `Conv2DTranspose` as (height, width, out, in). The portable file stores every kernel as
# `(kh, kw, in, out)` under the spec's layer names, and its docstring defines exactly what
# that kernel computes. Each framework converts on the way in and out, and asserts every
# shape.

# %%
import tempfile

import numpy as np
import torch

from common import reference, weights
from common.config import Config
from pytorch_impl.model import build, load_portable, to_portable

cfg = Config(image_size=32, channels=1, ngf=16, ndf=16, batch_size=16)
generator, discriminator = build(cfg, seed=0)
arrays = to_portable(generator, discriminator)

g2 = generator.main.g2.conv
print(f"PyTorch g2 ({type(g2).__name__}) weight {tuple(g2.weight.shape)}  ->  portable "
      f"generator.g2.kernel {arrays['generator.g2.kernel'].shape}")
print("portable keys of g2:", [k for k in arrays if k.startswith("generator.g2.")])

workdir = tempfile.TemporaryDirectory()          # deleted when the kernel stops
path = os.path.join(workdir.name, "weights.npz")
weights.save(path, cfg, arrays)
file_cfg, loaded, header = weights.load(path)
print(f"\nwrote and read {len(loaded)} arrays ({os.path.getsize(path):,} bytes); "
      f"identical: {all(np.array_equal(loaded[k], arrays[k]) for k in arrays)}")

# %% [markdown]
# ## A referee that belongs to no framework
#
# `common/reference.py` reads the portable file and computes G and D in float64 NumPy,
# straight from the definitions in `common/weights.py`. PyTorch on the same weights,
# the same z and the same images must agree with it to float32 rounding.

# %%
rng = np.random.default_rng(0)
z = rng.standard_normal((cfg.batch_size, cfg.nz)).astype(np.float32)
x = rng.uniform(-1, 1, (cfg.batch_size, 32, 32, 1)).astype(np.float32)

with torch.no_grad():                         # training mode: BatchNorm uses the batch
    g_torch = generator(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
    d_torch = discriminator(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
g_ref, g_stats = reference.generator(cfg, arrays, z, train=True)
d_ref, _ = reference.discriminator(cfg, arrays, x, train=True)
TOL = 1e-5                                    # what tests/test_cross_framework.py allows
print(f"G(z): PyTorch vs reference, max |difference| {np.abs(g_torch - g_ref).max():.1e}")
print(f"D(x): PyTorch vs reference, max |difference| {np.abs(d_torch - d_ref).max():.1e}")
stats_torch = to_portable(generator, discriminator)      # PyTorch's running statistics now
print(f"G's BatchNorm running statistics after that pass: max |difference| "
      f"{max(np.abs(stats_torch[k] - g_stats[k]).max() for k in g_stats):.1e}")

# %% [markdown]
# ## Each default, set the wrong way
#
# `reference.run` takes each pinned choice as a keyword. Set one the way another
# framework sets it and compare with the right answer, here on the G and D above
# (`*_eval`: inference mode, running statistics; `*_train`: batch statistics;
# `stats`: the running statistics one training pass leaves).
#
# | mistake | who does it by default |
# |---|---|
# | BatchNorm epsilon 1e-3 | Keras |
# | momentum 0.9 read as PyTorch's (weight of the new value) | Flax and Keras mean 0.9 the other way |
# | running variance biased | Flax and Keras (PyTorch averages the unbiased one in) |
# | padding on one side only | `'same'` padding in Flax and Keras picks its own split |
# | transposed kernel flipped | Flax's `ConvTranspose(transpose_kernel=True)` |
# | BatchNorm before the ReLU where the network has it after | a port that reorders a block |

# %%
# the inference-mode running statistics of a network that has trained a little
arrays_eval = dict(arrays)
for k in arrays:
    if k.endswith("running_mean"):
        arrays_eval[k] = rng.normal(0, 0.1, arrays[k].shape).astype(np.float32)
    if k.endswith("running_var"):
        arrays_eval[k] = rng.uniform(0.5, 1.5, arrays[k].shape).astype(np.float32)


def outputs(**wrong):
    out = {}
    out["g_train"], stats = reference.generator(cfg, arrays_eval, z, True, **wrong)
    out["g_eval"], _ = reference.generator(cfg, arrays_eval, z, False, **wrong)
    out["d_eval"], _ = reference.discriminator(cfg, arrays_eval, x, False, **wrong)
    out["stats"] = np.concatenate([v.ravel() for k, v in sorted(stats.items())])
    return out

MISTAKES = [("BatchNorm epsilon 1e-3", dict(eps=1e-3), "g_train"),
            ("momentum 0.9", dict(momentum=0.9), "stats"),
            ("biased running variance", dict(unbiased_running_var=False), "stats"),
            ("one-sided padding, G", dict(pad=(2, 0)), "g_eval"),
            ("one-sided padding, D", dict(pad=(2, 0)), "d_eval"),
            ("transposed kernel flipped", dict(flip_transposed_kernel=True), "g_eval"),
            ("BatchNorm and ReLU swapped", dict(swap_act_and_bn=True), "g_eval")]

right = outputs()
damage = {}
for label, wrong, what in MISTAKES:
    damage[label] = np.abs(outputs(**wrong)[what] - right[what]).max()
    print(f"{label:<28} moves {what:<8} by {damage[label]:.1e}  = {damage[label] / TOL:>9,.0f} x the tolerance")

# %% [markdown]
# ### The flatten order
#
# The tutorial's network has no fully connected layer, so it cannot show this one. The
# CS231n network (`--arch cs231n`, lesson 11) views G's 6,272 features as a 7x7 map of
# 128 channels: PyTorch's `view` reads them as (C, H, W), Flax's and Keras' `reshape` of
# NHWC data as (H, W, C). `pytorch_impl` permutes those kernel columns when it exports
# (`weights.chw_to_hwc`), so its G agrees with the reference read (H, W, C), and not with
# one read (C, H, W).

# %%
cs = Config(arch="cs231n", image_size=28, channels=1, nz=96, ngf=64, ndf=32, batch_size=16)
cs_g, cs_d = build(cs, seed=0)
cs_arrays = to_portable(cs_g, cs_d)
zc = rng.uniform(-1, 1, (cs.batch_size, cs.nz)).astype(np.float32)
cs_g.eval()
with torch.no_grad():
    cs_torch = cs_g(torch.from_numpy(zc)).permute(0, 2, 3, 1).numpy()
for order in ("hwc", "chw"):
    ref, _ = reference.generator(cs, cs_arrays, zc, False, flatten_order=order)
    print(f"PyTorch's G vs the reference reading ({', '.join(order.upper())}): "
          f"max |difference| {np.abs(cs_torch - ref).max():.1e}")
damage["flatten order (C, H, W), cs231n"] = np.abs(cs_torch - ref).max()

# %% [markdown]
# ### Adam's epsilon
#
# PyTorch (and optax) update a weight by `lr * m_hat / (sqrt(v_hat) + 1e-8)`, with the
# bias-corrected moments. Keras' stock Adam adds `1e-7` to the *uncorrected* `sqrt(v)` and
# folds the corrections into the step size. On the first step, `m_hat = g` and
# `v_hat = g**2`, so PyTorch moves every weight by about `lr * sign(g)`. Take a real
# gradient of G and do the first step both ways:

# %%
import torch.nn.functional as F

g_net, d_net = build(cfg, seed=0)
g_loss = F.binary_cross_entropy_with_logits(d_net(g_net(torch.from_numpy(z))), torch.ones(cfg.batch_size))
g_loss.backward()
lr, b1, b2 = cfg.lr, cfg.beta1, cfg.beta2
p0 = {n: p.detach().clone() for n, p in g_net.named_parameters()}
torch.optim.Adam(g_net.parameters(), lr=lr, betas=(b1, b2), eps=1e-8).step()

gap, grads = 0.0, []
for n, p in g_net.named_parameters():
    g = p.grad.numpy().astype(np.float64)
    m, v = (1 - b1) * g, (1 - b2) * g * g    # the moments after one step
    keras_p1 = p0[n].numpy() - lr * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + 1e-7)
    gap = max(gap, np.abs(keras_p1 - p.detach().numpy()).max())
    grads.append(np.abs(g).ravel())
grads = np.concatenate(grads)
damage["Adam epsilon (Keras)"] = gap
eff = 1e-7 / np.sqrt(1 - b2)
print(f"PyTorch's step is lr = {lr}; the two formulas put G's weights up to {gap:.1e} apart "
      f"({gap / lr:.0%} of a step)")
print(f"Keras' epsilon acts as 1e-7 / sqrt(1 - beta2) = {eff:.1e} added to |g|: the step is "
      f"lr * |g| / (|g| + {eff:.1e})")
print(f"G's gradients: median |g| {np.median(grads):.1e}, smallest {grads.min():.1e}; "
      f"{np.mean(grads < 100 * eff):.1%} are below {100 * eff:.0e}, where the two steps "
      f"differ by more than 1%")

# %%
import matplotlib.pyplot as plt

labels = list(damage)
plt.figure(figsize=(7, 3.8))
plt.barh(labels, [damage[k] for k in labels], color="tab:red")
plt.axvline(TOL, color="k", ls="--")
plt.xscale("log")
plt.xlabel(f"max |difference| from the right answer (dashed: the tests' tolerance, {TOL:g})")
plt.title("Each default set the wrong way (one pass, or one Adam step)")
plt.gca().invert_yaxis()
plt.tight_layout()
plt.show()

# %% [markdown]
# None of these raises an error, and almost every bar is orders of magnitude to the right
# of the dashed line. The running variance is the quiet one: the unbiased variance is the
# biased one times n / (n - 1), with n the values a channel has in a batch, so the gap
# shrinks as batches and maps grow (printed below for this batch). Small as it is, it is
# systematic: inference-mode samples come out with a slightly different scale.
# `tests/test_cross_framework.py` checks each of these in each framework's own process,
# on each of the three networks, at sizes where every one moves the outputs at least 20
# times the tolerance.

# %%
from common import spec

for layer in spec.generator_spec(cfg)[:-1]:            # the layers with BatchNorm
    h = layer.out_shape[0]
    n = cfg.batch_size * h * h
    print(f"{layer.name}: n = {cfg.batch_size} images x {h}x{h} = {n:>6,} values a channel, "
          f"n / (n - 1) = {n / (n - 1):.5f}")

# %% [markdown]
# ## Exercise: PyTorch kernels to the portable layout
#
# `common/weights.py` defines the portable kernel `K[i, j, c, o]` (row, column, input
# channel, output channel). Convert, with `transpose` only:
#
# - `w_conv`, the weight of D's `d2` (`nn.Conv2d`, stored (out, in, kh, kw)), to
#   `k_conv`;
# - `w_convt`, the weight of G's `g2` (`nn.ConvTranspose2d`, stored (in, out, kh, kw)),
#   to `k_convt`.

# %%
w_conv = discriminator.main.d2.conv.weight.detach().numpy()
w_convt = generator.main.g2.conv.weight.detach().numpy()
print("Conv2d weight", w_conv.shape, "  ConvTranspose2d weight", w_convt.shape)

# %%
### BEGIN SOLUTION
k_conv = w_conv.transpose(2, 3, 1, 0)
k_convt = w_convt.transpose(2, 3, 0, 1)
### END SOLUTION
#: k_conv = None    # your code here
#: k_convt = None   # your code here

# %% tags=["check"]
from course import check

check.close("k_conv (as pytorch_impl exports it)", k_conv, arrays["discriminator.d2.kernel"], tol=0)
check.close("k_convt (as pytorch_impl exports it)", k_convt, arrays["generator.g2.kernel"], tol=0)
# and what the kernels compute, by the definition in common/weights.py, against PyTorch
h = rng.standard_normal((2, 8, 8, w_convt.shape[0])).astype(np.float32)
with torch.no_grad():
    torch_out = generator.main.g2.conv(torch.from_numpy(h).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    hd = rng.standard_normal((2, 16, 16, w_conv.shape[1])).astype(np.float32)
    torch_outd = discriminator.main.d2.conv(torch.from_numpy(hd).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
check.close("conv_transpose with k_convt", reference.conv_transpose(h, np.asarray(k_convt, np.float64), 2, 1),
            torch_out, tol=1e-4)
check.close("conv with k_conv", reference.conv(hd, np.asarray(k_conv, np.float64), 2, 1), torch_outd, tol=1e-4)

# %% [markdown]
# The two transposes differ because PyTorch puts `in` first for a transposed convolution
# and `out` first for a convolution. A kernel whose first two axes were swapped the
# wrong way would have the right shape whenever in = out: the shape check of a port
# catches a wrong layout only sometimes, the numbers always.
