# %% [markdown]
# # Lesson 9: spot the bug
#
# Seed 004 is a blog tutorial's notebook: a DCGAN in PyTorch on 64x64 CelebA faces. Its
# networks and its training loop look like every other DCGAN, and they break it in four
# places:
#
# 1. BatchNorm on G's output layer;
# 2. BatchNorm on D's input layer;
# 3. D's loss halved;
# 4. names the training loop uses and never defines: it cannot run.
#
# Below is our own small re-creation of those mistakes, at this repository's setting
# (32x32 MNIST digits, widths 16, so that everything runs in seconds). It is not the
# seed's code: the same mistakes, written the way the rest of this repository is.
#
# The DCGAN paper (Radford et al. 2015, arXiv:1511.06434, section 3) sums up what made
# deep convolutional GANs train, in our words:
# - strided convolutions instead of pooling, in D (down) and G (up, transposed);
# - BatchNorm in both networks, **except G's output layer and D's input layer**;
# - no fully connected hidden layers;
# - ReLU in G, with Tanh on its output; LeakyReLU in D.
#
# You will read the buggy code and find each mistake before the exercise names it, then
# fix it: each exercise cell starts as a copy of the buggy code, and its check runs your
# version against the repository (the layer list of `common/spec.py`, the step of
# `pytorch_impl/step.py`) and says what is still wrong. After each fix, the lesson
# measures what the mistake did.

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## The setting
#
# The repository's 32x32 DCGAN at widths 16 (`Config`), a batch of 64 real digits from
# `common.data` and the noise of step 0: the inputs every check below uses.

# %%
import numpy as np
import torch
from torch import nn

from common import data, spec
from common.config import Config
from course import bugs
from pytorch_impl.layers import adam
from pytorch_impl.model import build, dcgan_init
from pytorch_impl.step import train_step

torch.set_num_threads(1)     # small networks: a second thread only adds waiting on a busy machine
cfg = Config(image_size=32, channels=1, nz=100, ngf=16, ndf=16, batch_size=64)
images, source = data.load_images(cfg)
real = torch.from_numpy(data.to_float(images[:cfg.batch_size])).permute(0, 3, 1, 2)   # NHWC -> NCHW
z = torch.from_numpy(data.noise(cfg.seed, 0, cfg.batch_size, cfg.nz))
print(f"{source}: real {tuple(real.shape)}, z {tuple(z.shape)}")

# %% [markdown]
# ## The buggy code
#
# Read it all, and write down where you think the four mistakes are.

# %%
NZ, WIDTH, CHANNELS = cfg.nz, 16, 1


def up(c_in, c_out, stride=2, padding=1, last=False):
    """One generator block: transposed convolution, BatchNorm, ReLU (Tanh on the last)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.Tanh() if last else nn.ReLU(),
    )


def make_generator(up=up):
    return nn.Sequential(
        nn.Unflatten(1, (NZ, 1, 1)),                  # z (B, NZ) -> (B, NZ, 1, 1)
        up(NZ, WIDTH * 4, stride=1, padding=0),       # (B, 64, 4, 4)
        up(WIDTH * 4, WIDTH * 2),                     # (B, 32, 8, 8)
        up(WIDTH * 2, WIDTH),                         # (B, 16, 16, 16)
        up(WIDTH, CHANNELS, last=True),               # (B, 1, 32, 32)
    )


def down(c_in, c_out):
    """One discriminator block: strided convolution, BatchNorm, LeakyReLU 0.2."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2),
    )


def make_discriminator():
    return nn.Sequential(
        down(CHANNELS, WIDTH),                        # (B, 16, 16, 16)
        down(WIDTH, WIDTH * 2),                       # (B, 32, 8, 8)
        down(WIDTH * 2, WIDTH * 4),                   # (B, 64, 4, 4)
        nn.Conv2d(WIDTH * 4, 1, 4, 1, 0, bias=False),  # (B, 1, 1, 1)
        nn.Flatten(0),                                # (B,): one logit per image
    )


bce = nn.BCEWithLogitsLoss()


def d_loss_fn(logits_real, logits_fake):
    loss_real = bce(logits_real, torch.ones_like(logits_real))
    loss_fake = bce(logits_fake, torch.zeros_like(logits_fake))
    return (loss_real + loss_fake) / 2


