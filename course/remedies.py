"""Lesson 7's measured runs: lesson 5's ways to break training and the paper network's
collapse, each trained again with one known remedy, judged, and written to results/remedies/.

    python -m course.remedies                   every pair not in results/remedies/ yet
    python -m course.remedies --list            the pairs, their settings, which are done
    python -m course.remedies d5/smoothing ...  these pairs (FAILURE/REMEDY), run again
    python -m course.remedies --table           rewrite results/remedies/table.md only

One pair is one run: a fresh G and D from pytorch_impl.model.build, the batches and noise of
common.data, a step written below (pytorch_impl.step.train_step with the failure's and the
remedy's changes), then 1,000 samples scored by common.judge.evaluate. Each finished run
writes its folder (result.json: the setting and the scores; metrics.csv; grid.png), so a
stopped command loses at most the run it was in, and the next one starts from there.

The remedies (each one change on top of the failure's setting):
    smoothing   one-sided label smoothing: D's target for real images 0.9, for fakes 0
                (Salimans et al. 2016, arXiv:1606.03498, section 3.4)
    noise       instance noise: N(0, sigma^2) added to every image D sees, real and fake,
                sigma annealed linearly from 0.5 to 0 over the run (Sonderby et al. 2016,
                arXiv:1610.04490; Arjovsky & Bottou 2017, arXiv:1701.04862)
    ttur        two time-scales: D's learning rate twice the failure's, G's half of it
                (4e-4 and 1e-4 from 2e-4; Heusel et al. 2017, arXiv:1706.08500)
    sn          spectral normalisation of every layer of D, D without BatchNorm
                (Miyato et al. 2018, arXiv:1802.05957)
    wgan-gp     the Wasserstein loss with a gradient penalty: a critic without BatchNorm,
                lambda 10, five critic updates per G update, Adam 1e-4 (0, 0.9)
                (Gulrajani et al. 2017, arXiv:1704.00028, Algorithm 1)
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import data, runfiles
from common.config import ADAM_EPS, ArgumentParser, Config, UserError, run_main
from pytorch_impl.model import build
from pytorch_impl.step import generate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "remedies"
EVAL_SEED = 1234          # the judge's z: a generator never trained on these
N_EVAL = 1000
N_GRID = 32               # samples in each run's grid.png (4 rows of 8)


# ========================================================================================
# what one run trains

@dataclass(frozen=True)
class Setting:
    failure: str
    remedy: str
    arch: str = "dcgan"
    image_size: int = 32
    ngf: int = 16
    ndf: int = 16
    batch_size: int = 64
    steps: int = 500
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    k: int = 1                   # D updates per G update, on the step's batch
    saturating: bool = False     # G minimises log(1 - D(G(z))) instead of -log D(G(z))
    g_batchnorm: bool = True
    d_batchnorm: bool = True
    loss: str = "bce"            # "bce", or "wgan-gp" (the critic's loss with the penalty)
    real_target: float = 1.0     # D's target for real images (0.9: label smoothing)
    noise_sigma: float = 0.0     # instance noise at step 0, annealed to 0 at the last step
    spectral_norm: bool = False  # every convolution and linear layer of D
    gp_weight: float = 10.0      # lambda of the gradient penalty (wgan-gp only)
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.failure}/{self.remedy}"

    def config(self) -> Config:
        """The repository's Config of this run's networks (for build and the data)."""
        return Config(dataset="mnist", arch=self.arch, image_size=self.image_size, channels=1,
                      ngf=self.ngf, ndf=self.ndf, batch_size=self.batch_size, lr=self.lr_d,
                      beta1=self.beta1, beta2=self.beta2, seed=self.seed)


# The failures. The tutorial network's four are lesson 5's (course/lessons/05_watching.py,
# there at 16x16 widths 32) at 32x32, widths 16, batch 64; `healthy` is the same network
# unbroken, the reference each is compared with. `paper` is `--arch paper` at its CPU
# profile (32x32, ngf = ndf = 8, batch 128: ARCH_PROFILES in common/config.py), which
# collapses to one image within a few hundred steps (results/pytorch-cpu-paper); its
# reference, `paper-control`, is the tutorial network at the CPU profile's widths 32, as
# in that folder's README.
TUTORIAL = dict(arch="dcgan", image_size=32, ngf=16, ndf=16, batch_size=64, steps=500)
PAPER = dict(arch="paper", image_size=32, ngf=8, ndf=8, batch_size=128, steps=300)
FAILURES = {
    "healthy": ("the tutorial network, unbroken (the reference)", TUTORIAL),
    "no-bn": ("no BatchNorm in G or D", {**TUTORIAL, "g_batchnorm": False, "d_batchnorm": False}),
    "lr10": ("a learning rate 10 times the paper's (2e-3)", {**TUTORIAL, "lr_g": 2e-3, "lr_d": 2e-3}),
    "d5": ("D trained five times per G step", {**TUTORIAL, "k": 5}),
    "saturating": ("the saturating loss, D five times per G step",
                   {**TUTORIAL, "k": 5, "saturating": True}),
    "paper": ("the paper's network at its CPU widths (collapses)", PAPER),
    "paper-control": ("the tutorial network at the CPU profile's widths 32, batch 128 (the "
                      "paper row's reference)", {**PAPER, "arch": "dcgan", "ngf": 32, "ndf": 32}),
    # three times as long, for the pair that moved most at 500 steps (no-bn/wgan-gp): does
    # a generator without BatchNorm learn under WGAN-GP given time, as Gulrajani et al.
    # report (section 5, Figure 2)?
    "healthy-1500": ("the tutorial network, unbroken, 1,500 steps", {**TUTORIAL, "steps": 1500}),
    "no-bn-1500": ("no BatchNorm in G or D, 1,500 steps",
                   {**TUTORIAL, "g_batchnorm": False, "d_batchnorm": False, "steps": 1500}),
}
REFERENCE = {"no-bn": "healthy", "lr10": "healthy", "d5": "healthy", "saturating": "healthy",
             "paper": "paper-control", "no-bn-1500": "healthy-1500"}


def _smoothing(s: Setting) -> dict:
    return dict(real_target=0.9)


def _noise(s: Setting) -> dict:
    return dict(noise_sigma=0.5)


def _ttur(s: Setting) -> dict:
    return dict(lr_d=2 * s.lr_d, lr_g=s.lr_g / 2)


def _sn(s: Setting) -> dict:
    return dict(spectral_norm=True, d_batchnorm=False)


def _wgan_gp(s: Setting) -> dict:
    return dict(loss="wgan-gp", d_batchnorm=False, k=5, lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9)


REMEDIES = {
    "none": ("the failure as it is", lambda s: {}),
    "smoothing": ("one-sided label smoothing: real target 0.9", _smoothing),
    "noise": ("instance noise, sigma 0.5 annealed to 0", _noise),
    "ttur": ("two time-scales: D's lr x2, G's lr /2", _ttur),
    "sn": ("spectral norm in D (no BatchNorm in D)", _sn),
    "wgan-gp": ("WGAN-GP: critic without BatchNorm, 5 updates per G step", _wgan_gp),
}

# The pairs that are run, in order: the paper network first (the open question of
# results/pytorch-cpu-paper), then the failures whose remedies the papers argue for. Left
# out to fit about 45 minutes of training on two shared cores, and why they are the ones:
# lr10/wgan-gp (WGAN-GP brings its own learning rate, 1e-4: the failure would be gone by
# construction); d5/ttur, saturating/ttur (TTUR speeds D up: the wrong way for a D that
# already wins); saturating/wgan-gp (its G loss, -D(G(z)), has no saturating form);
# d5/wgan-gp (WGAN-GP on the tutorial network: nine times a step's cost; no-bn/wgan-gp
# tests the paper's claim instead); saturating/smoothing, lr10/smoothing, lr10/noise (the
# least telling of the rest: smoothing moves only the real target, which does not touch a
# saturating G loss; lr10 did not fail in lesson 5).
PAIRS = [("healthy", "none"), ("paper-control", "none")] + \
    [("paper", r) for r in REMEDIES] + \
    [("no-bn", r) for r in ("none", "sn", "wgan-gp", "noise", "smoothing", "ttur")] + \
    [("d5", r) for r in ("none", "smoothing", "noise", "sn")] + \
    [("saturating", r) for r in ("none", "noise", "sn")] + \
    [("lr10", r) for r in ("none", "ttur", "sn")] + \
    [("healthy-1500", "none"), ("no-bn-1500", "none"), ("no-bn-1500", "wgan-gp")]


def setting(failure: str, remedy: str) -> Setting:
    if failure not in FAILURES:
        raise UserError(f"no failure {failure!r}; there are: {', '.join(FAILURES)}")
    if remedy not in REMEDIES:
        raise UserError(f"no remedy {remedy!r}; there are: {', '.join(REMEDIES)}")
    s = Setting(failure, remedy, **FAILURES[failure][1])
    return dataclasses.replace(s, **REMEDIES[remedy][1](s))


# ========================================================================================
# the networks: the repository's, with the failure's and the remedy's changes

def strip_batchnorm(net: nn.Module) -> nn.Module:
    """Every block's BatchNorm replaced by the identity (pytorch_impl.model blocks keep it
    as `bn`)."""
    for blk in net.main:
        if hasattr(blk, "bn"):
            blk.bn = nn.Identity()
    return net


def add_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectral normalisation of every convolution and linear layer: the weight W is used
    as W / sigma(W), sigma estimated by one power iteration per forward pass in training
    mode (torch.nn.utils.parametrizations.spectral_norm; a convolution's kernel is viewed
    as the matrix (out, in*kh*kw))."""
    for blk in net.main:
        for name, m in list(blk.named_children()):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                setattr(blk, name, nn.utils.parametrizations.spectral_norm(m))
    return net


