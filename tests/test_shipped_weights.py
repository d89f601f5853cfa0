"""The trained weights that ship in results/ (the bare command's runs that draw digits):
each holds its run's network, each framework samples it, the judge scores every
framework's samples where the run's judge.txt and README record (within the judge's 90%
interval), and the three frameworks draw the same images and the same latent walks from
the same weights and seed, to 1e-4."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from common import weights
from common.judge import evaluate
from tests.conftest import ROOT

RUNS = ("pytorch-cpu-default", "pytorch-cpu-cs231n", "pytorch-cpu-64px")
FRAMEWORKS = ("pytorch", "jax", "keras")
WALKS, STEPS, WALK_SEED = 4, 6, 1


def recorded(run):
    """What the run's judge.txt records: (n, seed) of the samples it judged, and the
    Frechet distance with its 90% interval."""
    text = (ROOT / "results" / run / "judge.txt").read_text()
    n, seed = map(int, re.search(r"--n (\d+) --seed (\d+)", text).groups())
    fd = float(re.search(r"Frechet distance \(lower: better\)\s+([\d.]+)", text).group(1))
    low, high = map(float, re.search(r"90% interval\s+\[([\d.]+), ([\d.]+)\]", text).groups())
    return n, seed, fd, low, high


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """{(framework, run): (samples as judge.txt's command draws them, walks)}: each
    framework's sample command, run as a user would (one process per framework)."""
    tmp = tmp_path_factory.mktemp("shipped")
    out = {}
    for fw in FRAMEWORKS:
        calls = []
        for run in RUNS:
            n, seed, *_ = recorded(run)
            w = str(ROOT / "results" / run / "weights.npz")
            calls.append(["--weights", w, "--n", str(n), "--seed", str(seed), "--device", "cpu",
                          "--out", str(tmp / f"{fw}-{run}.npy")])
            calls.append(["--weights", w, "--walk", str(STEPS), "--n", str(WALKS), "--seed",
                          str(WALK_SEED), "--device", "cpu", "--out", str(tmp / f"{fw}-{run}-walk.npy")])
        code = f"from {fw}_impl.sample import main\nfor argv in {calls!r}:\n    main(argv)"
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           timeout=900, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr[-3000:]
        for run in RUNS:
            out[fw, run] = np.load(tmp / f"{fw}-{run}.npy"), np.load(tmp / f"{fw}-{run}-walk.npy")
    return out


@pytest.mark.parametrize("run", RUNS)
def test_the_weights_hold_their_run_s_network(run):
    cfg, arrays, header = weights.load(ROOT / "results" / run / "weights.npz")
    config = json.loads((ROOT / "results" / run / "config.json").read_text())
    assert {k: getattr(cfg, k) for k in weights.NETWORK_KEYS} == {k: config[k] for k in weights.NETWORK_KEYS}
    assert header["z_dist"] == config["z_dist"] and header["step"] == config["max_steps"]
    assert all(np.isfinite(a).all() for a in arrays.values())


@pytest.mark.parametrize("run", RUNS)
def test_every_framework_scores_what_the_run_records(run, drawn):
    n, seed, fd, low, high = recorded(run)
    readme = (ROOT / "results" / run / "README.md").read_text()
    assert f"{fd:.1f}" in readme, f"results/{run}/README.md does not give judge.txt's {fd:.1f}"
    judge = evaluate.load_judge("mnist")
    for fw in FRAMEWORKS:
        samples, _ = drawn[fw, run]
        assert samples.shape[0] == n
        got = evaluate.evaluate(judge, samples).fd
        assert low <= got <= high, f"{fw}: Frechet distance {got:.2f}, {run} records {fd} [{low}, {high}]"


@pytest.mark.parametrize("run", RUNS)
def test_the_three_draw_the_same_images_and_walks(run, drawn):
    cfg, _, _ = weights.load(ROOT / "results" / run / "weights.npz")
    ref_samples, ref_walks = drawn["pytorch", run]
    assert ref_walks.shape == (WALKS, STEPS, cfg.image_size, cfg.image_size, cfg.channels)
    for fw in FRAMEWORKS[1:]:
        samples, walks = drawn[fw, run]
        np.testing.assert_allclose(samples, ref_samples, atol=1e-4, err_msg=fw)
        np.testing.assert_allclose(walks, ref_walks, atol=1e-4, err_msg=fw)
    # a walk moves: each step changes the image, and the two ends are different images
    steps = np.abs(np.diff(ref_walks, axis=1)).mean(axis=(2, 3, 4))
    assert (steps > 1e-3).all()
    assert (np.abs(ref_walks[:, 0] - ref_walks[:, -1]).mean(axis=(1, 2, 3)) > 0.05).all()
