# %% [markdown]
# # Lesson 2: the GAN game
#
# Goodfellow et al. (2014, arXiv:1406.2661) set up a GAN as a game between two players
# with one value function:
#
# $$V(D, G) = \mathbb{E}_{x \sim p_\text{data}}[\log D(x)] + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))]$$
#
# D, a probability that its input is real, **maximises** V: `D(x)` near 1 on data,
# `D(G(z))` near 0 on fakes. G **minimises** it: it wants its fakes taken for data. The
# repository's `d_loss` is `-V` estimated on one batch: `BCE(D(x), 1) = -mean log D(x)`
# and `BCE(D(G(z)), 0) = -mean log(1 - D(G(z)))`, so D's optimizer step is a step up V.
#
# Lesson 3 takes one step of this game on the real networks. This lesson asks what the
# game is: what the best D is, what G then minimises, and why two players taking
# gradient steps against each other do not simply settle.
#
# You will:
# - derive the best D for a fixed G and check it by maximising V numerically (exercise 1),
#   then watch a small D trained on samples find the same curve;
# - compute the Jensen-Shannon divergence of two distributions (exercise 2) and V at the
#   best D (exercise 3): they are tied by `V(D*, G) = 2 JS(p_data || p_g) - log 4`;
# - see, in two lines of autograd, why G is not trained on `log(1 - D(G(z)))` (lesson 3
#   works it out);
# - play the smallest min-max game, `f(x, y) = x y`, with simultaneous and alternating
#   gradient steps, predict what each does (exercise 4), and explain it with the
#   eigenvalues of one step (exercise 5): the reason GAN curves oscillate.
#
# Everything here is one- or two-dimensional: the lesson runs in seconds.

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## Two distributions on a line
#
# The data: two narrow bumps, at -2 and +2. The generator: one wide bump between them,
# as if G had not yet found the two modes. Unlike a real GAN's, both densities can be
# written down (`scipy.stats`), which is what makes the theory checkable here.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize, stats
from scipy.spatial.distance import jensenshannon

torch.set_num_threads(1)     # tiny models: a second thread only adds waiting on a busy machine

MODES, MODE_STD = (-2.0, 2.0), 0.5      # p_data: an equal mixture of two Gaussians
G_MEAN, G_STD = 0.0, 1.5                # p_g: one Gaussian


def p_data(x):
    return sum(0.5 * stats.norm.pdf(x, m, MODE_STD) for m in MODES)


def p_g(x):
    return stats.norm.pdf(x, G_MEAN, G_STD)


def sample_data(n, rng):
    return rng.choice(MODES, n) + MODE_STD * rng.standard_normal(n)


def sample_g(n, rng):
    return G_MEAN + G_STD * rng.standard_normal(n)


x = np.linspace(-10, 10, 20001)         # wide enough that both densities vanish at its ends
dx = x[1] - x[0]
print(f"probability mass on the grid: p_data {p_data(x).sum() * dx:.8f}, p_g {p_g(x).sum() * dx:.8f}")

plt.figure(figsize=(6, 2.6))
plt.plot(x, p_data(x), label="p_data")
plt.plot(x, p_g(x), label="p_g")
plt.xlim(-5, 5)
plt.xlabel("x")
plt.legend()
plt.title("The data and the generator's distribution")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The best D for a fixed G
#
# The second expectation in V is over `z`, but `G(z)` is distributed as `p_g`, so it is
# an expectation over `x ~ p_g`. V is one integral:
#
# $$V(D, G) = \int \big[\, p_\text{data}(x) \log D(x) + p_g(x) \log(1 - D(x)) \,\big]\, dx .$$
#
# D picks a value `D(x)` in (0, 1) at every `x` on its own (a network flexible enough can),
# so V is largest when the integrand is largest at every `x`. At one `x`, with
# $a = p_\text{data}(x)$ and $b = p_g(x)$, maximise
#
# $$h(y) = a \log y + b \log(1 - y), \qquad 0 < y < 1 .$$
#
# $h'(y) = a/y - b/(1-y)$ is zero at $y = a/(a+b)$, and $h''(y) = -a/y^2 - b/(1-y)^2 < 0$:
# a maximum. So (Goodfellow et al. 2014, Proposition 1)
#
# $$D^*(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)} .$$
#
# `D*` is 1/2 where the two densities are equal, near 1 where only the data lives, near
# 0 where only G's samples fall.
#
# ## Exercise 1: D* as a function
#
# Write `d_star(x)` for the two distributions above (`x` an array; use `p_data` and
# `p_g`). The check does not use the formula: at 33 points it maximises `h(y)` with a
# bounded numerical search (`scipy.optimize.minimize_scalar`) and compares.

