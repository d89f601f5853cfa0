"""course/bugs.py, the diagnoses behind lesson 9 (spot the bug), and course.check.fixed:
each of seed 004's mistakes, re-created here, is rejected with a message that names it;
each repair, and the repository's own networks and step, are accepted."""
import re

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from common import data  # noqa: E402
from common.config import Config  # noqa: E402
from course import bugs, check  # noqa: E402
from pytorch_impl.model import build  # noqa: E402
from pytorch_impl.step import train_step  # noqa: E402

CFG = Config(image_size=32, channels=1, nz=100, ngf=8, ndf=8, batch_size=16)
W = 8
REAL = torch.from_numpy(data.to_float(data.synthetic(CFG.batch_size, 32))).permute(0, 3, 1, 2)
Z = torch.from_numpy(data.noise(0, 0, CFG.batch_size, CFG.nz))
BCE = nn.BCEWithLogitsLoss()


def fails(problems, *messages):
    """check.fixed raises, with each message in what it says."""
    with pytest.raises(AssertionError) as e:
        check.fixed("repair", problems)
    for m in messages:
        assert m in str(e.value), str(e.value)
    return str(e.value)


# ----------------------------------------------------------------------------------------
# check.fixed

def test_fixed_passes_an_empty_list_and_refuses_a_blank_or_problems(capsys):
    check.fixed("fixed_up", [])
    assert "fixed_up: correct (no mistake left)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="fixed_up is None: fill in the exercise above"):
        check.fixed("fixed_up", None)
    with pytest.raises(AssertionError, match=r"^fixed_up: G's last layer$"):
        check.fixed("fixed_up", ["G's last layer"])
    with pytest.raises(AssertionError, match=r"fixed_up: 2 mistakes left:\n- a\n- b"):
        check.fixed("fixed_up", ["a", "b"])


# ----------------------------------------------------------------------------------------
# the networks against common/spec.py

def up(c_in, c_out, stride=2, padding=1, last=False, bn_last=True, bn=True, act_last=nn.Tanh):
    norm = [nn.BatchNorm2d(c_out)] if bn and (bn_last or not last) else []
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False), *norm,
                         act_last() if last else nn.ReLU())


def generator(**kw):
    return nn.Sequential(nn.Unflatten(1, (CFG.nz, 1, 1)), up(CFG.nz, W * 4, 1, 0, **kw),
                         up(W * 4, W * 2, **kw), up(W * 2, W, **kw), up(W, 1, last=True, **kw))


def down(c_in, c_out, bn=True):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                         *([nn.BatchNorm2d(c_out)] if bn else []), nn.LeakyReLU(0.2))


def discriminator(bn_first=True, bn_image=False):
    return nn.Sequential(*([nn.BatchNorm2d(1)] if bn_image else []), down(1, W, bn_first),
                         down(W, W * 2), down(W * 2, W * 4), nn.Conv2d(W * 4, 1, 4, 1, 0, bias=False),
                         nn.Flatten(0))


def test_batchnorm_on_gs_output_is_named_and_its_fix_accepted():
    msg = fails(bugs.generator_problems(lambda: generator(), CFG),
                "G's last layer (g4) is followed by BatchNorm", "Radford et al. 2015, section 3")
    assert "mistakes left" not in msg                   # that one mistake, nothing else
    assert bugs.generator_problems(lambda: generator(bn_last=False), CFG) == []
    assert bugs.generator_problems(lambda: build(CFG)[0], CFG) == []      # the repository's


def test_other_generator_mistakes_are_named_by_layer():
    fails(bugs.generator_problems(lambda: generator(bn=False), CFG),
          "3 mistakes left", "G's layer g1 has no BatchNorm", "G's layer g3 has no BatchNorm")
    fails(bugs.generator_problems(lambda: generator(bn_last=False, act_last=nn.ReLU), CFG),
          "G's layer g4 ends in relu, the spec has tanh")
    wrong_stride = lambda: nn.Sequential(nn.Unflatten(1, (CFG.nz, 1, 1)), up(CFG.nz, W * 4, 1, 0),
                                         up(W * 4, W * 2, 1, 0), up(W * 2, W), up(W, 1, last=True, bn_last=False))
    fails(bugs.generator_problems(wrong_stride, CFG), "G's layer g2: stride 1 where the spec has 2")
    fails(bugs.generator_problems(lambda: generator()[:-1], CFG), "G runs 3 convolution layers, the spec has 4")


def test_a_blank_or_broken_generator_is_reported_not_raised():
    blank = lambda *a, **k: None                        # a block function that returns None
    assert bugs.generator_problems(lambda: nn.Sequential(blank(1, 2), nn.Sequential(blank(2, 3))),
                                   CFG) is None
    assert bugs.generator_problems(lambda: None, CFG) is None
    fails(bugs.generator_problems(lambda: 1 / 0, CFG), "building G raised ZeroDivisionError")
    fails(bugs.generator_problems(lambda: nn.Sequential(nn.Linear(3, 4)), CFG),
          "running G on a batch of shape (8, 100) raised RuntimeError")