def networks(s: Setting):
    generator, discriminator = build(s.config(), seed=s.seed)
    if not s.g_batchnorm:
        strip_batchnorm(generator)
    if not s.d_batchnorm:
        strip_batchnorm(discriminator)
    if s.spectral_norm:
        add_spectral_norm(discriminator)
    return generator, discriminator


# ========================================================================================
# the remedies' pieces

def d_loss_bce(d_real, d_fake, real_target: float = 1.0):
    """D's loss from logits: BCE(real, real_target) + BCE(fake, 0). real_target < 1 is
    one-sided label smoothing: only the real images' target moves; the fakes' stays 0
    (smoothing it too would reward D for letting fakes look half-real)."""
    return (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_target))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


def noise_sigma(sigma0: float, step: int, steps: int) -> float:
    """Instance noise's standard deviation at `step` (0-based) of `steps`: sigma0 at the
    first step, falling linearly, 0 at the last step and after it."""
    if steps <= 1:
        return 0.0
    return sigma0 * max(0.0, 1.0 - step / (steps - 1))


def gradient_penalty(critic, real, fake, eps):
    """WGAN-GP's penalty, mean over the batch of (||grad_x critic(x_hat)|| - 1)^2 at x_hat =
    eps * real + (1 - eps) * fake, eps (B, 1, 1, 1) in [0, 1]. create_graph=True keeps the
    gradient differentiable, so that the penalty's own gradient reaches the critic's
    parameters (a double backward)."""
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def gradient_penalty_reference(critic, real, fake, eps):
    """The same penalty computed another way, to check gradient_penalty (and the lesson's
    exercise) against: torch.func, one image at a time (vmap of grad), with the critic's
    parameters as an explicit argument, then the penalty's gradient with respect to them by
    torch.func.grad around it. Returns (penalty, {parameter name: gradient}) as float64
    NumPy. The critic must have no BatchNorm (one image at a time is then the same)."""
    from torch.func import functional_call, grad, vmap
    params = {k: v.detach() for k, v in critic.named_parameters()}
    buffers = {k: v.detach() for k, v in critic.named_buffers()}
    x_hat = (eps * real + (1 - eps) * fake).detach()

    def one(p, x):                                       # critic's logit of one image
        return functional_call(critic, (p, buffers), (x.unsqueeze(0),)).sum()

    def penalty(p):
        g = vmap(grad(one, argnums=1), in_dims=(None, 0))(p, x_hat)   # (B, C, H, W)
        return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()

    value = penalty(params)
    grads = grad(penalty)(params)
    return float(value), {k: v.double().numpy() for k, v in grads.items()}