# %%
### BEGIN SOLUTION
def d_star(x):
    return p_data(x) / (p_data(x) + p_g(x))
### END SOLUTION
#: def d_star(x):
#:     return None   # your code here

# %% tags=["check"]
from course import check


def argmax_h(a, b):
    """The y in (0, 1) that maximises a log y + b log(1 - y), found by search."""
    h = lambda y: -(a * np.log(y) + b * np.log1p(-y))
    return optimize.minimize_scalar(h, bounds=(1e-12, 1 - 1e-12), method="bounded",
                                    options={"xatol": 1e-12}).x


points = np.linspace(-4, 4, 33)
numerical = np.array([argmax_h(p_data(t), p_g(t)) for t in points])
check.close("d_star", d_star(points), numerical, tol=1e-6)

# %% [markdown]
# ## A trained D finds D* too
#
# A GAN never sees densities, only samples. Train a small D (an MLP: one input, two
# hidden layers of 32, one logit) on samples of the two distributions with the
# repository's D loss, `BCE(D(x), 1) + BCE(D(G(z)), 0)`, which is `-V` on a batch. No
# formula goes in. The learning rate decays to 0 over the run (cosine), so that the
# batches' noise settles at the end.

# %% tags=["slow"]
torch.manual_seed(0)
rng = np.random.default_rng(0)
mlp = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32),
                          torch.nn.Tanh(), torch.nn.Linear(32, 1))
STEPS, BATCH = 800, 1024
optimizer = torch.optim.Adam(mlp.parameters(), lr=1e-2)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, STEPS)
column = lambda a: torch.tensor(a, dtype=torch.float32)[:, None]
for step in range(STEPS):
    l_real, l_fake = mlp(column(sample_data(BATCH, rng))), mlp(column(sample_g(BATCH, rng)))
    d_loss = (F.binary_cross_entropy_with_logits(l_real, torch.ones_like(l_real))
              + F.binary_cross_entropy_with_logits(l_fake, torch.zeros_like(l_fake)))
    optimizer.zero_grad()
    d_loss.backward()
    optimizer.step()
    schedule.step()

with torch.no_grad():
    logit = mlp(column(x)).double().numpy()[:, 0]
d_trained = 1 / (1 + np.exp(-logit))
# V by integration; log D and log(1 - D) from the logit, so that no D rounds to 0 or 1
v_trained = np.sum(-p_data(x) * np.logaddexp(0, -logit) - p_g(x) * np.logaddexp(0, logit)) * dx
v_best = np.sum(p_data(x) * np.log(d_star(x)) + p_g(x) * np.log1p(-d_star(x))) * dx
where = (p_data(x) + p_g(x)) / 2          # where the samples fall
gap = np.abs(d_trained - d_star(x))
print(f"last batch's d_loss {d_loss.item():.4f}")
print(f"|trained D - D*|: {np.sum(where * gap) * dx:.4f} on average over the samples, "
      f"at most {gap[np.abs(x) <= 3].max():.3f} on [-3, 3]")
print(f"V(trained D, G) = {v_trained:.5f}  <=  V(D*, G) = {v_best:.5f}")

plt.figure(figsize=(6, 2.8))
plt.plot(x, d_star(x), lw=3, alpha=0.5, label="D* = p_data / (p_data + p_g)")
plt.plot(x, d_trained, "k--", lw=1, label=f"D trained on samples ({STEPS} steps)")
plt.plot(x, p_data(x), lw=0.8, label="p_data")
plt.plot(x, p_g(x), lw=0.8, label="p_g")
plt.xlim(-5, 5)
plt.xlabel("x")
plt.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
plt.title("The best discriminator, by formula and by training")
plt.tight_layout()
plt.show()

