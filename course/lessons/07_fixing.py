# %% [markdown]
# # Lesson 7: fixing a GAN
#
# Lesson 5 broke training four ways: no BatchNorm, a learning rate ten times the paper's,
# D trained five times per G step, and the saturating loss against that strong D.
# `results/pytorch-cpu-paper` (lesson 11) adds a failure nobody caused on purpose: the
# DCGAN paper's own network, at the small widths a CPU affords, collapses to one image
# within a few hundred steps. The GAN literature after DCGAN proposed remedies for
# exactly these troubles. This lesson applies five of them, one at a time, and lets the
# judge of lesson 6 say which ones work here:
#
# | remedy | what changes | paper |
# |---|---|---|
# | one-sided label smoothing | D's target for real images is 0.9 instead of 1 | Salimans et al. 2016, arXiv:1606.03498, section 3.4 |
# | instance noise | Gaussian noise on every image D sees, annealed to 0 | Sønderby et al. 2016, arXiv:1610.04490; Arjovsky & Bottou 2017, arXiv:1701.04862 |
# | two time-scales (TTUR) | D's learning rate larger than G's | Heusel et al. 2017, arXiv:1706.08500 |
# | spectral normalisation | each layer of D divided by its largest singular value | Miyato et al. 2018, arXiv:1802.05957 |
# | WGAN-GP | a critic's loss with a gradient penalty, no BatchNorm in the critic | Gulrajani et al. 2017, arXiv:1704.00028 |
#
# You will:
# - write D's loss with one-sided label smoothing (exercise 1);
# - estimate a layer's largest singular value by power iteration, as spectral
#   normalisation does (exercise 2);
# - write WGAN-GP's gradient penalty with a double backward (exercise 3);
# - before each measured result, predict what the remedy does to one failure.
#
# Training each (failure, remedy) pair takes minutes on a laptop CPU, so the runs were made
# once by `python -m course.remedies` and committed in `results/remedies/`; this lesson
# reads them. Every measured result it shows is printed from those files.

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## The runs
#
# `course/remedies.py` holds the whole experiment: the settings, one training step that
# can switch each failure and each remedy on, the loop, and the judging. Its step is the
# repository's `train_step` (`pytorch_impl/step.py`) when nothing is switched on (its tests
# check that); the networks are `pytorch_impl.model.build`'s, the data and noise
# `common.data`'s, the score `common.judge.evaluate`'s, on 1,000 samples from z no run
# trained on.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from course import check, remedies

torch.set_num_threads(1)     # tiny networks: a second thread gains little on a busy machine
results = remedies.load_results()
verdicts = remedies.verdicts(results)
loads = [x for r in results.values() for x in r["load_average"]]
print(f"{len(results)} runs in results/remedies/, "
      f"{sum(r['train_seconds'] for r in results.values()) / 60:.0f} minutes of training on "
      f"{next(iter(results.values()))['machine']}, load average {min(loads):.1f} to {max(loads):.1f}")
print()
for name, (what, kw) in remedies.FAILURES.items():
    s = remedies.setting(name, "none")
    print(f"{name:<14} {what}\n{'':<14} {s.arch} {s.image_size}x{s.image_size}, ngf {s.ngf}, "
          f"ndf {s.ndf}, batch {s.batch_size}, {s.steps} steps, lr G {s.lr_g:g} / D {s.lr_d:g}, "
          f"{s.k} D update(s) per G update")

# %% [markdown]
# The tutorial network's failures are lesson 5's, at 32x32 and widths 16 (lesson 5 used
# 16x16), each compared with the same network trained unbroken for as many steps
# (`healthy`). The paper network runs at its CPU profile (`--arch paper` on a CPU:
# `ARCH_PROFILES` in `common/config.py`) for the first few hundred steps, where
# `results/pytorch-cpu-paper` found the collapse; its reference is the tutorial network
# at the CPU profile's widths for as many steps (`paper-control`, the control of that
# folder's README).
#
# Here are the failures as they are, without a remedy: the judge's Frechet distance
# (lower is better; its floor, real digits against other real digits, is printed first),
# the IS-style score
# (1 to 10), how many of the ten digits make up more than 5% of the samples, and the
# fixed-noise samples of each run.

