"""course/remedies.py, the runs of lesson 7: each remedy's piece does what its paper says
and nothing else, the step without remedies is the repository's train_step, and the
committed results/remedies/ are the runs the script defines, with a table that is fresh.
Seconds on a CPU: tiny networks, a few steps."""
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.config import UserError
from course import remedies as R
from pytorch_impl.step import train_step


def tiny(failure="healthy", remedy="none", **kw):
    return dataclasses.replace(R.setting(failure, remedy), image_size=16, ngf=4, ndf=4,
                               batch_size=8, **kw)


def batch(seed=0, n=8, size=16):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    return real, torch.randn(n, 100, generator=g)


# ----------------------------------------------------------------------------------------
# the step

def test_the_step_without_remedies_is_train_step():
    s = tiny()
    a, b = R.networks(s), R.networks(s)
    oa, ob = R.optimizers(s, *a), R.optimizers(s, *b)
    for i in range(3):
        real, z = batch(i)
        mine, theirs = R.step(s, *a, *oa, real, z, i), train_step(*b, *ob, real, z)
        assert mine == pytest.approx(theirs, abs=1e-6)
    for p, q in zip(list(a[0].parameters()) + list(a[1].parameters()),
                    list(b[0].parameters()) + list(b[1].parameters())):
        torch.testing.assert_close(p, q)


def test_each_pair_changes_only_what_its_remedy_says():
    for f, r in R.PAIRS:
        s, base = R.setting(f, r), R.setting(f, "none")
        changed = {k for k, v in dataclasses.asdict(s).items() if getattr(base, k) != v} - {"remedy"}
        want = {"none": set(), "smoothing": {"real_target"}, "noise": {"noise_sigma"},
                "ttur": {"lr_d", "lr_g"}, "sn": {"spectral_norm", "d_batchnorm"},
                "wgan-gp": {"loss", "d_batchnorm", "k", "lr_g", "lr_d", "beta1", "beta2"}}[r]
        if f.startswith("no-bn"):
            want = want - {"d_batchnorm"}        # already off
        if f in ("d5", "saturating"):
            want = want - {"k"}                  # already 5
        assert changed == want, (f, r, changed)
    s = R.setting("lr10", "ttur")
    assert (s.lr_d, s.lr_g) == pytest.approx((4e-3, 1e-3))
    assert (R.setting("paper", "ttur").lr_d, R.setting("paper", "ttur").lr_g) == pytest.approx((4e-4, 1e-4))
    with pytest.raises(UserError, match="no remedy"):
        R.setting("d5", "dropout")


def test_networks_lose_batchnorm_where_the_setting_says():
    has_bn = lambda net: any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    g, d = R.networks(R.setting("paper", "wgan-gp"))
    assert has_bn(g) and not has_bn(d)
    g, d = R.networks(R.setting("no-bn", "none"))
    assert not has_bn(g) and not has_bn(d)
    g, d = R.networks(R.setting("d5", "sn"))
    assert has_bn(g) and not has_bn(d)
    assert sum(nn.utils.parametrize.is_parametrized(m) for m in d.modules()) == 4


# ----------------------------------------------------------------------------------------
# one-sided label smoothing

def test_label_smoothing_moves_only_the_real_target():
    torch.manual_seed(0)
    d_real, d_fake = torch.randn(16, requires_grad=True), torch.randn(16, requires_grad=True)
    plain, smooth = R.d_loss_bce(d_real, d_fake), R.d_loss_bce(d_real, d_fake, 0.9)
    g_plain = torch.autograd.grad(plain, (d_real, d_fake))
    g_smooth = torch.autograd.grad(smooth, (d_real, d_fake))
    torch.testing.assert_close(g_plain[1], g_smooth[1])                 # fakes: untouched
    assert not torch.allclose(g_plain[0], g_smooth[0])                  # reals: moved
    # the real term is BCE against 0.9: its gradient vanishes where sigmoid(logit) = 0.9
    at = torch.full((4,), float(np.log(9.0)), requires_grad=True)
    g, = torch.autograd.grad(R.d_loss_bce(at, torch.zeros(4) - 50, 0.9), at)
    assert g.abs().max() < 1e-6
    torch.testing.assert_close(smooth - plain, F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 0.9))
                               - F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)))