# %% [markdown]
# The trained D follows `D*` where the samples fall and drifts in the tails, where few
# samples ever land; its V is a little below `V(D*, G)`, as any D's must be.
#
# ## What G minimises: the Jensen-Shannon divergence
#
# Put `D*` back into V. Write $m = (p_\text{data} + p_g)/2$, so that
# $p_\text{data} + p_g = 2m$:
#
# $$V(D^*, G) = \int p_\text{data} \log \frac{p_\text{data}}{2m} + \int p_g \log \frac{p_g}{2m}
#   = \mathrm{KL}(p_\text{data} \| m) + \mathrm{KL}(p_g \| m) - 2 \log 2 .$$
#
# The Jensen-Shannon divergence is $\mathrm{JS}(P \| Q) = \tfrac12 \mathrm{KL}(P \| M) +
# \tfrac12 \mathrm{KL}(Q \| M)$ with $M = (P + Q)/2$ and
# $\mathrm{KL}(P \| M) = \int p \log(p/m)\,dx$. So
#
# $$V(D^*, G) = 2\, \mathrm{JS}(p_\text{data} \| p_g) - \log 4 .$$
#
# JS is symmetric, zero only when the two distributions are equal and at most `log 2`
# (in nats). Against the best D, G minimises a divergence between its distribution and
# the data's, and the minimum, `-log 4`, is reached only at `p_g = p_data`
# (Goodfellow et al. 2014, Theorem 1). There `D* = 1/2` everywhere: D can do no better
# than a coin.
#
# ## Exercise 2: JS by integration
#
# Compute `js`, $\mathrm{JS}(p_\text{data} \| p_g)$ in nats (natural logarithm), by
# numerical integration on the grid `x` (a sum times `dx` is enough). The check asks
# `scipy.spatial.distance.jensenshannon`, which returns the square root of the JS
# divergence of two discrete distributions (it normalises the two vectors itself).

# %%
### BEGIN SOLUTION
p, q = p_data(x), p_g(x)
m = (p + q) / 2
js = 0.5 * np.sum(p * np.log(p / m)) * dx + 0.5 * np.sum(q * np.log(q / m)) * dx
### END SOLUTION
#: js = None   # your code here

# %% tags=["check"]
js_scipy = jensenshannon(p_data(x), p_g(x)) ** 2     # natural log: scipy's default base
check.close("js", js, js_scipy, tol=1e-6)

# %% [markdown]
# ## Exercise 3: V at the best D
#
# Compute `v_star`, `V(D*, G)` for the two distributions, by integration on the grid with
# your `d_star`. The check compares it with `2 JS - log 4`, JS from scipy: if they agree,
# you have checked the identity on this pair of distributions.

# %%
### BEGIN SOLUTION
v_star = np.sum(p_data(x) * np.log(d_star(x)) + p_g(x) * np.log(1 - d_star(x))) * dx
### END SOLUTION
#: v_star = None   # your code here

# %% tags=["check"]
check.close("v_star", v_star, 2 * js_scipy - np.log(4), tol=1e-6)

# %%
print(f"V(D*, G) = {v_star:.6f};  2 JS - log 4 = {2 * js_scipy:.6f} - {np.log(4):.6f} "
      f"= {2 * js_scipy - np.log(4):.6f}")
print(f"at p_g = p_data: V = -log 4 = {-np.log(4):.6f}, and the repository's d_loss "
      f"(-V on a batch) is log 4 = {np.log(4):.6f}")

# %% [markdown]
# So a `d_loss` above `log 4` on a batch means D does worse there than a coin would;
# below it, D still tells real from fake.
#
# ## Why G does not train on log(1 - D(G(z)))
#
# JS has a weakness as something to descend. Slide a narrow G away from the data and
# watch it: once the two distributions barely overlap, JS sits at `log 2` wherever G
# is, and a flat function gives no direction.

