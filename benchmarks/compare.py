"""Train the three implementations on identical settings and write a side-by-side report.

    python -m benchmarks.compare                      # the bare command's CPU config, 3 frameworks
    python -m benchmarks.compare --image-size 64 --ngf 64 --ndf 64 --max-steps 100
    python -m benchmarks.compare --arch cs231n --max-steps 500    # the CS231n network's defaults
    python -m benchmarks.compare --frameworks pytorch jax --dataset synthetic --image-size 16 \\
        --ngf 8 --ndf 8 --max-steps 20 --out /tmp/cmp

Framework-free: each framework runs in its own processes, one after another, with the same
dataset, config, seed and number of steps, from the same initial weights:

    python -m <fw>_impl.train --out RUNS/<fw> <the same flags> --init-weights RUNS/init_weights.npz
                                                                       (timed, peak memory)
    python -m <fw>_impl.sample --weights RUNS/<fw>/weights.npz --noise RUNS/noise.npy \\
        --out RUNS/<fw>/samples.npy                                    (the same z for all)

then the offline judge (common.judge.evaluate) scores each framework's samples, benchmarks.flops
counts the FLOPs of a step from the spec, and a float32 matrix multiply measures the
machine's peak. The runs' metrics, step by step, show how long the three stay the same run
(the drift section). OUT gets README.md (the tables and pictures), report.json (every
number), losses.png, d_outputs.png, drift.png, samples.png, class_histogram.png, and each
run's metrics.csv and config.json. RUNS (default runs/compare-<dataset>-<size>px-<time>,
with -<arch> before the size for paper and cs231n) keeps the run directories, the initial
weights and the shared z; given again with --runs-dir, finished runs of the same config are
reused and only the report is made anew. A framework that is missing or fails gets a row
saying so.
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import flops
from common import data, runfiles, weights
from common.config import (ARCH_DEFAULTS, ARCHS, DATASETS, DEVICES, PROFILES, Z_DISTS, Config, profile_defaults,
                     UserError, _float_in, _int_in, run_main)
from common.judge import evaluate
from common.spec import discriminator_spec, generator_spec

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("pytorch", "jax", "keras")
COLORS = {"pytorch": "#ee4c2c", "jax": "#5e97f6", "keras": "#2ca02c"}
WARMUP = 5          # steps that count as compilation / warm-up, not in the median
FINAL = 50          # "final" losses and D outputs: the mean over the last FINAL steps
# The flags every train command gets, in this order; the values come from the arguments
# (with the architecture's defaults, then the bare CPU command's, where none was given).
TRAIN_FLAGS = ("dataset", "data_dir", "arch", "image_size", "ngf", "ndf", "nz", "z_dist",
               "batch_size", "lr", "max_steps", "seed", "device")
DRIFT_STEPS = (1, 2, 5)            # the drift table's steps: 1, 2, 5, 10, 20, 50, 100, ...
DRIFT_LEVELS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


# ----------------------------------------------------------------------------------------
# Running the children.

@dataclass
class Child:
    returncode: int
    start: float            # time.time() just before the process was started
    wall: float             # seconds until it exited
    max_rss: int            # peak resident memory in bytes (of it and the children it waited for)
    log: Path

    def tail(self, n: int = 1) -> str:
        lines = [l.strip() for l in self.log.read_text(errors="replace").replace("\r", "\n").splitlines()]
        return " | ".join([l for l in lines if l][-n:])


def run_child(module: str, args: list[str], log: Path, echo: bool = True) -> Child:
    """python -m module args, its output teed to log (and to our stdout when echo); waited
    for with wait4 so its own peak memory is known, whatever ran before it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    start = time.time()
    p = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env)
    try:
        with open(log, "wb") as f:
            for chunk in iter(lambda: p.stdout.read1(1 << 14), b""):
                f.write(chunk)
                if echo:
                    sys.stdout.flush()
                    if hasattr(sys.stdout, "buffer"):
                        sys.stdout.buffer.write(chunk)
                    else:
                        sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
    except KeyboardInterrupt:       # the child got the Ctrl-C too: let it save and exit
        p.wait()
        raise
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    kib = 1 if sys.platform == "darwin" else 1024      # ru_maxrss: bytes on macOS, KiB on Linux
    return Child(p.returncode, start, time.time() - start, usage.ru_maxrss * kib, log)


# ----------------------------------------------------------------------------------------
# What one framework's run gives.