def step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    # D: a real batch and a detached fake batch, in two calls
    d_optimizer.zero_grad()
    fake = generator(z)
    logits_real = discriminator(real)
    logits_fake = discriminator(fake.detach())
    d_loss = d_loss_fn(real_logits, logits_fake)
    d_loss.backward()
    d_optimizer.step()
    # G: the non-saturating loss, through the updated D
    g_optimizer.zero_grad()
    logits_after = discriminator(fake)
    g_loss = bce(logits_after, torch.ones(cur_batch))
    g_loss.backward()
    g_optimizer.step()
    return {"d_loss": disc_loss.item(), "g_loss": g_loss.item()}

# %% [markdown]
# Does it run? Build both networks with the repository's DCGAN initialisation
# (`dcgan_init`: N(0, 0.02) weights, as the seed's own init function does) and try them.

# %%
generator, discriminator = make_generator(), make_discriminator()
generator.apply(dcgan_init)
discriminator.apply(dcgan_init)
print("G(z):", tuple(generator(z).shape), " D(x):", tuple(discriminator(real).shape))
try:
    step(generator, discriminator, adam(generator.parameters(), cfg),
         adam(discriminator.parameters(), cfg), real, z)
except NameError as e:
    print(f"the step stops: NameError: {e}")

# %% [markdown]
# The networks run and have the right shapes: shape mistakes announce themselves, these
# do not. The step stops at its first undefined name; exercise 4 finds the others.
#
# ## Exercise 1: G's output layer
#
# Here is what the repository's generator is at this setting, layer by layer, from
# `common/spec.py` (`+bn`: followed by BatchNorm):

# %%
for layer in spec.generator_spec(cfg):
    print(f"{layer.name}  {spec.describe(layer)}")

# %% [markdown]
# Fix the generator's block function. The cell below starts as a copy of `up`; edit it
# so that `make_generator(fixed_up)` is the spec's generator. The check builds it, runs a
# batch of z through it, and compares every layer it runs (operation, channels, kernel,
# stride, padding, BatchNorm, activation) with the spec.

# %%
### BEGIN SOLUTION
def fixed_up(c_in, c_out, stride=2, padding=1, last=False):
    """One generator block: transposed convolution, BatchNorm, ReLU; on the last block,
    Tanh alone: no BatchNorm on G's output."""
    conv = nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False)
    if last:
        return nn.Sequential(conv, nn.Tanh())
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())
### END SOLUTION
#: def fixed_up(c_in, c_out, stride=2, padding=1, last=False):
#:     """One generator block: transposed convolution, BatchNorm, ReLU (Tanh on the last)."""
#:     return nn.Sequential(
#:         nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
#:         nn.BatchNorm2d(c_out),
#:         nn.Tanh() if last else nn.ReLU(),
#:     )

# %% tags=["check"]
from course import check

check.fixed("fixed_up", bugs.generator_problems(lambda: make_generator(fixed_up), cfg))

# %% [markdown]
# ### Why no BatchNorm on G's output
#
# The paper reports that BatchNorm on every layer of both networks made the samples
# oscillate and the model unstable, and that leaving it off G's output layer and D's
# input layer avoided this (section 3). Here is what a BatchNorm on G's output does,
# measured. In training mode it normalises the values the Tanh receives by the batch's
# own mean and spread, then applies its scale and shift (gamma, beta). So:
# - every batch reaches the Tanh with the same mean (beta) and spread (gamma), whatever
#   z is and whatever the weights before it are;
# - G's last convolution no longer sets the contrast of its images: scale its kernel and
#   nothing comes out different. Only gamma and beta do.
#
# Below, 20 batches of z through seed 004's G and through the repository's (both at
# their initial weights), and then the same with the last convolution's kernel tripled.

# %%
def tanh_input(net, z):
    """What the net's Tanh receives for this z (training mode: batch statistics)."""
    tanh = next(m for m in net.modules() if isinstance(m, nn.Tanh))
    seen = []
    hook = tanh.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        net(z)
    hook.remove()
    return seen[0]


def spread(values, fmt="+.4f"):
    return f"{min(values):{fmt}} to {max(values):{fmt}}"