# %%
def row(f, r):
    res = results[(f, r)]
    last, wgan = res["last_100_steps"], res["setting"]["loss"] == "wgan-gp"
    outs = "critic {:6.2f} / {:6.2f}" if wgan else "D(x) {:.2f}, D(G(z)) {:.2f}"
    return (f"{f + '/' + r:<22} Frechet {res['fd']:6.1f} ({res['fd_low']:5.1f} to {res['fd_high']:5.1f})  "
            f"IS-style {res['score']:4.2f}  classes over 5%: {res['classes_over_5pct']:2d}  "
            f"last 100 steps: " + outs.format(last["d_real"], last["d_fake"]))

def table(remedy, failures):
    """Each failure's row without the remedy and with it, and the verdict where there is one."""
    for f in failures:
        for r in ("none", remedy):
            print(row(f, r) + (f"  -> {verdicts[(f, r)]}" if (f, r) in verdicts else ""))

def grids(pairs, per_row=4):
    """The runs' fixed-noise grids (results/remedies/*/grid.png), titled with their distance."""
    pairs = [p for p in pairs if p in results]
    rows = -(-len(pairs) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(3.4 * per_row, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (f, r) in zip(axes.flat, pairs):
        img = np.array(Image.open(remedies.OUT / f"{f}__{r}" / "grid.png"))
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{f}/{r}: FD {results[(f, r)]['fd']:.0f}", fontsize=9)
    fig.tight_layout()
    plt.show()

failures = ["healthy", "no-bn", "lr10", "d5", "saturating", "paper-control", "paper"]
print(f"floor: real digits against other real digits, Frechet {results[('healthy', 'none')]['fd_real']:.1f}")
for f in failures:
    print(row(f, "none"))
grids([(f, "none") for f in failures])

# %% [markdown]
# After a few hundred steps even the healthy run draws strokes rather than clear digits
# (a real run trains thousands of steps); what matters here is the comparison at equal
# steps. Three of lesson 5's failures fail here too, and so does the paper network. The
# fourth does not: `lr10`, the tenfold learning rate, is *ahead* of the healthy run at
# 500 steps (remedy 3 comes back to it). A remedy's verdict on a failure, computed by `remedies.verdict`:
# - **hurts**: its Frechet distance is at least 25% above the failure's own;
# - **rescues**: otherwise, if it is at most 25% above the healthy reference's (or below);
# - **helps**: otherwise, if it is at least 25% below the failure's own;
# - **no change**: anything else.
#
# Why 25%: each pair was trained once (seed 0), and between seeds the same setting scores
# up to about that much apart at this stage of training (`results/time-to-quality`,
# `study.csv`). A smaller difference could be the seed.

# %% [markdown]
# ## Remedy 1: one-sided label smoothing
#
# A D that wins drives its outputs to 1 on real images and 0 on fakes, and the BCE loss
# keeps rewarding it for going further: the loss of a real image falls all the way as its
# logit grows. Salimans et al. (2016, section 3.4) replace D's target for real images by
# 0.9: the best D then answers 0.9, not 1, on real data, and gains nothing from growing
# its logits without bound. Only the real target moves. Smoothing the fakes' target too
# would make the best D give a fake that lies where there is no data a nonzero "real"
# score, and G would have no reason to move that fake toward the data.
#
# ## Exercise 1: D's loss with one-sided label smoothing
#
# From D's logits for a real batch and a fake batch, compute in NumPy the mean binary
# cross-entropy of the real logits against the target 0.9 plus that of the fake logits
# against 0: for a logit `l` and target `t`, `-(t log sigmoid(l) + (1 - t) log(1 -
# sigmoid(l)))`. (`log sigmoid(l) = -log(1 + exp(-l))`; `np.logaddexp(0, -l)` computes
# `log(1 + exp(-l))` without overflow.) The check compares it with PyTorch's
# `binary_cross_entropy_with_logits`.

# %%
rng = np.random.default_rng(7)
logits_real = rng.normal(3.0, 1.5, 64)       # a confident D: large logits on real images
logits_fake = rng.normal(-3.0, 1.5, 64)

### BEGIN SOLUTION
log_sig = lambda l: -np.logaddexp(0, -l)               # log sigmoid(l)
log_one_minus_sig = lambda l: -np.logaddexp(0, l)      # log(1 - sigmoid(l))
d_loss_smoothed = (-(0.9 * log_sig(logits_real) + 0.1 * log_one_minus_sig(logits_real)).mean()
                   - log_one_minus_sig(logits_fake).mean())
### END SOLUTION
#: d_loss_smoothed = None   # your code here

# %% tags=["check"]
t = lambda a: torch.from_numpy(a)
expected = (F.binary_cross_entropy_with_logits(t(logits_real), torch.full((64,), 0.9, dtype=torch.float64))
            + F.binary_cross_entropy_with_logits(t(logits_fake), torch.zeros(64, dtype=torch.float64)))
check.close("d_loss_smoothed", d_loss_smoothed, expected.item())

# %% [markdown]
# Where does a real image's smoothed loss stop falling? At the logit whose sigmoid is the
# target: D no longer gains from certainty.

# %%
l = torch.linspace(-2, 8, 1001, dtype=torch.float64)
for target in (1.0, 0.9):
    loss = F.binary_cross_entropy_with_logits(l, torch.full_like(l, target), reduction="none")
    best = l[loss.argmin()].item()
    print(f"target {target}: loss of one real image is lowest at logit {best:.2f} "
          f"(D(x) = {torch.sigmoid(torch.tensor(best)).item():.3f}) in [-2, 8]")

# %% [markdown]
# **Predict** before you look: in failure `d5`, D is updated five times per G step and
# wins (lesson 5). What will label smoothing do to it? One of "rescues", "helps",
# "no change", "hurts".

# %%
### BEGIN SOLUTION
prediction = "helps"
### END SOLUTION
#: prediction = None   # "rescues", "helps", "no change" or "hurts"

# %% tags=["check"]
check.predict("smoothing on d5", prediction, choices=remedies.VERDICTS)

# %%
check.outcome("smoothing on d5", verdicts[("d5", "smoothing")])
table("smoothing", ("d5", "paper", "no-bn"))
grids([("d5", "none"), ("d5", "smoothing"), ("paper", "none"), ("paper", "smoothing")])

# %% [markdown]
# What smoothing was made to do, it does: in `d5` and in the paper network, D's mean
# output on real images over the last 100 steps falls from nearly 1 to about the target,
# 0.9 (the `D(x)` column above): D stops growing its confidence on real digits. But `D(G(z))`
# stays near 0: D still rejects every fake, and the samples stay one kind of blob. `d5`'s
# distance falls by less than the 25% that another seed could account for, so by this
# lesson's rule that is no change; the paper network and `no-bn` are as they were.

# %% [markdown]
# ## Remedy 2: instance noise
#
# Real digits fill a thin set in the space of all 32x32 images, and early on G's samples
# fill another one; two thin sets almost never overlap. Arjovsky & Bottou (2017) show that
# D can then separate them perfectly, and that a perfect D gives G gradients that are
# useless: zero for the saturating loss, unstable for the non-saturating one. Add Gaussian
# noise to every image D sees, real and fake, and both sets become blurred clouds that do
# overlap: D can no longer be perfect. Then let the noise shrink to nothing (Sønderby et
# al. 2016 anneal it), so that in the end D compares G's samples with the digits
# themselves. Here sigma starts at 0.5 (pixels are in [-1, 1]) and falls linearly to 0 at
# the run's last step: `remedies.noise_sigma`.

# %%
from common import data

s = remedies.setting("saturating", "none")
images = data.load_images(s.config())[0]              # the 5,000 digits, 32x32, uint8
digits = np.concatenate(list(data.to_float(images[::len(images) // 4][:4, ..., 0])), axis=1)   # four, side by side
steps = remedies.setting("d5", "noise").steps
fig, axes = plt.subplots(1, 4, figsize=(10, 1.6))
for ax, i in zip(axes, (0, steps // 3, 2 * steps // 3, steps - 1)):
    sigma = remedies.noise_sigma(0.5, i, steps)
    x = digits + sigma * np.random.default_rng(i).standard_normal(digits.shape)
    ax.imshow(np.clip(x, -1, 1), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(f"step {i}: sigma {sigma:.2f}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# **Predict**: failure `saturating` is lesson 5's saturating loss against a D trained five
# times per G step, where G stopped learning. What will instance noise do to it?

# %%
### BEGIN SOLUTION
prediction = "helps"
### END SOLUTION
#: prediction = None   # "rescues", "helps", "no change" or "hurts"

# %% tags=["check"]
check.predict("noise on saturating", prediction, choices=remedies.VERDICTS)

# %%
check.outcome("noise on saturating", verdicts[("saturating", "noise")])
table("noise", ("saturating", "d5", "paper", "no-bn"))
grids([("saturating", "none"), ("saturating", "noise"), ("d5", "noise"), ("paper", "noise")])

# %% [markdown]
# On the paper network, instance noise does stop D from winning: over the last 100 steps
# `D(x)` and `D(G(z))` are well away from 1 and 0, where without it they are at nearly 1 and
# nearly 0. G still draws one image. In `d5` and `saturating`, by the last 100 steps the noise
# has nearly annealed away and D wins again as completely as without it, and `saturating`'s
# samples are as grey as before: G did not use the steps with noise to get anywhere.

# %% [markdown]
# ## Remedy 3: two time-scales (TTUR)
#
# Heusel et al. (2017) prove that if D learns on a faster time scale than G (a larger
# learning rate, so that D keeps up with a slowly moving G), the two converge to a local
# Nash equilibrium under assumptions a GAN meets only roughly; the same paper introduced
# the Frechet distance that lesson 6's judge computes. The remedy here: D's learning rate
# twice the failure's and G's half of it (4e-4 and 1e-4 for the paper's 2e-4, a ratio of
# four).
#
# **Predict**: with `lr10`, both learning rates are 2e-3; TTUR makes them 4e-3 for D and
# 1e-3 for G. What will it do?

# %%
### BEGIN SOLUTION
prediction = "no change"
### END SOLUTION
#: prediction = None   # "rescues", "helps", "no change" or "hurts"

# %% tags=["check"]
check.predict("ttur on lr10", prediction, choices=remedies.VERDICTS)

# %%
check.outcome("ttur on lr10", verdicts[("lr10", "ttur")])
table("ttur", ("lr10", "paper", "no-bn"))
grids([("lr10", "none"), ("lr10", "ttur"), ("paper", "ttur"), ("no-bn", "ttur")])

# %% [markdown]
# `lr10` was not a failure here. After 500 steps the tenfold learning rate has trained
# *further* than the healthy run (compare their distances and grids): at this size and
# this early a larger step is simply faster (lesson 5 found it no worse at 16x16), and
# the instability it risks did not come within these steps. TTUR raises D's learning rate
# further and lowers G's, and takes the run back to worse than the healthy one: it
# "hurts". On the paper network and on `no-bn` it changes nothing. A remedy answers a
# diagnosed failure; applied to a run that works, it can only cost.

# %% [markdown]
# ## Remedy 4: spectral normalisation
#
# A layer `y = W x` stretches no input by more than `sigma(W)`, the largest singular value
# of `W`. Miyato et al. (2018) divide every weight matrix of D by it, so that each layer
# stretches by at most 1 and, with LeakyReLU (which stretches by at most 1 too), so does
# the whole D: it can no longer make its output jump between nearby images, however long
# it trains. Computing `sigma(W)` exactly every step would cost an SVD per layer;
# instead one step of power iteration per training step refines an estimate kept from the
# step before. For a convolution, the kernel (out, in, kh, kw) is treated as the matrix
# (out, in·kh·kw), as `torch.nn.utils.parametrizations.spectral_norm` does. D loses its
# BatchNorm here, as in Miyato et al.'s networks: BatchNorm would rescale the
# normalised layers again.
#
# ## Exercise 2: the largest singular value by power iteration
#
# Power iteration: start from a random vector `u` of length `out`, and repeat `v = W.T u /
# |W.T u|`, `u = W v / |W v|`; then `sigma = u . W v`. Compute it for `W`, the paper
# discriminator's second convolution viewed as a matrix, with 500 iterations. The check
# compares it with NumPy's SVD.

# %%
generator, discriminator = remedies.networks(remedies.setting("paper", "none"))
kernel = discriminator.main.d2.conv.weight.detach().numpy()
W = kernel.reshape(kernel.shape[0], -1).astype(np.float64)
print(f"kernel {kernel.shape} -> W {W.shape}")
u = np.random.default_rng(0).standard_normal(W.shape[0])

### BEGIN SOLUTION
for _ in range(500):
    v = W.T @ u
    v /= np.linalg.norm(v)
    u = W @ v
    u /= np.linalg.norm(u)
sigma_power = u @ W @ v
### END SOLUTION
#: sigma_power = None   # your code here

# %% tags=["check"]
singular = np.linalg.svd(W, compute_uv=False)
check.close("sigma_power", sigma_power, singular[0], tol=1e-6)

# %% [markdown]
# Why so many iterations? Each one shrinks the error by about `(sigma_2 / sigma_1)^2`,
# and in a random matrix the largest singular values lie close together:

# %%
u = np.random.default_rng(0).standard_normal(W.shape[0])
for i in range(1, 501):
    v = W.T @ u / np.linalg.norm(W.T @ u)
    u = W @ v / np.linalg.norm(W @ v)
    if i in (1, 10, 100, 500):
        print(f"after {i:3d} iterations: relative error {abs(u @ W @ v - singular[0]) / singular[0]:.1e}")
print(f"largest singular values: {singular[:3]}; (sigma_2 / sigma_1)^2 = {(singular[1] / singular[0]) ** 2:.4f}")

# %% [markdown]
# `spectral_norm` gets away with one iteration per training step because it keeps `u`
# from the step before, and one optimiser step changes `W` only a little: over training
# the estimate keeps converging.

# %% [markdown]
# The same layer under `spectral_norm`: its weight as the network uses it, after a few
# forward passes in training mode (one power iteration each), has a largest singular
# value close to 1: not exactly, since the estimate of sigma is still converging, at the
# slow rate above.

# %%
_, d_sn = remedies.networks(remedies.setting("paper", "sn"))
x = torch.randn(16, 1, 32, 32)
for passes in (0, 1, 5):
    with torch.no_grad():
        for _ in range(passes):
            d_sn(x)
    w = d_sn.main.d2.conv.weight.detach().numpy()
    print(f"after {passes} more forward passes: largest singular value "
          f"{np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0]:.4f} "
          f"(the raw weight's: {np.linalg.svd(d_sn.main.d2.conv.parametrizations.weight.original.detach().numpy().reshape(w.shape[0], -1), compute_uv=False)[0]:.4f})")

# %% [markdown]
# **Predict**: what will spectral normalisation in D do to `no-bn`, the run with no
# BatchNorm anywhere?

# %%
### BEGIN SOLUTION
prediction = "rescues"
### END SOLUTION
#: prediction = None   # "rescues", "helps", "no change" or "hurts"

# %% tags=["check"]
check.predict("sn on no-bn", prediction, choices=remedies.VERDICTS)

# %%
check.outcome("sn on no-bn", verdicts[("no-bn", "sn")])
table("sn", ("no-bn", "d5", "saturating", "lr10", "paper"))
grids([("no-bn", "none"), ("no-bn", "sn"), ("d5", "sn"), ("paper", "sn")])

# %% [markdown]
# Spectral normalisation stops D from winning: in `d5`, `saturating` and `no-bn`,
# `D(G(z))` sits near 0.5 over the last 100 steps, where without it D rejected every fake
# in `d5` and `saturating`. And yet those three runs end on flat grey fields, and the paper
# network on one image: a D that cannot tell real from fake has nothing to teach G. This
# is lesson 5's warning again: curves that look balanced can hide a generator that learns
# nothing. On `lr10` it slows the fast run down to about the healthy run's distance, which
# by the rule counts as hurting it. Miyato et al. designed their networks around it and
# trained them far longer than these few hundred steps.

# %% [markdown]
# ## Remedy 5: WGAN-GP
#
# The Wasserstein GAN changes the game itself. D becomes a *critic* `f` that outputs any
# real number, and maximises `mean f(real) - mean f(fake)`; G maximises `mean f(fake)`. If
# `f` is 1-Lipschitz, the critic's best value is the earth mover's distance between the
# real and generated distributions, which keeps giving G a useful gradient even where the
# two do not overlap. Gulrajani et al. (2017) keep `f` near 1-Lipschitz with a penalty:
# at points `x_hat` on straight lines between a real and a fake image, the norm of the
# critic's gradient with respect to its input should be 1:
#
# `penalty = mean over the batch of (|grad_x f(x_hat)| - 1)^2`,  `x_hat = eps·real + (1 - eps)·fake`, `eps ~ U[0, 1]` per image
#
# and the critic minimises `mean f(fake) - mean f(real) + 10 · penalty`. Their Algorithm
# 1 updates the critic five times per G update, with Adam at 1e-4 and betas (0, 0.9), and
# the critic has no BatchNorm: the penalty is about each image's own gradient, and
# BatchNorm makes every output depend on the whole batch.
#
# ## Exercise 3: the gradient penalty
#
# Write `gradient_penalty(critic, real, fake, eps)`: form `x_hat`, take the critic's
# gradient with respect to it with `torch.autograd.grad` (one output per image: sum them
# first), and return the penalty as a tensor. The penalty's own gradient must reach the
# critic's parameters, since the critic is trained on it: that is a gradient of a
# gradient (a double backward), which needs `create_graph=True`.
#
# The check runs your function on a small critic in float64, calls `.backward()` on your
# penalty, and compares the value and the gradients left on the critic's parameters with
# an independent computation (`remedies.gradient_penalty_reference`: `torch.func`, one
# image at a time).

# %%
### BEGIN SOLUTION
def gradient_penalty(critic, real, fake, eps):
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
### END SOLUTION
#: def gradient_penalty(critic, real, fake, eps):
#:     return None   # your code here

# %% tags=["check"]
penalty, penalty_grad, expected, expected_grad = remedies.penalty_and_gradients(gradient_penalty)
check.close("penalty", penalty, expected, tol=1e-9)
check.close("penalty_grad", penalty_grad, expected_grad, tol=1e-9)     # w.r.t. the critic's parameters

# %% [markdown]
# **Predict**: what will WGAN-GP do to the paper network's collapse?

# %%
### BEGIN SOLUTION
prediction = "rescues"
### END SOLUTION
#: prediction = None   # "rescues", "helps", "no change" or "hurts"

# %% tags=["check"]
check.predict("wgan-gp on paper", prediction, choices=remedies.VERDICTS)

# %%
check.outcome("wgan-gp on paper", verdicts[("paper", "wgan-gp")])
table("wgan-gp", ("paper", "no-bn", "no-bn-1500"))
print(row("healthy-1500", "none"))
grids([("paper", "none"), ("paper", "wgan-gp"), ("no-bn", "none"), ("no-bn", "wgan-gp"),
       ("no-bn-1500", "none"), ("no-bn-1500", "wgan-gp"), ("healthy-1500", "none")])

# %% [markdown]
# The paper network collapses under WGAN-GP too: one image after 300 steps, as with every
# other remedy. Its critic tells real from fake well (its mean output on real images stays
# far above that on fakes), and its gradient reaches G, and G still draws one image. That
# fits the diagnosis in `results/pytorch-cpu-paper`: the collapse is in the generator,
# whose output depends less and less on z from its first steps on, and no change to D or
# to the loss reaches it there.
#
# `no-bn` is where WGAN-GP does something. After 500 steps its distance is lower, by a
# little less than the rule's 25%, and its samples are dark shapes instead of a grey
# field. The runs three times as long (`no-bn-1500`) show where that goes: without
# BatchNorm anywhere, under the GAN loss, G is still a grey field after 1,500 steps; under
# WGAN-GP it draws strokes that the judge reads as most of the ten digits, though still
# far from the healthy network at 1,500 steps ("helps", not "rescues"). This is the claim
# of Gulrajani et al. (section 5, Figure 2): WGAN-GP trains networks the standard loss
# does not, among them one with no normalisation in G or D.

# %% [markdown]
# ## Everything at once
#
# Each failure (rows) with each remedy (columns): the Frechet distance, coloured by the
# verdict; a blank cell is a pair that was not run (`remedies.PAIRS` says which, and why).

# %%
rows_f = ["paper", "no-bn", "no-bn-1500", "d5", "saturating", "lr10"]
cols_r = [r for r in remedies.REMEDIES]
colour = {"rescues": "#4caf50", "helps": "#c5e1a5", "no change": "#eeeeee", "hurts": "#ef9a9a"}
fig, ax = plt.subplots(figsize=(10, 4))
for i, f in enumerate(rows_f):
    for j, r in enumerate(cols_r):
        if (f, r) not in results:
            continue
        v = verdicts.get((f, r), "")
        ax.add_patch(plt.Rectangle((j, i), 1, 1, color=colour.get(v, "#bbdefb")))
        ax.text(j + 0.5, i + 0.42, f"{results[(f, r)]['fd']:.0f}", ha="center", va="center", fontsize=11)
        ax.text(j + 0.5, i + 0.75, v or "the failure", ha="center", va="center", fontsize=7)
ax.set(xlim=(0, len(cols_r)), ylim=(len(rows_f), 0))
ax.set_xticks(np.arange(len(cols_r)) + 0.5, cols_r)
ax.set_yticks(np.arange(len(rows_f)) + 0.5,
              [f"{f} (ref. {results[(remedies.REFERENCE[f], 'none')]['fd']:.0f})" for f in rows_f])
ax.set_title("Frechet distance by the judge (lower: better); the reference run's in brackets", fontsize=10)
plt.show()
print("your predictions:", ", ".join(f"{k}: {v}" for k, v in check.PREDICTIONS.items()))

# %% [markdown]
# What the measurements say, at the lengths a CPU affords (300 to 1,500 steps):
# - No remedy made the paper network draw digits at its CPU profile. Each of the five
#   leaves it on one image, as `results/pytorch-cpu-paper` found the collapse to be the
#   generator's: a remedy for D, or for the loss, does not reach it.
# - The remedies for D did to D what they were made for: smoothing holds `D(x)` near
#   its target, instance noise and spectral normalisation stop D from winning. That alone
#   did not make any G draw digits. A balanced game is needed for learning, not proof of
#   it: read the judge and the samples, not only the curves.
# - The one clear gain is WGAN-GP on a network with no BatchNorm, and it needed more steps
#   to show: a remedy can need time before it pays.
# - `lr10` was not failing here, and the two remedies tried on it made it worse: diagnose
#   first, then treat.
# - Each pair ran once, with one seed, for far fewer steps than the papers trained; a
#   verdict here is about these settings, not about the remedy in general.
