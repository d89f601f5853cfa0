"""common/runfiles.py's atomic writes: what a crash in the middle of a save leaves behind."""
import pytest

from common import runfiles


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
    import os
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
