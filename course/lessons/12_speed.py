# %% [markdown]
# # Lesson 12: speed
#
# The three implementations run the same step on the same numbers (lesson 10). They do
# not run it the same way:
#
# - **PyTorch** runs *eagerly*: each line of `train_step` calls one kernel (a
#   convolution, a BatchNorm, an addition) right away, from Python, and autograd records
#   what backward will need as it goes.
# - **JAX** (`nnx.jit`) and **Keras** with `jit_compile=True` hand the whole step to
#   **XLA**: the first call traces the Python function into one program, XLA optimises it
#   (fusing elementwise work such as BatchNorm and activations into their neighbours,
#   planning memory) and compiles it; every later call runs that program. The first step
#   pays the compilation.
#
# Which is faster depends on the network, the batch and the machine, so this lesson
# measures and never concludes beyond its own numbers. You will:
# - time the same step in each framework, first step and steady state;
# - count the step's arithmetic (`benchmarks/flops.py`) and set the achieved rate against
#   this machine's matrix-multiply peak;
# - count one layer's FLOPs by hand and fill in a measured table (the exercises).

# %%
import os, sys; sys.path.insert(0, os.path.abspath(next(p for p in (".", "..", "../..") if os.path.isfile(f"{p}/course/start.py"))))
import course.start  # noqa: E402  (the repository root is importable and the working directory)

# %% [markdown]
# ## The machine
#
# A time means nothing without the machine it was measured on. `benchmarks/machine.py`
# describes it without importing any framework: the CPU, the instruction-set features
# the frameworks' CPU kernels dispatch on, the cores, and the load (other programs
# running at the same time slow every measurement below).

# %%
from benchmarks import flops, machine

for line in machine.lines():
    print(line)
peak = flops.matmul_peak()
print(f"\nmatmul peak: {peak['gflops']:.1f} GFLOP/s (NumPy float32 {peak['n']}x{peak['n']} "
      f"matrix product, best of {peak['repeats']})")

# %% [markdown]
# The peak is what this machine's BLAS reaches on the friendliest possible work, one big
# matrix product. A convolution network's step is many smaller products plus memory-bound
# elementwise work, so expect a fraction of it.
#
# ## The step's arithmetic
#
# `benchmarks.flops.step_flops` counts the multiply-adds of one GAN step from the spec (its
# docstring gives the convention: forward passes of G once and D three times, the
# backward passes each update needs). The network is the CPU default: 32x32, one
# channel, widths 32, here at batch 64.

# %%
from common.config import Config
from common import spec

cfg = Config(image_size=32, channels=1, ngf=32, ndf=32, batch_size=64)
count = flops.step_flops(cfg)
print(f"one step: {count['per_step'] / 1e9:.2f} GFLOP at batch {cfg.batch_size}")
for part, f in count["parts"].items():
    print(f"  {part:<28} {f / 1e9:6.2f} GFLOP  ({f / count['per_step']:.0%})")
print("\nforward pass, per image, by layer:")
for layer in spec.generator_spec(cfg) + spec.discriminator_spec(cfg):
    print(f"  {layer.name} {spec.describe(layer):<44} {2 * flops.layer_macs(layer) / 1e6:7.2f} MFLOP")

# %% [markdown]
# ## The same step in three frameworks
#
# `benchmarks/step_time.py` times full GAN steps of each implementation, each framework
# in its own process (so JAX never shares a process with torch). Its `--child` mode
# prints one framework's result as JSON: the first step (for XLA: tracing and
# compilation included) and the median of the following ones. `keras` runs Keras'
# `train_step` as a TensorFlow graph (`tf.function`); `keras-xla` compiles it with XLA
# (`jit_compile=True`). This takes a minute or two: four processes, three frameworks
# to import.

# %% tags=["slow"]
import json
import subprocess

STEPS, WARMUP = 5, 1
timed = {}
for fw in ("pytorch", "jax", "keras", "keras-xla"):
    out = subprocess.run([course.start.PYTHON, "-m", "benchmarks.step_time", "--child", fw, "32", "32", "32",
                          "--batch-size", str(cfg.batch_size), "--steps", str(STEPS),
                          "--warmup", str(WARMUP)], capture_output=True, text=True, check=True)
    timed[fw] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{fw:<10} first step {timed[fw]['first']:6.2f} s, then median {timed[fw]['median'] * 1e3:6.1f} ms "
          f"| {timed[fw]['about']}")

# %% tags=["slow"]
import matplotlib.pyplot as plt
import numpy as np

base = timed["pytorch"]["median"]
load = machine.load()
print(f"measured in this run on {machine.summary()}; load average "
      f"{'unknown' if load is None else f'{load[0]:.2f}'} (1 min); median of {STEPS} steps after {WARMUP}:\n")
print(f"{'':<10} {'first / median':>15} {'median / pytorch':>17} {'GFLOP/s':>9} {'of peak':>8}")
for fw, r in timed.items():
    rate = count["per_step"] / r["median"] / 1e9
    print(f"{fw:<10} {r['first'] / r['median']:>15.1f} {r['median'] / base:>17.2f} "
          f"{rate:>9.1f} {rate / peak['gflops']:>8.1%}")

