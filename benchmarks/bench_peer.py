"""time_steps(cfg, n, path) for the peer: pytorch/examples' dcgan/main.py, run as it is.

main.py is a script, not a library: it parses its command line, builds its data loader,
its Generator and Discriminator and its two Adams at import time, then trains. It is not
part of this repository; `benchmarks.step_time --peer PATH` runs the copy at PATH, in its
own process, with runpy, under its own command line:

    --dataset mnist --workers 0 --batchSize B --imageSize 64 --nz NZ --ngf W --ndf W
    --niter 1 --lr LR --beta1 B1 --manualSeed 0 --dataroot TMP --outf TMP

Two things are changed around it, none inside it:
  * the data set. Its `--dataset fake` makes 3-channel images and it has no channels flag;
    its MNIST branch sets nc = 1, so torchvision.datasets.MNIST is replaced, for this
    process, by torchvision's own FakeData with 1 channel (random images, no download),
    exactly batch * (steps) images: one epoch. Its own transforms (Resize, ToTensor,
    Normalize) and DataLoader (workers 0: in this process, so the cost is counted and the
    loader's processes do not compete for the cores) still run.
  * stdout. Its one line per iteration goes to a clock that stamps each line. A step is the
    time from one iteration's line to the next: its data loading, its D and G updates as
    it writes them (5 .item() calls), one print (into memory, not a terminal). The first
    step is timed from its last line before training (its print of netD). Each step that
    follows an iteration with i % 100 == 0 also writes two PNGs and runs G on its fixed
    noise, so it is left out; the checkpoint at the end of the epoch comes after the last
    line and is not timed.

Its networks are fixed at 64x64 (five layers, 4 -> 64); at another size its D fails.
"""
import contextlib
import io
import re
import runpy
import sys
import tempfile
import time

SIZE = 64                      # the only image size main.py's networks make
ITERATION = re.compile(r"^\[\d+/\d+\]\[(\d+)/\d+\] Loss_D")


class _Clock(io.TextIOBase):
    """The peer's stdout: keeps each line with the time it ended and `stamp()` then."""

    def __init__(self, stamp):
        self.stamp, self.lines, self._part = stamp, [], ""

    def writable(self):
        return True

    def write(self, s):
        now = time.perf_counter()
        self._part += s
        while "\n" in self._part:
            line, self._part = self._part.split("\n", 1)
            self.lines.append((now, self.stamp(), line))
        return len(s)


def iterations_for(n: int) -> int:
    """How many iterations give n steps once those after an image save are left out."""
    total = n
    while total - sum(1 for k in range(1, total) if (k - 1) % 100 == 0) < n:
        total += 1
    return total


def time_steps(cfg, n, path):
    """(seconds of each of n of the peer's steps, in order; details: its data loading time
    per step, its networks' parameter counts, what it was run with)."""
    import torchvision.datasets as dset

    spent = [0.0]                               # seconds in the data set's __getitem__

    class Timed(dset.FakeData):
        def __getitem__(self, i):
            t0 = time.perf_counter()
            try:
                return super().__getitem__(i)
            finally:
                spent[0] += time.perf_counter() - t0

    total = iterations_for(n)

    def standin(*args, transform=None, image_size=None, **kwargs):  # MNIST's and FakeData's calls
        return Timed(size=cfg.batch_size * total, image_size=(cfg.channels, cfg.image_size, cfg.image_size),
                     num_classes=10, transform=transform)

    with tempfile.TemporaryDirectory() as tmp:
        argv = [path, "--dataset", "mnist" if cfg.channels == 1 else "fake", "--dataroot", tmp,
                "--workers", "0", "--batchSize", str(cfg.batch_size), "--imageSize", str(cfg.image_size),
                "--nz", str(cfg.nz), "--ngf", str(cfg.ngf), "--ndf", str(cfg.ndf), "--niter", "1",
                "--lr", str(cfg.lr), "--beta1", str(cfg.beta1), "--manualSeed", "0", "--outf", tmp]
        clock = _Clock(lambda: spent[0])
        saved = sys.argv, dset.MNIST, dset.FakeData
        sys.argv, dset.MNIST, dset.FakeData = argv, standin, standin
        try:
            with contextlib.redirect_stdout(clock):
                peer = runpy.run_path(path, run_name="__main__")
        finally:
            sys.argv, dset.MNIST, dset.FakeData = saved
    first = next(j for j, (_, _, line) in enumerate(clock.lines) if ITERATION.match(line))
    marks = [clock.lines[first - 1]] + [m for m in clock.lines[first:] if ITERATION.match(m[2])]
    if len(marks) != total + 1:
        raise RuntimeError(f"the peer printed {len(marks) - 1} iteration lines, {total} expected")
    times, data = [], []
    for k in range(1, total + 1):               # step k - 1: from line k - 1 to line k
        if k >= 2 and (k - 2) % 100 == 0:       # iteration k - 2 saved images after its line
            continue
        times.append(marks[k][0] - marks[k - 1][0])
        data.append(marks[k][1] - marks[k - 1][1])
    count = lambda net: sum(p.numel() for p in net.parameters())
    return times[:n], {"data": data[:n], "g_params": count(peer["netG"]), "d_params": count(peer["netD"]),
                       "argv": [a.replace(tmp, "TMP") for a in argv[1:]]}