# %%
shifts = np.array([0, 1, 2, 3, 4, 6, 8, 12])
js_far = [jensenshannon(p_data(x), stats.norm.pdf(x, 2 + s, MODE_STD)) ** 2 for s in shifts]
print(f"log 2 = {np.log(2):.6f}")
for s, j in zip(shifts, js_far):
    print(f"p_g = N({2 + s:>2}, {MODE_STD}^2): JS = {j:.6f}")

# %% [markdown]
# The same thing happens sample by sample. G's loss in the minimax game is
# `log(1 - D(G(z)))`, and early in training D rejects the fakes easily: `D(G(z))` near 0,
# where that loss is flat. Lesson 3 (`03_one_step`, exercise 2) derives both gradients
# and plots them; the short version, by autograd, is the gradient with respect to D's
# logit `l` (`D(G(z)) = sigmoid(l)`) of the saturating loss `log(1 - D(G(z)))` and of
# the non-saturating `-log D(G(z))` that every `step.py` here trains with:

# %%
for d in (0.5, 1e-2, 1e-4):
    l = torch.tensor(np.log(d / (1 - d)), requires_grad=True)      # the logit where D(G(z)) = d
    (saturating,) = torch.autograd.grad(torch.log1p(-torch.sigmoid(l)), l)
    (non_saturating,) = torch.autograd.grad(-torch.log(torch.sigmoid(l)), l)
    print(f"D(G(z)) = {d:<6}  d/dl log(1 - D(G(z))) = {saturating.item():+.6f}   "
          f"d/dl -log D(G(z)) = {non_saturating.item():+.6f}")

# %% [markdown]
# The saturating loss pushes G with a force of `D(G(z))` itself: nothing when G is
# worst. The non-saturating loss has the same fixed point and pushes with
# `1 - D(G(z))`, close to 1 exactly then (Goodfellow et al. 2014, section 3). Lesson 5
# trains with each and shows the difference in the curves.
#
# ## The smallest min-max game: f(x, y) = x y
#
# Player x minimises `f(x, y) = x y`, player y maximises it. The only equilibrium is
# `(0, 0)`: anywhere else one player gains by moving (if `y > 0`, x lowers f by going
# negative, and so on). Each player's gradient is set by the *other's* position,
# `df/dx = y` and `df/dy = x`: this coupling is the heart of the GAN game near an
# equilibrium, with everything else stripped away.
#
# Gradient descent for x, ascent for y, learning rate `lr`, in two orders:
# - **simultaneous**: both step from the same point: `x <- x - lr y`, `y <- y + lr x`
#   (the old x);
# - **alternating**: x steps first, then y steps against the *new* x. The repository's
#   `train_step` alternates too: D steps, then G steps against the updated D (the
#   maximiser first; the order does not change what follows).
#
# ## Exercise 4: the two steps, and a prediction
#
# Write `simultaneous_step(x, y, lr)` and `alternating_step(x, y, lr)`, each returning
# the new `(x, y)`. Then, **before running them**, predict what 200 steps at `lr = 0.1`
# from `(1, 1)` do, for each: one of `OUTCOMES`:
# - `"converges"`: the point approaches the equilibrium (0, 0);
# - `"orbits"`: it circles (0, 0) at about the same distance, forever;
# - `"spirals out"`: it circles (0, 0) and moves away.
#
# The check compares your steps with steps whose gradients come from torch autograd on
# `x * y`, and records your predictions.

# %%
OUTCOMES = ("converges", "orbits", "spirals out")
LR, STEPS, START = 0.1, 200, (1.0, 1.0)

### BEGIN SOLUTION
def simultaneous_step(x, y, lr):
    return x - lr * y, y + lr * x


def alternating_step(x, y, lr):
    x = x - lr * y
    return x, y + lr * x


prediction_simultaneous = "spirals out"
prediction_alternating = "orbits"
### END SOLUTION
#: def simultaneous_step(x, y, lr):
#:     return None   # your code here: the new (x, y)
#:
#:
#: def alternating_step(x, y, lr):
#:     return None   # your code here
#:
#:
#: prediction_simultaneous = None   # one of OUTCOMES
#: prediction_alternating = None    # one of OUTCOMES

