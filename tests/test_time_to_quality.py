"""benchmarks.time_to_quality, the study the CPU profile was chosen from: its schedule, its
rows (a real tiny run, trained in chunks with --resume, sampled and judged), that a second
call continues instead of starting over, and its one-line errors. The figures themselves
are the study's output in results/time-to-quality, not asserted here."""
import csv
import json

import pytest

from benchmarks import time_to_quality as ttq
from tests.conftest import run_cli

CAL = {"t0": 5.0, "s_per_step": 0.02, "walls": [5.8, 9.0], "steps": [40, 200]}


def test_schedule_spreads_the_evaluations_evenly_in_time_up_to_the_budget():
    steps = ttq.schedule(CAL, budget=45.0, evals=4)       # (45 - 5) / 0.02 = 2,000 steps
    assert steps == [500, 1000, 1500, 2000]
    assert ttq.schedule(CAL, budget=5.01, evals=3) == [1]  # a budget under t0 still trains a step


def test_a_tiny_study_trains_in_chunks_judges_and_continues_where_it_stopped(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    # calibration already on record (stage 1 is skipped, as for a study that was interrupted)
    (out / "calibration.json").write_text(json.dumps({"machine": "test", "16px-w4": CAL}))
    args = ("benchmarks.time_to_quality", "--settings", "16:4", "--seeds", "3", "--budget", "7",
            "--evals", "2", "--samples", "100", "--jobs", "1", "--out", str(out))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    with open(out / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [50, 100]            # (7 - 5) / 0.02 = 100, in 2 chunks
    assert [float(r["seconds"]) for r in rows] == [6.0, 7.0]       # t0 + step * s, not this run's time
    metrics = list(csv.DictReader(open(out / "work" / "16px-w4-seed3" / "metrics.csv")))
    assert [int(m["step"]) for m in metrics] == list(range(1, 101))  # one run, resumed, no gap or repeat
    for r in rows:
        assert r["setting"] == "16px-w4" and r["seed"] == "3"
        assert float(r["fd"]) > float(r["fd_real"]) > 0            # 100 steps are far from real digits
        assert 1 <= float(r["score"]) <= 10
    assert (out / "time_to_quality.png").stat().st_size > 10_000
    assert (out / "grid-16px-w4-seed3.png").exists()              # the run's last fixed-noise grid
    assert (out / "work" / ".gitignore").read_text() == "*\n"    # checkpoints stay out of git
    assert "| 16px-w4 | 0.020 | 100 | 1 |" in (out / "summary.md").read_text()
    log = (out / "work" / "16px-w4-seed3.log").read_text()
    again = run_cli(*args)                                         # nothing left to do: no training
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list(csv.DictReader(open(out / "study.csv")))) == 2
    assert (out / "work" / "16px-w4-seed3.log").read_text() == log


@pytest.mark.parametrize("flags, message", [
    (("--settings", "32x16"), "a setting is SIZE:WIDTH"),
    (("--settings", "48:16"), "the size must be 16, 32, 64 or 128"),
    (("--evals", "0"), "--evals must be at least 1"),
])
def test_bad_flags_are_one_line(tmp_path, flags, message):
    out = run_cli("benchmarks.time_to_quality", *flags, "--out", str(tmp_path / "x"))
    last = out.stderr.strip().splitlines()[-1]        # argparse: the usage, then one error line
    assert out.returncode == 2 and "error: " in last and message in last and "Traceback" not in out.stderr


def test_plot_only_without_a_study_says_so(tmp_path):
    out = run_cli("benchmarks.time_to_quality", "--plot-only", "--out", str(tmp_path / "none"))
    assert out.returncode == 1 and "no rows yet" in out.stderr
