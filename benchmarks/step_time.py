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

Before the table it prints the machine (benchmarks/machine.py: CPU model, AVX2 / AVX-512 /
AVX512-BF16 / AMX, the cores this process may use) and, as each child reports it, the
version and backend of each framework that ran (oneDNN, threads, XLA's backend): the
ranking of the frameworks depends on the machine, so a figure travels with it.

`--peer PATH` adds a row for pytorch/examples' dcgan/main.py (PATH: that file; it is not
part of this repository) on the same config, at 64 px, the only size its networks make:
its own networks, data loader and update code, run by benchmarks/bench_peer.py, which says
how it is timed and what its step includes (the output says it too).
"""
import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys

FRAMEWORKS = ("pytorch", "jax", "keras", "keras-xla")
PEER = "pytorch/examples dcgan (peer)"        # the --peer row's name in the table
TIMED = ("fp32", "bf16")                      # train's --precision but auto: both are timed to
                                              # see which auto should pick


def child(fw: str, arch: str, size: int, ngf: int, ndf: int, batch: int, steps: int, warmup: int,
          peer: str | None = None, precision: str = "fp32") -> dict:
    from benchmarks import machine
    from common.config import ARCH_DEFAULTS, Config
    own = {k: v for k, v in ARCH_DEFAULTS[arch].items() if k in ("nz", "lr", "z_dist")}
    cfg = Config(**{"nz": 100, **own}, arch=arch, image_size=size, channels=1, ngf=ngf, ndf=ndf,
                 batch_size=batch, precision=precision)
    mod = importlib.import_module(f"benchmarks.bench_{fw.split('-')[0]}")
    extra = {}
    if fw == "peer":
        times, details = mod.time_steps(cfg, steps + warmup, peer)
        extra = {**details, "data": statistics.median(details["data"][warmup:])}
    else:
        kwargs = {"xla": fw.endswith("-xla")} if fw.startswith("keras") else {}
        times = mod.time_steps(cfg, steps + warmup, **kwargs)   # seconds of each step, in order
    return {"first": times[0], "median": statistics.median(times[warmup:]),
            "min": min(times[warmup:]), "about": machine.about(fw), **extra}


def peer_notes(path: str, rs: list[dict], ours: tuple[int, int]) -> list[str]:
    """What the peer row measured, for the reader of the table."""
    r = rs[0]
    same = (r["g_params"], r["d_params"]) == ours
    data = statistics.median(x["data"] for x in rs)
    return [f"{PEER}: {path}, run in its own process with its own command line",
            f"  ({' '.join(r['argv'])}); torchvision's MNIST replaced by its FakeData with 1 channel",
            f"  (no download; main.py's --dataset fake has 3 channels and no channels flag).",
            f"  A step: one iteration of its loop, from its printed line to the next: its data loading",
            f"  (FakeData, its transforms and DataLoader, workers 0; median {data:.4f} s of the step),",
            f"  its D and G updates (D's weight gradients are computed in G's backward too), 5 .item()",
            f"  calls and one print (into memory). Left out: steps after an image save (i % 100 == 0),",
            f"  its checkpoint at the epoch's end, start-up. Its networks: G {r['g_params']:,} and D "
            f"{r['d_params']:,} parameters, " + ("the same as pytorch_impl's." if same else
            f"pytorch_impl's: G {ours[0]:,}, D {ours[1]:,}.")]


def main(argv=None):
    from benchmarks import machine
    from common.config import ARCH_DEFAULTS, ARCHS, ArgumentParser, Config, UserError
    from common.spec import discriminator_spec, generator_spec, totals
    p = ArgumentParser(prog="python -m benchmarks.step_time", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--precision", nargs="+", choices=TIMED, default=["fp32"],
                   help="the step's arithmetic (train's --precision); give both, fp32 bf16, to "
                   "time them side by side in one run (default: fp32)")
    p.add_argument("--peer", metavar="PATH",
                   help="pytorch/examples' dcgan/main.py: time it too, at 64 px (its only size)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)     # fw size ngf ndf
    a = p.parse_args(argv)
    if a.child:
        fw, size, ngf, ndf = a.child[0], *map(int, a.child[1:])
        print(json.dumps(child(fw, a.arch, size, ngf, ndf, a.batch_size, a.steps, a.warmup, a.peer,
                               a.precision[0])))
        return
    if a.peer is not None:
        if not os.path.isfile(a.peer):
            p.error(f"--peer {a.peer}: no such file (give the path of pytorch/examples' dcgan/main.py)")
        if a.arch != "dcgan":
            p.error(f"--peer times pytorch/examples' DCGAN: it goes with --arch dcgan, not {a.arch}")
        a.peer = os.path.abspath(a.peer)
    own = ARCH_DEFAULTS[a.arch]
    sizes = a.sizes or ([own["image_size"]] if "image_size" in own else [32, 64])
    for size in sizes:                            # a size the network cannot make: one line
        try:
            generator_spec(Config(arch=a.arch, image_size=size, channels=1, nz=100, ngf=8, ndf=8))
        except UserError as e:
            p.error(f"--sizes {size}: {e}")
    described = machine.describe()                 # its load before the children add theirs
    print(f"--arch {a.arch}, batch {a.batch_size}, {a.steps} timed steps after {a.warmup} warm-up, "
          f"1 channel, random data, CPU")
    runs = [(size, fw, prec) for size in sizes for prec in a.precision for fw in a.frameworks]
    if a.peer:
        runs += [(size, "peer", "fp32") for size in sizes if size == 64]
    results, about, ours = {}, {}, {}
    for _ in range(a.repeats):
        for size, fw, prec in runs:
            ngf, ndf = (a.width, a.width) if a.width else (own.get("ngf", size), own.get("ndf", size))
            width = f"{ngf}" if ngf == ndf else f"{ngf}/{ndf}"
            out = subprocess.run([sys.executable, "-m", "benchmarks.step_time", "--child", fw, str(size),
                                  str(ngf), str(ndf), "--arch", a.arch, "--batch-size", str(a.batch_size),
                                  "--steps", str(a.steps), "--warmup", str(a.warmup), "--precision", prec]
                                 + (["--peer", a.peer] if fw == "peer" else []),
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{PEER if fw == 'peer' else fw} {size}px {prec} failed:\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            about.setdefault(fw, r["about"])
            results.setdefault((size, width, fw, prec), []).append(r)
            if fw == "peer":
                cfg = Config(arch=a.arch, image_size=size, channels=1, nz=100, ngf=ngf, ndf=ndf)
                ours[size, width] = (totals(generator_spec(cfg))[0], totals(discriminator_spec(cfg))[0])
    # the machine, then each framework as its own process saw it
    print("\n" + "\n".join(machine.lines(described)))
    for fw in [*a.frameworks, "peer"]:
        if fw in about:
            print(f"  {PEER if fw == 'peer' else fw}: {about[fw]}")
    names = {fw: fw for fw in FRAMEWORKS} | {"peer": PEER}
    order = [*FRAMEWORKS, "peer"]
    w = max(len(names[fw]) for (_, _, fw, _) in results) if results else 10
    median = lambda rs: statistics.median(r["median"] for r in rs) if rs else float("nan")
    print(f"\n{'size':>5} {'ngf/ndf':>7} {'framework':<{w}} {'prec':>4} {'median s/step':>14} {'min':>8} "
          f"{'first step':>11} {'vs pytorch':>11} {'vs fp32':>8}")
    for (size, width, fw, prec), rs in sorted(results.items(), key=lambda kv: (kv[0][0], order.index(kv[0][2]),
                                                                              TIMED.index(kv[0][3]))):
        med = median(rs)
        ratio = med / median(results.get((size, width, "pytorch", prec)))   # same precision
        speedup = median(results.get((size, width, fw, "fp32"))) / med        # > 1: faster than fp32
        print(f"{size:>5} {width:>7} {names[fw]:<{w}} {prec:>4} {med:>14.4f} {min(r['min'] for r in rs):>8.4f} "
              f"{statistics.median(r['first'] for r in rs):>11.3f} {ratio:>10.2f}x {speedup:>7.2f}x")
    if a.peer:
        print()
        if 64 not in sizes:
            print(f"{PEER}: not timed: its networks make 64x64 only (five fixed layers), and --sizes "
                  f"{' '.join(map(str, sizes))} has no 64")
        for (size, width, fw, _), rs in results.items():
            if fw == "peer":
                print("\n".join(peer_notes(a.peer, rs, ours[size, width])))


if __name__ == "__main__":
    main()
