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
