"""FLOPs from the spec against an independent count, and `benchmarks.compare` on a tiny config:
a complete report, a missing and a failing framework reported in their rows; and the three
frameworks compared from one initial weights file, with an architecture's own defaults: the
same first step in all three, and the drift table that says how long it stays so."""
import json
import statistics

import numpy as np
import pytest
from PIL import Image

from benchmarks import compare, flops
from common import runfiles, weights
from common.config import ARCH_DEFAULTS, Config, UserError
from common.spec import discriminator_spec, generator_spec

TUTORIAL = Config(image_size=64, channels=3, nz=100, ngf=64, ndf=64, batch_size=128)


def brute_force_macs(layer, in_size):
    """Multiply-adds counted by walking the layer as common/weights.py defines it, pixel by
    pixel and tap by tap; also returns the output size the walk produces."""
    k, s, p, per_tap = layer.kernel, layer.stride, layer.padding, layer.in_ch * layer.out_ch
    count = 0
    if layer.kind == "conv":
        # out[y, x] = sum_{i, j} in[y*s - p + i, x*s - p + j] K[i, j]: every output pixel
        # whose window lies inside the zero-padded input
        fits = lambda y: y * s - p + k - 1 <= in_size - 1 + p
        ys = [y for y in range(4 * in_size) if fits(y)]
        for y in ys:
            for x in ys:
                for i in range(k):
                    for j in range(k):
                        count += per_tap
        return count, len(ys)
    # conv_transpose: out[y*s - p + i, x*s - p + j] += in[y, x] K[i, j], for every input
    # pixel; p rows and columns are then cropped from each side
    last = 0
    for y in range(in_size):
        for x in range(in_size):
            for i in range(k):
                for j in range(k):
                    count += per_tap
                    last = max(last, y * s + i)
    return count, last + 1 - 2 * p


@pytest.mark.parametrize("cfg", [TUTORIAL, Config(image_size=32, channels=1, nz=100, ngf=32, ndf=32)])
def test_flops_of_every_layer_match_a_brute_force_count(cfg):
    for layers, first_in in ((generator_spec(cfg), 1), (discriminator_spec(cfg), cfg.image_size)):
        in_size = first_in                     # the input of each layer is the last one's output
        for layer in layers:
            macs, out_size = brute_force_macs(layer, in_size)
            assert out_size == layer.out_shape[0], layer.name
            assert flops.layer_macs(layer) == macs, layer.name
            in_size = layer.out_shape[0]
    # and one layer of each kind by hand: d2 and g2 of the tutorial's network
    d2, g2 = discriminator_spec(TUTORIAL)[1], generator_spec(TUTORIAL)[1]
    assert flops.layer_macs(d2) == (16 * 16) * 128 * (4 * 4 * 64)     # out pixels x out x taps
    assert flops.layer_macs(g2) == (4 * 4) * 512 * (4 * 4 * 256)      # in pixels x in x taps


def test_step_flops_follow_the_stated_convention():
    # enumerate the passes of one step (benchmarks/flops.py docstring) one by one
    g, d = generator_spec(TUTORIAL), discriminator_spec(TUTORIAL)
    passes = [l for l in g]                                   # G forward
    passes += [l for l in d] * 3                              # D forward: real, fake, fake
    for _ in ("real", "fake"):                                # D step backward
        passes += [l for l in d]                              #   weight gradients
        passes += [l for l in d if l is not d[0]]             #   input gradients
    passes += [l for l in d]                                  # G step: input grads through D
    passes += [l for l in g]                                  #   G weight gradients
    passes += [l for l in g if l is not g[0]]                 #   G input gradients
    expected = 2 * TUTORIAL.batch_size * sum(flops.layer_macs(l) for l in passes)
    f = flops.step_flops(TUTORIAL)
    assert f["per_step"] == expected == sum(f["parts"].values())
    assert 250e9 < f["per_step"] < 350e9          # ~0.29 TFLOP for a batch of 128 at 64 px


@pytest.mark.parametrize("arch,size", [("dcgan", 32), ("paper", 32), ("cs231n", 28)])
def test_flops_match_pytorchs_own_flop_counter(arch, size):
    # an independent count: PyTorch's FlopCounterMode, on the real modules of pytorch_impl
    # (it counts convolutions and matrix products: fully connected layers too)
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from pytorch_impl.model import build
    from pytorch_impl.step import train_step
    cfg = Config(arch=arch, image_size=size, channels=1, nz=100, ngf=8, ndf=8, batch_size=16)
    generator, discriminator = build(cfg, 0)
    mine = flops.step_flops(cfg)
    with FlopCounterMode(display=False) as counter:
        generator(torch.randn(16, 100))
    assert counter.get_total_flops() == 16 * mine["g_forward_per_image"]
    with FlopCounterMode(display=False) as counter:
        discriminator(torch.randn(16, 1, size, size))
    assert counter.get_total_flops() == 16 * mine["d_forward_per_image"]
    adam = lambda m: torch.optim.Adam(m.parameters())
    with FlopCounterMode(display=False) as counter:
        train_step(generator, discriminator, adam(generator), adam(discriminator),
                   torch.randn(16, 1, size, size), torch.randn(16, 100))
    # exactly what the step needs: train_step turns D's weight gradients off in the G step
    assert counter.get_total_flops() == mine["per_step"]