def test_smoothing_leaves_g_s_loss_alone():
    """G's loss is BCE(D(G(z)), 1) in both: with the same D, the same g_loss."""
    real, z = batch()
    for s in (tiny(), tiny(real_target=0.9)):
        g, d = R.networks(s)
        g_opt, d_opt = R.optimizers(s, g, d)
        d_opt.step = lambda: None                     # D frozen: the G loss sees the same D
        m = R.step(s, g, d, g_opt, d_opt, real, z, 0)
        if s.real_target == 1.0:
            first = m
    assert m["g_loss"] == pytest.approx(first["g_loss"], rel=1e-6)
    assert m["d_loss"] != pytest.approx(first["d_loss"], rel=1e-3)


# ----------------------------------------------------------------------------------------
# instance noise

def test_instance_noise_anneals_to_zero_on_schedule():
    steps = 500
    sig = [R.noise_sigma(0.5, i, steps) for i in range(steps + 3)]
    assert sig[0] == 0.5 and sig[steps - 1] == 0.0 and sig[steps:] == [0.0] * 3
    assert sig[(steps - 1) // 2] == pytest.approx(0.25, rel=1e-2)
    assert all(a > b for a, b in zip(sig[:steps - 1], sig[1:steps]))     # strictly falling
    assert np.allclose(np.diff(sig[:steps]), -0.5 / (steps - 1))       # linearly


def test_instance_noise_reaches_d_early_and_not_at_the_last_step():
    """What D sees: the real batch plus N(0, sigma^2) at step 0, the batch itself at the
    last step; the fakes the same (D's two calls in the D update, one in G's)."""
    s = tiny("healthy", "noise", steps=10)
    real, z = batch()
    for i, sigma in ((0, 0.5), (9, 0.0)):
        g, d = R.networks(s)
        with torch.no_grad():
            fake = g(z)                       # G in training mode, as the step calls it
        g, d = R.networks(s)                  # fresh: the same weights, statistics
        seen = []
        d.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
        R.step(s, g, d, *R.optimizers(s, g, d), real, z, i)
        assert len(seen) == 3                 # real, fake (D's update), fake (G's update)
        assert (seen[0] - real).std().item() == pytest.approx(sigma, abs=0.02)
        assert (seen[1] - fake).std().item() == pytest.approx(sigma, abs=0.02)
        if sigma == 0:
            assert torch.equal(seen[0], real)


# ----------------------------------------------------------------------------------------
# spectral normalisation

def test_spectral_norm_bounds_each_layer_s_largest_singular_value_near_1():
    s = R.setting("paper", "sn")
    g, d = R.networks(s)
    layers = [m for m in d.modules() if nn.utils.parametrize.is_parametrized(m)]
    assert len(layers) == 5
    with torch.no_grad():                            # raw weights far from sigma 1: not trivial
        for m in layers:
            m.parametrizations.weight.original.mul_(10.0)
    raw = [np.linalg.svd(m.parametrizations.weight.original.detach().numpy().reshape(
        m.weight.shape[0], -1), compute_uv=False)[0] for m in layers]
    assert min(raw) > 1.5
    x = torch.randn(16, 1, 32, 32)
    with torch.no_grad():
        for _ in range(10):                            # power iterations, one per forward
            d(x)
    for m in layers:
        sigma = np.linalg.svd(m.weight.detach().numpy().reshape(m.weight.shape[0], -1),
                              compute_uv=False)[0]
        assert sigma == pytest.approx(1.0, abs=0.02), m


# ----------------------------------------------------------------------------------------
# the gradient penalty

def test_gradient_penalty_of_a_linear_critic_is_known():
    """critic(x) = <w, x>: its gradient is w everywhere, so the penalty is (|w| - 1)^2."""
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=True)).double()
    real, fake = torch.randn(5, 1, 4, 4, dtype=torch.float64), torch.randn(5, 1, 4, 4, dtype=torch.float64)
    eps = torch.rand(5, 1, 1, 1, dtype=torch.float64)
    p = R.gradient_penalty(lin, real, fake, eps)
    assert p.item() == pytest.approx((lin[1].weight.norm().item() - 1) ** 2, rel=1e-12)


