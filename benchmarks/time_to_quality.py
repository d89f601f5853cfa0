"""Time to quality: the judge's score of the bare command's samples against wall-clock
time, for several CPU settings (image size, widths) and several seeds (issue 13). It is
how the CPU profile in common/config.py (PROFILES["cpu"]) was chosen.

    python -m benchmarks.time_to_quality --out results/time-to-quality       # the committed study
    python -m benchmarks.time_to_quality --settings 32:16 32:32 --seeds 0 1 2 --budget 600
    python -m benchmarks.time_to_quality --out results/time-to-quality --plot-only

A setting is SIZE:WIDTH (ngf = ndf = WIDTH); everything else is the bare command's:
PyTorch, the tutorial network, MNIST, batch 128, Adam 2e-4 (0.5, 0.999), fp32. Three stages:

1. Calibrate, one setting at a time on an otherwise idle machine with all its cores: the
   real `python -m pytorch_impl.train` for CAL_SHORT and for CAL_SHORT + CAL_EXTRA steps,
   timed from the outside (interpreter start, data loading, per-epoch grids included).
   Wall time of N steps = t0 + N * s from the two. The budget's step count follows.
2. For each setting and seed, train to the budget in --evals chunks with --resume (which
   continues bit for bit where an uninterrupted run would be, tests/test_pytorch_train.py),
   and after each chunk draw --samples images (noise seed SAMPLE_SEED) from the run's
   weights.npz and score them with common.judge.evaluate. These runs may share the machine
   (--jobs, each with --threads): the judge's score depends on the step reached, not on how
   fast it was reached, and the time axis comes from stage 1.
3. study.csv (a row per setting, seed and step), calibration.json, time_to_quality.png and
   summary.md (each setting at the budget: mean and spread over the seeds).

Everything is kept under --out and skipped when already there, so an interrupted study
continues where it stopped. Not a timed test: it takes about (settings x seeds x budget x
the slowdown of --threads) / --jobs, over an hour for the committed study.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CAL_SHORT, CAL_EXTRA = 40, 160
SAMPLE_SEED = 1234
FIELDS = ["setting", "size", "width", "seed", "step", "seconds", "fd", "fd_std", "fd_real",
          "score", "score_real", "confidence", "classes_over_5pct", "top_class_share"]


class StudyError(Exception):
    pass


def parse_setting(s: str) -> tuple[int, int]:
    try:
        size, width = (int(v) for v in s.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: a setting is SIZE:WIDTH, e.g. 32:16") from None
    if size not in (16, 32, 64, 128) or width < 1:
        raise argparse.ArgumentTypeError(f"{s!r}: the size must be 16, 32, 64 or 128 and the width positive")
    return size, width


def name(size: int, width: int) -> str:
    return f"{size}px-w{width}"


def run(args: list[str], threads: int | None, log: Path, data_dir: str) -> float:
    """Run `python -m ARGS` as a user would; its wall-clock seconds. Output goes to log."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), DCGAN_OFFLINE="1", MPLBACKEND="Agg")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t = time.perf_counter()
    with open(log, "a") as f:
        p = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t
    if p.returncode:
        raise StudyError(f"`python -m {' '.join(args)}` failed (exit {p.returncode}); see {log}")
    return seconds


def train_args(size: int, width: int, seed: int, steps: int, out: Path, data_dir: str, resume: bool) -> list[str]:
    if resume:
        return ["pytorch_impl.train", "--resume", str(out), "--max-steps", str(steps), "--device", "cpu"]
    return ["pytorch_impl.train", "--image-size", str(size), "--ngf", str(width), "--ndf", str(width),
            "--max-steps", str(steps), "--seed", str(seed), "--out", str(out), "--device", "cpu",
            "--data-dir", data_dir]


def calibrate(size: int, width: int, work: Path, data_dir: str) -> dict:
    """t0 and seconds per step of the real train command at full threads."""
    walls = []
    for steps in (CAL_SHORT, CAL_SHORT + CAL_EXTRA):
        out = work / f"calibrate-{name(size, width)}-{steps}"
        if out.exists():
            shutil.rmtree(out)
        walls.append(run(train_args(size, width, 0, steps, out, data_dir, False), None,
                         work / f"calibrate-{name(size, width)}.log", data_dir))
    s = (walls[1] - walls[0]) / CAL_EXTRA
    return {"t0": walls[0] - CAL_SHORT * s, "s_per_step": s, "walls": walls,
            "steps": [CAL_SHORT, CAL_SHORT + CAL_EXTRA]}


def schedule(cal: dict, budget: float, evals: int) -> list[int]:
    """The steps at evals evenly spaced times up to the budget."""
    total = max(1, int((budget - cal["t0"]) / cal["s_per_step"]))
    return sorted({max(1, round(total * k / evals)) for k in range(1, evals + 1)})


