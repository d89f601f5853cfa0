"""The command lines: bad input gets one clear message, a non-zero exit, and nothing
overwritten; run.sh's commands reach their modules."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from common import runfiles
from common.config import parse_config
from tests.conftest import ROOT
from tests.helpers import standin_venv


@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], "--lr: must be in (0"),
    (["--lr", "abc"], "--lr: expected a number"),
    (["--batch-size", "0"], "--batch-size: must be from 1"),
    (["--epochs", "0"], "--epochs: must be >= 1"),
    (["--beta1", "1"], "--beta1: must be in [0"),
    (["--dataset", "imagenet"], "--dataset: invalid choice"),
    (["--device", "tpu"], "--device: invalid choice"),
    (["--resume", "/no/such/run"], "no such run directory"),
])
def test_bad_flags_exit_2_with_the_reason(flags, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(flags, "prog")
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def digest(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


def test_errors_from_the_command_line_overwrite_nothing(tmp_path, cli):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "config.json").write_text("{}")
    before = digest(out)
    r = cli("pytorch_impl.train", "--out", str(out), "--max-steps", "1")
    assert r.returncode == 2 and "already exists and is not empty" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("pytorch_impl.train", "--out", str(tmp_path / "new"), "--image-size", "28")
    assert r.returncode == 2 and "--image-size 28 cannot be made" in r.stderr
    assert not (tmp_path / "new").exists()
    assert digest(out) == before


def test_resume_refuses_another_config(tmp_path, cli):
    r = cli("pytorch_impl.train", "--dataset", "synthetic", "--image-size", "16", "--ngf", "4",
            "--ndf", "4", "--batch-size", "32", "--max-steps", "2", "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    before = digest(tmp_path / "r")
    r = cli("pytorch_impl.train", "--resume", str(tmp_path / "r"), "--ngf", "8")
    assert r.returncode == 2 and "--ngf 8 (run has 4)" in r.stderr
    r = cli("pytorch_impl.train", "--resume", str(tmp_path / "r"))
    assert r.returncode == 2 and "already at step 2" in r.stderr
    assert digest(tmp_path / "r") == before


def test_sample_rejects_bad_noise_and_weights(tmp_path, cli):
    np.save(tmp_path / "z.npy", np.zeros((4, 7), np.float32))
    (tmp_path / "w.npz").write_bytes(b"junk")
    r = cli("pytorch_impl.sample", "--weights", str(tmp_path / "w.npz"), "--out", str(tmp_path / "s.png"))
    assert r.returncode == 2 and "not a portable weights file" in r.stderr
    r = cli("pytorch_impl.sample", "--weights", str(tmp_path / "w.npz"), "--out", str(tmp_path / "s.jpg"))
    assert r.returncode == 2 and "must end in .png or .npy" in r.stderr
    assert not (tmp_path / "s.png").exists()


def test_model_summary_rejects_impossible_size(cli):
    r = cli("pytorch_impl.model", "--image-size", "48")
    assert r.returncode == 2 and "power of two" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command,module", [("train", "pytorch_impl.train"), ("train-jax", "jax_impl.train"),
                                            ("train-keras", "keras_impl.train"), ("compare", "benchmarks.compare")])
def test_run_sh_commands_reach_their_module(tmp_path, command, module):
    """./run.sh <command> --help runs `python -m <module> --help` in the environment. The
    environment here is a stand-in whose python is this one and whose stamp says it is up
    to date, so run.sh installs nothing."""
    env = dict(os.environ, DCGAN_VENV=str(standin_venv(tmp_path / "venv", ROOT)), PYTHONPATH=str(ROOT))
    r = subprocess.run([str(ROOT / "run.sh"), command, "--help"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"usage: python -m {module}" in r.stdout
    assert "creating" not in r.stderr and "updating" not in r.stderr


def test_run_sh_unknown_command_lists_the_commands_and_fails():
    r = subprocess.run([str(ROOT / "run.sh"), "trian"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "./run.sh train-jax" in r.stdout and "./run.sh test" in r.stdout
    assert "set -euo" not in r.stdout                # the usage only, not the script


@pytest.mark.parametrize("arch", ["paper", "cs231n"])
def test_model_command_prints_the_same_table_in_the_three_frameworks(arch, cli):
    """`python -m <fw>_impl.model --arch X`: each framework measures its own layers, and the
    three printouts are the same text, with the spec's totals."""
    from common import spec
    from common.config import parse_model_args
    outs = [cli(f"{fw}_impl.model", "--arch", arch) for fw in ("pytorch", "jax", "keras")]
    assert all(r.returncode == 0 for r in outs), [r.stderr[-500:] for r in outs]
    assert outs[0].stdout == outs[1].stdout == outs[2].stdout
    c = parse_model_args(["--arch", arch], "t")
    g = spec.totals(spec.generator_spec(c))
    assert f"{g[0]:,}" in outs[0].stdout and f"{g[1]:,}" in outs[0].stdout
    r = cli("pytorch_impl.model", "--arch", arch, "--image-size", "40")
    assert r.returncode == 2 and f"cannot be made by --arch {arch}" in r.stderr and "Traceback" not in r.stderr