# %% tags=["check"]
def autograd_step(x, y, lr, alternate):
    """One gradient descent-ascent step on f(x, y) = x y, the gradients from autograd."""
    x, y = (torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in (x, y))
    grad_x, grad_y = torch.autograd.grad(x * y, (x, y))
    new_x = (x - lr * grad_x).detach()
    if alternate:                                  # y's gradient at x's new position
        (grad_y,) = torch.autograd.grad(new_x * y, y)
    return new_x.item(), (y + lr * grad_y).item()


def answers(step):
    """The step on each case; None if it gave None (a blank)."""
    got = [step(*c) for c in cases]
    return None if any(g is None for g in got) else got


cases = [(*np.random.default_rng(i).normal(size=2), lr) for i, lr in enumerate((0.01, 0.1, 0.5, 1.5))]
check.close("simultaneous_step", answers(simultaneous_step),
            [autograd_step(*c, alternate=False) for c in cases], tol=1e-9)
check.close("alternating_step", answers(alternating_step),
            [autograd_step(*c, alternate=True) for c in cases], tol=1e-9)
check.predict("simultaneous", prediction_simultaneous, OUTCOMES)
check.predict("alternating", prediction_alternating, OUTCOMES)

# %% [markdown]
# Now run both from the same start and plot where they go.

# %%
def play(step, lr=LR, steps=STEPS, start=START):
    path = [start]
    for _ in range(steps):
        path.append(tuple(step(*path[-1], lr)))
    return np.array(path)


def what_it_did(path):
    """The outcome, from the distance to (0, 0) at the end against the start."""
    ratio = np.linalg.norm(path[-1]) / np.linalg.norm(path[0])
    return "converges" if ratio < 0.8 else "spirals out" if ratio > 1.25 else "orbits"


paths = {"simultaneous": play(simultaneous_step), "alternating": play(alternating_step)}
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, (name, path) in zip(axes, paths.items()):
    ax.plot(path[:, 0], path[:, 1], lw=0.8)
    ax.plot(*path[0], "go", label="start")
    ax.plot(*path[-1], "rs", label=f"after {STEPS} steps")
    ax.plot(0, 0, "k*", ms=10, label="equilibrium")
    ax.set_aspect("equal")
    ax.set_title(f"{name}, lr {LR}")
    ax.set_xlabel("x (minimises x y)")
    ax.set_ylabel("y (maximises x y)")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()
for name, path in paths.items():
    r = np.linalg.norm(path, axis=1)
    print(f"{name:>12}: distance to (0, 0) {r[0]:.3f} at the start, {r[-1]:.3f} after {STEPS} "
          f"steps (between {r.min():.3f} and {r.max():.3f} on the way)")
for name, path in paths.items():
    check.outcome(name, what_it_did(path))

# %% [markdown]
# ## Why: each step is a linear map
#
# Both steps are linear in `(x, y)`: the new point is a 2x2 matrix times the old one.
# What the matrix does to lengths, over and over, is what its eigenvalues say: a
# complex pair `r e^{±iθ}` turns every point by `θ` per step and scales its distance by
# `r`, on average over a turn.
#
# ## Exercise 5: the steps' matrices
#
# Write `step_matrices(lr)`, returning the two 2x2 NumPy arrays `(A_sim, A_alt)` with
# `(x_new, y_new) = A @ (x, y)` for the simultaneous and the alternating step (expand
# the alternating step's `y_new` in terms of the old `x` and `y`). The check builds each
# matrix column by column from the autograd steps above, and compares the largest
# |eigenvalue| of your `A_sim` with the growth per step measured on a path.

# %%
### BEGIN SOLUTION
def step_matrices(lr):
    a_sim = np.array([[1.0, -lr], [lr, 1.0]])
    a_alt = np.array([[1.0, -lr], [lr, 1.0 - lr ** 2]])
    return a_sim, a_alt
### END SOLUTION
#: def step_matrices(lr):
#:     return None, None   # your code here: (A_sim, A_alt)

