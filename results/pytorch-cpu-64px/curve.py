"""How curve.png was drawn: the judge's scores of this run's samples at each step it was
judged (curve.csv), with the 90% interval of the Frechet distance.

    python results/pytorch-cpu-64px/curve.py
"""
import csv
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
rows = list(csv.DictReader(open(HERE / "curve.csv")))
step = [int(r["step"]) for r in rows]
fd = [float(r["fd"]) for r in rows]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
a.errorbar(step, fd, yerr=[[f - float(r["fd_low"]) for f, r in zip(fd, rows)],
                           [float(r["fd_high"]) - f for f, r in zip(fd, rows)]], marker="o", capsize=3)
a.axhline(float(rows[-1]["fd_real"]), color="k", ls=":", label="real-vs-real floor")
a.set(xlabel="step", ylabel="Frechet distance, CNN judge (lower: better)", ylim=(0, None))
a.legend()
b.plot(step, [float(r["score"]) for r in rows], marker="o")
b.axhline(float(rows[-1]["score_real"]), color="k", ls=":", label="real digits")
b.set(xlabel="step", ylabel="IS-style score (higher: better)", ylim=(1, 10.5))
b.legend(loc="lower right")
for ax in (a, b):
    ax.grid(alpha=0.3)
fig.suptitle("64x64, widths 64 (the tutorial's setting), PyTorch, offline MNIST sample")
fig.tight_layout()
fig.savefig(HERE / "curve.png", dpi=100)