def penalty_problem(seed: int = 1):
    """A critic and a batch to check a gradient penalty on, in float64: the tutorial D at
    16x16, widths 8, without BatchNorm, its weights scaled by 8 so that the gradient norms
    at x_hat are near 1 (at the N(0, 0.02) initialisation they are near 0, and every
    penalty would be about 1, whatever its formula)."""
    cfg = dataclasses.replace(setting("healthy", "wgan-gp"), image_size=16, ngf=8, ndf=8)
    _, critic = networks(cfg)
    critic = critic.double()
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(8.0)
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(8, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    fake = torch.rand(8, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.rand(8, 1, 1, 1, generator=g, dtype=torch.float64)
    return critic, real, fake, eps


def penalty_and_gradients(fn):
    """Lesson 7's exercise: run fn(critic, real, fake, eps) on penalty_problem() and return
    (its penalty, the gradient its .backward() leaves on the critic's parameters as one
    vector, the reference penalty, the reference gradient), the last two from
    gradient_penalty_reference. A blank (None, or not a tensor) comes back as it is, for
    check.close to reject; a penalty that the parameters cannot be differentiated through
    is an AssertionError that says why."""
    critic, real, fake, eps = penalty_problem()
    expected, grads = gradient_penalty_reference(critic, real, fake, eps)
    expected_grad = np.concatenate([grads[k].ravel() for k, _ in critic.named_parameters()])
    value = fn(critic, real, fake, eps)
    if value is None or not torch.is_tensor(value):
        return value, None, expected, expected_grad
    if not value.requires_grad:
        raise AssertionError("the penalty does not depend on the critic's parameters: "
                             "torch.autograd.grad needs create_graph=True")
    critic.zero_grad(set_to_none=True)
    value.backward()
    got = np.concatenate([(p.grad if p.grad is not None else torch.zeros_like(p)).numpy().ravel()
                          for _, p in critic.named_parameters()])
    return value.item(), got, expected, expected_grad


def check_gradient_penalty(fn) -> None:
    """What the lesson's check cell does: the penalty and its gradient with respect to the
    critic's parameters, each against the reference (course.check.close)."""
    from course import check
    value, grad, expected, expected_grad = penalty_and_gradients(fn)
    check.close("penalty", value, expected, tol=1e-9)
    check.close("penalty_grad", grad, expected_grad, tol=1e-9)


# ========================================================================================
# one step, one run

def step(s: Setting, generator, discriminator, g_optimizer, d_optimizer, real, z, i: int) -> dict:
    """pytorch_impl.step.train_step with the setting's changes: k D updates on the step's
    batch, the critic's loss or BCE with a smoothed real target, instance noise on what D
    sees, G's saturating or non-saturating loss. With the defaults it is train_step (the
    tests check it). For the critic the reported d_real / d_fake are its mean outputs, not
    probabilities."""
    wgan = s.loss == "wgan-gp"
    sigma = noise_sigma(s.noise_sigma, i, s.steps)
    seen = (lambda x: x + sigma * torch.randn_like(x)) if sigma > 0 else (lambda x: x)

    # (1) Update D, k times on the same batch
    fake = generator(z)
    for _ in range(s.k):
        d_optimizer.zero_grad(set_to_none=True)
        d_real, d_fake = discriminator(seen(real)), discriminator(seen(fake.detach()))
        if wgan:
            eps = torch.rand(real.shape[0], 1, 1, 1)
            d_loss = (d_fake.mean() - d_real.mean()
                      + s.gp_weight * gradient_penalty(discriminator, real, fake.detach(), eps))
        else:
            d_loss = d_loss_bce(d_real, d_fake, s.real_target)
        d_loss.backward()
        d_optimizer.step()

    # (2) Update G against the updated D
    g_optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)
    d_fake_after = discriminator(seen(fake))
    if wgan:
        g_loss = -d_fake_after.mean()
    elif s.saturating:        # minimise log(1 - D(G(z))) = -BCE(logit, 0)
        g_loss = -F.binary_cross_entropy_with_logits(d_fake_after, torch.zeros_like(d_fake_after))
    else:                     # minimise -log D(G(z)) = BCE(logit, 1)
        g_loss = F.binary_cross_entropy_with_logits(d_fake_after, torch.ones_like(d_fake_after))
    g_loss.backward()
    discriminator.requires_grad_(True)
    g_optimizer.step()

    out = (lambda t: t.mean()) if wgan else (lambda t: torch.sigmoid(t).mean())
    values = torch.stack([d_loss, g_loss, out(d_real), out(d_fake), out(d_fake_after)])
    return dict(zip(runfiles.METRICS, values.tolist()))


def optimizers(s: Setting, generator, discriminator):
    adam = lambda net, lr: torch.optim.Adam(net.parameters(), lr=lr, betas=(s.beta1, s.beta2),
                                            eps=ADAM_EPS)
    return adam(generator, s.lr_g), adam(discriminator, s.lr_d)


def train(s: Setting, images: np.ndarray, log_every: int = 0):
    """Train a fresh G and D for s.steps steps: (metrics {name: array}, generator)."""
    generator, discriminator = networks(s)
    g_optimizer, d_optimizer = optimizers(s, generator, discriminator)
    batches = data.Batches(images, s.batch_size, s.seed)
    history, i, t0 = [], 0, time.perf_counter()
    while i < s.steps:
        for real in batches.epoch(i // batches.per_epoch):
            real = torch.from_numpy(real).permute(0, 3, 1, 2)       # NHWC -> NCHW
            z = torch.from_numpy(data.noise(s.seed, i, s.batch_size, 100))
            history.append(step(s, generator, discriminator, g_optimizer, d_optimizer, real, z, i))
            i += 1
            if log_every and i % log_every == 0:
                m = {k: np.mean([h[k] for h in history[-log_every:]]) for k in runfiles.METRICS}
                print(f"  {s.name} step {i}/{s.steps}: d_loss {m['d_loss']:.3f} g_loss "
                      f"{m['g_loss']:.3f} D(x) {m['d_real']:.2f} D(G(z)) {m['d_fake']:.2f}/"
                      f"{m['d_fake_after']:.2f}  {(time.perf_counter() - t0) / i:.3f} s/step",
                      flush=True)
            if i == s.steps:
                break
    metrics = {k: np.array([h[k] for h in history]) for k in runfiles.METRICS}
    return metrics, generator


# ========================================================================================
# judging and the files

def classes_over(histogram, share: float = 0.05) -> int:
    return int(sum(h > share for h in histogram))


def judge_generator(generator, judge):
    z = data.draw_z(np.random.default_rng(EVAL_SEED), N_EVAL, 100)
    from common.judge import evaluate
    return evaluate.evaluate(judge, generate(generator, z, torch.device("cpu")))


def run_one(s: Setting, images: np.ndarray, judge, out: Path = OUT, log_every: int = 50) -> dict:
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    torch.manual_seed(s.seed)
    metrics, generator = train(s, images, log_every)
    seconds = time.perf_counter() - t0
    scores = judge_generator(generator, judge)
    d = out / s.name.replace("/", "__")
    d.mkdir(parents=True, exist_ok=True)
    # the mean of every 10 steps: the curves' shape at a tenth of the size
    n = len(metrics["d_loss"]) // 10 * 10
    rows = np.stack([metrics[k][:n].reshape(-1, 10).mean(axis=1) for k in runfiles.METRICS], 1)
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step"] + list(runfiles.METRICS))
        for j, r in enumerate(rows):
            w.writerow([10 * (j + 1)] + [f"{v:.4g}" for v in r])
    fixed = data.fixed_noise(s.seed, 100, N_GRID)
    runfiles.save_grid(generate(generator, fixed, torch.device("cpu")), d / "grid.png", nrow=8)
    last = {k: float(v[-100:].mean()) for k, v in metrics.items()}
    result = {
        "setting": dataclasses.asdict(s),
        "failure": FAILURES[s.failure][0], "remedy": REMEDIES[s.remedy][0],
        "fd": scores.fd, "fd_low": scores.fd_low, "fd_high": scores.fd_high, "fd_std": scores.fd_std,
        "fd_real": scores.fd_real, "score": scores.score, "histogram": scores.histogram,
        "classes_over_5pct": classes_over(scores.histogram), "top_share": max(scores.histogram),
        "last_100_steps": last, "train_seconds": round(seconds, 1),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
                   + f", {os.cpu_count()} cpus, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "command": "python -m course.remedies " + s.name,
    }
    (d / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def load_results(out: Path = OUT) -> dict:
    """{(failure, remedy): result} of every finished run under out."""
    found = {}
    for p in sorted(Path(out).glob("*__*/result.json")):
        r = json.loads(p.read_text())
        found[(r["setting"]["failure"], r["setting"]["remedy"])] = r
    return found


# ========================================================================================
# the verdict: how a remedy's run compares with its failure's and the healthy reference

VERDICTS = ("rescues", "helps", "no change", "hurts")
MARGIN = 0.25   # 25%: about the spread of Frechet distances between seeds at ~500 steps
                # (results/time-to-quality/study.csv: 256 to 391 at 540 steps, widths 32)


def verdict(fd: float, failure_fd: float, reference_fd: float) -> str:
    """hurts: 25% or more above the failure's own distance; else rescues: at most 25% above
    the healthy reference's (or below it); else helps: 25% or more below the failure's own;
    else no change. "hurts" comes first: a remedy that makes a run which had not failed
    (lr10 here) much worse has not rescued it."""
    if fd >= (1 + MARGIN) * failure_fd:
        return "hurts"
    if fd <= (1 + MARGIN) * reference_fd:
        return "rescues"
    if fd <= (1 - MARGIN) * failure_fd:
        return "helps"
    return "no change"


def verdicts(results: dict) -> dict:
    """{(failure, remedy): verdict} for every remedy run whose failure and reference ran."""
    out = {}
    for (f, r), res in results.items():
        if f in REFERENCE and r != "none" and (f, "none") in results and (REFERENCE[f], "none") in results:
            out[(f, r)] = verdict(res["fd"], results[(f, "none")]["fd"], results[(REFERENCE[f], "none")]["fd"])
    return out


def table(results: dict) -> str:
    v = verdicts(results)
    lines = ["| failure | remedy | Frechet distance (90% interval) | IS-style | classes over 5% | "
             "top class | D(x) / D(G(z)), last 100 steps | verdict | train s |",
             "|---|---|--:|--:|--:|--:|--:|---|--:|"]
    for (f, r) in [p for p in PAIRS if p in results]:
        res = results[(f, r)]
        last, wgan = res["last_100_steps"], res["setting"]["loss"] == "wgan-gp"
        outs = (f"critic {last['d_real']:.2f} / {last['d_fake']:.2f}" if wgan
                else f"{last['d_real']:.2f} / {last['d_fake']:.2f}")
        lines.append(f"| {f} | {r} | {res['fd']:.0f} ({res['fd_low']:.0f} to {res['fd_high']:.0f}) | "
                     f"{res['score']:.2f} | {res['classes_over_5pct']} | {res['top_share']:.0%} | "
                     f"{outs} | {v.get((f, r), '')} | {res['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def write_table(out: Path = OUT) -> Path:
    results = load_results(out)
    path = Path(out) / "table.md"
    path.write_text("<!-- written by python -m course.remedies --table: do not edit -->\n"
                    + table(results))
    return path


# ========================================================================================
# the command

def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m course.remedies", description=__doc__.split("\n\n")[0])
    p.add_argument("pairs", nargs="*", metavar="FAILURE/REMEDY",
                   help="run these pairs again (default: every pair not done yet)")
    p.add_argument("--list", action="store_true", help="the pairs and which are done")
    p.add_argument("--table", action="store_true", help="only rewrite table.md")
    p.add_argument("--out", default=str(OUT), help="default: results/remedies")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    a = p.parse_args(argv)
    out = Path(a.out)
    done = load_results(out)
    if a.list:
        for f, r in PAIRS:
            print(f"{'done' if (f, r) in done else '    '}  {f}/{r}: {setting(f, r)}")
        return 0
    if a.table:
        print(f"wrote {write_table(out)}")
        return 0
    if a.pairs:
        todo = []
        for name in a.pairs:
            f, _, r = name.partition("/")
            setting(f, r)                               # a UserError names the choices
            todo.append((f, r))
    else:
        todo = [pair for pair in PAIRS if pair not in done]
    torch.set_num_threads(a.threads)
    from common.judge import evaluate
    judge = evaluate.load_judge("mnist")
    cache = {}
    for n, (f, r) in enumerate(todo, 1):
        s = setting(f, r)
        if s.image_size not in cache:
            cache[s.image_size], source = data.load_images(s.config())
        print(f"[{n}/{len(todo)}] {s.name}: {s.arch} {s.image_size}px ngf {s.ngf} ndf {s.ndf} "
              f"batch {s.batch_size}, {s.steps} steps", flush=True)
        res = run_one(s, cache[s.image_size], judge, out)
        print(f"[{n}/{len(todo)}] {s.name}: Frechet {res['fd']:.1f}, classes over 5% "
              f"{res['classes_over_5pct']}, {res['train_seconds']:.0f} s", flush=True)
        write_table(out)
    print(f"wrote {out}/table.md")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DCGAN_OFFLINE", "1")
    sys.exit(run_main(main))
