"""The run directory every `train` writes, the same files whatever the framework:

    config.json        the resolved config (device, data source and framework included)
    metrics.csv        one row per step: the columns of COLUMNS
    samples/epoch_NNN.png  the fixed-noise grid after each epoch (and at the last step)
    losses.png         d_loss and g_loss against steps
    d_outputs.png      D(x) and D(G(z)) before and after the D update, against steps
    progress.gif       the fixed-noise grids in order: the generator learning
    checkpoint.*       the framework's native checkpoint, for --resume
    weights.npz        portable weights (common/weights.py), readable by all three
    events.out.tfevents.*  TensorBoard events (common/tensorboard_log.py): the metrics,
                       the grids and the config, the same tags in all three; one more
                       file each time the run is resumed
"""
from __future__ import annotations

import csv
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import weights
from .config import Config, UserError
from .tensorboard_log import TensorBoardLog


class Diverged(UserError):
    """A loss or the generator's output went non-finite: the run stops at that step."""

COLUMNS = ["step", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "d_fake_after", "seconds"]
METRICS = COLUMNS[2:7]


# ----------------------------------------------------------------------------------------
# The directory itself.

def open_run_dir(cfg: Config, checkpoint_name: str) -> tuple[Path, Path | None]:
    """Create cfg.out for a new run, or check it for --resume. Returns (run dir, the
    checkpoint to resume from or None). Refuses to write over an existing run."""
    out = Path(cfg.out)
    ckpt = out / checkpoint_name
    if cfg.resume:
        if ckpt.exists() and not ckpt.is_file():
            raise UserError(f"--resume {out}: {checkpoint_name} there is not a file; put the "
                            "run's checkpoint back, or start a new run with --out")
        if not ckpt.is_file():
            others = sorted(p.name for p in out.glob("checkpoint.*"))
            hint = f" (it has {', '.join(others)}: resume it with the framework that wrote it)" if others else ""
            raise UserError(f"--resume {out}: no {checkpoint_name} there{hint}")
        if (out / "samples").exists() and not (out / "samples").is_dir():
            raise UserError(f"--resume {out}: samples there is not a directory; move it away "
                            "and resume again")
        return out, ckpt
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the run")
    new = [p for p in (out / "samples", out, *out.parents) if not p.exists()]  # mkdir makes these
    try:
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"--out {out} already exists and is not empty; choose another "
                            f"directory, or continue that run with --resume {out}")
        (out / "samples").mkdir(parents=True, exist_ok=True)
    except OSError as e:                  # under /proc, below a file, a read-only disk, ...
        for p in new:                     # deepest first: leave nothing half-made behind
            try:
                p.rmdir()
            except OSError:
                pass
        raise UserError(f"--out {out}: cannot create the run directory ({e.strerror}: "
                        f"{e.filename or out}); choose a place you can write to") from None
    return out, None


def checkpoint_error(path: Path, e: Exception) -> UserError:
    """What --resume says of a checkpoint its framework cannot restore (e: why, first line)."""
    why = str(e).splitlines()[0] if str(e) else type(e).__name__
    return UserError(f"{path}: cannot restore this checkpoint ({why}); it is truncated, "
                     "corrupt or not this run's: put back a good copy, or start a new run with --out")


