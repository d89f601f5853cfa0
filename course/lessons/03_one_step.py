# %% [markdown]
# # Lesson 3: one GAN step, and where gradients stop
#
# One training step of a GAN is two updates on the same noise `z`:
#
# 1. **D step**: D sees a real batch (label 1) and a fake batch `G(z)` (label 0) and
#    takes one optimizer step on `d_loss = BCE(D(x), 1) + BCE(D(G(z)), 0)`.
# 2. **G step**: G takes one step on `g_loss = BCE(D(G(z)), 1)` through the *updated* D.
#
# The fake batch is used by both. The D step must change D only: if its loss also
# pushed G, G would be trained to make its fakes *easier* to spot. Every framework has
# to say where D's gradient stops; this lesson shows how.
#
# You will:
# - run the three ways PyTorch programmers stop it (`detach()`, `retain_graph=True`,
#   switching `requires_grad`; seed 001 lists them) and check that they give the same
#   update, then measure what each costs;
# - read how JAX and Keras say the same thing in this repository's `step.py` files;
# - write D's and G's losses from logits (exercise 1) and see why G does not minimise
#   `log(1 - D(G(z)))` as the paper's formula says (exercise 2).

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## A network and a batch
#
# The CPU default network (32x32 MNIST, widths 32), the repository's own
# `pytorch_impl.model.build`, and a batch of 64 real digits from `common.data`, the
# batches all three frameworks train on.

# %%
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import data
from common.config import ADAM_EPS, Config
from pytorch_impl.model import build
from pytorch_impl.step import train_step

torch.manual_seed(0)
cfg = Config(image_size=32, channels=1, ngf=32, ndf=32, batch_size=64)
images, source = data.load_images(cfg)
real = torch.from_numpy(data.to_float(images[:cfg.batch_size])).permute(0, 3, 1, 2)  # NHWC -> NCHW
z = torch.from_numpy(data.noise(cfg.seed, 0, cfg.batch_size, cfg.nz))
print(f"{len(images):,} digits from {source}; real {tuple(real.shape)}, z {tuple(z.shape)}")

generator0, discriminator0 = build(cfg, seed=0)       # the starting point of every method


def fresh():
    """Copies of the same starting networks and new Adam optimizers (as each train.py makes them)."""
    generator, discriminator = copy.deepcopy(generator0), copy.deepcopy(discriminator0)
    adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS)
    return (generator, discriminator, torch.optim.Adam(generator.parameters(), **adam),
            torch.optim.Adam(discriminator.parameters(), **adam))

# %% [markdown]
# ## Three ways to stop D's gradient at G
#
# **`detach()`** is what `pytorch_impl/step.py` does (`train_step`, imported above):
# D reads `fake.detach()`, a tensor with the same values and no history, so `d_loss`
# ends at the fake images. In the G step, D's own weight gradients are switched off
# (`requires_grad_(False)`) because nobody needs them.
#
# **`retain_graph=True`**: D reads `fake` itself. `d_loss.backward()` then runs on into G
# and fills G's `.grad` with gradients of the *D* loss, which must be thrown away before
# the G step; and since backward frees the graph it has walked, G's half of it must be
# kept (`retain_graph=True`) for the G step to reuse.
#
# **`requires_grad`**: switch G's parameters off while it makes the fake for D, so no
# graph is recorded; switch them on and D's off for the G step, which then has to run G
# again to record one. (Switching after the forward pass, as seed 001's sketch does,
# stops the accumulation but not the work: backward still walks through G.)

# %%
def bce(logits, label):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def step_retain_graph(generator, discriminator, g_optimizer, d_optimizer, real, z):
    fake = generator(z)
    d_optimizer.zero_grad(set_to_none=True)
    d_loss = bce(discriminator(real), 1.0) + bce(discriminator(fake), 0.0)   # no detach()
    d_loss.backward(retain_graph=True)        # fills D's .grad AND G's; keeps G's graph
    d_optimizer.step()
    g_optimizer.zero_grad(set_to_none=True)   # throw away what d_loss put into G's .grad
    g_loss = bce(discriminator(fake), 1.0)    # the updated D, G's retained graph
    g_loss.backward()                         # also fills D's .grad: the next zero_grad drops it
    g_optimizer.step()