def test_an_architecture_brings_its_own_defaults_and_flags_still_win():
    c = parse_config(["--arch", "cs231n"], "t")
    assert (c.image_size, c.nz, c.ngf, c.ndf, c.lr, c.z_dist) == (28, 96, 64, 32, 1e-3, "uniform")
    c = parse_config(["--arch", "cs231n", "--nz", "10", "--lr", "2e-4", "--z-dist", "normal"], "t")
    assert (c.nz, c.lr, c.z_dist, c.image_size) == (10, 2e-4, "normal", 28)
    c = parse_config(["--arch", "paper"], "t")
    assert (c.nz, c.lr, c.z_dist, c.image_size) == (100, 2e-4, "normal", None)   # size: the device's


def test_each_architecture_has_its_own_cpu_profile_and_flags_still_win():
    # the paper's network at widths 32 is half an hour on a 2-core CPU: widths 8 there; CS231n's
    # keeps its widths and trains 1500 steps; on a GPU all three take the GPU profile
    cpu = {a: parse_config(["--arch", a], "t").resolve("cpu") for a in ("dcgan", "paper", "cs231n")}
    assert [(c.image_size, c.ngf, c.ndf, c.max_steps) for c in cpu.values()] == [
        (32, 32, 32, 4000), (32, 8, 8, 2000), (28, 64, 32, 1500)]
    gpu = parse_config(["--arch", "paper"], "t").resolve("gpu")
    assert (gpu.image_size, gpu.ngf, gpu.ndf, gpu.epochs, gpu.max_steps) == (64, 64, 64, None, 3000)
    # steps, not epochs: the offline sample and full MNIST both train 3,000 steps
    for n_images in (5000, 60000):
        assert runfiles.total_steps(gpu, n_images // gpu.batch_size) == 3000
    c = parse_config(["--arch", "paper", "--ngf", "16", "--max-steps", "7"], "t").resolve("cpu")
    assert (c.ngf, c.ndf, c.max_steps) == (16, 8, 7)
    c = parse_config(["--arch", "cs231n", "--epochs", "2"], "t").resolve("cpu")
    assert (c.epochs, c.max_steps) == (2, None)          # --epochs alone: that many epochs


# ----------------------------------------------------------------------------------------
# pytorch/examples' dcgan/main.py flags: one line naming ours, never an alias

@pytest.mark.parametrize("flags, pointer", [
    (["--batchSize", "64"], "--batchSize: no such flag; did you mean --batch-size?"),
    (["--imageSize", "64"], "--imageSize: no such flag; did you mean --image-size?"),
    (["--dataroot", "d"], "--dataroot: no such flag; did you mean --data-dir?"),
    (["--niter", "25"], "--niter: no such flag; did you mean --epochs?"),
    (["--outf", "o"], "--outf: no such flag; did you mean --out?"),
    (["--netG", "netG_epoch_24.pth"], "--netG: no such flag; did you mean --init-weights? (it takes a "
                                      "portable weights.npz: convert main.py's files first with python -m pytorch_impl.port"),
    (["--manualSeed", "999"], "--manualSeed: no such flag; did you mean --seed?"),
    (["--cuda"], "--cuda: no such flag; did you mean --device gpu?"),
    (["--accel"], "--accel: no such flag; did you mean --device gpu?"),
    (["--dry-run"], "--dry-run: no such flag; did you mean --max-steps 1?"),
    (["--workers", "2"], "--workers: no such flag; the data is in memory"),
    (["--lr", "1e-3", "--seeds=3"], "--seeds: no such flag; did you mean --seed?"),   # by spelling
    (["--frobnicate"], "--frobnicate: no such flag (see --help)"),                   # nothing near
])
def test_a_peer_flag_names_ours_in_one_line(flags, pointer, capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(flags, "prog")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"prog: error: {pointer}"), err


def test_a_peer_flag_is_named_before_a_missing_required_one(capsys):
    """sample requires --weights: `sample --netG x.pth` is told about --netG, the cause."""
    from common.config import parse_sample_args
    for flags, pointer in ((["--netG", "x.pth", "--out", "x.png"], "--netG: no such flag; did you mean --weights?"),
                           (["--niter", "3"], "--niter: no such flag (pytorch/examples' --niter is --epochs of train)")):
        with pytest.raises(SystemExit):
            parse_sample_args(flags, "prog")
        assert capsys.readouterr().err.startswith(f"prog: error: {pointer}")


def test_known_flags_abbreviations_and_negative_values_still_parse():
    c = parse_config(["--max-s", "3", "--batch-size=16", "--dataset", "synthetic"], "t")
    assert (c.max_steps, c.batch_size, c.dataset) == (3, 16, "synthetic")
    with pytest.raises(SystemExit):                     # "-1" is a value: the range check speaks
        parse_config(["--lr", "-1"], "t")


def test_a_peer_flag_on_the_real_command_line_writes_nothing(tmp_path, cli):
    r = cli("pytorch_impl.train", "--batchSize", "64", "--outf", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--batchSize: no such flag; did you mean --batch-size?" in r.stderr
    assert list(tmp_path.iterdir()) == []
