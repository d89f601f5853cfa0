# %% [markdown]
# # Lesson 6: judging a generator
#
# Loss curves say who is winning the game, not whether the pictures are any good (lesson
# 3). To compare generators you need a number computed from their samples alone. The
# field's standard is the Frechet Inception Distance, FID (Heusel et al. 2017): pass real
# and generated images through a fixed network, fit a Gaussian to each set of features,
# and measure how far apart the two Gaussians are. Beside it, the Inception Score
# (Salimans et al. 2016) asks whether each sample is clearly one class and whether all
# classes appear.
#
# You will:
# - meet the repository's judge (`common/judge/evaluate.py`), a small digit classifier whose
#   forward pass is written in NumPy;
# - see the floor: how far real digits are from other real digits, and how it moves
#   with the number of images;
# - damage real digits on purpose and watch both scores react;
# - score a generator trained here, sampled by all three frameworks;
# - write the Frechet distance of two Gaussians yourself (the exercise).

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## The judge
#
# FID uses Inception-v3, trained on ImageNet. It cannot be downloaded on an offline
# machine, and it would not know digits well anyway. So the repository has its own judge
# per dataset: a small convolutional classifier trained once (`python -m
# common.judge.train`) and committed with a record of which images it trained on and
# which it never saw. Its 64 last hidden units are the features; its class
# probabilities feed the IS-style score.

# %%
import numpy as np
from common.judge import evaluate

judge = evaluate.load_judge("mnist")
for name, k, c_in, c_out, pool in evaluate.CONVS:
    print(f"{name}: conv {k}x{k}, {c_in} -> {c_out}, ReLU" + (", max pool 2" if pool else ""))
for name, n_in, n_out in evaluate.DENSE:
    print(f"{name}: dense {n_in} -> {n_out}, ReLU   <- the {evaluate.FEATURES} features")
print(f"f2: dense {evaluate.FEATURES} -> {len(judge.classes)} class logits")
print(f"\nheld-out images: {len(judge.x_test):,}; accuracy on them {judge.accuracy:.1%}")

# %% [markdown]
# The held-out digits are split once into two fixed halves (`evaluate.halves`): half A
# is the **reference** every sample set is compared with; half B is a pool of other real
# digits, for the floor.

# %%
import matplotlib.pyplot as plt
from common import runfiles

a, b = evaluate.halves(judge.y_test)
feat, prob = judge.real(evaluate.JUDGE_SIZE)      # features and class probabilities of all held-out digits
print(f"half A (reference): {len(a):,} digits; half B: {len(b):,} digits; features {feat.shape}")

def show(images01, title, n=32):
    """Images in [0, 1], (N, 28, 28), as one grid (common.runfiles.grid)."""
    g = runfiles.grid(np.asarray(images01[:n], np.float32)[..., None] * 2 - 1, nrow=16)
    plt.figure(figsize=(8, 1.3))
    plt.imshow(g[..., 0], cmap="gray", vmin=0, vmax=255)
    plt.axis("off")
    plt.title(title)
    plt.show()

real_b = evaluate.unit(judge.x_test[b])            # uint8 -> [0, 1]
show(real_b, "half B: real digits the judge never trained on")

# %% [markdown]
# ## The Frechet distance and its floor
#
# Fit a Gaussian to each feature set: means `mu_1`, `mu_2` and covariances `S_1`, `S_2`.
# The Frechet (or 2-Wasserstein) distance between the two Gaussians is
#
# `d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))`
#
# The first term compares where the two clouds of features sit, the second how they
# spread. A perfect generator would draw from the same distribution as the real digits,
# but even then its score is not 0: means and covariances estimated from a finite
# sample are off by chance, and the distance adds that error up. Measure it with real
# digits of half B against the reference, at several sample sizes:

# %%
reference = evaluate.Reference.of(feat[a])
sizes = [100, 200, 500, len(b)]
floors = [reference.distance(feat[evaluate.floor_images(b, n)]) for n in sizes]
for n, d in zip(sizes, floors):
    print(f"{n:>5} real digits of half B against half A: Frechet distance {d:6.2f}")
plt.figure(figsize=(5, 3))
plt.plot(sizes, floors, "o-")
plt.xlabel("images in the sample")
plt.ylabel("Frechet distance, real vs real")
plt.title("the floor falls as samples grow")
plt.show()

# %% [markdown]
# So a distance means nothing alone: compare it with the floor **at the same number of
# images**, and compare two generators only at the same size too. `evaluate.evaluate`
# prints the floor beside every score, and a jackknife spread (how much the number
# would move with another draw of samples).

# %% [markdown]
# ## Damaged digits
#
# Before trusting the judge with a generator, check that it sees what a person sees.
# Take the real digits of half B and damage them in three ways, then score each
# version. Also score something a generator could do with no damaged pixel at all:
# draw only two kinds of digit (mode collapse).
#
# Predict first: which damage will raise the Frechet distance most? Which will lower
# the IS-style score, which will not? Write down the one you think lowers the IS-style
# score most; the cell after next scores them and compares.

