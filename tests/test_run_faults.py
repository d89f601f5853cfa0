"""Runs that survive the real world (issue 25), in the three frameworks: a second train on a
run directory in use, a full disk, SIGTERM, kill -9 before the first checkpoint. Real
processes, real signals and a real small file system where the machine allows; where a
case is checked by injecting the error instead, its docstring says so. Each run is TINY
(tests/helpers.py): 512 synthetic images, 8 steps an epoch at batch 64."""
import contextlib
import errno
import hashlib
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from common import runfiles, weights
from common.config import run_main
from tests import helpers
from tests.conftest import ROOT

FRAMEWORKS = ("pytorch", "jax", "keras")
CHECKPOINTS = {"pytorch": "checkpoint.pt", "jax": "checkpoint.npz", "keras": "checkpoint.keras"}


def train_module(fw):
    return importlib.import_module(f"{fw}_impl.train")


def start(fw, *args) -> subprocess.Popen:
    """`python -m <fw>_impl.train ARGS` in a process of its own, as a user starts it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), DCGAN_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", f"{fw}_impl.train", *map(str, args)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(what, ready, p, timeout=300):
    deadline = time.monotonic() + timeout
    while not ready():
        if p.poll() is not None:
            out, err = p.communicate()
            pytest.fail(f"the run ended (status {p.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            p.kill()
            pytest.fail(f"no {what} in {timeout} s")
        time.sleep(0.02)


def rows(d: Path) -> int:
    try:
        return max(0, len((d / "metrics.csv").read_bytes().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def ended(p: subprocess.Popen, timeout=180) -> tuple[str, str]:
    try:
        return p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def refused(fw, argv, capsys) -> str:
    """train with argv, in this process: exit status 2 and one error line on stderr (beside
    the progress bar of a run that had started), returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(train_module(fw).main, [str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    errors = [line for line in lines if "error" in line]
    assert e.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def resumed(fw, d, max_steps, capsys) -> int:
    """--resume d to max_steps in this process; returns the step it resumed at (0: none)."""
    capsys.readouterr()
    helpers.resume(train_module(fw).train, d, max_steps)
    out = capsys.readouterr().out
    m = re.search(r"resuming .* at step (\d+)", out)
    assert m or "starting it again from step 0" in out, out
    return int(m[1]) if m else 0


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """whole(fw, *flags): the uninterrupted TINY run to compare with, made once."""
    made = {}

    def get(fw, *flags):
        if (fw, flags) not in made:
            made[fw, flags] = helpers.run_tiny(train_module(fw).train, tmp_path_factory.mktemp(fw) / "whole", *flags)
        return made[fw, flags]
    return get


# ----------------------------------------------------------------------------------------
# 1. One writer

@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_second_train_on_a_run_in_use_is_refused_and_readers_do_not_wait(fw, tmp_path, capsys):
    """Real processes: a run resumed in its own process, frozen (SIGSTOP) in the middle of
    training with its lock held. A second --resume and a new run with --out on its
    directory each get one line naming that process, exit 2, and change nothing; sample
    (and evaluate, on its output) read the last complete weights.npz without waiting. The
    run, let go, then ends on SIGTERM with each step in metrics.csv once."""
    d = helpers.run_tiny(train_module(fw).train, tmp_path / "r", "--max-steps", "2")
    before_weights = (d / "weights.npz").read_bytes()
    p = start(fw, "--resume", d, "--max-steps", "100000")
    try:
        wait_for("steps logged by the resumed run", lambda: rows(d) > 4, p)
        os.kill(p.pid, signal.SIGSTOP)
        time.sleep(0.2)
        files = snapshot(d)
        says = f"{d} is in use: process {p.pid} is training there"
        assert says in refused(fw, ["--resume", d, "--max-steps", rows(d) + 40], capsys)
        assert says in refused(fw, [*helpers.TINY, "--out", d], capsys)
        assert snapshot(d) == files
        sample = importlib.import_module(f"{fw}_impl.sample")
        t0 = time.monotonic()
        run_main(sample.main, ["--weights", str(d / "weights.npz"), "--n", "100", "--out", str(tmp_path / "s.npy")])
        (tmp_path / "w.npz").write_bytes(before_weights)
        x = np.load(tmp_path / "s.npy")
        np.testing.assert_allclose(x, sample.sample(tmp_path / "w.npz", _z(100, 16), "cpu"), atol=1e-6)
        if fw == "pytorch":
            from common.judge import evaluate
            evaluate.main([str(tmp_path / "s.npy"), "--dataset", "synthetic"])
        assert time.monotonic() - t0 < 120
        assert snapshot(d) == files
    finally:
        os.kill(p.pid, signal.SIGCONT)
    p.send_signal(signal.SIGTERM)
    out, err = ended(p)
    assert p.returncode == 143, err[-3000:]
    steps = runfiles.read_metrics(d / "metrics.csv")["step"].tolist()
    assert steps == list(range(1, len(steps) + 1))        # no step twice


def _z(n, nz):
    """sample's z for --seed 0 (common.data.draw_z, as sample draws it)."""
    from common.data import draw_z
    return draw_z(np.random.default_rng(0), n, nz, "normal")


# ----------------------------------------------------------------------------------------
# 2. A full disk

@contextlib.contextmanager
def small_disk(tmp_path, size="4m"):
    """A real tmpfs of `size` at tmp_path/disk (root only), unmounted at the end. Skips
    with the reason where it cannot be mounted; the injection tests below run anyway."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the injected full disk is tested below")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the injected full disk is tested below")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> Path:
    """Fill the file system at mnt up to `leave` bytes free; the filler file is returned."""
    st = os.statvfs(mnt)
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def check_full_disk_stop(fw, d, line, kept: dict):
    """What a run stopped by a full disk leaves: one line, what and where and what to do;
    no temporary file; the kept files byte for byte; metrics.csv of whole rows."""
    assert line.startswith("error: the disk is full (No space left on device) while writing "), line
    assert f"keeps its checkpoint of step 8" in line and f"continue with --resume {d}" in line, line
    assert not [p for p in d.rglob("*") if p.name.startswith("tmp")]
    for name, content in kept.items():
        assert (d / name).read_bytes() == content, f"{name} changed"
    text = (d / "metrics.csv").read_bytes()
    assert text.endswith(b"\r\n")
    assert all(len(r.split(b",")) == len(runfiles.COLUMNS) for r in text.splitlines())
    steps = runfiles.read_metrics(d / "metrics.csv")["step"].tolist()
    assert steps == list(range(1, len(steps) + 1))


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_full_disk_is_one_line_and_resume_after_freeing_space_is_exact(fw, tmp_path, capsys, whole):
    """A real full disk: a 4 MB tmpfs holds a run of 8 steps (checkpoint and weights.npz),
    then a filler leaves it half a checkpoint of space, and the run resumed to 1000 steps
    fills it. One line, exit 2, no temporary file, the checkpoint and weights.npz of step 8
    as they were, metrics.csv without a partial row. With the filler deleted, --resume
    ends bit for bit where an uninterrupted run ends."""
    with small_disk(tmp_path) as mnt:
        d = helpers.run_tiny(train_module(fw).train, mnt / "r", "--max-steps", "8")
        kept = {name: (d / name).read_bytes() for name in (CHECKPOINTS[fw], "weights.npz")}
        filler = fill(mnt, len(kept[CHECKPOINTS[fw]]) // 2)
        line = refused(fw, ["--resume", d, "--max-steps", "1000"], capsys)
        check_full_disk_stop(fw, d, line, kept)
        filler.unlink()                                   # space freed
        assert resumed(fw, d, 20, capsys) == 8
        helpers.assert_same_run(whole(fw, "--max-steps", "20"), d)


def test_a_read_only_disk_is_one_line(tmp_path, capsys):
    """A real read-only file system (the tmpfs remounted read-only under a run): --resume
    cannot take the run directory's lock, and says so in one line, touching nothing.
    (Common code, before any framework's: one framework is enough.)"""
    with small_disk(tmp_path) as mnt:
        d = helpers.run_tiny(train_module("pytorch").train, mnt / "r", "--max-steps", "2")
        files = snapshot(d)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        line = refused("pytorch", ["--resume", d, "--max-steps", "4"], capsys)
        assert line == (f"error: --resume {d}: cannot take the run directory (Read-only file system: "
                        f"{d / 'run.lock'}); resume it where it can be written (make it writable, or "
                        "copy it elsewhere)")
        assert snapshot(d) == files


def failing_save(real_atomic_save, name):
    """By injection: runfiles.atomic_save whose save of `name` writes half a file and then
    meets a full disk, as a real one does (the temporary's cleanup is the real one's)."""
    def atomic_save(path, save_fn):
        if Path(path).name != name:
            return real_atomic_save(path, save_fn)

        def half_then_full(tmp):
            Path(tmp).write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_atomic_save(path, half_then_full)
    return atomic_save


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_full_disk_injected_at_the_checkpoint_is_one_line(fw, tmp_path, monkeypatch, capsys, whole):
    """By injection (runs where no tmpfs can be mounted): the checkpoint of step 16 meets a
    full disk. One line, exit 2, no temporary file, the checkpoint and weights.npz of step 8
    as they were, nothing drawn after; then --resume ends where an uninterrupted run ends."""
    d = helpers.run_tiny(train_module(fw).train, tmp_path / "r", "--max-steps", "8")
    kept = {name: (d / name).read_bytes() for name in (CHECKPOINTS[fw], "weights.npz", "losses.png")}
    monkeypatch.setattr(runfiles, "atomic_save", failing_save(runfiles.atomic_save, CHECKPOINTS[fw]))
    line = refused(fw, ["--resume", d, "--max-steps", "20"], capsys)
    assert f"while writing the checkpoint to {d / CHECKPOINTS[fw]}" in line
    check_full_disk_stop(fw, d, line, kept)
    assert runfiles.read_metrics(d / "metrics.csv")["step"][-1] == 16
    monkeypatch.undo()
    assert resumed(fw, d, 20, capsys) == 8
    helpers.assert_same_run(whole(fw, "--max-steps", "20"), d)


# ----------------------------------------------------------------------------------------
# 3. SIGTERM, and --checkpoint-every

@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_sigterm_mid_epoch_saves_the_step_and_exits_143(fw, tmp_path, capsys, whole):
    """A real SIGTERM to a real run, in the middle of an epoch of 32 steps: the step it
    falls in is finished, the checkpoint, weights.npz and metrics.csv end at that step, one
    line says so, exit status 143; --resume ends bit for bit where an uninterrupted run
    ends."""
    d = tmp_path / "r"
    p = start(fw, *helpers.TINY, "--batch-size", "16", "--max-steps", "5000", "--out", d)
    wait_for("three steps logged", lambda: rows(d) >= 3, p)
    p.send_signal(signal.SIGTERM)
    out, err = ended(p)
    assert p.returncode == 143 and "Traceback" not in err, err[-3000:]
    step = int(re.search(r"interrupted after step (\d+) \(SIGTERM\): checkpoint saved; continue "
                         rf"with --resume {re.escape(str(d))}", out)[1])
    assert weights.load(d / "weights.npz")[2]["step"] == step
    assert runfiles.read_metrics(d / "metrics.csv")["step"].tolist() == list(range(1, step + 1))
    assert resumed(fw, d, step + 3, capsys) == step
    helpers.assert_same_run(whole(fw, "--batch-size", "16", "--max-steps", str(step + 3)), d)


def at_step_begin(fw, monkeypatch, n, action):
    """Call action() as step n (1-based) begins: before PyTorch's or JAX's train_step, at
    Keras' on_train_batch_begin."""
    train_mod = train_module(fw)
    if fw == "keras":
        real_begin = train_mod.RunFiles.on_train_batch_begin

        def begin(self, batch, logs=None):
            real_begin(self, batch, logs)
            if self.model.step == n - 1:
                action()
        monkeypatch.setattr(train_mod.RunFiles, "on_train_batch_begin", begin)
        return
    real_step, calls = train_mod.train_step, []

    def step(*args):
        calls.append(1)
        if len(calls) == n:
            action()
        return real_step(*args)
    monkeypatch.setattr(train_mod, "train_step", step)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_second_sigterm_stops_at_once_and_keeps_the_mid_epoch_checkpoint(fw, tmp_path, monkeypatch, capsys, whole):
    """Two real SIGTERMs as step 12 begins, in a run with --checkpoint-every 5 (epochs of 8
    steps: checkpoints after steps 5, 8 and 10): the second stops the run at once, exit
    143, with no weights.npz and the checkpoint of step 10, from the middle of epoch 2;
    --resume from it ends bit for bit where an uninterrupted run ends."""
    def two_sigterms():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
    at_step_begin(fw, monkeypatch, 12, two_sigterms)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        helpers.run_tiny(train_module(fw).train, tmp_path / "r", "--max-steps", "16", "--checkpoint-every", "5")
    assert e.value.code == 143
    assert "interrupted at once by a second SIGTERM (at step 11): the checkpoint of step 10 is kept" \
        in capsys.readouterr().out
    d = tmp_path / "r"
    assert not (d / "weights.npz").exists()
    monkeypatch.undo()
    assert resumed(fw, d, 16, capsys) == 10
    helpers.assert_same_run(whole(fw, "--max-steps", "16"), d)


# ----------------------------------------------------------------------------------------
# 4. Killed before the first checkpoint

@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_kill_9_before_the_first_checkpoint_resumes_from_step_0(fw, tmp_path, capsys, whole):
    """A real kill -9 the moment config.json appears (long before the first checkpoint, at
    the end of an epoch of 64 steps): --resume says in one line that it starts again from
    step 0, and ends bit for bit where an uninterrupted run ends."""
    d = tmp_path / "r"
    p = start(fw, *helpers.TINY, "--batch-size", "8", "--max-steps", "5000", "--out", d)
    wait_for("config.json", lambda: (d / "config.json").exists(), p, timeout=120)
    p.kill()
    ended(p)
    assert not (d / CHECKPOINTS[fw]).exists()
    capsys.readouterr()
    helpers.resume(train_module(fw).train, d, 10)
    out = capsys.readouterr().out
    assert f"--resume {d}: no checkpoint there yet (the run was stopped before its first one): " \
           "starting it again from step 0" in out
    helpers.assert_same_run(whole(fw, "--batch-size", "8", "--max-steps", "10"), d)
    helpers.check_events(d, starts=[0], image_steps=[10])


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_run_killed_before_its_config_json_is_started_again_with_out(fw, tmp_path, capsys, whole):
    """What a kill between taking the lock and writing config.json leaves (built here by
    hand: a kill cannot be timed into that window): run.lock, an empty samples/ and a
    half-written tmp-config.json. --resume says to start it again with --out, which takes
    that directory and trains the same run as anywhere else."""
    d = tmp_path / "r"
    (d / "samples").mkdir(parents=True)
    (d / "run.lock").write_text("99999     \n")
    (d / "tmp-config.json").write_text('{"dataset": "synth')
    line = refused(fw, ["--resume", d, "--max-steps", "4"], capsys)
    assert f"--resume {d}: the run there was stopped before it wrote its config.json; start it " \
           f"again with its flags and --out {d}" in line
    helpers.run_tiny(train_module(fw).train, d, "--max-steps", "4")
    assert not (d / "tmp-config.json").exists()
    helpers.assert_same_run(whole(fw, "--max-steps", "4"), d)