def done_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def one_run(size, width, seed, steps, cal, work, data_dir, threads, judge, n, rows_path, lock):
    from common.judge import evaluate
    key = name(size, width)
    have = {int(r["step"]) for r in done_rows(rows_path) if r["setting"] == key and int(r["seed"]) == seed}
    out = work / f"{key}-seed{seed}"
    log = work / f"{key}-seed{seed}.log"
    for step in steps:
        if step in have:
            continue
        ckpt_step = current_step(out)
        if ckpt_step is None or ckpt_step > step:   # no run yet, or one past this point: start over
            if out.exists():
                shutil.rmtree(out)
            run(train_args(size, width, seed, step, out, data_dir, False), threads, log, data_dir)
        elif ckpt_step < step:
            run(train_args(size, width, seed, step, out, data_dir, True), threads, log, data_dir)
        npy = work / f"{key}-seed{seed}-step{step}.npy"
        run(["pytorch_impl.sample", "--weights", str(out / "weights.npz"), "--n", str(n),
             "--seed", str(SAMPLE_SEED), "--out", str(npy), "--device", "cpu"], threads, log, data_dir)
        with lock:                              # one scoring at a time (the judge caches)
            s = evaluate.evaluate(judge, np.load(npy))
        npy.unlink()
        hist = s.histogram
        row = {"setting": key, "size": size, "width": width, "seed": seed, "step": step,
               "seconds": round(cal["t0"] + step * cal["s_per_step"], 1), "fd": round(s.fd, 3),
               "fd_std": round(s.fd_std, 3), "fd_real": round(s.fd_real, 3), "score": round(s.score, 4),
               "score_real": round(s.score_real, 4), "confidence": round(s.confidence, 4),
               "classes_over_5pct": sum(h > 0.05 for h in hist), "top_class_share": round(max(hist), 4)}
        with lock:
            new = not rows_path.exists()  # noqa: the same lock as above, taken again
            with open(rows_path, "a", newline="") as f:
                w = csv.DictWriter(f, FIELDS)
                if new:
                    w.writeheader()
                w.writerow(row)
        print(f"  {key} seed {seed} step {step:>5} (~{row['seconds'] / 60:4.1f} min): "
              f"FD {s.fd:7.2f} +- {s.fd_std:5.2f} (floor {s.fd_real:.2f}), IS {s.score:.2f}", flush=True)


def current_step(out: Path) -> int | None:
    """The step of the run's last checkpoint (metrics.csv's last row), or None."""
    m = out / "metrics.csv"
    if not (out / "weights.npz").exists() or not m.exists():
        return None
    with open(m) as f:
        last = None
        for last in csv.DictReader(f):
            pass
    return int(last["step"]) if last else None