# %%
### BEGIN SOLUTION
predict_damage = "strokes erased"
### END SOLUTION
#: predict_damage = None   # "blurred (sigma 1 px)", "noisy (std 0.2)" or "strokes erased"

# %% tags=["check"]
from course import check

DAMAGES = ("blurred (sigma 1 px)", "noisy (std 0.2)", "strokes erased")
check.predict("lowest IS-style score", predict_damage, choices=DAMAGES)

# %%
from scipy.ndimage import gaussian_filter

rng = np.random.default_rng(0)

def erase(x, squares=3, side=5):
    """Erase `squares` squares of side 5 px per digit, each centred on an ink pixel."""
    x = x.copy()
    for im in x:
        ys, xs = np.nonzero(im > 0.5)
        for i in rng.integers(len(ys), size=squares):
            y0, x0 = max(ys[i] - side // 2, 0), max(xs[i] - side // 2, 0)
            im[y0:y0 + side, x0:x0 + side] = 0
    return x

y_b = judge.y_test[b]
versions = {
    "real (half B)": real_b,
    "blurred (sigma 1 px)": gaussian_filter(real_b, sigma=(0, 1, 1)),
    "noisy (std 0.2)": np.clip(real_b + rng.normal(0, 0.2, real_b.shape), 0, 1).astype(np.float32),
    "strokes erased": erase(real_b),
    "only 1s and 7s (real)": real_b[np.isin(y_b, [1, 7])],
}
scores = {}
for name, x in versions.items():
    scores[name] = evaluate.evaluate(judge, x[..., None] * 2 - 1, name)   # samples in [-1, 1]
    s = scores[name]
    print(f"{name:<24} {s.n:>5} images  Frechet {s.fd:7.2f} (floor {s.fd_real:5.2f})  "
          f"IS-style {s.score:5.2f}  top-class prob {s.confidence:.3f}")
for name in list(versions)[1:4]:
    show(versions[name], name, n=16)
check.outcome("lowest IS-style score", min(DAMAGES, key=lambda name: scores[name].score))

# %% [markdown]
# Look at the numbers above. Blur and noise move every image's features, and the
# distance grows far beyond the floor; erased strokes make some digits ambiguous, which
# the IS-style score notices too. The collapsed set is made of perfect real digits, and
# the Frechet distance still rejects it: the features' mean and covariance of two
# classes are not those of ten. Its IS-style score falls toward 2, the number of classes
# left: exp(E KL(p(y|x) || p(y))) is large only when each image is one confident class
# AND the classes together are spread evenly.
#
# The class histogram shows the same thing directly:

# %%
labels = judge.classes
x_pos = np.arange(len(labels))
plt.figure(figsize=(7, 2.8))
plt.bar(x_pos - 0.2, scores["real (half B)"].histogram, 0.4, label="real (half B)")
plt.bar(x_pos + 0.2, scores["only 1s and 7s (real)"].histogram, 0.4, label="only 1s and 7s")
plt.xticks(x_pos, labels)
plt.ylabel("share of the images")
plt.xlabel("class the judge gives")
plt.legend()
plt.show()

# %% [markdown]
# ## A generator's samples, from three frameworks
#
# Now a real generator. Train the tutorial network briefly with the real command (16x16
# digits and 400 steps keep it short; it will not draw good digits yet), then sample
# 1,000 images from its portable weights with each framework's `sample` command, each
# in its own process, from the same noise seed.

# %%
import subprocess
import tempfile
from pathlib import Path

workdir = tempfile.TemporaryDirectory(prefix="lesson06-")    # deleted when the kernel stops
work = Path(workdir.name)
train_cmd = ["-m", "pytorch_impl.train", "--image-size", "16", "--ngf", "32", "--ndf", "32",
             "--batch-size", "64", "--max-steps", "400", "--device", "cpu", "--out", str(work / "run")]
done = subprocess.run([course.start.PYTHON, *train_cmd], capture_output=True, text=True, check=True)
print("python " + " ".join(train_cmd))
print("\n".join(done.stdout.strip().splitlines()[-2:]))

def sample(fw):
    """1,000 samples from the run's portable weights, by `python -m <fw>.sample`."""
    out = work / f"{fw}.npy"
    subprocess.run([course.start.PYTHON, "-m", f"{fw}.sample", "--weights", str(work / "run" / "weights.npz"),
                    "--n", "1000", "--seed", "0", "--device", "cpu", "--out", str(out)],
                   capture_output=True, text=True, check=True)
    return np.load(out)

samples = {"pytorch_impl": sample("pytorch_impl")}
print(evaluate.format_scores(evaluate.evaluate(judge, samples["pytorch_impl"]), "pytorch_impl samples"))
show((samples["pytorch_impl"][:32, ..., 0] + 1) / 2, "the generator's samples (16x16)")

# %% [markdown]
# This report is what `python -m common.judge.evaluate x.npy` prints: the distance with its
# interval, the floor at the same size (here for 16x16 images: the real digits make the
# same 28 -> 16 -> 28 round trip), the IS-style score, and the class histogram beside
# the real one. Now the same weights, sampled by JAX and by Keras:

# %% tags=["slow"]
for fw in ("jax_impl", "keras_impl"):
    samples[fw] = sample(fw)
print(f"largest difference from PyTorch's samples: "
      + ", ".join(f"{fw} {np.abs(samples[fw] - samples['pytorch_impl']).max():.1e}" for fw in samples))
for fw, x in samples.items():
    s = evaluate.evaluate(judge, x, fw)
    print(f"{fw:<13} Frechet {s.fd:8.3f} (90% interval {s.fd_low:.1f} to {s.fd_high:.1f}; "
          f"floor {s.fd_real:.2f})  IS-style {s.score:.3f}")

# %% [markdown]
# The three frameworks' samples differ only by float rounding, and the judge gives
# them the same score to the printed digits, because the judge itself is the same
# NumPy code whatever produced the images.

# %% [markdown]
# ## Why the judge belongs to no framework
#
# A score is only comparable if every sample set goes through the same function. FID
# already shows how fragile that is: the reference FID code runs a TensorFlow Inception
# network, torchvision's Inception has different weights, and `pytorch-fid` (Seitzer)
# ports the TensorFlow weights and still reports slightly different scores, from image
# resizing and library differences (its README). A judge in PyTorch would grade the
# PyTorch samples with PyTorch's convolutions, and a Keras one the Keras samples with
# its own: a framework comparison would then partly measure the judge. Here the judge
# is plain NumPy (`evaluate.network`), its weights are a committed file, images of any
# size are resized to 28x28 by one PIL filter (and the real digits make the same round
# trip), so the same images give the same number, on any machine and from any
# framework.

# %% [markdown]
# ## Exercise: the Frechet distance of two Gaussians
#
# Write `frechet(mu1, cov1, mu2, cov2)`: the formula above, in NumPy, for two Gaussians
# given by their means `(d,)` and covariances `(d, d)`. You need only the trace of the
# matrix square root: `Tr (S_1 S_2)^(1/2)` is the sum of the square roots of the
# eigenvalues of `S_1 S_2`, which are real and not negative (`np.linalg.eigvals`; take
# `.real` and clip at 0, round-off leaves tiny imaginary and negative parts).
# `scipy.linalg.sqrtm` works too, but warns on the judge's features: some of its ReLU
# units are never active on these samples, so the covariance is singular.
#
# The check runs it twice: on two 3-dimensional Gaussians with diagonal covariances,
# where the distance is `sum (m1 - m2)^2 + sum (sqrt(v1) - sqrt(v2))^2` (an independent
# formula), and on the judge's features of the generator's samples against the
# reference, where it must agree with `common.judge.evaluate.frechet_distance`.

# %%
### BEGIN SOLUTION
def frechet(mu1, cov1, mu2, cov2):
    eig = np.clip(np.linalg.eigvals(cov1 @ cov2).real, 0, None)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(eig).sum())
