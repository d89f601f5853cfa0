"""Runs lesson 4's check (course/build_it.py) in one framework, in a process of its own as a
student's kernel would, for tests/test_course_build_it.py.

    python -m tests.build_it_driver FRAMEWORK OUT.json

It executes the lesson's solution cells (all but the check and slow ones) with FRAMEWORK
set, then runs the check on each CASE below: the lesson's solution, the solution as
course/build_it_mistakes.py writes it (no mistake), each seeded mistake, each exercise left
blank, and mistakes that a framework's defaults invite (VARIANTS). OUT.json gets, for each
case, {"error": worst error} when the check passed it, or {"message": ..., "from_check_py":
whether the AssertionError came from course/check.py}; and "modules": the frameworks the
process had imported at the end.
"""
import contextlib
import io
import json
import sys
import traceback
from pathlib import Path

from course import build

LESSON = Path(build.LESSONS, "04_build_it.py")

# Code run in the lesson's namespace, after its solution, to replace one of its functions
# with one that keeps a framework's default (and the exercise it belongs to).
VARIANTS = {
    "pytorch": {
        "batchnorm_momentum_0.9": ("generator", """
_make = make_generator
def make_generator(cfg):
    g = _make(cfg)
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.9            # Flax's and Keras' number, read PyTorch's way
    return g
"""),
        "leaky_relu_default_slope": ("discriminator", """
_make = make_discriminator
def make_discriminator(cfg):
    d = _make(cfg)
    for i, m in enumerate(d):
        if isinstance(m, nn.LeakyReLU):
            d[i] = nn.LeakyReLU()       # slope 0.01
    return d
"""),
        "sigmoid_at_the_end": ("discriminator", """
_make = make_discriminator
def make_discriminator(cfg):
    return nn.Sequential(*_make(cfg), nn.Sigmoid())
"""),
        "g_run_twice": ("step", """
def train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    bce = lambda l, y: F.binary_cross_entropy_with_logits(l, torch.full_like(l, y))
    d_optimizer.zero_grad()
    d_real, d_fake = discriminator(real), discriminator(generator(z).detach())
    d_loss = bce(d_real, 1.0) + bce(d_fake, 0.0)
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad()
    d_fake_after = discriminator(generator(z))      # G run a second time
    g_loss = bce(d_fake_after, 1.0)
    g_loss.backward()
    g_optimizer.step()
    return {"d_loss": d_loss, "g_loss": g_loss, "d_real": torch.sigmoid(d_real).mean(),
            "d_fake": torch.sigmoid(d_fake).mean(), "d_fake_after": torch.sigmoid(d_fake_after).mean()}
"""),
    },
    "jax": {
        "flax_batchnorm": ("generator", "BatchNorm = nnx.BatchNorm   # Flax's own, defaults"),
        "flax_batchnorm_momentum_0.9": ("generator", """
def BatchNorm(n, rngs):
    return nnx.BatchNorm(n, momentum=0.9, epsilon=1e-5, rngs=rngs)
"""),
        "transpose_kernel_false": ("generator", """
class Flax:                              # the lesson's make_generator, with Flax's default
    ConvTranspose = staticmethod(lambda *a, transpose_kernel, **k: _nnx.ConvTranspose(*a, **k))
    def __getattr__(self, name):
        return getattr(_nnx, name)
_nnx, nnx = nnx, Flax()
"""),
        "layers_as_attributes": ("generator", """
def make_generator(cfg):
    rngs, w = nnx.Rngs(0), cfg.ngf
    def up(c_in, c_out, stride, padding):
        return nnx.ConvTranspose(c_in, c_out, (4, 4), strides=stride,
                                 padding=((3 - padding, 3 - padding),) * 2, transpose_kernel=True,
                                 use_bias=False, kernel_init=normal(0.02), rngs=rngs)
    class Generator(nnx.Module):
        def __init__(self):
            self.conv1, self.bn1 = up(cfg.nz, 4 * w, 1, 0), BatchNorm(4 * w, rngs=rngs)
            self.conv2, self.bn2 = up(4 * w, 2 * w, 2, 1), BatchNorm(2 * w, rngs=rngs)
            self.conv3, self.bn3 = up(2 * w, w, 2, 1), BatchNorm(w, rngs=rngs)
            self.conv4 = up(w, cfg.channels, 2, 1)
        def __call__(self, z):
            x = z.reshape(len(z), 1, 1, -1)
            for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
                x = nnx.relu(bn(conv(x)))
            return jnp.tanh(self.conv4(x))
    return Generator()
"""),
    },
    "keras": {
        "keras_batchnorm": ("generator", "BatchNorm = layers.BatchNormalization   # Keras' own, defaults"),
        "leaky_relu_default_slope": ("discriminator", """
_LeakyReLU = layers.LeakyReLU
class Keras:                             # the lesson's make_discriminator, with Keras' default
    LeakyReLU = staticmethod(lambda slope: _LeakyReLU())
    def __getattr__(self, name):
        return getattr(_layers, name)
_layers, layers = layers, Keras()
"""),
        "padding_same_from_1x1": ("generator", """
_make = make_generator
def make_generator(cfg):
    g = _make(cfg)
    w = cfg.ngf
    return keras.Sequential([keras.Input((cfg.nz,)), layers.Reshape((1, 1, cfg.nz)),
                             layers.Conv2DTranspose(4 * w, 4, 1, "same", use_bias=False)]
                            + g.layers[2:])
"""),
    },
}