buggy_g = make_generator()
buggy_g.apply(dcgan_init)
repo_g, repo_d = build(cfg, seed=0)           # the repository's networks
last_kernel = {"seed 004's G": buggy_g[-1][0].weight, "the repository's G": repo_g.main.g4.conv.weight}
zs = [torch.from_numpy(data.noise(cfg.seed, 100 + b, cfg.batch_size, cfg.nz)) for b in range(20)]
for name, net in (("seed 004's G", buggy_g), ("the repository's G", repo_g)):
    t = [tanh_input(net, zb) for zb in zs]
    print(f"{name:>18}: over 20 batches, the Tanh's input has batch means {spread([x.mean().item() for x in t])}, "
          f"stds {spread([x.std().item() for x in t], '.4f')}")
    with torch.no_grad():
        last_kernel[name].mul_(3)               # the last convolution's kernel, tripled
        print(f"{'':>18}  kernel x 3: std {tanh_input(net, zs[0]).std().item():.4f} "
              f"(was {t[0].std().item():.4f})")
        last_kernel[name].div_(3)
means = [data.to_float(images[i:i + cfg.batch_size]).mean() for i in range(0, 20 * cfg.batch_size, cfg.batch_size)]
print(f"20 real batches: mean pixel value {spread(means)}")

# %% [markdown]
# The repository's G is tied to its batch too, through its hidden BatchNorm layers, so
# its batches differ little at the start; but its output's statistics are what its
# weights make them, and its last layer learns them. Seed 004's are pinned to gamma and
# beta in every batch, while real batches differ (their mean pixel value moves with how
# much ink their digits have). What one image looks like then depends on which other
# images share its batch.

# %% [markdown]
# ## Exercise 2: D's input layer
#
# The repository's discriminator at this setting, from `common/spec.py`:

# %%
for layer in spec.discriminator_spec(cfg):
    print(f"{layer.name}  {spec.describe(layer)}")

# %% [markdown]
# Fix the discriminator. The cell starts as a copy of `make_discriminator`; edit it (you
# may call `down` where it is right, and write a block out where it is not) so that it is
# the spec's discriminator. The check compares every layer it runs with the spec.

# %%
### BEGIN SOLUTION
def fixed_discriminator():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(CHANNELS, WIDTH, 4, 2, 1, bias=False),   # no BatchNorm on
                      nn.LeakyReLU(0.2)),                              # D's input layer
        down(WIDTH, WIDTH * 2),
        down(WIDTH * 2, WIDTH * 4),
        nn.Conv2d(WIDTH * 4, 1, 4, 1, 0, bias=False),
        nn.Flatten(0),
    )
### END SOLUTION
#: def fixed_discriminator():
#:     return nn.Sequential(
#:         down(CHANNELS, WIDTH),                        # (B, 16, 16, 16)
#:         down(WIDTH, WIDTH * 2),                       # (B, 32, 8, 8)
#:         down(WIDTH * 2, WIDTH * 4),                   # (B, 64, 4, 4)
#:         nn.Conv2d(WIDTH * 4, 1, 4, 1, 0, bias=False),  # (B, 1, 1, 1)
#:         nn.Flatten(0),                                # (B,): one logit per image
#:     )

# %% tags=["check"]
check.fixed("fixed_discriminator", bugs.discriminator_problems(fixed_discriminator, cfg))

# %% [markdown]
# ### Why no BatchNorm on D's input layer
#
# The same sentence of the paper covers D's input layer. What a BatchNorm there does:
# D sees real and fake batches in separate calls (`pytorch_impl/step.py`), so a BatchNorm
# on its first layer normalises each batch by that batch's own statistics, before any
# nonlinearity has looked at them. Shift the brightness of a whole batch: a convolution
# turns the shift into a constant per channel, which BatchNorm subtracts again. Below,
# every pixel of the real batch is raised by 0.5, and we measure how much each D's first
# layer output changes.

# %%
SHIFT = 0.5
buggy_d = make_discriminator()
buggy_d.apply(dcgan_init)
with torch.no_grad():
    for name, first in (("seed 004's D (BatchNorm on its first layer)", buggy_d[0]),
                        ("the repository's D (none there)", repo_d.main.d1)):
        a, b = first(real), first(real + SHIFT)
        change = ((b - a).norm() / a.norm()).item()
        print(f"{name}: the first layer's output changes by {change:.1%}")