@dataclass
class Result:
    framework: str
    status: str = "ok"          # ok | not available | train failed | sample failed
    message: str = ""
    device: str = ""
    reused: bool = False
    train: dict = field(default_factory=dict)      # wall, max_rss, first_sample
    steps: int = 0
    median_s: float | None = None
    first_step_s: float | None = None
    warmup_extra_s: float | None = None
    images_per_s: float | None = None
    final: dict = field(default_factory=dict)      # d_loss, g_loss, d_real, d_fake
    scores: dict | None = None
    lines: dict = field(default_factory=dict)      # file -> (total, code)
    gflops: float | None = None
    peak_fraction: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def step_times(seconds: np.ndarray) -> dict:
    """The first WARMUP steps (fewer in short runs, at least one step left) are compilation
    and warm-up; the median of the rest is the step time."""
    n = len(seconds)
    w = min(WARMUP, n - 1) if n > 1 else 0
    median = statistics.median(seconds[w:].tolist())
    return {"median_s": median, "first_step_s": float(seconds[0]), "warmup_steps": w,
            "warmup_extra_s": float(seconds[:w].sum() - w * median)}


def count_lines(path: Path) -> tuple[int, int] | None:
    """(all lines, code lines): code lines hold a token that is not a comment or part of a
    docstring (the string that opens a module, class or function)."""
    if not path.is_file():
        return None
    src = path.read_text()
    docs = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docs.update(range(first.lineno, first.end_lineno + 1))
    code = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            code.update(l for l in range(tok.start[0], tok.end[0] + 1) if l not in docs)
    return len(src.splitlines()), len(code)


def same_config(run_dir: Path, a: argparse.Namespace, init_path: Path) -> bool:
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (saved.get("init_weights") == str(init_path)
            and all(saved.get(k) == getattr(a, k) for k in TRAIN_FLAGS if k not in ("device", "data_dir")))


def run_framework(fw: str, a: argparse.Namespace, runs: Path, noise_path: Path, init_path: Path,
                  echo: bool) -> Result:
    r = Result(fw)
    r.lines = {f: count_lines(ROOT / f"{fw}_impl" / f) for f in ("model.py", "step.py", "train.py")}
    every = [count_lines(p) for p in sorted((ROOT / f"{fw}_impl").glob("*.py"))]
    r.lines["all .py"] = tuple(map(sum, zip(*[c for c in every if c]))) if any(every) else None
    missing = [f"{fw}_impl/{f}.py" for f in ("train", "sample")
               if not (ROOT / f"{fw}_impl" / f"{f}.py").is_file()]
    if missing:
        r.status, r.message = "not available", f"{' and '.join(missing)} not found"
        print(f"\n== {fw}: not available ({r.message})")
        return r
    run_dir, timing = runs / fw, runs / f"{fw}.train.json"
    if (run_dir / "weights.npz").is_file() and timing.is_file() and same_config(run_dir, a, init_path):
        r.reused, r.train = True, json.loads(timing.read_text())
        print(f"\n== {fw}: reusing the finished run in {run_dir} (its timings are from then)")
    else:
        flags = [x for k in TRAIN_FLAGS for x in (f"--{k.replace('_', '-')}", str(getattr(a, k)))]
        flags += ["--init-weights", str(init_path)]
        print(f"\n== {fw}: python -m {fw}_impl.train --out {run_dir} {' '.join(flags)}")
        c = run_child(f"{fw}_impl.train", ["--out", str(run_dir), *flags], runs / f"{fw}.train.log", echo)
        if c.returncode != 0:
            r.status, r.message = "train failed", f"exit {c.returncode}: {c.tail(1)} (log: {c.log})"
            return r
        first = run_dir / "samples" / "epoch_001.png"
        said = c.log.read_text(errors="replace").splitlines()
        r.train = {"wall_s": c.wall, "max_rss_bytes": c.max_rss,
                   "first_sample_s": first.stat().st_mtime - c.start if first.is_file() else None,
                   "device": next((l.split(":", 1)[1].strip() for l in said if l.startswith("device:")), "")}
        timing.write_text(json.dumps(r.train, indent=2) + "\n")
    r.device = r.train.get("device", "")
    m = runfiles.read_metrics(run_dir / "metrics.csv")
    r.steps = len(m["step"])
    t = step_times(m["seconds"])
    r.median_s, r.first_step_s, r.warmup_extra_s = t["median_s"], t["first_step_s"], t["warmup_extra_s"]
    r.images_per_s = a.batch_size / r.median_s if r.median_s > 0 else None
    r.final = {k: float(m[k][-FINAL:].mean()) for k in ("d_loss", "g_loss", "d_real", "d_fake")}

    samples = run_dir / "samples.npy"
    print(f"== {fw}: sampling {a.n_samples:,} images from the shared noise")
    c = run_child(f"{fw}_impl.sample", ["--weights", str(run_dir / "weights.npz"), "--noise", str(noise_path),
                                        "--out", str(samples), "--device", a.device],
                  runs / f"{fw}.sample.log", echo)
    if c.returncode != 0:
        r.status, r.message = "sample failed", f"exit {c.returncode}: {c.tail(1)} (log: {c.log})"
    return r


