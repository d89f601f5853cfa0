"""common/runfiles.py: what a crash in the middle of a save leaves behind, the run
directory's lock, a full disk, and Ctrl-C and SIGTERM read at a step's end."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import runfiles
from common.config import UserError
from tests import helpers


def test_atomic_save_keeps_the_old_file_when_the_save_is_interrupted(tmp_path):
    path = tmp_path / "checkpoint.keras"
    path.write_bytes(b"the old checkpoint")
    seen = []

    def half_a_save(tmp):
        seen.append(tmp)
        tmp.write_bytes(b"the first half")
        raise KeyboardInterrupt                    # Ctrl-C in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        runfiles.atomic_save(path, half_a_save)
    assert path.read_bytes() == b"the old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.keras"]   # the half file is gone
    # the temporary is in the same folder (os.replace stays on one file system) and keeps
    # the suffix, which Keras's save() insists on
    assert seen[0].parent == tmp_path and seen[0].suffix == ".keras" and seen[0] != path


def test_atomic_save_and_write_text_replace_the_file_once_complete(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    runfiles.atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"
    runfiles.atomic_save(path, lambda tmp: tmp.write_text("newer\n"))
    assert path.read_text() == "newer\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_ctrl_c_is_a_flag_then_at_once_and_the_handler_is_put_back():
    import signal
    before = signal.getsignal(signal.SIGINT)
    with runfiles.StepEndCtrlC() as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        assert ctrl_c.asked and not ctrl_c.hard          # the first: only the flag
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)          # the second: at once
        assert ctrl_c.hard
    assert signal.getsignal(signal.SIGINT) is before
    signal.signal(signal.SIGINT, signal.SIG_IGN)         # a background job ignores Ctrl-C:
    try:                                                 # so does the run
        with runfiles.StepEndCtrlC() as ctrl_c:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


# ----------------------------------------------------------------------------------------
# One writer (RunLock), a full disk (writing, MetricsLog, EventFile), SIGTERM (issue 25).

HOLD_LOCK = ("import sys, time; from pathlib import Path; from common import runfiles; "
             "runfiles.RunLock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)")


def hold_lock(d):
    """Another process that takes the run directory's lock, as train does, and keeps it."""
    p = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(d)], stdout=subprocess.PIPE, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_lock_held_by_another_process_names_it_and_dies_with_it(tmp_path):
    """Real processes, a real kill -9: while another process holds run.lock, RunLock is
    one line naming that process; once it is killed, the kernel has dropped its lock and
    nothing stale is left to delete."""
    p = hold_lock(tmp_path)
    try:
        assert (tmp_path / "run.lock").read_text().strip() == str(p.pid)
        with pytest.raises(UserError, match=f"{tmp_path} is in use: process {p.pid} is training "
                                            f"there .* stop it with kill {p.pid}"):
            runfiles.RunLock(tmp_path)
    finally:
        p.kill()
        p.wait()
    lock = runfiles.RunLock(tmp_path)                  # free at once: no stale lock
    assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())
    lock.release()


def test_a_lock_taken_by_a_train_that_then_fails_is_put_back(tmp_path):
    """A --resume that fails its checks leaves run.lock as it found it (another pid's), and a
    new run that fails takes away the lock file it made."""
    (tmp_path / "run.lock").write_text("12345     \n")
    lock = runfiles.RunLock(tmp_path)
    assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())
    lock.release(restore=True)
    assert (tmp_path / "run.lock").read_text() == "12345     \n"
    (tmp_path / "new").mkdir()
    lock = runfiles.RunLock(tmp_path / "new")          # no lock file there yet
    made = tmp_path / "new" / "run.lock"
    assert made.exists()
    lock.release(restore=True)
    assert not made.exists()


def test_writing_names_a_full_disk_and_lets_other_errors_through(tmp_path):
    """By injection: ENOSPC, EDQUOT and EROFS become a DiskFull naming the file (the real
    one, for atomic_save's temporary); any other OSError stays what it is."""
    for code, says in ((errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "the disk quota is used up"),
                       (errno.EROFS, "the file system is read-only")):
        with pytest.raises(runfiles.DiskFull) as e:
            with runfiles.writing("the checkpoint", tmp_path / "checkpoint.pt"):
                raise OSError(code, os.strerror(code), str(tmp_path / "tmp-checkpoint.pt"))
        assert str(e.value) == (f"{says} ({os.strerror(code)}) while writing the checkpoint to "
                                f"{tmp_path / 'checkpoint.pt'}")
    with pytest.raises(PermissionError):
        with runfiles.writing("the checkpoint", tmp_path / "checkpoint.pt"):
            raise PermissionError(errno.EACCES, "Permission denied")


