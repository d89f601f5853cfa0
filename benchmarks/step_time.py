"""Seconds per training step of each implementation on the same config.

    python -m benchmarks.step_time                          # all frameworks, 32 and 64 px
    python -m benchmarks.step_time --frameworks pytorch jax --sizes 64 --steps 30

Each framework runs in its own subprocess (so JAX never shares a process with torch),
times `--steps` full GAN steps (D update + G update) on random batches after `--warmup`
steps, and reports the median and the first (compiling) step. Runs alternate between
frameworks `--repeats` times so a busy machine hurts all of them alike.
"""
import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys

FRAMEWORKS = ("pytorch", "jax", "keras", "keras-xla")


def child(fw: str, size: int, width: int, batch: int, steps: int, warmup: int) -> dict:
    from common.config import Config
    cfg = Config(image_size=size, channels=1, nz=100, ngf=width, ndf=width, batch_size=batch)
    mod = importlib.import_module(f"benchmarks.bench_{fw.split('-')[0]}")
    kwargs = {"xla": fw.endswith("-xla")} if fw.startswith("keras") else {}
    times = mod.time_steps(cfg, steps + warmup, **kwargs)   # seconds of each step, in order
    return {"first": times[0], "median": statistics.median(times[warmup:]),
            "min": min(times[warmup:])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    p.add_argument("--width", type=int, default=None, help="ngf = ndf (default: = image size)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        fw, size, width = a.child[0], int(a.child[1]), int(a.child[2])
        print(json.dumps(child(fw, size, width, a.batch_size, a.steps, a.warmup)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"batch {a.batch_size}, {a.steps} timed steps after {a.warmup} warm-up")
    results = {}
    for _ in range(a.repeats):
        for size in a.sizes:
            for fw in a.frameworks:
                width = a.width or size
                out = subprocess.run([sys.executable, "-m", "benchmarks.step_time", "--child", fw, str(size),
                                      str(width), "x", "--batch-size", str(a.batch_size), "--steps",
                                      str(a.steps), "--warmup", str(a.warmup)],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{fw} {size}px failed:\n{out.stderr[-2000:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault((size, width, fw), []).append(r)
    print(f"\n{'size':>5} {'width':>6} {'framework':<10} {'median s/step':>14} {'min':>8} {'first step':>11} {'vs pytorch':>11}")
    for (size, width, fw), rs in sorted(results.items(), key=lambda kv: (kv[0][0], FRAMEWORKS.index(kv[0][2]))):
        med = statistics.median(r["median"] for r in rs)
        base = results.get((size, width, "pytorch"))
        ratio = med / statistics.median(r["median"] for r in base) if base else float("nan")
        print(f"{size:>5} {width:>6} {fw:<10} {med:>14.4f} {min(r['min'] for r in rs):>8.4f} "
              f"{statistics.median(r['first'] for r in rs):>11.3f} {ratio:>10.2f}x")


if __name__ == "__main__":
    main()