def summarize(rows: list[dict], cal: dict, budget: float) -> str:
    by = {}
    for r in rows:
        by.setdefault(r["setting"], []).append(r)
    lines = ["| setting | s/step | steps in budget | seeds | Frechet distance at the budget (mean, min-max) "
             "| floor | IS-style (mean) | classes over 5% (min) |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    best = None
    for key, rs in sorted(by.items(), key=lambda kv: (int(kv[1][0]["size"]), int(kv[1][0]["width"]))):
        last = max(int(r["step"]) for r in rs)
        at = [r for r in rs if int(r["step"]) == last]
        fds = [float(r["fd"]) for r in at]
        mean = statistics.mean(fds)
        if best is None or mean < best[1]:
            best = (key, mean)
        lines.append(f"| {key} | {cal[key]['s_per_step']:.3f} | {last:,} | {len(at)} | {mean:.1f} "
                     f"({min(fds):.1f}-{max(fds):.1f}) | {statistics.mean(float(r['fd_real']) for r in at):.2f} "
                     f"| {statistics.mean(float(r['score']) for r in at):.2f} "
                     f"| {min(int(r['classes_over_5pct']) for r in at)} |")
    lines.append("")
    lines.append(f"Lowest mean Frechet distance at the {budget / 60:g}-minute budget: **{best[0]}**.")
    return "\n".join(lines)


def plot(rows: list[dict], budget: float, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    by = {}
    for r in rows:
        by.setdefault(r["setting"], {}).setdefault(int(r["seed"]), []).append(r)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    order = sorted(by, key=lambda k: (int(k.split("px")[0]), int(k.split("-w")[1])))
    for i, key in enumerate(order):
        c = colors[i % len(colors)]
        seeds = by[key]
        for seed, rs in seeds.items():
            rs = sorted(rs, key=lambda r: int(r["step"]))
            t = [float(r["seconds"]) / 60 for r in rs]
            axes[0].plot(t, [float(r["fd"]) for r in rs], color=c, alpha=0.35, lw=1)
            axes[1].plot(t, [float(r["score"]) for r in rs], color=c, alpha=0.35, lw=1)
        steps = sorted({int(r["step"]) for rs in seeds.values() for r in rs})
        mean = lambda f, s: statistics.mean(float(r[f]) for rs in seeds.values() for r in rs if int(r["step"]) == s)
        t = [mean("seconds", s) / 60 for s in steps]
        full = sum(max(int(r["step"]) for r in rs) == steps[-1] for rs in seeds.values())
        axes[0].plot(t, [mean("fd", s) for s in steps], color=c, lw=2.2, marker="o", ms=3,
                     label=f"{key} (mean; {full} seed{'s' if full > 1 else ''} to the end)")
        axes[1].plot(t, [mean("score", s) for s in steps], color=c, lw=2.2, marker="o", ms=3, label=key)
    floor = statistics.mean(float(r["fd_real"]) for r in rows)
    axes[0].axhline(floor, color="k", ls=":", lw=1, label=f"real-vs-real floor ({floor:.1f})")
    axes[1].axhline(statistics.mean(float(r["score_real"]) for r in rows), color="k", ls=":", lw=1,
                    label="real digits")
    for ax in axes:
        ax.axvline(budget / 60, color="grey", ls="--", lw=1)
        ax.set_xlim(left=0)
        ax.set_xlabel("wall-clock minutes of the train command (2-core CPU, measured idle)")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("Frechet distance, CNN judge (lower: better)")
    axes[1].set_ylabel("IS-style score (higher: better)")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Time to quality of the bare PyTorch command, by image size and widths (thin: one seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.time_to_quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", type=parse_setting,
                   default=[(32, 16), (32, 32), (32, 64), (64, 16)], help="SIZE:WIDTH ... (default: %(default)s)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=float, default=600, help="seconds of the train command (default: 600)")
    p.add_argument("--evals", type=int, default=8, help="scores per run, evenly spaced in time (default: 8)")
    p.add_argument("--samples", type=int, default=1000, help="images judged per score (default: 1000)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once in stage 2 (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="threads per run in stage 2 (default: 1)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", default="runs/time-to-quality")
    p.add_argument("--plot-only", action="store_true", help="redraw the figure and summary from study.csv")
    a = p.parse_args(argv)
    for flag, v, lo in (("--budget", a.budget, 1), ("--evals", a.evals, 1), ("--samples", a.samples, 50),
                        ("--jobs", a.jobs, 1), ("--threads", a.threads, 1)):
        if v < lo:
            p.error(f"{flag} must be at least {lo} (got {v:g})")
    out = Path(a.out)
    work = out / "work"                    # the runs: checkpoints, logs; not for git
    work.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("*\n")
    cal_path, rows_path = out / "calibration.json", out / "study.csv"
    cal = json.loads(cal_path.read_text()) if cal_path.exists() else {}
    if not a.plot_only:
        from benchmarks import machine
        from common.judge import evaluate
        cal.setdefault("machine", machine.summary(machine.describe()))
        for size, width in a.settings:
            if name(size, width) not in cal:
                print(f"calibrating {name(size, width)} (alone, all cores) ...", flush=True)
                cal[name(size, width)] = calibrate(size, width, work, a.data_dir)
                cal_path.write_text(json.dumps(cal, indent=1))
                c = cal[name(size, width)]
                print(f"  {c['s_per_step']:.3f} s/step, {c['t0']:.1f} s to start", flush=True)
        judge = evaluate.load_judge("mnist", a.data_dir)
        import threading
        lock = threading.Lock()
        jobs = [(size, width, seed) for size, width in a.settings for seed in a.seeds]   # a setting's seeds together
        with ThreadPoolExecutor(a.jobs) as ex:
            futures = [ex.submit(one_run, size, width, seed, schedule(cal[name(size, width)], a.budget, a.evals),
                                 cal[name(size, width)], work, a.data_dir, a.threads, judge, a.samples,
                                 rows_path, lock) for size, width, seed in jobs]
            for f in futures:
                f.result()
    rows = done_rows(rows_path)
    if not rows:
        sys.exit(f"{rows_path}: no rows yet; run the study first (without --plot-only)")
    plot(rows, a.budget, out / "time_to_quality.png")
    for key in sorted({r["setting"] for r in rows}):           # what each setting draws at the end
        seed = min(int(r["seed"]) for r in rows if r["setting"] == key)
        grids = sorted((work / f"{key}-seed{seed}" / "samples").glob("epoch_*.png"))
        if grids:
            shutil.copyfile(grids[-1], out / f"grid-{key}-seed{seed}.png")
    summary = summarize(rows, cal, a.budget)
    (out / "summary.md").write_text(summary + "\n")
    print(summary)
    print(f"wrote {out / 'study.csv'}, {out / 'time_to_quality.png'}, {out / 'summary.md'}")


if __name__ == "__main__":
    try:
        main()
    except StudyError as e:
        sys.exit(f"error: {e}")
