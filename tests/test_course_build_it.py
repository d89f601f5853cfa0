"""Lesson 4's check (course/build_it.py): in each framework the lesson's solution passes it,
each of the three seeded mistakes (course/build_it_mistakes.py) fails it with the message
that names that mistake and no other, a blank fails it through course.check, and the
defaults a framework gets wrong (BatchNorm's momentum and variance, LeakyReLU's slope, the
transposed convolution's kernel and padding, the layers' order) are each named.

Each framework runs in a process of its own (tests/build_it_driver.py), as in a student's
kernel: that process also shows that the check imports no other framework. tests/test_course.py
runs the lesson itself (PyTorch), solution and blanks."""
import json

import pytest

from course import build_it, build_it_mistakes
from tests.conftest import run_cli

FRAMEWORKS = ("pytorch", "jax", "keras")
HINTS = {build_it_mistakes.REACH: build_it.HINT_D_LOSS_REACHED_G,
         build_it_mistakes.INFERENCE: build_it.HINT_BN_INFERENCE,
         build_it_mistakes.SATURATING: build_it.HINT_SATURATING}
_RUNS = {}


@pytest.fixture(params=FRAMEWORKS)
def fw(request):
    return request.param


@pytest.fixture
def run(fw, tmp_path_factory):
    """The driver's results for one framework, computed once for the module."""
    if fw not in _RUNS:
        out = tmp_path_factory.mktemp(fw) / "out.json"
        r = run_cli("tests.build_it_driver", fw, str(out))
        assert r.returncode == 0, r.stderr[-3000:]
        _RUNS[fw] = json.loads(out.read_text())
    return _RUNS[fw]


def passed(result) -> bool:
    return "error" in result and result["error"] < build_it.TOL


def test_the_solution_passes_in_each_framework(run):
    for case in ("solution generator", "solution discriminator", "solution step",
                 "mistakes module, no mistake"):
        assert passed(run["results"][case]), (case, run["results"][case])


@pytest.mark.parametrize("mistake", build_it_mistakes.MISTAKES)
def test_each_seeded_mistake_fails_with_its_hint_and_no_other(run, mistake):
    result = run["results"][mistake]
    assert "message" in result, (mistake, result)
    message = result["message"]
    assert HINTS[mistake] in message, message
    assert not [h for m, h in HINTS.items() if m != mistake and h in message], message


def test_the_mistakes_show_where_they_should(run):
    # BatchNorm in inference mode changes D(x) before any update; the saturating loss leaves
    # all up to g_loss alone; D's loss reaching G changes no reported number, only G's gradient
    r = run["results"]
    assert r[build_it_mistakes.INFERENCE]["message"].startswith("d_real (D(x) before any update) differs")
    assert r[build_it_mistakes.SATURATING]["message"].startswith("g_loss (after D's update) differs")
    assert r[build_it_mistakes.REACH]["message"].startswith(
        "after one step, G's gradient differs first at G's layer g1 kernel")
    assert "g_loss)" in r[build_it_mistakes.REACH]["message"]      # ... and everything before agrees


def test_a_blank_fails_through_course_check(run):
    for case, name in (("blank generator", "make_generator(cfg)"),
                       ("blank discriminator", "make_discriminator(cfg)"),
                       ("blank step", "train_step(...)")):
        result = run["results"][case]
        assert result.get("message") == f"{name} is None: fill in the exercise above", result
        assert result["from_check_py"], case


def test_no_other_framework_is_imported(run, fw):
    # (TensorFlow imports JAX itself where JAX is installed, as it is here)
    chosen, others = {"pytorch": ("torch", {"jax", "tensorflow"}), "jax": ("jax", {"torch", "tensorflow"}),
                      "keras": ("tensorflow", {"torch"})}[fw]
    assert chosen in run["modules"] and not others & set(run["modules"]), run["modules"]


# what the check says about a default of the framework left as it is
EXPECTED = {
    "pytorch": {
        "batchnorm_momentum_0.9": ["G's layer g1 BatchNorm", "move 0.9 of the way"],
        "leaky_relu_default_slope": ["D(x) in training mode differs", "slope 0.01"],
        "sigmoid_at_the_end": ["returns probabilities"],
        "g_run_twice": ["G's running statistics", "as if G ran 2 times"],
    },
    "jax": {
        "flax_batchnorm": ["G's layer g1 BatchNorm (nnx.BatchNorm", "move 0.01 of the way",
                           "averages the biased batch variance"],
        "flax_batchnorm_momentum_0.9": ["averages the biased batch variance"],
        "transpose_kernel_false": ["G's layer g1 (nnx.ConvTranspose", "kernel flipped", "transpose_kernel=True"],
        "layers_as_attributes": ["layer number 1 (jax_impl.layers.BatchNorm at bn1)", "alphabetically"],
    },
    "keras": {
        "keras_batchnorm": ["G's layer g1 BatchNorm (BatchNormalization", "epsilon 0.001",
                            "move 0.01 of the way", "averages the biased batch variance"],
        "leaky_relu_default_slope": ["slope 0.3 (Keras' default)"],
        "padding_same_from_1x1": ["G's layer g1", "outputs (1, 1, 32)", "'valid' is PyTorch's padding 0"],
    },
}


def test_each_framework_default_is_named(run, fw):
    for case, words in EXPECTED[fw].items():
        message = run["results"][case].get("message", "")
        for w in words:
            assert w in message, (case, w, message)
        # a default of a network is named as one, before any step is taken
        assert not [h for h in HINTS.values() if h in message], message


def test_importing_the_check_loads_no_framework():
    # the lesson imports course.build_it before it knows the student's framework
    import subprocess
    import sys
    from tests.conftest import ROOT
    code = ("import sys, course.build_it, course.build_it_mistakes; "
            "print(' '.join(m for m in ('torch', 'jax', 'tensorflow', 'keras', 'flax') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == []


def test_an_unknown_framework_or_mistake_is_refused():
    with pytest.raises(AssertionError, match="choose one of"):
        build_it.compare_generator("tensorflow", lambda cfg: None, None)
    with pytest.raises(ValueError, match="known"):
        build_it_mistakes.train_step("pytorch", "no such mistake")
