"""`train --init-weights FILE` in the three frameworks: a run starts from the parameters and
BatchNorm statistics of a portable file, whichever framework (or common.weights.initial)
wrote it, exactly; and the three started from one file, on the same data and noise, take
the same first step. Bad files and --resume with it are in test_bad_input.py."""
import importlib
import json

import numpy as np
import pytest

from common import runfiles, weights
from common.config import parse_config
from tests import helpers

FRAMEWORKS = ("pytorch", "jax", "keras")
TOLERANCE = 1e-5       # the cross-framework proof's, for one GAN step from the same weights


def train_module(fw):
    return importlib.import_module(f"{fw}_impl.train")


@pytest.fixture(scope="module")
def source_runs(tmp_path_factory):
    """A 2-step TINY run of each framework: weights.npz files that have moved off any seed's
    initialisation."""
    made = {}

    def get(fw):
        if fw not in made:
            made[fw] = helpers.run_tiny(train_module(fw).train,
                                        tmp_path_factory.mktemp(fw) / "run", "--max-steps", "2")
        return made[fw]
    return get


def watch_the_first_step(fw, monkeypatch) -> dict:
    """Patches fw's training so that the portable weights of its networks just before the
    first step are recorded in the returned dict (under "arrays")."""
    seen = {}
    model = importlib.import_module(f"{fw}_impl.model")
    if fw == "keras":       # the step runs inside fit; its callbacks see the GAN before it
        files = train_module(fw).RunFiles
        begin = files.on_train_begin

        def on_train_begin(self, logs=None):
            seen.setdefault("arrays", model.to_portable(self.model.generator, self.model.discriminator))
            return begin(self, logs)
        monkeypatch.setattr(files, "on_train_begin", on_train_begin)
    else:
        step = train_module(fw).train_step

        def train_step(generator, discriminator, *rest):
            seen.setdefault("arrays", model.to_portable(generator, discriminator))
            return step(generator, discriminator, *rest)
        monkeypatch.setattr(train_module(fw), "train_step", train_step)
    return seen


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_run_starts_from_another_frameworks_weights_exactly(fw, source_runs, tmp_path, monkeypatch):
    other = FRAMEWORKS[(FRAMEWORKS.index(fw) + 1) % 3]
    src = source_runs(other) / "weights.npz"
    _, expected, header = weights.load(src)
    assert header["framework"] == other and header["step"] == 2
    seen = watch_the_first_step(fw, monkeypatch)
    run = helpers.run_tiny(train_module(fw).train, tmp_path / "run", "--max-steps", "1",
                           "--init-weights", str(src))
    got = seen["arrays"]
    assert got.keys() == expected.keys()
    for k in expected:                      # BatchNorm's running statistics included
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    assert json.loads((run / "config.json").read_text())["init_weights"] == str(src)


def test_the_three_started_from_one_file_take_the_same_first_step(tmp_path):
    # the file compare writes: the paper's initialisation drawn in NumPy. (The networks
    # with fully connected layers, whose rows PyTorch reorders as it loads, take the same
    # path in test_compare.py's three-framework comparison of cs231n.)
    cfg = parse_config(helpers.TINY, "test").resolve("cpu")
    cfg.channels = 1                        # the synthetic discs are grey
    init = tmp_path / "init.npz"
    weights.save(init, cfg, weights.initial(cfg, 7), framework="numpy", step=0, z_dist=cfg.z_dist)
    metrics = {}
    for fw in FRAMEWORKS:
        run = helpers.run_tiny(train_module(fw).train, tmp_path / fw, "--max-steps", "1",
                               "--init-weights", str(init))
        metrics[fw] = runfiles.read_metrics(run / "metrics.csv")
    for fw in FRAMEWORKS[1:]:
        for k in runfiles.METRICS:          # metrics.csv keeps 6 decimals
            diff = abs(metrics[fw][k][0] - metrics["pytorch"][k][0])
            assert diff < TOLERANCE, f"step 1 {k}: {fw} differs from pytorch by {diff:.2e}"


@pytest.mark.parametrize("arch", ["dcgan", "paper", "cs231n"])
def test_numpys_initialisation_is_the_papers(arch):
    cfg = parse_config(["--arch", arch, "--ngf", "16", "--ndf", "16"], "test").resolve("cpu")
    cfg.channels = 1
    a = weights.initial(cfg, 0)
    assert {k: v.shape for k, v in a.items()} == weights.expected_shapes(cfg)
    assert all(v.dtype == np.float32 for v in a.values())
    kernels = np.concatenate([v.ravel() for k, v in a.items() if k.endswith(".kernel")])
    gammas = np.concatenate([v for k, v in a.items() if k.endswith(".gamma")])
    assert abs(kernels.mean()) < 1e-3 and kernels.std() == pytest.approx(0.02, rel=0.01)
    assert gammas.mean() == pytest.approx(1, abs=0.005) and gammas.std() == pytest.approx(0.02, rel=0.2)
    for end, value in ((".bias", 0), (".beta", 0), (".running_mean", 0), (".running_var", 1)):
        assert all((v == value).all() for k, v in a.items() if k.endswith(end)), end
    again, other = weights.initial(cfg, 0), weights.initial(cfg, 1)
    assert all(np.array_equal(a[k], again[k]) for k in a)             # the seed decides it
    assert not np.array_equal(a["generator.g1.kernel"], other["generator.g1.kernel"])


def test_a_run_started_from_a_file_resumes_from_its_checkpoint(source_runs, tmp_path):
    # --resume takes the weights from the checkpoint: the file may be gone by then
    train = train_module("pytorch").train
    src = tmp_path / "init.npz"
    src.write_bytes((source_runs("jax") / "weights.npz").read_bytes())
    whole = helpers.run_tiny(train, tmp_path / "whole", "--max-steps", "4", "--init-weights", str(src))
    part = helpers.run_tiny(train, tmp_path / "part", "--max-steps", "2", "--init-weights", str(src))
    src.unlink()
    helpers.resume(train, part, 4)
    helpers.assert_same_run(whole, part)
    assert json.loads((part / "config.json").read_text())["init_weights"] == str(src)