# %% [markdown]
# With BatchNorm, much of the shift is gone after the first layer; what is left comes
# from the image borders, where the convolution also reads its zero padding, which the
# shift does not raise. A generator whose batches are all too bright, or too dim, is
# told so by D more faintly.
#
# ## Exercise 3: D's loss, and a prediction
#
# The value function adds its two terms, `log D(x)` on data and `log(1 - D(G(z)))` on
# fakes (Goodfellow et al. 2014; lesson 2); `pytorch_impl/step.py` adds the two BCE
# terms, `BCE(D(x), 1) + BCE(D(G(z)), 0)`. The cell starts as a copy of `d_loss_fn`: fix
# it. The check calls your function on D's logits for the real batch and a fake batch,
# and compares the loss and D's gradient with what the repository's `train_step`
# computes on the same weights, batch and z.
#
# Then **predict**, before the measurement below: D is trained with Adam. Compared with
# the right loss, what does the halved loss do to the size of D's first update? One of
# `ADAM_OUTCOMES`.

# %%
ADAM_OUTCOMES = ("halves it", "barely changes it", "doubles it")

### BEGIN SOLUTION
def fixed_d_loss(logits_real, logits_fake):
    loss_real = bce(logits_real, torch.ones_like(logits_real))
    loss_fake = bce(logits_fake, torch.zeros_like(logits_fake))
    return loss_real + loss_fake


prediction_adam = "barely changes it"
### END SOLUTION
#: def fixed_d_loss(logits_real, logits_fake):
#:     loss_real = bce(logits_real, torch.ones_like(logits_real))
#:     loss_fake = bce(logits_fake, torch.zeros_like(logits_fake))
#:     return (loss_real + loss_fake) / 2
#:
#:
#: prediction_adam = None   # one of ADAM_OUTCOMES

# %% tags=["check"]
check.fixed("fixed_d_loss", bugs.d_loss_problems(fixed_d_loss, cfg, real, z))
check.predict("adam", prediction_adam, ADAM_OUTCOMES)

# %% [markdown]
# Now measure it: one update of the repository's D from the same weights, with the
# halved loss and with the whole one, under Adam (`pytorch_impl.layers.adam`) and, for
# comparison, under plain SGD at the same learning rate.

# %%
def first_update(loss_fn, make_optimizer):
    """The change of D's weights in one optimizer step on loss_fn, from the repository's
    initial weights."""
    generator, discriminator = build(cfg, seed=0)
    optimizer = make_optimizer(discriminator.parameters())
    before = [p.detach().clone() for p in discriminator.parameters()]
    with torch.no_grad():
        fake = generator(z)
    loss = loss_fn(discriminator(real), discriminator(fake))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(discriminator.parameters(), before)])


ratios = {}
for name, make_optimizer in (("Adam", lambda ps: adam(ps, cfg)),
                             ("SGD", lambda ps: torch.optim.SGD(ps, lr=cfg.lr))):
    halved, whole = first_update(d_loss_fn, make_optimizer), first_update(fixed_d_loss, make_optimizer)
    ratios[name] = (halved.norm() / whole.norm()).item()
    print(f"{name:>4}: |update with the halved loss| / |update with the whole loss| = {ratios[name]:.6f}")
r = ratios["Adam"]
matched = check.outcome("adam", "halves it" if r < 0.75 else "doubles it" if r > 1.5 else "barely changes it")

# %% [markdown]
# Adam divides each gradient by a running estimate of its own size, so a constant factor
# on the loss cancels, except against Adam's epsilon (1e-8), which is why the ratio is
# not exactly 1. Under Adam, then, halving D's loss leaves D's training as it was. What
# it does change:
# - the number in the log: `d_loss` is half of what the value function and this
#   repository report. A D that cannot tell real from fake scores `log 4` in the sum
#   (lesson 2) and `log 2` in the halved form, so curves and thresholds do not carry
#   over between the two;
# - under SGD, the ratio above: half the step, half D's learning rate;
# - the balance against anything else added to D's loss: a regulariser, or the gradient
#   penalty of a WGAN-GP critic (lesson 7), weighs twice as much against a halved loss.
#
# Of the four mistakes this is the mildest; it is still a change to the game that should
# be said, not slipped in.
#
# ## Exercise 4: names it never defines
#
# The step stopped at its first undefined name; Python only reports one at a time,
# when its line runs. The cell starts as a copy of `step` (calling your `fixed_d_loss`):
# make it run. The check first lists every global name your function reads that the
# notebook does not define, then runs it on the repository's networks and compares both
# losses and every weight after the step with `train_step`'s.