### END SOLUTION
#: def frechet(mu1, cov1, mu2, cov2):
#:     return None   # your code here

# %% tags=["check"]
from course import check

m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
check.close("frechet, diagonal Gaussians", frechet(m1, np.diag(v1), m2, np.diag(v2)),
            ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum())

f_gen = judge.forward(evaluate.to_judge(samples["pytorch_impl"]))[0]
f_ref = feat[a]
check.close("frechet, the generator's samples",
            frechet(f_gen.mean(0), np.cov(f_gen, rowvar=False), f_ref.mean(0), np.cov(f_ref, rowvar=False)),
            evaluate.frechet_distance(f_gen, f_ref), tol=1e-6)

# %% [markdown]
# `common.judge.evaluate` computes the same number another way: `Tr (S_1 S_2)^(1/2)` is the
# sum of the square roots of the eigenvalues of `S_2^(1/2) S_1 S_2^(1/2)`, a symmetric
# matrix, so `numpy.linalg.eigvalsh` gives them without complex round-off, and the
# reference's square root is computed once and reused for every sample set
# (`evaluate.Reference`).
#
# What to remember:
# - a Frechet distance is read against the real-vs-real floor at the same sample size;
# - it catches blur, noise and missing classes; the IS-style score and the class
#   histogram say which classes a generator draws, and mode collapse shows there;
# - a judge that belongs to no framework gives the same number for the same images,
#   whichever framework drew them.