def step_requires_grad(generator, discriminator, g_optimizer, d_optimizer, real, z):
    generator.requires_grad_(False)           # G's forward records no graph for D's loss
    fake = generator(z)
    d_optimizer.zero_grad(set_to_none=True)
    d_loss = bce(discriminator(real), 1.0) + bce(discriminator(fake), 0.0)
    d_loss.backward()
    d_optimizer.step()
    generator.requires_grad_(True)
    discriminator.requires_grad_(False)       # the G step needs no D weight gradients
    g_optimizer.zero_grad(set_to_none=True)
    g_loss = bce(discriminator(generator(z)), 1.0)   # G runs again, now recorded
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()


def step_detach(*args):
    train_step(*args)                         # pytorch_impl/step.py's own


METHODS = {"detach()": step_detach, "retain_graph=True": step_retain_graph,
           "requires_grad": step_requires_grad}

# %% [markdown]
# Run one step of each from the same networks and compare everything they change: the
# weights of G and D, and BatchNorm's running statistics.

# %%
def state(generator, discriminator):
    return {f"{net}.{k}": v.detach().clone() for net, m in (("G", generator), ("D", discriminator))
            for k, v in m.state_dict().items() if v.is_floating_point()}

after = {}
for name, method in METHODS.items():
    nets = fresh()
    method(*nets, real, z)
    after[name] = state(*nets[:2])

start = state(generator0, discriminator0)
ref = after["detach()"]
moved = max((ref[k] - start[k]).abs().max().item() for k in ref if "running" not in k)
print(f"one step moves the weights by up to {moved:.2e}\n")
for name in ("retain_graph=True", "requires_grad"):
    w = max((after[name][k] - ref[k]).abs().max().item() for k in ref if "running" not in k)
    bn = max((after[name][k] - ref[k]).abs().max().item() for k in ref if "running" in k)
    print(f"{name:<18} vs detach(): weights differ by at most {w:.1e}, "
          f"BatchNorm running statistics by {bn:.1e}")

# %% [markdown]
# The three updates agree (the differences are printed above). The `requires_grad` version differs in
# one place: G ran twice in training mode, so G's BatchNorm layers averaged the batch's
# statistics into their running mean and variance twice. Training is the same; what
# the generator does in evaluation mode (sampling) is not. That is why
# `jax_impl/step.py` and `keras_impl/step.py` also run G once per step.
#
# ## What each costs
#
# PyTorch can count the floating-point operations a piece of code runs
# (`torch.utils.flop_counter.FlopCounterMode`). Compare each method with what the
# algorithm needs, as `benchmarks/flops.py` counts it (its docstring gives the convention),
# and time a few steps of each.

# %% tags=["slow"]
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import flops, machine

need = flops.step_flops(cfg)["per_step"]
print(f"the algorithm needs {need / 1e9:.2f} GFLOP per step (benchmarks.flops)\n")
cost = {}
for name, method in METHODS.items():
    nets = fresh()
    method(*nets, real, z)                    # warm-up
    with FlopCounterMode(display=False) as counter:
        method(*nets, real, z)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        method(*nets, real, z)
        times.append(time.perf_counter() - t0)
    cost[name] = (counter.get_total_flops(), float(np.median(times)))

base = cost["detach()"]
for name, (f, t) in cost.items():
    print(f"{name:<18} {f / 1e9:6.2f} GFLOP ({f / need:.2f} x needed)   "
          f"{t * 1e3:6.1f} ms a step ({t / base[1]:.2f} x detach())")
load = machine.load()
print(f"\nmedian of 3 steps at batch {cfg.batch_size} on {machine.summary()}; load average "
      f"{'unknown' if load is None else f'{load[0]:.2f}'} (1 min)")