def lesson_namespace(framework: str) -> dict:
    _, solution = build.notebooks(LESSON)
    ns = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in solution.cells:
            if cell.cell_type == "code" and not {"check", "slow"} & set(cell.metadata.get("tags", [])):
                exec(cell.source.replace('FRAMEWORK = "pytorch"', f'FRAMEWORK = "{framework}"'), ns)
    return ns


def outcome(compare, *args) -> dict:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return {"error": compare(*args)}
    except AssertionError as e:
        return {"message": str(e), "from_check_py": "course/check.py" in traceback.format_exc()}


def main(framework: str, out: str) -> None:
    from course import build_it, build_it_mistakes
    ns = lesson_namespace(framework)
    cfg, real, z = ns["cfg"], ns["real"], ns["z"]
    solution = {k: ns[k] for k in ("make_generator", "make_discriminator", "train_step")}
    none = lambda *args: None                                    # noqa: E731  (a blank)

    def run(which, make_generator=None, make_discriminator=None, train_step=None):
        g = make_generator or solution["make_generator"]
        d = make_discriminator or solution["make_discriminator"]
        if which == "generator":
            return outcome(build_it.compare_generator, framework, g, cfg)
        if which == "discriminator":
            return outcome(build_it.compare_discriminator, framework, d, cfg)
        return outcome(build_it.compare_step, framework, g, d, train_step or solution["train_step"],
                       cfg, real, z)

    results = {f"solution {w}": run(w) for w in ("generator", "discriminator", "step")}
    results["mistakes module, no mistake"] = run("step", train_step=build_it_mistakes.train_step(framework))
    for mistake in build_it_mistakes.MISTAKES:
        results[mistake] = run("step", train_step=build_it_mistakes.train_step(framework, mistake))
    results["blank generator"] = run("generator", make_generator=none)
    results["blank discriminator"] = run("discriminator", make_discriminator=none)
    results["blank step"] = run("step", train_step=none)
    for name, (which, code) in VARIANTS[framework].items():
        changed = dict(ns)
        exec(code, changed)
        if which != "step":                   # the lesson's builder again, under the new names
            _, solution_cells = build.notebooks(LESSON)
            exercise = next(c.source for c in solution_cells.cells
                            if f"def make_{which}(cfg):" in c.source and "BEGIN SOLUTION" in c.source)
            if f"def make_{which}" not in code:
                exec(exercise, changed)
        results[name] = run(which, **{("train_step" if which == "step" else f"make_{which}"):
                                      changed["train_step" if which == "step" else f"make_{which}"]})
    modules = [m for m in ("torch", "jax", "tensorflow") if m in sys.modules]
    Path(out).write_text(json.dumps({"results": results, "modules": modules}, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