def write_config(run_dir: Path, cfg: Config) -> None:
    atomic_write_text(run_dir / "config.json", cfg.to_json() + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_save(path, lambda tmp: tmp.write_text(text))


def atomic_save(path: Path, save_fn) -> None:
    """save_fn(tmp_path) writes the file; it replaces `path` only once complete, so an
    interrupted save never leaves a broken checkpoint behind. The temporary name is
    "tmp-<name>" in the same folder: same file system, and the same suffix, which some
    savers insist on (Keras's .keras)."""
    tmp = path.with_name("tmp-" + path.name)
    try:
        save_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def total_steps(cfg: Config, per_epoch: int) -> int:
    limits = [n for n in (cfg.epochs and cfg.epochs * per_epoch, cfg.max_steps) if n]
    return min(limits) if limits else per_epoch


# ----------------------------------------------------------------------------------------
# Metrics.

class MetricsLog:
    """Appends one row per step to metrics.csv. On resume, rows after the checkpoint's step
    (written before an interruption the checkpoint did not see) are dropped first."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        if resume_step is None or not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)
        else:
            rows = resumable_rows(path, resume_step)      # checked before it is rewritten
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(COLUMNS)
                w.writerows(rows)
        self.file = open(path, "a", newline="")
        self.writer = csv.writer(self.file)

    def write(self, step: int, epoch: int, m: dict, seconds: float) -> None:
        self.writer.writerow([step, epoch] + [f"{float(m[k]):.6f}" for k in METRICS] + [f"{seconds:.4f}"])

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def resumable_rows(path: Path, resume_step: int) -> list[list[str]]:
    """The rows of a run's metrics.csv up to resume_step. A last row cut short (the process
    was killed while writing it) is dropped; anything else unreadable is a UserError."""
    fix = "move it away (a new one is started) and resume again"
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, ValueError, csv.Error) as e:     # ValueError: bytes that are not UTF-8
        raise UserError(f"{path}: cannot read it ({e}); {fix}") from None
    if not rows or rows[0] != COLUMNS:
        raise UserError(f"{path}: not a metrics.csv of train (its header is not "
                        f"{','.join(COLUMNS)}); {fix}")

    def is_row(r):
        try:
            int(r[0]), [float(x) for x in r[1:]]
        except (ValueError, IndexError):
            return False
        return len(r) == len(COLUMNS)

    body = rows[1:]
    if body and not is_row(body[-1]):
        body = body[:-1]
    for i, r in enumerate(body):
        if not is_row(r):
            raise UserError(f"{path}: line {i + 2} is not a row of metrics; {fix}")
    return [r for r in body if int(r[0]) <= resume_step]


def read_metrics_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[1:]


def read_metrics(path: str | Path) -> dict[str, np.ndarray]:
    """metrics.csv as one float array per column."""
    rows = read_metrics_rows(Path(path))
    table = np.array(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    return {c: table[:, i] for i, c in enumerate(COLUMNS)}


def log_line(epoch: int, epochs: int, step: int, per_epoch: int, m: dict, seconds: float) -> str:
    """The per-epoch line of the PyTorch MNIST DCGAN write-up this project started from:
    losses, D(x), and D(G(z)) before / after the D update, and the epoch's seconds."""
    w = len(str(epochs))
    return (f"Epoch: [{epoch:0{w}d}/{epochs}] Step: [{step}/{per_epoch}] "
            f"Loss-D: {m['d_loss']:.4f} Loss-G: {m['g_loss']:.4f} D(x): {m['d_real']:.4f} "
            f"D(G(z)): [{m['d_fake']:.4f}/{m['d_fake_after']:.4f}] Time: {seconds:.0f}s")


def postfix(m: dict) -> dict:
    """What the progress bar shows beside the bar."""
    return {"d_loss": f"{m['d_loss']:.3f}", "g_loss": f"{m['g_loss']:.3f}",
            "D(x)": f"{m['d_real']:.2f}", "D(G(z))": f"{m['d_fake']:.2f}/{m['d_fake_after']:.2f}"}


# ----------------------------------------------------------------------------------------
# Pictures.