# ----------------------------------------------------------------------------------------
# Drift: the runs start from one weights file and see the same batches and z at every step,
# so they are the same run three times, until float32 rounding, which each framework does
# in its own order, has grown into differences that can be seen.

def level_text(x: float) -> str:
    return f"{x:.0e}".replace("e-0", "e-")          # 1e-5, not 1e-05


def drift_steps(n: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to n, and n itself."""
    steps, scale = [], 1
    while scale <= n:
        steps += [s * scale for s in DRIFT_STEPS if s * scale <= n]
        scale *= 10
    return steps + ([n] if steps and steps[-1] != n else [])


def drift(results: list[Result], runs: Path) -> tuple[dict | None, dict]:
    """Step by step, the largest difference between any two frameworks' value of each metric
    (max - min over the frameworks), over the steps every run has. Returns the summary for
    the report (None with fewer than two runs) and the per-step arrays for the plot."""
    done = [r.framework for r in results if r.status in ("ok", "sample failed")]
    if len(done) < 2:
        return None, {}
    ms = {fw: runfiles.read_metrics(runs / fw / "metrics.csv") for fw in done}
    common = sorted(set.intersection(*(set(m["step"].astype(int).tolist()) for m in ms.values())))
    if not common:
        return None, {}
    rows = {fw: np.searchsorted(m["step"], common) for fw, m in ms.items()}
    per_step = {k: np.ptp(np.stack([ms[fw][k][rows[fw]] for fw in done]), axis=0)
                for k in runfiles.METRICS}
    steps = np.array(common)
    index = {s: i for i, s in enumerate(common)}
    at = [s for s in drift_steps(int(steps[-1])) if s in index]
    worst = np.max(np.stack(list(per_step.values())), axis=0)     # over the metrics
    first_over = {}
    for level in DRIFT_LEVELS:
        over = np.flatnonzero(worst > level)
        first_over[level_text(level)] = int(steps[over[0]]) if len(over) else None
    summary = {"frameworks": done, "steps": at,
               "max_abs_diff": {k: [float(v[index[s]]) for s in at] for k, v in per_step.items()},
               "first_step_over": first_over, "steps_compared": len(common)}
    return summary, {"step": steps, **per_step}


def plot_drift(per_step: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, ax = plt.subplots(figsize=(9, 4.5))
    floor = 5e-7                  # metrics.csv keeps 6 decimals: below 1e-6 is its rounding
    labels = {"d_loss": "d_loss", "g_loss": "g_loss", "d_real": "D(x)",
              "d_fake": "D(G(z)) before D update", "d_fake_after": "D(G(z)) after D update"}
    for k in runfiles.METRICS:
        ax.plot(per_step["step"], np.maximum(per_step[k], floor), lw=1, label=labels[k])
    ax.axhline(1e-5, color="grey", lw=0.5, ls="--")
    ax.text(per_step["step"][0], 1.2e-5, "1e-5, the one-step tolerance of the cross-framework tests",
            fontsize="small", color="grey")
    ax.axhspan(floor / 2, 1e-6, color="grey", alpha=0.1, lw=0)
    ax.set(xscale="log", yscale="log", xlabel="step", ylim=(floor / 2, None),
           ylabel="largest difference between two frameworks",
           title="How far the runs drift apart (from the same weights, batches and z)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "drift.png", dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------
# The report.

def machine() -> str:
    from benchmarks import machine as described    # the CPU, its cores and features, as benchmarks.step_time prints
    mem = ""
    try:
        mem = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{described.summary()}{mem}, {platform.system()} {platform.machine()}"


def fmt(v, spec: str = ".3f", none: str = "—") -> str:
    return none if v is None else format(v, spec)


def flop_text(x: float) -> str:
    """12.2 GFLOP, 61.4 MFLOP, ...: three significant digits."""
    for unit, scale in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} FLOP"


def plot_curves(results: list[Result], runs: Path, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    for fname, keys, titles, ylabel in (
            ("losses.png", ("d_loss", "g_loss"), ("D loss", "G loss"), "loss"),
            ("d_outputs.png", ("d_real", "d_fake", "d_fake_after"),
             ("D(x)", "D(G(z)) before the D update", "D(G(z)) after the D update"), "mean D output")):
        fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
        for r in results:
            if r.status not in ("ok", "sample failed"):
                continue
            m = runfiles.read_metrics(runs / r.framework / "metrics.csv")
            window = max(1, len(m["step"]) // 50)
            for ax, k in zip(axes[0], keys):
                c = COLORS.get(r.framework)
                ax.plot(m["step"], m[k], lw=0.5, alpha=0.25, color=c)
                ax.plot(m["step"], runfiles.smooth(m[k], window), lw=1.5, color=c, label=r.framework)
        for ax, title in zip(axes[0], titles):
            ax.set(title=title, xlabel="step", ylabel=ylabel)
            if fname == "d_outputs.png":
                ax.set_ylim(0, 1)
                ax.axhline(0.5, color="grey", lw=0.5, ls="--")
            ax.legend()
        fig.suptitle("each step faint; moving average over 1/50 of the run")
        fig.tight_layout()
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)


def plot_samples(results: list[Result], runs: Path, out: Path) -> None:
    """The first 64 samples of each framework from the same z, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    done = [r for r in results if r.ok]
    if not done:
        return
    grids = [runfiles.grid(np.load(runs / r.framework / "samples.npy")[:64]) for r in done]
    inches = max(4.2, grids[0].shape[1] / 100 * 1.1)      # at dpi 100, no pixel is lost
    # constrained layout leaves room for the suptitle (tight_layout would let it overlap)
    fig, axes = plt.subplots(1, len(done), figsize=(max(5.0, inches * len(done)), inches + 0.7),
                             squeeze=False, layout="constrained")
    for ax, r, g in zip(axes[0], done, grids):
        ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{r.framework} ({r.steps:,} steps)")
        ax.axis("off")
    fig.suptitle("the same 64 z through each generator")
    fig.savefig(out / "samples.png", dpi=100)
    plt.close(fig)


def plot_histogram(results: list[Result], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scored = [r for r in results if r.ok and r.scores]
    if not scored:
        return
    classes = scored[0].scores["classes"]
    bars = [("real (held-out)", scored[0].scores["histogram_real"], "grey")] + \
           [(r.framework, r.scores["histogram"], COLORS.get(r.framework)) for r in scored]
    x = np.arange(len(classes))
    w = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(7.5, len(classes) * 0.9), 3.8))
    for i, (name, h, c) in enumerate(bars):
        ax.bar(x + (i - (len(bars) - 1) / 2) * w, np.array(h) * 100, w, label=name, color=c)
    ax.set_xticks(x, classes, rotation=30 if max(map(len, classes)) > 3 else 0)
    ax.set(ylabel="% of images", title="the judge's classes: mode collapse shows here")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "class_histogram.png", dpi=100)
    plt.close(fig)