# %%
### BEGIN SOLUTION
def fixed_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    # D: a real batch and a detached fake batch, in two calls
    d_optimizer.zero_grad()
    fake = generator(z)
    logits_real = discriminator(real)
    logits_fake = discriminator(fake.detach())
    d_loss = fixed_d_loss(logits_real, logits_fake)
    d_loss.backward()
    d_optimizer.step()
    # G: the non-saturating loss, through the updated D
    g_optimizer.zero_grad()
    logits_after = discriminator(fake)
    g_loss = bce(logits_after, torch.ones_like(logits_after))
    g_loss.backward()
    g_optimizer.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}
### END SOLUTION
#: def fixed_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
#:     # D: a real batch and a detached fake batch, in two calls
#:     d_optimizer.zero_grad()
#:     fake = generator(z)
#:     logits_real = discriminator(real)
#:     logits_fake = discriminator(fake.detach())
#:     d_loss = fixed_d_loss(real_logits, logits_fake)
#:     d_loss.backward()
#:     d_optimizer.step()
#:     # G: the non-saturating loss, through the updated D
#:     g_optimizer.zero_grad()
#:     logits_after = discriminator(fake)
#:     g_loss = bce(logits_after, torch.ones(cur_batch))
#:     g_loss.backward()
#:     g_optimizer.step()
#:     return {"d_loss": disc_loss.item(), "g_loss": g_loss.item()}

# %% tags=["check"]
check.fixed("fixed_step", bugs.step_problems(fixed_step, cfg, real, z))

# %% [markdown]
# All of a function's undefined names can be found before it runs: they are the global
# names its compiled code loads (`dis`) that neither the module nor Python's builtins
# define. The check above does that (`course.bugs.undefined_names`); a linter does the
# same for a whole file (pyflakes' "undefined name", ruff's rule F821). On the buggy step:

# %%
print("step reads, and nobody defines:", ", ".join(bugs.undefined_names(step)))

# %% [markdown]
# The seed's loop has six such names. In a notebook they can hide for a while: a name
# left over from an earlier cell, or from an earlier version of the same cell, makes the
# loop run today and fail in a fresh kernel tomorrow. Restart the kernel and run all
# before you trust a notebook.
#
# ## The mended code, trained
#
# Your fixes together: `make_generator(fixed_up)`, `fixed_discriminator()` and
# `fixed_step`, for 30 steps on the digits, to see that the whole thing runs and the
# game starts (lesson 5 shows what longer runs look like).

# %% tags=["slow"]
generator, discriminator = make_generator(fixed_up), fixed_discriminator()
generator.apply(dcgan_init)
discriminator.apply(dcgan_init)
g_optimizer, d_optimizer = adam(generator.parameters(), cfg), adam(discriminator.parameters(), cfg)
batches = data.Batches(images, cfg.batch_size, cfg.seed)
for i, x in enumerate(batches.epoch(0)):
    x = torch.from_numpy(x).permute(0, 3, 1, 2)
    metrics = fixed_step(generator, discriminator, g_optimizer, d_optimizer, x,
                         torch.from_numpy(data.noise(cfg.seed, i, cfg.batch_size, cfg.nz)))
    if i % 10 == 9:
        print(f"step {i + 1}: d_loss {metrics['d_loss']:.4f}  g_loss {metrics['g_loss']:.4f}")
    if i == 29:
        break

# %% [markdown]
# ## What catches these here
#
# | mistake | guideline | what it does | what would catch it in this repository |
# |---|---|---|---|
# | BatchNorm on G's output | none on G's output layer (Radford et al. 2015, section 3) | every batch reaches the Tanh with the same mean and spread | `tests/test_pytorch_model.py`, `test_every_layer_matches_the_spec` |
# | BatchNorm on D's input | none on D's input layer (same section) | a whole batch's brightness is largely normalised away before D looks | the same test, for D |
# | D's loss halved | V(D, G) adds its two terms (Goodfellow et al. 2014) | under Adam, almost nothing to training; half the logged `d_loss`, half the step under SGD | `tests/test_cross_framework.py`, `test_one_gan_step_agrees` (the metrics and Adam's moments) |
# | undefined names | (Python) | the loop cannot run, one name at a time | any test that runs the loop; a linter before it |
#
# The first two are silent: the networks run, the shapes are right, and nothing fails.
# A list of what each layer should be, and a test that compares the code with it, is
# what finds them.