# %% [markdown]
# Read the FLOP column: `detach()` does what the algorithm needs. `retain_graph=True`
# also runs the D loss's backward through all of G (gradients thrown away) and computes
# D's weight gradients in the G step. `requires_grad` runs G's forward pass twice. The
# FLOP counts are the same on every machine; the times are this machine's, in this run,
# and on a shared two-core machine they move from run to run: run the cell again and
# compare. Lesson 12 times the same `detach()` step (32x32, widths 32, batch 64) with
# `benchmarks.step_time`; where its figure and this one differ by much more than the
# FLOP ratios, look at the load average each prints. On two cores, one core taken by
# another process makes PyTorch's two threads wait for each other at every parallel
# region, and a step can take ten times as long
# ([docs/speed.md](../docs/speed.md#how-to-measure)).

# %% [markdown]
# ## The same thing in JAX and Keras
#
# **JAX** has no `.grad` to fill and no graph to detach. `jax.grad(f)` (here
# `nnx.value_and_grad(d_loss_fn)(discriminator)`) differentiates `f` with respect to its
# argument and nothing else: the fake images enter `d_loss_fn` as a plain array, so
# nothing can flow back into G. The G step differentiates with respect to the fake
# images and hands that gradient to G's backward function (`nnx.vjp`), which G's one
# forward pass returned.
#
# **Keras** (with TensorFlow) records operations on a `tf.GradientTape`, and a tape only
# sees what runs inside its `with` block. G's forward pass runs on G's tape, outside D's:
# D's loss cannot reach G because D's tape never saw G run.
#
# The lines, from the repository's files:

# %%
def excerpt(path, first, last):
    """Lines of a file from the one containing `first` to the one containing `last`."""
    lines = open(path).read().splitlines()
    i = next(n for n, l in enumerate(lines) if first in l)
    j = next(n for n in range(i, len(lines)) if last in lines[n])
    print(f"{path}, lines {i + 1}-{j + 1}:")
    print("\n".join(f"{n + 1:4} {lines[n]}" for n in range(i, j + 1)), "\n")

excerpt("pytorch_impl/step.py", "(1) Update D", "g_optimizer.step()")
excerpt("jax_impl/step.py", "fake, g_backward = nnx.vjp", "g_optimizer.update(")
excerpt("keras_impl/step.py", "with tf.GradientTape() as g_tape:", "self.g_optimizer.apply(")

# %% [markdown]
# `diff pytorch_impl/step.py jax_impl/step.py` shows the rest: the three files share
# their section banners, so only framework code differs (`docs/side-by-side.html` lines
# them up).
#
# ## Exercise 1: the losses from logits
#
# D outputs a logit `l`; `D(x) = sigmoid(l)`. Binary cross-entropy with label `y` is
# `-(y log sigmoid(l) + (1 - y) log(1 - sigmoid(l)))`, averaged over the batch. Written
# with logits it never takes the log of 0: `-log sigmoid(l) = log(1 + exp(-l))` and
# `-log(1 - sigmoid(l)) = log(1 + exp(l))`, which `np.logaddexp(0, x)` computes
# without overflow.
#
# Using NumPy only, compute `d_loss` and `g_loss` from the logits of one real step:
# `d_real` (D on real images), `d_fake` (D on the fakes, before D's update) and
# `d_fake_after` (the updated D on the same fakes).

# %%
nets = fresh()
generator, discriminator = nets[:2]
with torch.no_grad():
    fake = generator(z)
    d_real, d_fake = discriminator(real).numpy(), discriminator(fake).numpy()
train_step(*nets, real, z)                    # one step: D is updated
with torch.no_grad():
    d_fake_after = discriminator(fake).numpy()
print("D(x) logits      ", d_real[:4])
print("D(G(z)) logits   ", d_fake[:4])
print("after the D step ", d_fake_after[:4])

# %%
### BEGIN SOLUTION
def bce_logits(logits, label):
    return np.mean(label * np.logaddexp(0, -logits) + (1 - label) * np.logaddexp(0, logits))