def drift_section(d: dict | None, a: argparse.Namespace) -> list[str]:
    L = ["## Drift: how long the same run three times stays the same", ""]
    if d is None:
        return L + ["Needs two frameworks that trained; fewer did.", ""]
    names = {"d_loss": "d_loss", "g_loss": "g_loss", "d_real": "D(x)",
             "d_fake": "D(G(z)) before", "d_fake_after": "D(G(z)) after"}
    L += [f"Every run started from the same weights (`init_weights.npz`: the paper's initialisation "
          f"drawn in NumPy from seed {a.seed}, given to each `train` with `--init-weights`) and saw the "
          "same batches and the same z at every step. Each cell is, at that step, the largest difference "
          f"between two frameworks' values ({', '.join(d['frameworks'])}: max minus min). metrics.csv keeps "
          "6 decimals, so below 1e-6 is its rounding.", "",
          "| step | " + " | ".join(names[k] for k in runfiles.METRICS) + " |",
          "|--:|" + "--:|" * len(runfiles.METRICS)]
    cell = lambda x: f"{x:.1e}" if x else "0"
    for i, step in enumerate(d["steps"]):
        L.append(f"| {step:,} | " + " | ".join(cell(d["max_abs_diff"][k][i]) for k in runfiles.METRICS) + " |")
    first = d["first_step_over"]
    L += ["", f"The first step at which some metric differs by more than ... (of the "
          f"{d['steps_compared']:,} steps):", "",
          "| more than | " + " | ".join(first) + " |", "|---|" + "--:|" * len(first),
          "| first step | " + " | ".join(f"{s:,}" if s else "never" for s in first.values()) + " |",
          "", "![drift](drift.png)", ""]
    return L


