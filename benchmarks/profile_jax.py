"""Where the time of JAX's training step goes, op by op, on the CPU.

    python -m benchmarks.profile_jax                        # 32 px, widths 32, batch 128
    python -m benchmarks.profile_jax --size 64 --width 64 --top 25
    python -m benchmarks.profile_jax --arch paper --size 32 --width 8

XLA compiles jax_impl's train_step into one program of a few hundred ops: convolutions and
matrix products (most handed to a kernel library, YNNPACK or Eigen; their names start
`ynn_fusion`, `convolution`, `dot`) and fused elementwise loops (BatchNorm, activations,
Adam, copies and transposes: `..._fusion`). This runs the step under jax.profiler, reads
how long each op took from the trace, and reads what each op computes from the compiled
program (XLA's HLO text, dumped to a temporary directory): for a convolution or matrix
product its floating-point operations, so each line says how fast that op ran (GFLOP/s).

How the FLOPs are counted: 2 per multiply-add; a convolution's taps over its zero padding
count (as im2col does them, and as benchmarks.flops counts a forward convolution), the zeros a
convolution with input dilation (`lhs_dilate`: a transposed convolution, or the input
gradient of a strided one) inserts between input pixels do not. The check at the end: the
compiled program's convolutions and matrix products against benchmarks.flops' count from the
spec for one step. For the tutorial network they agree to a few per cent (the padding of
the transposed convolutions' borders); more means XLA does work the algorithm does not
need, such as the padding taps of a stride-1 convolution's input gradient (CS231n's D) or,
before jax_impl computed it as a matrix product, the tutorial's first layer of G slid
over zero padding (16 times its multiply-adds).

Times are one machine's (printed first, as benchmarks.step_time does); ops may overlap on
a machine's threads, so their sum can exceed the step's wall time. Issue 14 asked for JAX
within 1.2x of the fastest framework; this is the measurement behind docs/speed.md's account
of why it is not.
"""
import argparse
import collections
import glob
import math
import os
import re
import statistics
import tempfile
import time

def dims(text: str) -> list[int]:
    return [int(x) for x in text.split(",")] if text else []


def parse_hlo(text: str) -> dict[str, dict]:
    """{instruction name: {"flops": ..., "what": ..., "fused": ...}} for every instruction
    of an HLO module's text: flops for a convolution or dot (or a fusion whose computation
    holds one), 0 for the rest; what: a short description; fused: whether it sits inside a
    fusion's computation (so its work is also its fusion's)."""
    shapes, ops, calls, bodies = {}, {}, {}, collections.defaultdict(list)
    comp = None
    for line in text.splitlines():
        head = re.match(r"^(?:ENTRY )?%([\w.\-]+) \((.*)\) -> .*\{$", line)
        if head:
            comp = head.group(1)
            for name, _, shape in re.findall(r"([\w.\-]+): (\w+)\[([\d,]*)\]", head.group(2)):
                shapes[name] = dims(shape)
            continue
        # %name = f32[128,8,8,64]{3,2,1,0} opcode(operands), attributes; a tuple-shaped
        # result (a multi-output fusion, a while loop) gets no shape, which no count needs
        m = re.match(r"^\s*(?:ROOT )?%([\w.\-]+) = (?:\w+\[([\d,]*)\]\S*|(\(.*?\))) ([\w\-]+)\((.*)$", line)
        if not m:
            continue
        name, shape, _, opcode, rest = m.groups()
        shapes[name] = dims(shape) if shape is not None else []
        ops[name] = (opcode, rest)
        bodies[comp].append(name)
        c = re.search(r"calls=%([\w.\-]+)", rest)
        if c:
            calls[name] = c.group(1)

    def flops_of(name):
        opcode, rest = ops[name]
        operands = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
        out = math.prod(shapes[name])
        if opcode == "convolution":
            labels = re.search(r"dim_labels=\w+_(\w+)->", rest).group(1)
            kernel = shapes[operands[1]]
            window = re.search(r"window=\{([^}]*)\}", rest).group(1)
            size = math.prod(dims(re.search(r"size=([\dx]+)", window).group(1).replace("x", ",")))
            dil = re.search(r"lhs_dilate=([\dx]+)", window)
            zeros = math.prod(dims(dil.group(1).replace("x", ","))) if dil else 1
            macs = out * size * kernel[labels.index("i")] // zeros
            return 2 * macs, f"conv {window} in {shapes[operands[0]]} kernel {kernel}"
        if opcode == "dot":
            lhs = shapes[operands[0]]
            contract = dims(re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest).group(1))
            k = math.prod(lhs[i] for i in contract)
            return 2 * out * k, f"dot {lhs} x {shapes[operands[1]]} -> {shapes[name]}"
        return 0, ""

    fused = {n for c in calls.values() for n in bodies[c]}
    result = {}
    for name, (opcode, rest) in ops.items():
        flops, what = flops_of(name)
        if name in calls:                   # a fusion: what its computation computes
            inner = [flops_of(n) for n in bodies[calls[name]]]
            flops = sum(f for f, _ in inner)
            what = "; ".join(w for _, w in inner if w) or opcode
        result[name] = {"flops": flops, "what": what or opcode, "fused": name in fused}
    return result