fig, ax = plt.subplots(figsize=(6.5, 3.2))
names, pos = list(timed), np.arange(len(timed))
first = [timed[f]["first"] for f in names]
median = [timed[f]["median"] for f in names]
ax.bar(pos - 0.2, first, 0.4, color="tab:orange", label="first step (with tracing, compiling)")
ax.bar(pos + 0.2, median, 0.4, color="tab:blue", label=f"median of the next {STEPS}")
ax.set_xticks(pos, names)
ax.set_yscale("log")
ax.set_ylim(min(median) / 3, max(first) * 4)
ax.set_ylabel("seconds")
ax.set_title(f"One GAN step, batch {cfg.batch_size}, 32x32 (this run, this machine)", fontsize=10)
ax.legend(fontsize=8, loc="upper left", ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the table, not a ranking: the first column is what compilation costs (XLA pays
# once, at the first step; PyTorch's first step warms caches and allocators), the second
# compares steady states on this machine, the last two set each against the arithmetic
# the step needs. On another machine (another CPU generation, more cores, a GPU) the
# ratios move, sometimes past each other: `docs/speed.md` has two 2-core
# machines that ranked the frameworks differently. And look at the load line printed at
# the top: where the load average is above the number of cores, other programs took
# turns on them during these measurements, each number here is distorted by a different
# amount, and a fraction of the peak can even come out above 100% (the peak was measured
# in a worse moment). `python -m benchmarks.step_time` runs the full benchmark, with
# repeats; run it on an idle machine before you believe a ratio. Lesson 3 timed the same
# PyTorch step (its `detach()` row) in the notebook's own kernel; when the two figures
# disagree, compare the load averages the two cells printed before anything else.
#
# ## Exercise 1: one layer's FLOPs by hand
#
# A transposed convolution scatters, from every input pixel and input channel, a
# `k x k x out` block of multiply-adds; one multiply-add is 2 FLOPs. G's second layer
# here, `g2`, reads the 4x4 map of 128 channels that `g1` writes and has 4x4 kernels to
# 64 channels. Write its forward FLOPs for one image as arithmetic on numbers.

# %%
### BEGIN SOLUTION
g2_flops = 2 * (4 * 4) * (4 * 4) * 128 * 64
### END SOLUTION
#: g2_flops = None   # your code here

# %% tags=["check"]
from course import check

g2 = next(l for l in spec.generator_spec(cfg) if l.name == "g2")
check.equal("g2's forward FLOPs per image", g2_flops, 2 * flops.layer_macs(g2))

# %% [markdown]
# ## Exercise 2: a measured table
#
# Time G's forward pass alone in PyTorch at batch 64 (the cell below measures it), then
# fill in the table: for each batch size, G's forward FLOPs (`count["g_forward_per_image"]`
# is per image), the achieved GFLOP/s and the fraction of the matmul peak.

# %%
import time

import numpy as np
import torch

from pytorch_impl.model import build

generator, _ = build(cfg, seed=0)
seconds = {}
with torch.no_grad():
    for batch in (16, 64):
        z = torch.randn(batch, cfg.nz)
        generator(z)                              # warm-up
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            generator(z)
            runs.append(time.perf_counter() - t0)
        seconds[batch] = float(np.median(runs))
        print(f"G forward, batch {batch}: {seconds[batch] * 1e3:.2f} ms (median of 5)")

# %%
### BEGIN SOLUTION
table = {}
for batch, s in seconds.items():
    f = count["g_forward_per_image"] * batch
    table[batch] = (f, f / s / 1e9, f / s / 1e9 / peak["gflops"])
### END SOLUTION
#: table = {batch: (None, None, None) for batch in seconds}   # (FLOPs, GFLOP/s, fraction of peak)

# %% tags=["check"]
for batch, s in seconds.items():
    f_ref = 2 * flops.forward_macs(spec.generator_spec(cfg)) * batch       # counted from the spec
    f, rate, frac = table[batch]
    check.close(f"FLOPs at batch {batch}", f, f_ref)
    check.close(f"GFLOP/s at batch {batch}", rate, f_ref / s / 1e9)
    check.close(f"fraction of peak at batch {batch}", frac, f_ref / s / 1e9 / peak["gflops"])
for batch, (f, rate, frac) in table.items():
    print(f"batch {batch:>3}: {f / 1e9:.3f} GFLOP in {seconds[batch] * 1e3:.2f} ms = {rate:.1f} GFLOP/s, "
          f"{frac:.1%} of the peak")

# %% [markdown]
# One more measurement, because on a small machine it can dominate all the others. PyTorch
# splits each operation over its threads (one per core here) and makes them wait for each
# other at the end of every operation. When another program holds one of the cores, every
# operation waits for the slower thread (`docs/speed.md` measured one such
# case). Time G's forward pass with one thread and with all of them:

# %%
threads = torch.get_num_threads()
z = torch.randn(64, cfg.nz)
for n in sorted({1, threads}):
    torch.set_num_threads(n)
    with torch.no_grad():
        generator(z)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            generator(z)
            runs.append(time.perf_counter() - t0)
    print(f"{n} thread{'s' * (n > 1)}: G forward at batch 64 {np.median(runs) * 1e3:.1f} ms (median of 5)")
torch.set_num_threads(threads)
print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

# %% [markdown]
# A larger batch usually reaches a larger fraction of the peak: the same weights are
# used on more images per kernel call, and Python's per-call overhead is spread over
# more work. Your table says whether that holds here, on this machine, today. Run the
# timing cell again: on a shared machine the numbers move, and the FLOP counts do not.