def markdown(a: argparse.Namespace, results: list[Result], cost: dict, peak: dict, judge_line: str,
             run_config: dict, command: str, drift_summary: dict | None = None) -> str:
    fws = " vs ".join(r.framework for r in results)
    L = [f"# {fws}: {a.arch} on {a.dataset}, {a.image_size}x{a.image_size}, {a.max_steps:,} steps", "",
         f"Made by `{command}` on {time.strftime('%Y-%m-%d')}.",
         f"Machine: {machine()}. The frameworks ran one after another, each alone.", "",
         "Identical for every framework: "
         f"network `--arch {a.arch}`, "
         f"dataset `{a.dataset}` ({run_config.get('data_source') or 'see the runs'}), "
         f"image {a.image_size}x{a.image_size}, ngf {a.ngf}, ndf {a.ndf}, nz {a.nz} (z ~ {a.z_dist}), "
         f"batch {a.batch_size}, Adam lr {a.lr:g} betas ({run_config.get('beta1', '?')}, "
         f"{run_config.get('beta2', '?')}), "
         f"seed {a.seed}, {a.max_steps:,} steps, `--device {a.device}`, the initial weights "
         f"(`--init-weights`, one file for all); the judge's "
         f"{a.n_samples:,} samples come from one shared z.", "",
         "## Speed and cost", "",
         "| framework | device | median s/step | images/s | 1st step (s) | warm-up extra (s) | "
         "train wall (s) | 1st sample after (s) | peak RSS (GiB) | GFLOP/s | % of matmul peak | "
         "model.py lines | step.py lines | train.py lines | all .py lines |",
         "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    notes = []
    lines_of = lambda r, f: "—" if not r.lines.get(f) else f"{r.lines[f][0]} ({r.lines[f][1]})"
    for r in results:
        if r.status in ("ok", "sample failed"):
            t, rss = r.train, r.train.get("max_rss_bytes")
            cells = [r.device or "?", fmt(r.median_s, ".4f"), fmt(r.images_per_s, ",.0f"),
                     fmt(r.first_step_s, ".2f"), fmt(r.warmup_extra_s, ".2f"), fmt(t.get("wall_s"), ",.0f"),
                     fmt(t.get("first_sample_s"), ",.1f"), fmt(rss and rss / 2 ** 30, ".2f"),
                     fmt(r.gflops, ".1f"), fmt(r.peak_fraction and 100 * r.peak_fraction, ".0f")]
        else:
            cells = [f"{r.status} (see below)"] + ["—"] * 9
        cells += [lines_of(r, f) for f in ("model.py", "step.py", "train.py", "all .py")]
        L.append(f"| {r.framework} | " + " | ".join(cells) + " |")
        if r.status != "ok":
            notes.append(f"- **{r.framework}: {r.status}**: {r.message}")
        if r.reused:
            notes.append(f"- {r.framework}: the run was reused from an earlier `benchmarks.compare`; "
                         "its timings are from then.")
    L += ["", "## Training at the end", "",
          f"Means over the last {FINAL} steps (fewer in shorter runs).", "",
          "| framework | d_loss | g_loss | D(x) | D(G(z)) |", "|---|--:|--:|--:|--:|"]
    for r in results:
        if r.final:
            L.append(f"| {r.framework} | {r.final['d_loss']:.3f} | {r.final['g_loss']:.3f} | "
                     f"{r.final['d_real']:.3f} | {r.final['d_fake']:.3f} |")
    L += [""] + drift_section(drift_summary, a) + ["## Sample quality", ""]
    scored = [r for r in results if r.scores]
    if scored:
        s0 = scored[0].scores
        k = len(s0["classes"])
        L += [judge_line + ".", "",
              f"| samples | Frechet distance (lower: better) | {evaluate.INTERVAL:.0%} interval | "
              f"IS-style score (1 to {k}) | mean top-class probability | largest class | classes over 2% |",
              "|---|--:|--:|--:|--:|--:|--:|"]
        rows = [(r.framework, r.scores["fd"], (r.scores["fd_low"], r.scores["fd_high"]), r.scores["score"],
                 r.scores["confidence"], r.scores["histogram"]) for r in scored]
        rows.append((f"real, held-out ({s0['n_real']:,})", s0["fd_real"], (s0["fd_real_low"], s0["fd_real_high"]),
                     s0["score_real"], s0["confidence_real"], s0["histogram_real"]))
        for name, fd, (lo, hi), sc, conf, h in rows:
            top = int(np.argmax(h))
            L.append(f"| {name} | {fd:.2f} | {lo:.2f} to {hi:.2f} | {sc:.2f} | {conf:.3f} | "
                     f"{s0['classes'][top]} ({h[top]:.0%}) | {sum(x > 0.02 for x in h)} of {k} |")
        L += ["", f"Each Frechet distance is to the reference, {s0['n_reference']:,} held-out images (half A); "
              f"its {evaluate.INTERVAL:.0%} interval is the estimate +- 1.645 times the std of a jackknife over "
              f"the samples ({evaluate.GROUPS} groups). The real row is the floor: {s0['n_real']:,} other "
              "held-out images (half B), as many as the samples where half B has them: what a perfect "
              "generator would score."]
        L += ["", "Class histogram (% of images the judge puts in each class):", "",
              "| samples | " + " | ".join(s0["classes"]) + " |", "|---|" + "--:|" * k]
        for name, *_, h in rows:
            L.append(f"| {name} | " + " | ".join(f"{100 * x:.1f}" for x in h) + " |")
    else:
        L.append(f"No scores: {judge_line}.")
    L += ["", "## Cost against the machine's limit", "",
          f"One training step is **{flop_text(cost['per_step'])}** (batch {cost['batch_size']}; G forward "
          f"{flop_text(cost['g_forward_per_image'])} and D forward {flop_text(cost['d_forward_per_image'])} "
          "per image), counted from the spec by `benchmarks/flops.py`: convolutions only, a multiply-add "
          "is 2 FLOPs, G forward once, D forward three times, and the backward passes the algorithm needs "
          "(the D step's weight and input gradients for real and fake, the G step's input gradients "
          "through D and weight and input gradients through G).", "",
          "| part of the step | FLOPs | share |", "|---|--:|--:|"]
    L += [f"| {k} | {flop_text(v)} | {v / cost['per_step']:.0%} |" for k, v in cost["parts"].items()]
    L += ["", f"Measured peak of this machine: **{peak['gflops']:,.1f} GFLOP/s**, the best of "
          f"{peak['repeats']} float32 {peak['n']}x{peak['n']} @ {peak['n']}x{peak['n']} products with numpy "
          "(its BLAS, all cores), measured before the runs. Each framework's GFLOP/s is the step's FLOPs "
          "over its median step time; the last column of the speed table is that as a share of the peak."]
    if any("cuda" in r.device or "gpu" in r.device.lower() for r in results):
        L.append("The runs used a GPU: the peak above is the CPU's, not the GPU's limit.")
    if notes:
        L += ["", "## Notes", ""] + notes
    L += ["", "## Pictures", "", "![the same z through each generator](samples.png)", "",
          "![losses](losses.png)", "", "![D outputs](d_outputs.png)", ""]
    if scored:
        L += ["![class histogram](class_histogram.png)", ""]
    L += ["## What the columns mean", "",
          "- **median s/step**: median of the `seconds` column of the run's `metrics.csv` (one D and one "
          f"G update, host-to-device copy and the metrics' read-back included) after the first {WARMUP} steps. "
          "**images/s**: batch size over it.",
          "- **1st step**: the first step's seconds: tracing and compilation where the framework compiles. "
          f"**warm-up extra**: what the first {WARMUP} steps took beyond {WARMUP} median steps.",
          "- **train wall**: the whole `train` process, start-up, imports, data loading, per-epoch grids and "
          "checkpoints included. **1st sample after**: from the process start to the first epoch's sample "
          "grid on disk. **peak RSS**: the process's peak resident host memory (`wait4`'s ru_maxrss; "
          "GPU memory is not in it).",
          "- **lines**: all lines of the file, and in brackets the lines holding code (not comments, "
          "docstrings or blank lines).",
          "- **Frechet distance**: between the judge's 64 features (the last hidden layer of a small CNN) "
          "of the samples and of half of the held-out images; the real row is images of the other half "
          "against that half, the floor a perfect generator would reach; the interval is the jackknife's "
          "over the samples (the same reference for all, so it adds nothing to a comparison)."
          " **IS-style score**: exp(E KL(p(y|x) || p(y))) over the judge's "
          "class probabilities: high when each image is clearly one class and the classes are balanced. "
          "See `python -m common.judge.evaluate --help`."]
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------------------
# The command.

class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):       # no "(default: None)" after flags without one
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv):
    cpu = PROFILES["cpu"]          # defaults: the bare `train` command's config on a CPU
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__, formatter_class=_Help)
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS),
                   help="which to run, in this order")
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="as for train")
    p.add_argument("--data-dir", default="data", help="as for train; the judge looks there too")
    p.add_argument("--arch", choices=ARCHS, default="dcgan", help="the network, as for train; "
                   "its own defaults apply to the six flags below where they are not given")
    # None: the architecture's default (ARCH_DEFAULTS), else the bare CPU command's
    p.add_argument("--image-size", type=_int_in(8, 1024),
                   help=f"as for train (default: {cpu['image_size']}; cs231n: 28)")
    p.add_argument("--ngf", type=_int_in(1, 4096), help=f"G width (default: {cpu['ngf']}; paper: "
                   f"{profile_defaults('paper', 'cpu')['ngf']}; cs231n: 64)")
    p.add_argument("--ndf", type=_int_in(1, 4096), help=f"D width (default: {cpu['ndf']}; paper: "
                   f"{profile_defaults('paper', 'cpu')['ndf']}; cs231n: 32)")
    p.add_argument("--nz", type=_int_in(1, 4096), help=f"length of z (default: {Config.nz}; cs231n: 96)")
    p.add_argument("--z-dist", choices=Z_DISTS, help=f"distribution of z (default: {Config.z_dist}; "
                   "cs231n: uniform)")
    p.add_argument("--lr", type=_float_in(0, 1, lo_open=True),
                   help=f"Adam's learning rate (default: {Config.lr}; cs231n: 0.001)")
    p.add_argument("--max-steps", type=_int_in(1), help=f"training steps for each (default: {cpu['max_steps']}; "
                   f"paper: {profile_defaults('paper', 'cpu')['max_steps']}; "
                   f"cs231n: {profile_defaults('cs231n', 'cpu')['max_steps']})")
    p.add_argument("--batch-size", type=_int_in(1, 65536), default=128, help="as for train")
    p.add_argument("--seed", type=_int_in(0, 2 ** 31 - 1), default=0,
                   help="training seed; also draws the shared z")
    p.add_argument("--device", choices=DEVICES, default="auto", help="passed to train and sample")
    p.add_argument("--n-samples", type=_int_in(evaluate.MIN_SAMPLES, 100_000), default=1000,
                   help="samples per framework for the judge, from one shared z")
    p.add_argument("--out", help="the report's folder (default: results/compare-<dataset>-<size>px)")
    p.add_argument("--runs-dir", help="the run directories (default: runs/compare-<dataset>-<size>px-<time>); "
                   "finished runs of the same config found there are reused")
    p.add_argument("--overwrite", action="store_true", help="replace a report already in --out")
    p.add_argument("--peak-size", type=_int_in(64, 16384), default=2048, help="n of the n^3 matmul peak")
    p.add_argument("--judge-dir", help="a folder of judge files from `python -m common.judge.train --out` "
                   "(default: the committed ones in common/judge)")
    p.add_argument("--quiet", action="store_true", help="do not echo the children's output")
    a = p.parse_args(argv)
    prof = profile_defaults(a.arch, "cpu")
    bare = {"image_size": prof["image_size"], "ngf": prof["ngf"], "ndf": prof["ndf"], "nz": Config.nz,
            "z_dist": Config.z_dist, "lr": Config.lr, "max_steps": prof["max_steps"]}
    for k, v in bare.items():
        if getattr(a, k) is None:
            setattr(a, k, ARCH_DEFAULTS[a.arch].get(k, v))
    return a