def main(argv=None):
    from benchmarks import machine
    from common.config import ARCH_DEFAULTS, ARCHS, ArgumentParser, Config, UserError
    p = ArgumentParser(prog="python -m benchmarks.profile_jax", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default="dcgan")
    p.add_argument("--size", type=int, default=32, help="image size (default 32)")
    p.add_argument("--width", type=int, default=32, help="ngf = ndf (default 32)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="steps profiled (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="steps before them, the first compiles")
    p.add_argument("--top", type=int, default=20, help="how many ops to list (default 20)")
    a = p.parse_args(argv)
    try:
        for flag in ("size", "width", "batch_size", "steps", "warmup", "top"):
            if getattr(a, flag) < 1:
                raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(a, flag)}")
        own = {k: v for k, v in ARCH_DEFAULTS[a.arch].items() if k in ("nz", "lr", "z_dist")}
        cfg = Config(**{"nz": 100, **own}, arch=a.arch, image_size=a.size, channels=1, ngf=a.width,
                     ndf=a.width, batch_size=a.batch_size)
        from common.spec import discriminator_spec, generator_spec
        generator_spec(cfg), discriminator_spec(cfg)          # an impossible size: one line
    except (UserError, ValueError) as e:
        p.exit(2, f"{p.prog}: error: {e}\n")

    with tempfile.TemporaryDirectory(prefix="profile_jax-") as tmp:
        # XLA reads its flags once, when JAX first starts its backend: set them before that
        os.environ["JAX_PLATFORMS"] = "cpu"           # what is read here is XLA:CPU's program
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), f"--xla_dump_to={tmp}/hlo",
                                            "--xla_dump_hlo_as_text", "--xla_dump_hlo_module_re=train_step",
                                            "--xla_cpu_enable_xprof_traceme=true"]).strip()
        import jax
        from benchmarks.bench_jax import prepared_step
        from benchmarks.flops import step_flops
        print("\n".join(machine.lines()))
        print(f"  {machine.about('jax')}")
        print(f"network: {a.arch} {a.size}x{a.size}, widths {a.width}, batch {a.batch_size}, float32; "
              f"{a.steps} steps profiled after {a.warmup}", flush=True)
        step = prepared_step(cfg)
        for _ in range(a.warmup):
            step()
        walls = []
        with jax.profiler.trace(f"{tmp}/trace"):
            for _ in range(a.steps):
                t0 = time.perf_counter()
                step()
                walls.append(time.perf_counter() - t0)
        hlo = sorted(glob.glob(f"{tmp}/hlo/*train_step*.cpu_after_optimizations.txt"))
        traces = glob.glob(f"{tmp}/trace/**/*.xplane.pb", recursive=True)
        if not hlo or not traces:
            p.exit(2, f"{p.prog}: error: XLA wrote no CPU program or no trace (backend "
                      f"{jax.default_backend()}); this profiler reads XLA:CPU's\n")
        ops = parse_hlo(open(hlo[-1]).read())
        spent = collections.Counter()
        for plane in jax.profiler.ProfileData.from_file(traces[0]).planes:
            for line in plane.lines:
                for ev in line.events:
                    if ev.name in ops:
                        spent[ev.name] += ev.duration_ns / 1e9 / a.steps
    wall = statistics.median(walls)
    total = sum(spent.values())
    print(f"median step {wall:.4f} s (wall); the ops inside it took {total:.4f} s together "
          f"({len(spent)} ops; ops on different threads overlap)\n")
    print(f"{'ms/step':>8} {'share':>6} {'GFLOP':>7} {'GFLOP/s':>8}  op: what it computes")
    for name, s in spent.most_common(a.top):
        f = ops[name]["flops"]
        rate = f"{f / s / 1e9:8.1f}" if f else f"{'':>8}"
        print(f"{s * 1e3:8.2f} {s / total:6.1%} {f / 1e9:7.3f} {rate}  {name}: {ops[name]['what'][:110]}")
    heavy = {n: s for n, s in spent.items() if ops[n]["flops"]}
    light = total - sum(heavy.values())
    flops = sum(ops[n]["flops"] for n in heavy)
    print(f"\nconvolutions and matrix products: {sum(heavy.values()) * 1e3:.1f} ms/step "
          f"({sum(heavy.values()) / total:.0%}), {flops / 1e9:.3f} GFLOP, "
          f"{flops / sum(heavy.values()) / 1e9:.1f} GFLOP/s")
    print(f"everything else (elementwise, reductions, copies, transposes): {light * 1e3:.1f} ms/step ({light / total:.0%})")
    spec = step_flops(cfg)["per_step"]
    compiled = sum(o["flops"] for o in ops.values() if not o["fused"])
    print(f"check: the compiled step's convolutions and matrix products do {compiled / 1e9:.3f} GFLOP; "
          f"benchmarks.flops counts {spec / 1e9:.3f} from the spec ({compiled / spec:.3f}x)")


if __name__ == "__main__":
    main()