# %% tags=["check"]
def matrix_of(alternate, lr):
    """Column j is the step applied to the j-th unit vector (the map is linear)."""
    return np.array([autograd_step(*e, lr, alternate) for e in ((1, 0), (0, 1))]).T


for lr in (0.1, 0.5):
    A_sim, A_alt = step_matrices(lr)
    check.close(f"A_sim (lr {lr})", A_sim, matrix_of(False, lr), tol=1e-9)
    check.close(f"A_alt (lr {lr})", A_alt, matrix_of(True, lr), tol=1e-9)
reference = [START]
for _ in range(STEPS):
    reference.append(autograd_step(*reference[-1], LR, alternate=False))
measured = (np.linalg.norm(reference[-1]) / np.linalg.norm(START)) ** (1 / STEPS)
check.close("largest |eigenvalue| of A_sim vs the measured growth per step",
            np.abs(np.linalg.eigvals(step_matrices(LR)[0])).max(), measured, tol=1e-9)

# %%
A_sim, A_alt = step_matrices(LR)
for name, A in (("simultaneous", A_sim), ("alternating", A_alt)):
    lam = np.linalg.eigvals(A)
    r = np.linalg.norm(paths[name], axis=1)
    print(f"{name:>12}: eigenvalues {lam[0]:.4f} and {lam[1]:.4f}, |eigenvalue| {np.abs(lam).max():.6f}, "
          f"turn {np.degrees(abs(np.angle(lam[0]))):.2f} degrees a step; on the path, "
          f"(end / start distance) ** (1 / {STEPS}) = {(r[-1] / r[0]) ** (1 / STEPS):.6f}")
print(f"sqrt(1 + lr^2) = {np.sqrt(1 + LR ** 2):.6f}; det A_alt = {np.linalg.det(A_alt):.6f}, "
      f"trace A_alt = {np.trace(A_alt):.4f}")

# %% [markdown]
# **Simultaneous.** $A_\text{sim} = \begin{pmatrix} 1 & -\eta \\ \eta & 1 \end{pmatrix}$
# has eigenvalues $1 \pm i\eta$, of modulus $\sqrt{1 + \eta^2} > 1$ for *every* learning
# rate $\eta > 0$. In fact $A_\text{sim}$ is $\sqrt{1+\eta^2}$ times a rotation, so every
# step turns the point by $\arctan \eta$ and multiplies its distance to the equilibrium
# by exactly $\sqrt{1 + \eta^2}$: a spiral outward. A smaller learning rate only slows
# it down. The continuous game, $\dot x = -y$, $\dot y = x$, runs around a circle; each
# simultaneous step moves along the circle's tangent and so lands a little outside it.
#
# **Alternating.** $A_\text{alt} = \begin{pmatrix} 1 & -\eta \\ \eta & 1 - \eta^2
# \end{pmatrix}$ has determinant 1 and trace $2 - \eta^2$. For $0 < \eta < 2$ its
# eigenvalues are a complex pair whose product is the determinant, 1, so both have
# modulus 1: the point turns forever on a closed curve (an ellipse, slightly tilted:
# that is why its distance to (0, 0) wobbles a little along the path), neither growing
# nor shrinking. Bounded, and still never at the equilibrium.
#
# Neither scheme converges. Gradient steps on a min-max game *rotate* around the
# equilibrium, because each player's gradient is set by the other's position; nothing
# in plain gradient descent-ascent damps the rotation. In a real GAN each player's loss
# also has curvature of its own, and Adam rescales every step, but the rotating part of
# the game is there too: Mescheder et al. (2017, arXiv:1705.10461) analyse GAN training
# through the eigenvalues of the Jacobian of the two players' joint gradient field, and
# trace its trouble to eigenvalues with large imaginary parts: the rotation seen here.
# This is why the curves of a healthy GAN run do not settle the way a
# classifier's loss does: `d_loss`, `g_loss`, `D(x)` and `D(G(z))` swing around their
# equilibrium values as the players circle. Lesson 5 watches a GAN learn and shows those
# swings; lesson 7 tries remedies that change the dynamics.