d_loss = bce_logits(d_real, 1) + bce_logits(d_fake, 0)
g_loss = bce_logits(d_fake_after, 1)
### END SOLUTION
#: d_loss = None   # your code here
#: g_loss = None   # your code here

# %% tags=["check"]
from course import check

bce_torch = torch.nn.BCEWithLogitsLoss()      # the loss all of pytorch_impl uses
t = lambda a: torch.from_numpy(np.asarray(a, np.float32))
check.close("d_loss", d_loss, (bce_torch(t(d_real), torch.ones(64)) + bce_torch(t(d_fake), torch.zeros(64))).item())
check.close("g_loss", g_loss, bce_torch(t(d_fake_after), torch.ones(64)).item())

# %% [markdown]
# ## Exercise 2: why G does not minimise log(1 - D(G(z)))
#
# The paper's minimax game has G minimise `log(1 - D(G(z)))`: the *saturating* loss.
# Early in training D wins easily and `D(G(z))` is near 0. Write the derivative of each
# G loss with respect to the logit `l` (with `s = sigmoid(l)`):
#
# - saturating: `L = log(1 - s)`
# - non-saturating (what the repository trains with): `L = -log(s)`, which is
#   `BCE(D(G(z)), 1)`.
#
# Use `ds/dl = s (1 - s)`. NumPy only; `l` is an array.

# %%
def sigmoid(l):
    return 1 / (1 + np.exp(-l))

### BEGIN SOLUTION
def grad_saturating(l):
    return -sigmoid(l)

def grad_non_saturating(l):
    return sigmoid(l) - 1
### END SOLUTION
#: def grad_saturating(l):
#:     return None   # your code here
#:
#: def grad_non_saturating(l):
#:     return None   # your code here

# %% tags=["check"]
logits = torch.linspace(-10, 4, 29, dtype=torch.float64, requires_grad=True)
(auto_sat,) = torch.autograd.grad(torch.log1p(-torch.sigmoid(logits)).sum(), logits)  # autograd's
(auto_ns,) = torch.autograd.grad(-torch.log(torch.sigmoid(logits)).sum(), logits)      # answers
check.close("grad_saturating", grad_saturating(logits.detach().numpy()), auto_sat.numpy())
check.close("grad_non_saturating", grad_non_saturating(logits.detach().numpy()), auto_ns.numpy())

# %% [markdown]
# Now the point: how hard does each loss push G when D is winning?

# %%
import matplotlib.pyplot as plt

l = np.linspace(-9, 3, 200)
for p in (0.5, 0.1, 0.01, 0.001):
    lp = np.log(p / (1 - p))                  # the logit where D(G(z)) = p
    print(f"D(G(z)) = {p:<5}  |gradient| saturating {abs(grad_saturating(lp)):.4f}, "
          f"non-saturating {abs(grad_non_saturating(lp)):.4f}  "
          f"(ratio {abs(grad_non_saturating(lp) / grad_saturating(lp)):,.0f})")
plt.figure(figsize=(6, 3.5))
plt.loglog(sigmoid(l), np.abs(grad_saturating(l)), label="saturating: log(1 - D(G(z)))")
plt.loglog(sigmoid(l), np.abs(grad_non_saturating(l)), label="non-saturating: -log D(G(z))")
plt.xlabel("D(G(z))")
plt.ylabel("|dL / d logit|")
plt.title("How hard each G loss pushes, by how sure D is")
plt.legend()
plt.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# When D rejects the fakes (`D(G(z))` near 0), the saturating loss's gradient vanishes
# with `D(G(z))` while the non-saturating one stays near 1: G learns fastest exactly
# when it is worst. Both losses push G toward the same place, which is why Goodfellow et
# al. (2014, section 3) proposed the non-saturating one for training, and all three
# `step.py` files use it. In lesson 4 you write this step yourself; lesson 5 watches what
# training does with each loss.