def test_gradient_penalty_matches_torch_func_and_finite_differences():
    critic, real, fake, eps = R.penalty_problem()
    p = R.gradient_penalty(critic, real, fake, eps)
    value, grads = R.gradient_penalty_reference(critic, real, fake, eps)
    assert 0.01 < value < 10 and p.item() == pytest.approx(value, rel=1e-10)
    critic.zero_grad(set_to_none=True)
    p.backward()
    for name, prm in critic.named_parameters():
        np.testing.assert_allclose(prm.grad.numpy(), grads[name], rtol=1e-8, atol=1e-12)
    # finite differences, float64, on a few entries of the first kernel
    w = dict(critic.named_parameters())["main.d1.conv.weight"]
    h = 1e-6
    for idx in [(0, 0, 0, 0), (3, 0, 1, 2), (7, 0, 3, 3)]:
        with torch.no_grad():
            w[idx] += h
        up = R.gradient_penalty(critic, real, fake, eps).item()
        with torch.no_grad():
            w[idx] -= 2 * h
        down = R.gradient_penalty(critic, real, fake, eps).item()
        with torch.no_grad():
            w[idx] += h
        assert (up - down) / (2 * h) == pytest.approx(grads["main.d1.conv.weight"][idx], rel=1e-5, abs=1e-9)


def test_the_exercise_check_passes_the_penalty_and_rejects_mistakes(capsys):
    R.check_gradient_penalty(R.gradient_penalty)
    assert capsys.readouterr().out.count("correct") == 2

    def no_graph(critic, real, fake, eps):
        x = (eps * real + (1 - eps) * fake).requires_grad_(True)
        g, = torch.autograd.grad(critic(x).sum(), x)
        return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def squared_norm(critic, real, fake, eps):
        x = (eps * real + (1 - eps) * fake).requires_grad_(True)
        g, = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return ((g.flatten(1).pow(2).sum(1) - 1) ** 2).mean()

    for fn, message in [(lambda *a: None, "is None"), (no_graph, "create_graph=True"),
                        (squared_norm, "relative error")]:
        with pytest.raises(AssertionError, match=message):
            R.check_gradient_penalty(fn)


def test_the_wgan_gp_step_trains_the_critic_five_times():
    s = tiny("d5", "wgan-gp")
    g, d = R.networks(s)
    g_opt, d_opt = R.optimizers(s, g, d)
    calls = []
    original = d_opt.step
    d_opt.step = lambda *a, **k: (calls.append(1), original(*a, **k))
    real, z = batch()
    m = R.step(s, g, d, g_opt, d_opt, real, z, 0)
    assert len(calls) == 5 and np.isfinite(list(m.values())).all()
    assert m["g_loss"] == pytest.approx(-m["d_fake_after"], rel=1e-6)     # G: -mean critic


# ----------------------------------------------------------------------------------------
# the verdicts and the committed results

def test_verdict_thresholds():
    assert R.verdict(100, 900, 90) == "rescues"
    assert R.verdict(112, 900, 90) == "rescues" and R.verdict(113, 900, 90) == "helps"
    assert R.verdict(600, 800, 100) == "helps"
    assert R.verdict(700, 800, 100) == "no change"
    assert R.verdict(1000, 800, 100) == "hurts"
    assert R.verdict(396, 172, 387) == "hurts"       # worse than a failure that had not failed
    assert R.verdict(200, 172, 387) == "rescues"


def test_committed_results_are_the_scripts_runs_and_the_table_is_fresh():
    results = R.load_results()
    if not results:
        pytest.skip("results/remedies/ has no runs")
    for (f, r), res in results.items():
        assert res["setting"] == dataclasses.asdict(R.setting(f, r)), (f, r)
        assert res["classes_over_5pct"] == R.classes_over(res["histogram"])
        assert sum(res["histogram"]) == pytest.approx(1.0)
        d = R.OUT / f"{f}__{r}"
        assert (d / "grid.png").is_file() and (d / "metrics.csv").is_file()
    table = (R.OUT / "table.md").read_text()
    assert table.split("\n", 1)[1] == R.table(results), "rerun: python -m course.remedies --table"
    missing = [f"{f}/{r}" for f, r in R.PAIRS if (f, r) not in results]
    assert not missing, f"pairs not run: {missing}"
