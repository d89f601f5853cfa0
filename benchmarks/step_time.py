"""Seconds per training step of each implementation on the same config.

    python -m benchmarks.step_time                          # all frameworks, 32 and 64 px
    python -m benchmarks.step_time --frameworks pytorch jax --sizes 64 --steps 30
    python -m benchmarks.step_time --arch paper --sizes 32  # the DCGAN paper's network
    python -m benchmarks.step_time --arch cs231n            # 28 px, its own widths and nz

Each framework runs in its own subprocess (so JAX never shares a process with torch),
times `--steps` full GAN steps (D update + G update) on random batches after `--warmup`
steps, and reports the median and the first (compiling) step. Runs alternate between
frameworks `--repeats` times so a busy machine hurts all of them alike. `--arch` picks the
network (common/spec.py); its own defaults (ARCH_DEFAULTS: nz, z's distribution, lr, and
for cs231n the widths and its only size, 28) apply where no flag is given.
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


def child(fw: str, arch: str, size: int, ngf: int, ndf: int, batch: int, steps: int, warmup: int) -> dict:
    from common.config import ARCH_DEFAULTS, Config
    own = {k: v for k, v in ARCH_DEFAULTS[arch].items() if k in ("nz", "lr", "z_dist")}
    cfg = Config(**{"nz": 100, **own}, arch=arch, image_size=size, channels=1, ngf=ngf, ndf=ndf,
                 batch_size=batch)
    mod = importlib.import_module(f"benchmarks.bench_{fw.split('-')[0]}")
    kwargs = {"xla": fw.endswith("-xla")} if fw.startswith("keras") else {}
    times = mod.time_steps(cfg, steps + warmup, **kwargs)   # seconds of each step, in order
    return {"first": times[0], "median": statistics.median(times[warmup:]),
            "min": min(times[warmup:])}


def main(argv=None):
    from common.config import ARCH_DEFAULTS, ARCHS, Config, UserError
    from common.spec import generator_spec
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    p.add_argument("--arch", choices=ARCHS, default="dcgan", help="the network (default: dcgan)")
    p.add_argument("--sizes", nargs="+", type=int, default=None,
                   help="image sizes (default: 32 64; for cs231n: 28, the only one it makes)")
    p.add_argument("--width", type=int, default=None,
                   help="ngf = ndf (default: = image size; for cs231n: its own, ngf 64, ndf 32)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)     # fw size ngf ndf
    a = p.parse_args(argv)
    if a.child:
        fw, size, ngf, ndf = a.child[0], *map(int, a.child[1:])
        print(json.dumps(child(fw, a.arch, size, ngf, ndf, a.batch_size, a.steps, a.warmup)))
        return
    own = ARCH_DEFAULTS[a.arch]
    sizes = a.sizes or ([own["image_size"]] if "image_size" in own else [32, 64])
    for size in sizes:                            # a size the network cannot make: one line
        try:
            generator_spec(Config(arch=a.arch, image_size=size, channels=1, nz=100, ngf=8, ndf=8))
        except UserError as e:
            p.error(f"--sizes {size}: {e}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"--arch {a.arch}, batch {a.batch_size}, {a.steps} timed steps after {a.warmup} warm-up")
    results = {}
    for _ in range(a.repeats):
        for size in sizes:
            for fw in a.frameworks:
                ngf, ndf = (a.width, a.width) if a.width else (own.get("ngf", size), own.get("ndf", size))
                width = f"{ngf}" if ngf == ndf else f"{ngf}/{ndf}"
                out = subprocess.run([sys.executable, "-m", "benchmarks.step_time", "--child", fw, str(size),
                                      str(ngf), str(ndf), "--arch", a.arch, "--batch-size", str(a.batch_size),
                                      "--steps", str(a.steps), "--warmup", str(a.warmup)],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{fw} {size}px failed:\n{out.stderr[-2000:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault((size, width, fw), []).append(r)
    print(f"\n{'size':>5} {'ngf/ndf':>7} {'framework':<10} {'median s/step':>14} {'min':>8} {'first step':>11} {'vs pytorch':>11}")
    for (size, width, fw), rs in sorted(results.items(), key=lambda kv: (kv[0][0], FRAMEWORKS.index(kv[0][2]))):
        med = statistics.median(r["median"] for r in rs)
        base = results.get((size, width, "pytorch"))
        ratio = med / statistics.median(r["median"] for r in base) if base else float("nan")
        print(f"{size:>5} {width:>7} {fw:<10} {med:>14.4f} {min(r['min'] for r in rs):>8.4f} "
              f"{statistics.median(r['first'] for r in rs):>11.3f} {ratio:>10.2f}x")


if __name__ == "__main__":
    main()