def grid(images: np.ndarray, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """(N, H, W, C) in [-1, 1] -> one uint8 (rows*(H+pad)+pad, ..., C) image, like
    torchvision's make_grid with its default 2-pixel padding."""
    n, h, w, c = images.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    out = np.zeros((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c), np.uint8)
    pix = np.clip((images + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    for k in range(n):
        r, col = divmod(k, ncol)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = pix[k]
    return out


def save_grid(images: np.ndarray, path: str | Path, nrow: int = 8, scale: int = 1) -> None:
    g = grid(images, nrow)
    im = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    im.save(path)


def save_images(images: np.ndarray, out: str | Path, nrow: int = 8) -> None:
    """What `sample --out` writes: .npy -> the float32 (N, H, W, C) array in [-1, 1];
    .png -> a grid. Atomic: a file already there is replaced only by a complete one."""
    out = Path(out)

    def write(tmp):
        if out.suffix == ".npy":
            np.save(tmp, images.astype(np.float32))
        else:
            save_grid(images, tmp, nrow=nrow)
    try:
        atomic_save(out, write)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write it ({e.strerror or e}); choose "
                        "another place") from None


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what there is so far)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    n = np.minimum(np.arange(1, len(y) + 1), window)
    return (c[1:] - c[np.arange(1, len(y) + 1) - n]) / n


def plot_metrics(metrics_csv: Path, run_dir: Path, title: str = "") -> None:
    """losses.png and d_outputs.png from metrics.csv (the two plots of the write-up): each
    step faint, and a moving average over about 1/50 of the run on top."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = read_metrics(metrics_csv)
    if len(m["step"]) == 0:
        return
    window = max(1, len(m["step"]) // 50)
    for fname, keys, labels, ylabel, what in (
            ("losses.png", ("g_loss", "d_loss"), ("G", "D"), "loss",
             "Generator and discriminator loss"),
            ("d_outputs.png", ("d_real", "d_fake", "d_fake_after"),
             ("D(x)", "D(G(z)) before D update", "D(G(z)) after D update"),
             "mean D output (probability)", "Discriminator outputs")):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for k, label in zip(keys, labels):
            line, = ax.plot(m["step"], m[k], lw=0.5, alpha=0.3)
            ax.plot(m["step"], smooth(m[k], window), lw=1.5, color=line.get_color(), label=label)
        if fname == "d_outputs.png":
            ax.axhline(0.5, color="grey", lw=0.5, ls="--")
            ax.set_ylim(0, 1)
        ax.set(xlabel="step", ylabel=ylabel, title=f"{what} {title}".strip())
        ax.legend(title=f"moving average of {window} steps" if window > 1 else None)
        fig.tight_layout()
        fig.savefig(run_dir / fname, dpi=110)
        plt.close(fig)


def make_gif(run_dir: Path, ms_per_frame: int = 300) -> None:
    """progress.gif from the per-epoch grids (doubled in size when small, to stay visible)."""
    frames = sorted((run_dir / "samples").glob("epoch_*.png"))
    if not frames:
        return
    ims = []
    for p in frames:
        with Image.open(p) as im:
            im = im.convert("L" if im.mode == "L" else "RGB")
            k = 2 if im.width < 256 else 1
            ims.append(im.resize((im.width * k, im.height * k), Image.NEAREST))
    ims[0].save(run_dir / "progress.gif", save_all=True, append_images=ims[1:],
                duration=ms_per_frame, loop=0)


def finish(run_dir: Path, title: str = "") -> None:
    plot_metrics(run_dir / "metrics.csv", run_dir, title)
    make_gif(run_dir)


# ----------------------------------------------------------------------------------------
# The framework-neutral half of a training run, so that each train.py holds the loop and
# its framework's code, and the three keep the same files, lines and plots.

class Run:
    """Set up by `start_run`; each train.py calls begin(step) once its checkpoint is
    restored, log_step after every step, end_epoch with the fixed-noise images after every
    epoch (and at the last step), and close at the end, interrupted or not.
    writer=False: one of the other processes of a data-parallel run (torchrun's ranks > 0),
    which checks what every process must (the step, divergence) and writes nothing."""

    def __init__(self, cfg: Config, run_dir: Path, resume_from: Path | None, batches,
                 init_weights: dict | None = None, writer: bool = True):
        self.cfg, self.dir, self.resume_from, self.batches = cfg, run_dir, resume_from, batches
        self.writer = writer
        self.init_weights = init_weights    # portable arrays to start from, or None: the seed's
        from .data import fixed_noise
        from .config import N_FIXED
        self.fixed_noise = fixed_noise(cfg.seed, cfg.nz, N_FIXED, cfg.z_dist)
        self.per_epoch = batches.per_epoch
        self.last = total_steps(cfg, self.per_epoch)     # the step to stop after
        self.epochs = -(-self.last // self.per_epoch)
        self.metrics = self.bar = self.board = None
        self.good_step = None       # the step of the last checkpoint known to be finite
        self.diverged = False

    def begin(self, step: int) -> None:
        from tqdm import tqdm
        if step >= self.last:
            raise UserError(f"{self.dir} is already at step {step} of {self.last}; to train "
                            "further pass a larger --max-steps or --epochs with --resume")
        if not self.writer:
            self.good_step = step if self.resume_from else None
            return
        # metrics.csv first: on resume it is checked before anything in the run is rewritten
        self.metrics = MetricsLog(self.dir / "metrics.csv", step if self.resume_from else None)
        write_config(self.dir, self.cfg)
        (self.dir / "samples").mkdir(exist_ok=True)
        if self.resume_from:
            print(f"resuming {self.dir} at step {step}")
            self.good_step = step
        self.board = TensorBoardLog(self.dir, step if self.resume_from else None)
        self.board.config(step, self.cfg.to_json())
        self.bar = tqdm(total=self.last, initial=step, unit="step", dynamic_ncols=True,
                        desc=self.cfg.framework, mininterval=0.5)
        self.epoch_start = time.perf_counter()

    def log_step(self, step: int, m: dict, seconds: float) -> None:
        bad = {k: v for k, v in m.items() if not math.isfinite(v)}
        if bad:
            self.diverge(step, ", ".join(f"{k} is {v}" for k, v in bad.items()))
        self.m = m
        if not self.writer:
            return
        self.metrics.write(step, (step - 1) // self.per_epoch + 1, m, seconds)
        self.board.step(step, m, seconds)
        self.bar.set_postfix(postfix(m), refresh=False)
        self.bar.update()

    def end_epoch(self, step: int, images: np.ndarray) -> None:
        """After the last step of an epoch (or of the run): the log line and the grid."""
        epoch = (step - 1) // self.per_epoch + 1
        if not np.isfinite(images).all():           # G's weights went bad in its last update
            self.diverge(step, "the generator's output is not finite")
        self.good_step = step                       # the checkpoint train.py saves next
        if not self.writer:
            return
        self.bar.write(log_line(epoch, self.epochs, step - (epoch - 1) * self.per_epoch,
                                self.per_epoch, self.m, time.perf_counter() - self.epoch_start))
        save_grid(images, self.dir / "samples" / f"epoch_{epoch:03d}.png")
        self.board.image(step, grid(images))
        self.metrics.flush()
        self.board.flush()
        self.epoch_start = time.perf_counter()

    def diverge(self, step: int, what: str) -> None:
        """Stop at the first non-finite value, before it reaches a checkpoint or weights.npz."""
        self.diverged = True
        kept = (f"{self.dir} keeps its checkpoint of step {self.good_step}, which --resume "
                "continues from" if self.good_step is not None else "no checkpoint was saved yet")
        raise Diverged(f"step {step}: training diverged ({what}). {kept}; a lower --lr or "
                       "another --seed may train where this did not")

    def save_weights(self, arrays: dict, step: int) -> None:
        """weights.npz (portable) at the end of the run, interrupted or not; never
        non-finite weights over the good ones a diverged run had written before."""
        if not self.writer or self.diverged or not all(np.isfinite(a).all() for a in arrays.values()):
            return
        weights.save(self.dir / "weights.npz", self.cfg, arrays, framework=self.cfg.framework,
                     step=step, z_dist=self.cfg.z_dist)

    def interrupted(self, step: int, hard: bool = False) -> None:
        if self.writer and hard:
            self.bar.write(f"interrupted at once by a second Ctrl-C (at step {step}): the checkpoint "
                           f"of the last finished epoch is kept; continue with --resume {self.dir}")
        elif self.writer:
            self.bar.write(f"interrupted after step {step}: checkpoint saved; continue with "
                           f"--resume {self.dir}")

    def close(self, step: int) -> None:
        if not self.writer:
            return
        if self.bar is not None:
            self.bar.close()
            self.metrics.close()
            self.board.close()
        finish(self.dir, f"({self.cfg.framework})")
        if not self.diverged:
            print(f"{step} steps done; run directory {self.dir}")


class StepEndCtrlC:
    """Ctrl-C read at the end of a step instead of wherever it falls. A KeyboardInterrupt
    between D's update and G's would save a checkpoint with D one update ahead of G and of
    the step count, and --resume would carry on from it as if nothing had happened. Inside
    `with StepEndCtrlC() as ctrl_c:` the first Ctrl-C only sets ctrl_c.asked, which the loop
    reads after each step; a second one interrupts at once (ctrl_c.hard), and then the
    files of the last finished epoch are kept as they are. The handler found on entry is
    put back on exit. Nothing is installed outside the main thread (Python's rule) or
    where SIGINT is ignored (a shell's background job): Ctrl-C stays as it was there.
    on_ask, if given, is called at the first Ctrl-C (Keras: model.stop_training = True,
    which fit reads after each step)."""

    def __init__(self, on_ask=None):
        self.on_ask = on_ask

    def __enter__(self):
        self.asked = self.hard = False
        self.before = None
        if threading.current_thread() is threading.main_thread():
            before = signal.getsignal(signal.SIGINT)
            if before is not signal.SIG_IGN:
                self.before = before
                signal.signal(signal.SIGINT, self._first)
        return self

    def _first(self, *_):
        self.asked = True
        signal.signal(signal.SIGINT, self._second)
        if self.on_ask is not None:
            self.on_ask()

    def _second(self, *_):
        self.hard = True
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.before is not None:
            signal.signal(signal.SIGINT, self.before)
        return False


def start_run(cfg: Config, framework: str, profile: str, checkpoint_name: str,
              writer: bool = True, gpu_capability: tuple[int, int] | None = None) -> Run:
    """Resolve the config for the device, check it, open the run directory (new, or the
    one to resume) and load the data. config.json is written by Run.begin, once the
    checkpoint's step has been checked too. writer=False (the other processes of a
    data-parallel run): the same, but the directory is left to the writer, and nothing
    is printed. gpu_capability: the CUDA compute capability of a GPU run, for
    --precision auto (hardware.auto_precision); None on a CPU."""
    from .data import Batches, dataset_channels, load_images
    from .config import default_out
    from .spec import discriminator_spec, generator_spec
    cfg = cfg.resolve(profile)
    if cfg.precision == "auto":
        from .hardware import auto_precision
        cfg.precision, why = auto_precision(gpu_capability, gpu=profile == "gpu")
        if writer:
            print(f"--precision auto: {cfg.precision} ({why})")
    cfg.framework = framework
    cfg.channels = dataset_channels(cfg)
    cfg.out = cfg.out or default_out(cfg, framework)
    generator_spec(cfg), discriminator_spec(cfg)            # a bad --image-size fails here
    init = None
    if cfg.init_weights and not cfg.resume:   # a resumed run's weights are its checkpoint's
        init, header = weights.load_init(cfg.init_weights, cfg)
        if writer:
            print(f"initial weights: {cfg.init_weights} (written by {header.get('framework', '?')} "
                  f"at step {header.get('step', '?')}); the optimizers start fresh")
    if writer:
        run_dir, resume_from = open_run_dir(cfg, checkpoint_name)
    else:                                     # the writer has opened (and checked) it
        run_dir = Path(cfg.out)
        resume_from = run_dir / checkpoint_name if cfg.resume else None
    try:
        images, cfg.data_source = load_images(cfg)
        batches = Batches(images, cfg.batch_size, cfg.seed)
    except BaseException:
        if writer and resume_from is None:               # leave no empty run behind
            (run_dir / "samples").rmdir()
            if not any(run_dir.iterdir()):
                run_dir.rmdir()
        raise
    if writer:
        print(f"data: {cfg.data_source}; {len(images):,} images of {images.shape[1:]}, "
              f"{batches.per_epoch} steps per epoch")
    return Run(cfg, run_dir, resume_from, batches, init, writer)