def main(argv=None):
    a = parse_args(argv)
    cfg = Config(dataset=a.dataset, arch=a.arch, image_size=a.image_size, nz=a.nz, ngf=a.ngf,
                 ndf=a.ndf, batch_size=a.batch_size, lr=a.lr, z_dist=a.z_dist)
    cfg.channels = data.dataset_channels(cfg)
    generator_spec(cfg), discriminator_spec(cfg)          # an impossible size fails now
    tag = f"compare-{a.dataset}-{a.image_size}px"
    if a.arch != "dcgan":                                 # dcgan keeps the reports' old names
        tag = f"compare-{a.dataset}-{a.arch}-{a.image_size}px"
    out = Path(a.out or ROOT / "results" / tag)
    if (out / "README.md").exists() and not a.overwrite:
        raise UserError(f"--out {out} already holds a report; pass --overwrite to replace it, "
                        "or choose another --out")
    runs = Path(a.runs_dir or Path("runs") / f"{tag}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m benchmarks.compare", *(argv if argv is not None else sys.argv[1:])])

    print(f"measuring the matmul peak ({a.peak_size}^3, float32, numpy) ...")
    peak = flops.matmul_peak(a.peak_size)
    print(f"peak: {peak['gflops']:,.1f} GFLOP/s")
    cost = flops.step_flops(cfg)
    noise_path = runs / "noise.npy"
    np.save(noise_path, data.draw_z(np.random.default_rng([a.seed, 3]), a.n_samples, a.nz, a.z_dist))
    # One initial weights file for every framework, so that the three runs are the same run.
    # Drawn here in NumPy (common.weights.initial: the paper's distribution, which every
    # model.py draws from too) rather than by one framework's train: no framework is
    # started first or favoured, nothing has to learn to run 0 steps, and the file depends
    # on the seed and the network only, so finished runs can be reused.
    init_path = runs / "init_weights.npz"
    weights.save(init_path, cfg, weights.initial(cfg, a.seed), framework="numpy (common.weights.initial)",
                 step=0, z_dist=a.z_dist)

    results = [run_framework(fw, a, runs, noise_path, init_path, not a.quiet) for fw in a.frameworks]

    judge, judge_line = None, ""
    if any(r.ok for r in results):
        try:
            judge = evaluate.load_judge(a.dataset, a.data_dir, a.judge_dir)
            judge_line = judge.describe()
        except UserError as e:
            judge_line = f"no judge: {e}"
            print(judge_line)
    for r in results:
        if r.median_s:
            r.gflops = cost["per_step"] / r.median_s / 1e9
            r.peak_fraction = r.gflops / peak["gflops"]
        if r.ok and judge is not None:
            try:
                x = np.load(runs / r.framework / "samples.npy")
                s = evaluate.evaluate(judge, x, f"{r.framework} samples")
                r.scores = s.to_dict()
            except UserError as e:
                r.status, r.message = "sample failed", str(e)

    run_config = {}
    for r in results:                     # the small files of each run go with the report
        if r.status in ("ok", "sample failed"):
            (out / r.framework).mkdir(exist_ok=True)
            for f in ("config.json", "metrics.csv"):
                shutil.copy(runs / r.framework / f, out / r.framework / f)
            run_config = json.loads((runs / r.framework / "config.json").read_text())
    drift_summary, per_step = drift(results, runs)
    plot_curves(results, runs, out)
    plot_samples(results, runs, out)
    plot_histogram(results, out)
    (out / "drift.png").unlink(missing_ok=True)           # an earlier report's, with other runs
    if per_step:
        plot_drift(per_step, out)
    report = markdown(a, results, cost, peak, judge_line, run_config, command, drift_summary)
    (out / "README.md").write_text(report)
    (out / "report.json").write_text(json.dumps({
        "command": command, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": {k: getattr(a, k) for k in TRAIN_FLAGS + ("n_samples",)}, "runs": str(runs),
        "init_weights": str(init_path), "flops": cost, "peak": peak, "judge": judge_line,
        "drift": drift_summary, "results": [r.__dict__ for r in results]}, indent=2, default=str) + "\n")
    print("\n" + report)
    print(f"wrote {out / 'README.md'} and its pictures; run directories in {runs}")
    if not any(r.ok for r in results):
        print("no framework finished: see the notes in the report", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
