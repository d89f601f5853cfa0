"""The README's test command itself, as a newcomer runs it: `./run.sh test` in a clean copy
of the repository, on a machine without chromium. The tests that need it must skip and
say what to install; with DCGAN_REQUIRE_SYSTEM=1 (what .ci/run sets) they must fail."""
import os
import shutil
import subprocess

from tests.conftest import ROOT
from tests.helpers import standin_venv

BROWSERS = {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}


def clean_copy(dest):
    """What a clone of this working tree holds: the tracked files and the untracked ones
    git does not ignore; no .venv, no runs/, no caches."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def path_without_browsers(bin_dir):
    """One folder of links to every program on PATH except the browsers."""
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            exe = os.path.join(d, name)
            if name not in BROWSERS and not (bin_dir / name).exists() and os.access(exe, os.X_OK):
                (bin_dir / name).symlink_to(exe)
    return str(bin_dir)


def run_test_command(tmp_path, require):
    repo = clean_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DCGAN_REQUIRE"))}
    env.update(PATH=path_without_browsers(tmp_path / "bin"),
               DCGAN_VENV=str(standin_venv(tmp_path / "venv", repo)))
    if require:
        env["DCGAN_REQUIRE_SYSTEM"] = "1"
    # the file whose tests open a browser, whole: those skip (or fail), the rest must pass
    return subprocess.run(["./run.sh", "test", "-q", "tests/test_side_by_side.py"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def test_without_chromium_the_test_command_passes_and_names_what_it_skipped(tmp_path):
    r = run_test_command(tmp_path, require=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert shutil.which("chromium", path=os.path.join(tmp_path, "bin")) is None
    summary = [l for l in out.splitlines() if l.startswith("SKIPPED")]
    assert summary and all("apt-get install chromium" in l for l in summary), out[-3000:]
    # the closing line counts them: 3 browser tests (a fixture's skip counts each of its tests)
    last = out.splitlines()[-1]
    assert "3 skipped" in last and " passed" in last and "failed" not in last, out[-500:]


def test_in_ci_a_missing_chromium_fails_instead_of_skipping(tmp_path):
    r = run_test_command(tmp_path, require=True)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "skipped" not in out.splitlines()[-1], out[-500:]
    assert "DCGAN_REQUIRE_SYSTEM=1" in out and "apt-get install chromium" in out