def test_matmul_peak_is_a_rate():
    p = flops.matmul_peak(256, repeats=2)
    assert p["gflops"] == pytest.approx(2 * 256 ** 3 / p["best_seconds"] / 1e9)
    assert p["gflops"] > 0.1


def test_step_times_leave_out_the_warm_up():
    t = compare.step_times(np.array([9.0, 3.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0]))
    assert t["median_s"] == 1.0 and t["first_step_s"] == 9.0 and t["warmup_steps"] == 5
    assert t["warmup_extra_s"] == pytest.approx(15.0 - 5 * 1.0)
    assert compare.step_times(np.array([4.0, 2.0]))["median_s"] == 2.0   # short run: 1 warm-up


def test_line_counts(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""Module docstring,\ntwo lines."""\n# a comment\n\nimport os\n\n\ndef f(x):\n'
                 '    """Doc."""\n    return (x +  # why\n            1)\n')
    assert compare.count_lines(f) == (11, 4)          # import, def, and the two-line return
    assert compare.count_lines(tmp_path / "none.py") is None


def test_bad_size_is_one_line(cli, tmp_path):
    r = cli("benchmarks.compare", "--image-size", "24", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "cannot be made" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def test_compare_tiny_config_writes_a_complete_report(tmp_path, monkeypatch, capsys):
    # a checkout with pytorch_impl, one framework whose train fails, and one that is absent
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("common", "pytorch_impl"):
        (root / name).symlink_to(compare.ROOT / name)
    broken = root / "broken_impl"
    broken.mkdir()
    for name in ("__init__.py", "sample.py", "model.py"):
        (broken / name).write_text("")
    (broken / "train.py").write_text("raise SystemExit('broken: this framework cannot start')\n")
    monkeypatch.setattr(compare, "ROOT", root)
    monkeypatch.setattr(compare, "FRAMEWORKS", ("pytorch", "broken", "absent"))
    out, runs = tmp_path / "report", tmp_path / "runs"
    argv = ["--frameworks", "pytorch", "broken", "absent", "--dataset", "synthetic",
            "--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "64",
            "--max-steps", "8", "--device", "cpu", "--out", str(out), "--runs-dir", str(runs),
            "--peak-size", "256", "--quiet"]
    compare.main(argv)

    readme = (out / "README.md").read_text()
    rep = json.loads((out / "report.json").read_text())
    pt, br, ab = rep["results"]
    assert (pt["status"], br["status"], ab["status"]) == ("ok", "train failed", "not available")
    assert "| pytorch | cpu" in readme and "| broken | train failed" in readme
    assert "| absent | not available" in readme
    assert "this framework cannot start" in readme and "absent_impl/train.py" in readme

    # speed: the median after the warm-up, read back from the run's own metrics.csv
    m = runfiles.read_metrics(runs / "pytorch" / "metrics.csv")
    assert pt["steps"] == 8 and len(m["step"]) == 8
    assert pt["median_s"] == pytest.approx(statistics.median(m["seconds"][5:]))
    assert pt["first_step_s"] == pytest.approx(m["seconds"][0])
    assert pt["images_per_s"] == pytest.approx(64 / pt["median_s"])
    assert 0 < pt["train"]["first_sample_s"] < pt["train"]["wall_s"]
    assert pt["train"]["max_rss_bytes"] > 100 * 2 ** 20          # torch alone is more
    assert pt["final"]["d_loss"] == pytest.approx(m["d_loss"].mean())
    lines = (compare.ROOT / "pytorch_impl" / "train.py").read_text().splitlines()
    assert pt["lines"]["train.py"][0] == len(lines) > pt["lines"]["train.py"][1] > 50

    # cost: FLOPs from the spec, the peak, and their ratio
    cfg = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=64)
    assert rep["flops"]["per_step"] == flops.step_flops(cfg)["per_step"]
    assert pt["gflops"] == pytest.approx(rep["flops"]["per_step"] / pt["median_s"] / 1e9)
    assert pt["peak_fraction"] == pytest.approx(pt["gflops"] / rep["peak"]["gflops"])
    assert "Cost against the machine's limit" in readme and "GFLOP/s" in readme

    # the judge on 1,000 samples from the shared noise
    z = np.load(runs / "noise.npy")
    x = np.load(runs / "pytorch" / "samples.npy")
    assert z.shape == (1000, 16) and x.shape == (1000, 16, 16, 1)
    s = pt["scores"]
    assert s["n"] == 1000 and len(s["histogram"]) == 4 and sum(s["histogram"]) == pytest.approx(1)
    assert s["fd"] > 0 and s["fd_real"] > 0 and 1 <= s["score"] <= 4
    assert s["fd_low"] <= s["fd"] <= s["fd_high"] and s["n_real"] == 1000      # the floor at n
    assert f"| {s['fd']:.2f} | {s['fd_low']:.2f} to {s['fd_high']:.2f} |" in readme
    assert "| real, held-out (1,000) |" in readme and "held-out accuracy" in readme

    for name in ("samples.png", "losses.png", "d_outputs.png", "class_histogram.png"):
        with Image.open(out / name) as im:
            assert im.width > 300 and im.height > 200, name
        assert f"({name})" in readme
    assert (out / "pytorch" / "metrics.csv").read_text() == (runs / "pytorch" / "metrics.csv").read_text()

    # every child started from the one initial weights file; one run has nothing to drift from
    init = runs / "init_weights.npz"
    assert rep["init_weights"] == str(init)
    assert json.loads((runs / "pytorch" / "config.json").read_text())["init_weights"] == str(init)
    assert rep["drift"] is None and "## Drift" in readme and "Needs two frameworks" in readme
    assert not (out / "drift.png").exists()

    # a second run neither overwrites the report by accident, nor retrains what is done
    with pytest.raises(UserError, match="already holds a report"):
        compare.main(argv)
    capsys.readouterr()
    compare.main(argv + ["--overwrite", "--frameworks", "pytorch"])
    assert "reusing the finished run" in capsys.readouterr().out
    again = json.loads((out / "report.json").read_text())["results"]
    assert len(again) == 1 and again[0]["median_s"] == pt["median_s"] and again[0]["reused"]


def fake_run(runs, fw, columns):
    """runs/fw/metrics.csv with the given metric columns (steps 1..n)."""
    (runs / fw).mkdir(parents=True)
    n = len(next(iter(columns.values())))
    with open(runs / fw / "metrics.csv", "w") as f:
        f.write(",".join(runfiles.COLUMNS) + "\n")
        for i in range(n):
            vals = [columns.get(k, np.zeros(n))[i] for k in runfiles.METRICS]
            f.write(f"{i + 1},1," + ",".join(f"{v:.6f}" for v in vals) + ",0.1\n")


def test_drift_is_the_largest_difference_between_two_frameworks(tmp_path):
    n = 120
    step = np.arange(1, n + 1)
    base = np.full(n, 0.5)
    fake_run(tmp_path, "a", {"d_loss": base, "g_loss": base})
    fake_run(tmp_path, "b", {"d_loss": base + 3e-6 * step, "g_loss": base})
    fake_run(tmp_path, "c", {"d_loss": base - 3e-6 * step, "g_loss": base + (step >= 60) * 0.2})
    results = [compare.Result(fw) for fw in ("a", "b", "c")] + [compare.Result("d", status="train failed")]
    d, per_step = compare.drift(results, tmp_path)
    assert d["frameworks"] == ["a", "b", "c"] and d["steps_compared"] == n
    assert d["steps"] == [1, 2, 5, 10, 20, 50, 100, 120]
    assert d["max_abs_diff"]["d_loss"] == pytest.approx([6e-6 * s for s in d["steps"]], abs=1e-9)
    assert d["max_abs_diff"]["g_loss"] == pytest.approx([0] * 6 + [0.2, 0.2], abs=1e-9)
    assert d["max_abs_diff"]["d_real"] == [0.0] * 8
    # over 1e-4 when 6e-6 * step > 1e-4, i.e. from step 17; over 1e-3 from g_loss's jump at 60
    assert d["first_step_over"] == {"1e-5": 2, "1e-4": 17, "1e-3": 60, "1e-2": 60, "1e-1": 60}
    assert per_step["step"].tolist() == step.tolist()
    compare.plot_drift(per_step, tmp_path)
    with Image.open(tmp_path / "drift.png") as im:
        assert im.width > 600
    assert compare.drift(results[:1], tmp_path) == (None, {})
    # runs of different lengths are compared over the steps they all have
    fake_run(tmp_path / "short", "a", {"d_loss": base[:7]})
    fake_run(tmp_path / "short", "b", {"d_loss": base[:7] + 0.5})
    d, _ = compare.drift(results[:2], tmp_path / "short")
    assert d["steps"] == [1, 2, 5, 7] and d["max_abs_diff"]["d_loss"] == [0.5] * 4


def test_an_architectures_defaults_apply_where_no_flag_is_given():
    a = compare.parse_args(["--arch", "cs231n", "--ngf", "8"])
    cs = ARCH_DEFAULTS["cs231n"]
    assert (a.image_size, a.nz, a.ndf, a.lr, a.z_dist) == (28, cs["nz"], cs["ndf"], cs["lr"], cs["z_dist"])
    assert a.ngf == 8                                       # the flag given wins
    assert a.max_steps == 1500                              # CS231n's CPU profile
    a = compare.parse_args(["--arch", "paper"])                 # the paper's CPU widths
    assert (a.image_size, a.ngf, a.ndf, a.nz, a.lr, a.z_dist, a.max_steps) == (32, 8, 8, 100, 2e-4, "normal", 2000)
    a = compare.parse_args([])
    assert (a.arch, a.image_size, a.ngf, a.lr, a.max_steps) == ("dcgan", 32, 32, 2e-4, 4000)
    assert compare.parse_args(["--max-steps", "7"]).max_steps == 7


def test_a_size_the_architecture_cannot_make_is_one_line(cli, tmp_path):
    r = cli("benchmarks.compare", "--arch", "cs231n", "--image-size", "32", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "cannot be made by --arch cs231n" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def test_compare_three_frameworks_from_the_same_weights(tmp_path):
    # cs231n, its own defaults (28 px, nz 96, z ~ U(-1, 1), lr 1e-3) where no flag is given
    out, runs = tmp_path / "report", tmp_path / "runs"
    compare.main(["--arch", "cs231n", "--dataset", "synthetic", "--ngf", "8", "--ndf", "8",
                  "--batch-size", "64", "--max-steps", "8", "--device", "cpu", "--out", str(out),
                  "--runs-dir", str(runs), "--peak-size", "256", "--n-samples", "500", "--quiet"])
    rep = json.loads((out / "report.json").read_text())
    readme = (out / "README.md").read_text()
    assert [r["status"] for r in rep["results"]] == ["ok"] * 3, readme
    c = rep["config"]
    assert (c["arch"], c["image_size"], c["nz"], c["z_dist"], c["lr"], c["ngf"]) == ("cs231n", 28, 96, "uniform", 1e-3, 8)
    assert readme.startswith("# pytorch vs jax vs keras: cs231n on synthetic, 28x28, 8 steps")

    # one initial file, the paper's initialisation of this network from the seed, for all three
    init = runs / "init_weights.npz"
    net, arrays, header = weights.load(init)
    assert (net.arch, net.image_size, net.nz, header["z_dist"], header["step"]) == ("cs231n", 28, 96, "uniform", 0)
    expected = weights.initial(net, 0)
    assert all(np.array_equal(arrays[k], expected[k]) for k in expected)
    for fw in compare.FRAMEWORKS:
        saved = json.loads((runs / fw / "config.json").read_text())
        assert saved["init_weights"] == str(init) and saved["arch"] == "cs231n" and saved["lr"] == 1e-3
    z = np.load(runs / "noise.npy")                      # the shared z, from the arch's distribution
    assert z.shape == (500, 96) and z.min() >= -1 and z.max() <= 1 and z.min() < -0.99

    # the same first step in all three: they are the same run, to float32 rounding
    m = {fw: runfiles.read_metrics(runs / fw / "metrics.csv") for fw in compare.FRAMEWORKS}
    for k in runfiles.METRICS:
        first = [m[fw][k][0] for fw in compare.FRAMEWORKS]
        assert max(first) - min(first) < 1e-5, (k, first)
    d = rep["drift"]
    assert d["frameworks"] == list(compare.FRAMEWORKS) and d["steps_compared"] == 8
    assert d["steps"] == [1, 2, 5, 8]
    for k in runfiles.METRICS:
        assert d["max_abs_diff"][k][0] < 1e-5, k
        # the table is what the three metrics.csv files say, at each of its steps
        at = [max(m[fw][k][s - 1] for fw in m) - min(m[fw][k][s - 1] for fw in m) for s in d["steps"]]
        assert d["max_abs_diff"][k] == pytest.approx(at, abs=1e-12), k
    first_over = d["first_step_over"]
    assert first_over.keys() == {"1e-5", "1e-4", "1e-3", "1e-2", "1e-1"}
    assert first_over["1e-5"] is None or first_over["1e-5"] > 1
    steps = [s for s in first_over.values() if s is not None]
    assert steps == sorted(steps)                        # a larger gap cannot come first
    assert "## Drift: how long the same run three times stays the same" in readme
    assert "| step | d_loss | g_loss | D(x) | D(G(z)) before | D(G(z)) after |" in readme
    assert "| 1 | " in readme and "(drift.png)" in readme
    with Image.open(out / "drift.png") as im:
        assert im.width > 600 and im.height > 300