def test_batchnorm_on_ds_input_is_named_and_its_fix_accepted():
    msg = fails(bugs.discriminator_problems(lambda: discriminator(), CFG),
                "D's first layer (d1) is followed by BatchNorm")
    assert "mistakes left" not in msg
    assert bugs.discriminator_problems(lambda: discriminator(bn_first=False), CFG) == []
    assert bugs.discriminator_problems(lambda: build(CFG)[1], CFG) == []
    fails(bugs.discriminator_problems(lambda: discriminator(bn_first=False, bn_image=True), CFG),
          "D normalises its input with BatchNorm before the first layer")


# ----------------------------------------------------------------------------------------
# D's loss and the step against train_step

def whole(logits_real, logits_fake):
    return BCE(logits_real, torch.ones_like(logits_real)) + BCE(logits_fake, torch.zeros_like(logits_fake))


def halved(logits_real, logits_fake):
    return whole(logits_real, logits_fake) / 2


def test_a_halved_d_loss_is_named_in_the_loss_and_the_gradient():
    fails(bugs.d_loss_problems(halved, CFG, REAL, Z), "2 mistakes left",
          "d_loss is half the repository's", "averaged instead of added", "D's gradient is half")
    assert bugs.d_loss_problems(whole, CFG, REAL, Z) == []


def test_other_d_losses_are_refused_with_what_is_wrong():
    assert bugs.d_loss_problems(lambda r, f: None, CFG, REAL, Z) is None
    fails(bugs.d_loss_problems(lambda r, f: whole(r, f).item(), CFG, REAL, Z), "return one number as a tensor")
    fails(bugs.d_loss_problems(lambda r, f: whole(r, f).detach(), CFG, REAL, Z), "cut off from D's weights")
    fails(bugs.d_loss_problems(lambda r, f: BCE(r, torch.ones_like(r)), CFG, REAL, Z),
          "where train_step has")
    # a right value from the wrong graph: the fake term's gradient does not reach D
    fails(bugs.d_loss_problems(lambda r, f: BCE(r, torch.ones_like(r)) + BCE(f.detach(), torch.zeros_like(f)),
                               CFG, REAL, Z), "D's gradient differs from train_step's")


def buggy_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    d_optimizer.zero_grad()
    fake = generator(z)
    logits_real = discriminator(real)
    logits_fake = discriminator(fake.detach())
    d_loss = whole(real_logits, logits_fake)                      # noqa: F821
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad()
    g_loss = BCE(discriminator(fake), torch.ones(cur_batch))      # noqa: F821
    g_loss.backward()
    g_optimizer.step()
    return {"d_loss": disc_loss.item(), "g_loss": g_loss.item(),  # noqa: F821
            "n": [never_defined for _ in range(1)]}               # noqa: F821  (a comprehension's)


def step_with(d_loss_fn, g_first=False):
    def step(generator, discriminator, g_optimizer, d_optimizer, real, z):
        fake = generator(z)
        if g_first:                                  # G steps against the D before its update
            g_optimizer.zero_grad()
            discriminator.requires_grad_(False)
            l = discriminator(fake)
            g_loss = BCE(l, torch.ones_like(l))
            g_loss.backward()
            discriminator.requires_grad_(True)
        d_optimizer.zero_grad()
        d_loss = d_loss_fn(discriminator(real), discriminator(fake.detach()))
        d_loss.backward()
        d_optimizer.step()
        if not g_first:
            g_optimizer.zero_grad()
            l = discriminator(fake)
            g_loss = BCE(l, torch.ones_like(l))
            g_loss.backward()
        g_optimizer.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}
    return step


def test_every_undefined_name_is_listed_before_the_step_runs():
    assert bugs.undefined_names(buggy_step) == ["cur_batch", "disc_loss", "never_defined", "real_logits"]
    msg = fails(bugs.step_problems(buggy_step, CFG, REAL, Z),
                "repair: it uses names it never defines: cur_batch, disc_loss, never_defined, real_logits")
    assert "Python reports only the first" in msg
    assert bugs.undefined_names(step_with(whole)) == []          # closures and arguments are defined


def test_the_step_is_compared_with_train_step():
    assert bugs.step_problems(train_step, CFG, REAL, Z) == []
    assert bugs.step_problems(step_with(whole), CFG, REAL, Z) == []
    fails(bugs.step_problems(step_with(halved), CFG, REAL, Z), "d_loss is half the repository's")
    msg = fails(bugs.step_problems(step_with(whole, g_first=True), CFG, REAL, Z), "G's weights differ from train_step's")
    assert re.search(r"g_loss is [\d.]+ where train_step has [\d.]+ \(pytorch_impl/step.py: "
                     r"BCE\(D\(G\(z\)\), 1\) through the updated D", msg)   # G saw the D before its step
    assert bugs.step_problems(lambda *a: None, CFG, REAL, Z) is None
    fails(bugs.step_problems(lambda *a: {"d_loss": 1.0}, CFG, REAL, Z), "returns no number under 'g_loss'")
    fails(bugs.step_problems(lambda *a: 1 / 0, CFG, REAL, Z), "raised ZeroDivisionError")