def fail_writes_to(monkeypatch, name, after_bytes):
    """By injection: os.write to the file whose name holds `name` takes `after_bytes` more bytes, then
    the disk is full (a partial write, then ENOSPC, as a real full disk does)."""
    real_write = os.write
    left = [after_bytes]

    def write(fd, data):
        if name not in os.readlink(f"/proc/self/fd/{fd}"):
            return real_write(fd, data)
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:left[0]]))
        left[0] -= n
        return n
    monkeypatch.setattr(os, "write", write)


def test_metrics_csv_never_ends_in_half_a_row(tmp_path, monkeypatch):
    """By injection: the disk fills in the middle of a row; the row's first half is cut off
    again, so the file ends in the last whole row."""
    log = runfiles.MetricsLog(tmp_path / "metrics.csv")
    m = {k: 0.5 for k in runfiles.METRICS}
    log.write(1, 1, m, 0.1)
    whole = (tmp_path / "metrics.csv").read_bytes()
    fail_writes_to(monkeypatch, "metrics.csv", 20)
    with pytest.raises(OSError) as e:
        log.write(2, 1, m, 0.1)
    assert e.value.errno == errno.ENOSPC
    log.close()
    assert (tmp_path / "metrics.csv").read_bytes() == whole
    assert runfiles.read_metrics(tmp_path / "metrics.csv")["step"].tolist() == [1]


def test_tensorboard_events_end_in_a_whole_record_on_a_full_disk(tmp_path, monkeypatch):
    """By injection: the disk fills in the middle of a flush; the file is cut back to its
    last whole record, and TensorBoard's reader reads every step written before."""
    from common.tensorboard_log import TensorBoardLog
    board = TensorBoardLog(tmp_path)
    for step in (1, 2, 3):
        board.step(step, {k: step for k in runfiles.METRICS}, 0.1)
    board.flush()
    fail_writes_to(monkeypatch, board.path.name, 30)
    board.step(4, {k: 4 for k in runfiles.METRICS}, 0.1)
    with pytest.raises(OSError):
        board.flush()
    board.close(flush=False)
    monkeypatch.undo()
    assert helpers.read_events(tmp_path)["scalars"]["loss/d"][0].tolist() == [1, 2, 3]


def test_sigterm_is_a_flag_then_at_once_and_ends_the_run_with_143():
    """Real signals to this process: the first SIGTERM only sets the flag (and says it
    was SIGTERM), a second one, or a Ctrl-C after it, interrupts at once; a run stopped
    after a SIGTERM leaves with exit status 143, and the handlers are put back."""
    import signal
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(SystemExit) as e:
        with runfiles.StepEndCtrlC() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.asked and stop.terminated and not stop.hard
            raise KeyboardInterrupt            # what the loop does at the step's end
    assert e.value.code == 143
    with pytest.raises(SystemExit):
        with runfiles.StepEndCtrlC() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)     # the second: at once
            assert stop.hard
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):               # Ctrl-C alone: as before
        with runfiles.StepEndCtrlC() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.asked and not stop.terminated
            raise KeyboardInterrupt
    assert {s: signal.getsignal(s) for s in before} == before


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_then_enospc(write_half, only=None, real=None):
    """A writer (a function or a method) that writes part of its file, given as a path or
    an open file, and then meets a full disk, as a real one does. only: a path suffix; the
    others go to real."""
    def write(*args, **kwargs):
        target = next(a for a in args if isinstance(a, (str, Path)) or hasattr(a, "write"))
        if only and not str(target).endswith(only):
            return real(*args, **kwargs)
        write_half(Path(target) if isinstance(target, str) else target)
        enospc()
    return write


# Each write of a run, and how a full disk is injected into it; the step it meets it at
# (the checkpoint kept: 8 before the last epoch's, 16 after); what the line names.
FULL_DISK_AT = {
    "metrics.csv": (lambda mp, d: fail_writes_to(mp, "metrics.csv", 10), 8, "a row of metrics", "metrics.csv"),
    "events": (lambda mp, d: fail_writes_to(mp, "tfevents", 0), 8, "TensorBoard events", "events.out"),
    "grid": (lambda mp, d: mp.setattr(runfiles, "save_grid", half_then_enospc(lambda p: p.write_bytes(b"PNG"))),
             8, "the sample grid", "samples/epoch_002.png"),
    "weights": (lambda mp, d: mp.setattr(np, "savez", half_then_enospc(lambda f: f.write(b"PK"))),
                16, "the portable weights", "weights.npz"),
    "curves": (lambda mp, d: mp.setattr("matplotlib.figure.Figure.savefig",
                                        half_then_enospc(lambda p: p.write_bytes(b"PNG"))),
               16, "the curves", "losses.png"),
    "gif": (lambda mp, d: mp.setattr("PIL.Image.Image.save", half_then_enospc(
        lambda p: p.write_bytes(b"GIF"), only=".gif", real=__import__("PIL.Image").Image.Image.save)),
        16, "the animation", "progress.gif"),
}


@pytest.mark.parametrize("where", FULL_DISK_AT)
def test_a_full_disk_at_any_write_of_a_run_is_one_error_and_loses_nothing(where, tmp_path, monkeypatch):
    """By injection, for each file a run writes besides its checkpoint (which
    tests/test_run_faults.py fills a real disk with): runfiles.Run driven as train.py drives
    it, two epochs of 8 steps, the disk full from step 12 on. The error names the file and
    the checkpoint kept; no temporary file is left; what was written before stays whole
    (weights.npz and the curves of an earlier run untouched); once the disk is full
    nothing more is written, and the lock is let go. (weights.npz and the curves are the
    last writes: where the disk fills only then, what came before them is new and whole.)"""
    from types import SimpleNamespace
    from common import weights
    from common.config import Config
    inject, kept_step, what, name = FULL_DISK_AT[where]
    d = tmp_path / "r"
    (d / "samples").mkdir(parents=True)
    (d / "weights.npz").write_bytes(b"the weights of an earlier run")
    (d / "losses.png").write_bytes(b"the curves of an earlier run")
    cfg = Config(dataset="synthetic", image_size=16, channels=1, nz=16, ngf=8, ndf=8, max_steps=16, out=str(d))
    cfg.framework = "test"
    run = runfiles.Run(cfg, d, None, SimpleNamespace(per_epoch=8), checkpoint_name="checkpoint.x",
                       lock=runfiles.RunLock(d))
    save = lambda path: runfiles.atomic_save(path, lambda tmp: tmp.write_bytes(f"step {step}".encode()))
    images = np.zeros((4, 16, 16, 1), np.float32)
    arrays = {k: np.zeros(s, np.float32) for k, s in weights.expected_shapes(cfg).items()}
    run.begin()
    with pytest.raises(runfiles.DiskFull) as e:
        try:
            for step in range(1, 17):
                if step == 12:
                    inject(monkeypatch, d)
                run.log_step(step, {k: 0.5 for k in runfiles.METRICS}, 0.1)
                if step % 8 == 0:
                    run.end_epoch(step, images)
                    run.checkpoint(step, save)
        finally:                                    # train.py's finally
            run.save_weights(arrays, step)
            run.close(step)
    line = str(e.value)
    assert line.startswith(f"the disk is full (No space left on device) while writing {what} to {d}/"), line
    assert name in line and f"{d} keeps its checkpoint of step {kept_step}" in line, line
    assert f"continue with --resume {d}" in line and "\n" not in line
    monkeypatch.undo()
    assert not [p for p in d.rglob("*") if p.name.startswith("tmp")]
    assert (d / "checkpoint.x").read_text() == f"step {kept_step}"
    if where in ("curves", "gif"):                  # the disk filled after weights.npz
        assert weights.load(d / "weights.npz")[2]["step"] == 16
    else:
        assert (d / "weights.npz").read_bytes() == b"the weights of an earlier run"
    if where != "gif":
        assert (d / "losses.png").read_bytes() == b"the curves of an earlier run"
    assert not (d / "progress.gif").exists()
    text = (d / "metrics.csv").read_bytes()
    assert text.endswith(b"\r\n") and all(len(r.split(b",")) == 8 for r in text.splitlines())
    assert len(helpers.read_events(d)["scalars"]["loss/d"][0]) >= 8      # read to its end
    runfiles.RunLock(d).release()                   # let go
