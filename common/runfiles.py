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
    run.lock           the lock of the one process that trains here (RunLock), and its pid

Every file is written whole or not at all (atomic_save; metrics.csv a row at a time), so a
run killed at any moment, or stopped by a full disk, leaves files that --resume can use.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
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
# The directory itself: one writer, and a full disk said in one line.

LOCK = "run.lock"
# what a write that more space (or a writable disk) would have let through failed with
DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EROFS: "the file system is read-only"}


class DiskFull(UserError):
    """A file of the run could not be written for want of space, quota or a writable disk:
    one line naming the file and what to do, exit status 2, every file whole (Run adds
    what the run kept)."""


@contextlib.contextmanager
def writing(what: str, path: Path):
    """Inside: a write of `what` to `path`. ENOSPC, EDQUOT or EROFS become a DiskFull that
    names them; any other error goes on as it is."""
    try:
        yield
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        if e.filename:                   # the file itself, atomic_save's temporary as what it makes
            name = Path(e.filename).name
            path = Path(e.filename).with_name(name[4:] if name.startswith("tmp-") else name)
        raise DiskFull(f"{DISK_ERRNOS[e.errno]} ({e.strerror}) while writing {what} to {path}") from None


class RunLock:
    """One writer per run directory: an exclusive flock on DIR/run.lock, taken before train
    reads or writes anything there and held until it ends. The kernel drops it when the
    process ends, however it ends (kill -9 too), so a lock is never stale and nobody has to
    delete one. The file holds the holder's pid, for the line a second train prints; it
    stays when the run ends (deleting it would let a third process lock a new file while a
    second still holds the old one). Readers (sample, evaluate, TensorBoard) never take it."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK
        while True:
            self.created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise in_use(run_dir, pid) from None
            try:                          # still the file at that name? (one removed and made
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))   # again: retry)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        self.before = os.pread(fd, 64, 0)
        try:     # in place, padded: rewriting an old pid needs no new space on a full disk
            os.pwrite(fd, f"{os.getpid():<10}\n".encode(), 0)
        except BaseException:
            self.release(restore=True)
            raise

    @staticmethod
    def holder(run_dir: Path) -> str | None:
        """The pid of the process that trains in run_dir, or None; changes nothing (a
        shared lock, tried and dropped, clashes with the writer's exclusive one only)."""
        try:
            fd = os.open(run_dir / LOCK, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)

    def release(self, restore: bool = False) -> None:
        """Unlock; restore=True (a train that failed before its first write): the file as it
        was, or gone if this process made it."""
        if self.fd is None:
            return
        try:
            if restore and self.created:
                self.path.unlink(missing_ok=True)
            elif restore:
                os.pwrite(self.fd, self.before, 0)
                os.ftruncate(self.fd, len(self.before))
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None


def in_use(run_dir: Path, pid: str) -> UserError:
    return UserError(f"{run_dir} is in use: process {pid} is training there (it holds "
                     f"{run_dir / LOCK}); wait for it to end, or stop it with kill {pid} (it "
                     "saves a checkpoint after its step), then try again")


def leftovers_only(d: Path) -> bool:
    """d holds nothing of a run's: at most a lock file, an empty samples/ and the temporary
    files of writes a kill interrupted, which is what a run killed before it wrote its
    config.json leaves behind."""
    return all(p.name == LOCK or p.name.startswith("tmp-") or
               (p.name == "samples" and p.is_dir() and not any(p.iterdir())) for p in d.iterdir())


def got_past_a_checkpoint(d: Path) -> str | None:
    """What in run directory d shows that the run saved a checkpoint once, or None. A
    run writes weights.npz only after a checkpoint, and it saves one at the end of epoch 1
    before any step of epoch 2: a row of epoch 2 in metrics.csv means there was one."""
    if (d / "weights.npz").exists():
        return "it has weights.npz"
    try:
        with open(d / "metrics.csv", newline="") as f:
            epochs = [r[1] for r in csv.reader(f) if len(r) > 1]
    except (OSError, ValueError, csv.Error):
        return None
    if any(e.isdigit() and int(e) >= 2 for e in epochs):
        return "metrics.csv has rows of epoch 2"
    return None


def open_run_dir(cfg: Config, checkpoint_name: str) -> tuple[Path, Path | None, RunLock]:
    """Lock cfg.out, and create it for a new run (config.json first, atomically) or check
    it for --resume. Returns (run dir, the checkpoint to resume from or None: a new run, or
    a resumed one that had none yet, started again from step 0, the lock). Refuses to
    write over an existing run, or into one another process trains in."""
    out = Path(cfg.out)
    ckpt = out / checkpoint_name
    if cfg.resume:
        try:                       # before reading anything: another train may be writing it
            lock = RunLock(out)
        except OSError as e:       # a read-only disk, a directory not ours to write in, ...
            raise UserError(f"--resume {out}: cannot take the run directory ({e.strerror}: "
                            f"{e.filename or out / LOCK}); resume it where it can be written "
                            "(make it writable, or copy it elsewhere)") from None
        try:
            return out, resumable_checkpoint(out, ckpt), lock
        except BaseException:
            lock.release(restore=True)
            raise
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the run")
    new = [p for p in (out / "samples", out, *out.parents) if not p.exists()]  # mkdir makes these
    refuse = UserError(f"--out {out} already exists and is not empty; choose another "
                       f"directory, or continue that run with --resume {out}")
    if out.is_dir() and RunLock.holder(out):     # in use: say by whom, rather than "not empty"
        raise in_use(out, RunLock.holder(out))
    if out.is_dir() and not leftovers_only(out):
        raise refuse
    lock = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(out)
        if not leftovers_only(out):   # another train got there between the look and the lock
            lock.release(restore=True)
            lock = None
            raise refuse
        (out / "samples").mkdir(exist_ok=True)
        write_config(out, cfg)        # at once: a run killed from here on can be resumed
    except BaseException as e:
        if lock is not None:
            abandon_new_run(out, lock)
        if not isinstance(e, OSError):
            raise
        for p in new:                     # deepest first: leave nothing half-made behind
            try:
                p.rmdir()
            except OSError:
                pass
        raise UserError(f"--out {out}: cannot create the run directory ({e.strerror}: "
                        f"{e.filename or out}); choose a place you can write to") from None
    return out, None, lock


def abandon_new_run(out: Path, lock: RunLock) -> None:
    """Undo what open_run_dir made for a new run that fails before it starts."""
    for name in ("config.json", "tmp-config.json"):
        (out / name).unlink(missing_ok=True)
    lock.release(restore=True)
    for d in (out / "samples", out):
        try:
            d.rmdir()                    # only if empty: an existing folder keeps its files
        except OSError:
            pass


def resumable_checkpoint(out: Path, ckpt: Path) -> Path | None:
    """The checkpoint that --resume out continues from, None if the run never saved one (it
    starts again from step 0), or a UserError. Reads only."""
    if ckpt.exists() and not ckpt.is_file():
        raise UserError(f"--resume {out}: {ckpt.name} there is not a file; put the "
                        "run's checkpoint back, or start a new run with --out")
    if (out / "samples").exists() and not (out / "samples").is_dir():
        raise UserError(f"--resume {out}: samples there is not a directory; move it away "
                        "and resume again")
    if ckpt.is_file():
        return ckpt
    others = sorted(p.name for p in out.glob("checkpoint.*"))
    if others:
        raise UserError(f"--resume {out}: no {ckpt.name} there (it has {', '.join(others)}: "
                        "resume it with the framework that wrote it)")
    evidence = got_past_a_checkpoint(out)
    if evidence:
        raise UserError(f"--resume {out}: no {ckpt.name} there, though the run saved one ("
                        f"{evidence}); put the checkpoint back, or start a new run with --out")
    return None


def checkpoint_error(path: Path, e: Exception) -> UserError:
    """What --resume says of a checkpoint its framework cannot restore (e: why, first line)."""
    why = str(e).splitlines()[0] if str(e) else type(e).__name__
    return UserError(f"{path}: cannot restore this checkpoint ({why}); it is truncated, "
                     "corrupt or not this run's: put back a good copy, or start a new run with --out")


# The settings that make a run the run it is. A checkpoint saved under other ones belongs to
# another run, even when its arrays have this run's shapes and would load without a word.
# (--epochs, --max-steps, --device, --devices, --data-dir and --checkpoint-every may change
# on --resume: config.RESUMABLE_OVERRIDES.)
RUN_SETTINGS = ("arch", "dataset", "image_size", "channels", "nz", "z_dist", "ngf", "ndf",
                "batch_size", "lr", "beta1", "beta2", "seed", "precision", "init_weights")


def check_same_run(path: Path, saved: dict, cfg: Config) -> None:
    """A UserError naming every setting where the checkpoint's stored config (saved)
    differs from the run's; settings an older checkpoint did not store are not compared."""
    diff = [k for k in RUN_SETTINGS if k in saved and saved[k] != getattr(cfg, k)]
    if diff:
        what = ", ".join(f"{k} {saved[k]} (this run: {getattr(cfg, k)})" for k in diff)
        raise UserError(f"{path} is another run's checkpoint: {what}; put back this run's own "
                        "checkpoint, or resume the run that saved it in its own directory")


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
    """metrics.csv, one row per step, each written with one os.write when it is logged: a
    run killed at any moment leaves whole rows (and at most a last one cut short, which
    resumable_rows drops), and a write the disk refuses halfway is cut back off, so the
    file never ends in half a row. rows: what to start from, the header alone if None (on
    resume, the rows up to the checkpoint's step, written atomically)."""

    def __init__(self, path: Path, rows: list[list[str]] | None = None):
        self.path = path
        atomic_save(path, lambda tmp: tmp.write_bytes(self.csv([COLUMNS, *(rows or [])])))
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.size = os.fstat(self.fd).st_size

    @staticmethod
    def csv(rows) -> bytes:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)          # csv's own format: \r\n after each row
        return buf.getvalue().encode()

    def write(self, step: int, epoch: int, m: dict, seconds: float) -> None:
        row = self.csv([[step, epoch] + [f"{float(m[k]):.6f}" for k in METRICS] + [f"{seconds:.4f}"]])
        try:
            done = 0
            while done < len(row):
                done += os.write(self.fd, row[done:])
        except OSError:
            os.ftruncate(self.fd, self.size)     # no half row left behind
            raise
        self.size += len(row)

    def close(self) -> None:
        os.close(self.fd)


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
    """The grid as a PNG at path, written as it is (atomic_save it for a run's file)."""
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


def no_guard(path: Path):
    return contextlib.nullcontext()


def plot_metrics(metrics_csv: Path, run_dir: Path, title: str = "", guard=no_guard) -> None:
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
        try:
            with guard(run_dir / fname):
                atomic_save(run_dir / fname, lambda tmp: fig.savefig(tmp, dpi=110))
        finally:
            plt.close(fig)


def make_gif(run_dir: Path, ms_per_frame: int = 300, guard=no_guard) -> None:
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
    with guard(run_dir / "progress.gif"):
        atomic_save(run_dir / "progress.gif", lambda tmp: ims[0].save(
            tmp, save_all=True, append_images=ims[1:], duration=ms_per_frame, loop=0))


def finish(run_dir: Path, title: str = "", guard=no_guard) -> None:
    """The curves and the GIF; guard(path), a context manager around each file's write."""
    plot_metrics(run_dir / "metrics.csv", run_dir, title, guard)
    make_gif(run_dir, guard=guard)


# ----------------------------------------------------------------------------------------
# The framework-neutral half of a training run, so that each train.py holds the loop and
# its framework's code, and the three keep the same files, lines and plots.

class Run:
    """Set up by `start_run`; each train.py calls begin(restore) to restore its checkpoint
    (if any) and start, log_step after every step, end_epoch with the fixed-noise images
    after every epoch (and at the last step), checkpoint(step, save) to save one, and close
    at the end, interrupted or not. Every write goes through here (or through the
    framework's save, given to checkpoint): a full disk stops the run with one line, and
    close then writes nothing more.
    writer=False: one of the other processes of a data-parallel run (torchrun's ranks > 0),
    which checks what every process must (the step, divergence) and writes nothing."""

    def __init__(self, cfg: Config, run_dir: Path, resume_from: Path | None, batches,
                 init_weights: dict | None = None, writer: bool = True,
                 checkpoint_name: str = "checkpoint", lock: RunLock | None = None):
        self.cfg, self.dir, self.resume_from, self.batches = cfg, run_dir, resume_from, batches
        self.writer, self.lock = writer, lock
        self.checkpoint_path = run_dir / checkpoint_name
        self.init_weights = init_weights    # portable arrays to start from, or None: the seed's
        from .data import fixed_noise
        from .config import N_FIXED
        self.fixed_noise = fixed_noise(cfg.seed, cfg.nz, N_FIXED, cfg.z_dist)
        self.per_epoch = batches.per_epoch
        self.last = total_steps(cfg, self.per_epoch)     # the step to stop after
        self.epochs = -(-self.last // self.per_epoch)
        self.metrics = self.bar = self.board = None
        self.good_step = None       # the step of the last checkpoint known to be finite
        self.diverged = self.disk_full = False
        self.disk_full_error = None

    def begin(self, restore=None) -> int:
        """restore(path) -> step: load the checkpoint (train.py's, framework code), called
        when resuming. Checks the step and the run directory, and only then writes there.
        Returns the step to start from. A failure before that leaves the directory as it
        was: a new run's files removed, run.lock's content put back."""
        from tqdm import tqdm
        try:
            step = restore(self.resume_from) if self.resume_from else 0
            if step >= self.last:
                raise UserError(f"{self.dir} is already at step {step} of {self.last}; to train "
                                "further pass a larger --max-steps or --epochs with --resume")
            # metrics.csv is checked before anything in the run is rewritten
            rows = resumable_rows(self.dir / "metrics.csv", step) if self.resume_from and self.writer else None
        except BaseException:
            self.abandon()
            raise
        if self.resume_from:
            self.good_step = step
        if not self.writer:
            return step
        try:
            self.start_writing(step, rows)
        except BaseException:
            if self.metrics is not None:
                self.metrics.close()
            if self.lock is not None:
                self.lock.release()
            raise
        if self.resume_from:
            print(f"resuming {self.dir} at step {step}")
        self.bar = tqdm(total=self.last, initial=step, unit="step", dynamic_ncols=True,
                        desc=self.cfg.framework, mininterval=0.5)
        self.epoch_start = time.perf_counter()
        return step

    def start_writing(self, step: int, rows: list | None) -> None:
        with self.writing("the run's files", self.dir):
            for tmp in [*self.dir.glob("tmp-*"), *self.dir.glob("samples/tmp-*")]:
                tmp.unlink()         # what a kill in the middle of a write left behind
            if not self.resume_from:     # a new run, or one started again: no events of its own yet
                for old in self.dir.glob("events.out.tfevents.*"):
                    old.unlink()
            self.metrics = MetricsLog(self.dir / "metrics.csv", rows)
            write_config(self.dir, self.cfg)
            (self.dir / "samples").mkdir(exist_ok=True)
            self.board = TensorBoardLog(self.dir, step if self.resume_from else None)
            self.board.config(step, self.cfg.to_json())

    def abandon(self) -> None:
        abandon(self.cfg, self.dir, self.lock)

    @contextlib.contextmanager
    def writing(self, what: str, path: Path):
        """runfiles.writing, and on a full disk: what the run kept, and what to do."""
        try:
            with writing(what, path):
                yield
        except DiskFull as e:
            self.disk_full = True
            if self.good_step is not None:
                kept = f"{self.dir} keeps its checkpoint of step {self.good_step}"
                todo = f"then continue with --resume {self.dir}"
            else:
                kept, todo = "there is no checkpoint yet", f"then --resume {self.dir} starts the run again"
            raise DiskFull(f"{e}. {kept}, and every file there is whole; free some space, "
                           f"{todo}") from None

    def log_step(self, step: int, m: dict, seconds: float) -> None:
        bad = {k: v for k, v in m.items() if not math.isfinite(v)}
        if bad:
            self.diverge(step, ", ".join(f"{k} is {v}" for k, v in bad.items()))
        self.m = m
        if not self.writer:
            return
        with self.writing("a row of metrics", self.metrics.path):
            self.metrics.write(step, (step - 1) // self.per_epoch + 1, m, seconds)
        with self.writing("TensorBoard events", self.board.path):
            self.board.step(step, m, seconds)
        self.bar.set_postfix(postfix(m), refresh=False)
        self.bar.update()

    def end_epoch(self, step: int, images: np.ndarray) -> None:
        """After the last step of an epoch (or of the run): the log line and the grid."""
        epoch = (step - 1) // self.per_epoch + 1
        self.check_finite(step, images)
        if not self.writer:
            return
        self.bar.write(log_line(epoch, self.epochs, step - (epoch - 1) * self.per_epoch,
                                self.per_epoch, self.m, time.perf_counter() - self.epoch_start))
        path = self.dir / "samples" / f"epoch_{epoch:03d}.png"
        with self.writing("the sample grid", path):
            atomic_save(path, lambda tmp: save_grid(images, tmp))
        with self.writing("TensorBoard events", self.board.path):
            self.board.image(step, grid(images))
        self.epoch_start = time.perf_counter()

    def check_finite(self, step: int, images: np.ndarray) -> None:
        if not np.isfinite(images).all():           # G's weights went bad in its last update
            self.diverge(step, "the generator's output is not finite")

    def checkpoint_due(self, step: int) -> bool:
        """--checkpoint-every N: a checkpoint after every N-th step, beside the epochs'."""
        every = self.cfg.checkpoint_every
        return bool(every) and step % every == 0 and step % self.per_epoch != 0

    def checkpoint(self, step: int, save) -> None:
        """save(path): the framework writes its checkpoint (atomically: atomic_save). What
        the run logged up to this step reaches the disk first, so that a resume from this
        checkpoint finds all of it."""
        if self.writer:
            with self.writing("TensorBoard events", self.board.path):
                self.board.flush()
            with self.writing("the checkpoint", self.checkpoint_path):
                save(self.checkpoint_path)
        self.good_step = step

    def diverge(self, step: int, what: str) -> None:
        """Stop at the first non-finite value, before it reaches a checkpoint or weights.npz."""
        self.diverged = True
        kept = (f"{self.dir} keeps its checkpoint of step {self.good_step}, which --resume "
                "continues from" if self.good_step is not None else "no checkpoint was saved yet")
        raise Diverged(f"step {step}: training diverged ({what}). {kept}; a lower --lr or "
                       "another --seed may train where this did not")

    def save_weights(self, arrays: dict, step: int) -> None:
        """weights.npz (portable) at the end of the run, interrupted or not; never
        non-finite weights over the good ones a diverged run had written before, and
        nothing once the disk is full (the weights.npz there stays as it was)."""
        if not self.writer or self.diverged or self.disk_full or self.bar is None or \
                not all(np.isfinite(a).all() for a in arrays.values()):
            return
        try:
            with self.writing("the portable weights", self.dir / "weights.npz"):
                weights.save(self.dir / "weights.npz", self.cfg, arrays, framework=self.cfg.framework,
                             step=step, z_dist=self.cfg.z_dist)
        except DiskFull as e:       # said by close(), once it has closed the run's files
            self.disk_full_error = e

    def interrupted(self, step: int, stop: "StepEndCtrlC") -> None:
        if not self.writer:
            return
        what = "SIGTERM" if stop.terminated else "Ctrl-C"
        if stop.hard:
            kept = (f"the checkpoint of step {self.good_step} is kept" if self.good_step is not None
                    else "no checkpoint was saved yet")
            self.bar.write(f"interrupted at once by a second {what} (at step {step}): {kept}; "
                           f"continue with --resume {self.dir}")
        else:
            self.bar.write(f"interrupted after step {step} ({what}): checkpoint saved; continue "
                           f"with --resume {self.dir}")

    def close(self, step: int) -> None:
        """The end, however it came: the files closed, the curves and the GIF drawn (not
        after a full disk), the lock let go."""
        if not self.writer:
            return
        try:
            if self.bar is not None:
                self.bar.close()
                self.metrics.close()
                with self.writing("TensorBoard events", self.board.path):
                    self.board.close(flush=not self.disk_full)
            if not self.disk_full:
                finish(self.dir, f"({self.cfg.framework})", lambda path: self.writing(
                    "the animation" if path.suffix == ".gif" else "the curves", path))
            if not self.diverged and not self.disk_full:
                print(f"{step} steps done; run directory {self.dir}")
        finally:
            if self.lock is not None:
                self.lock.release()
        if self.disk_full_error is not None:
            raise self.disk_full_error


class StepEndCtrlC:
    """Ctrl-C and SIGTERM read at the end of a step instead of wherever they fall. A
    KeyboardInterrupt between D's update and G's would save a checkpoint with D one update
    ahead of G and of the step count, and --resume would carry on from it as if nothing had
    happened. Inside `with StepEndCtrlC() as ctrl_c:` the first Ctrl-C or SIGTERM (what
    Slurm, Kubernetes and a spot machine's preemption send) only sets ctrl_c.asked, which
    the loop reads after each step; a second one interrupts at once (ctrl_c.hard), and then
    the files of the last checkpoint are kept as they are. After a SIGTERM the run ends with
    exit status 143 (128 + 15, as if the signal had ended it) once its files are saved. The
    handlers found on entry are put back on exit. Nothing is installed outside the main
    thread (Python's rule), nor for a signal that is ignored (a shell's background job
    ignores SIGINT): it stays as it was there.
    on_ask, if given, is called at the first signal (Keras: model.stop_training = True,
    which fit reads after each step)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_ask=None):
        self.on_ask = on_ask

    def __enter__(self):
        self.asked = self.hard = self.terminated = False
        self.before = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                before = signal.getsignal(sig)
                if before is not signal.SIG_IGN:
                    self.before[sig] = before
                    signal.signal(sig, self._first)
        return self

    def _first(self, signum, frame):
        self.asked = True
        self.terminated |= signum == signal.SIGTERM
        for sig in self.before:
            signal.signal(sig, self._second)
        if self.on_ask is not None:
            self.on_ask()

    def _second(self, signum, frame):
        self.hard = True
        self.terminated |= signum == signal.SIGTERM
        raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        for sig, before in self.before.items():
            signal.signal(sig, before)
        if exc_type is KeyboardInterrupt and self.terminated:
            raise SystemExit(TERMINATED) from None
        return False


TERMINATED = 128 + signal.SIGTERM      # the exit status of a run that SIGTERM stopped: 143


def start_run(cfg: Config, framework: str, profile: str, checkpoint_name: str,
              writer: bool = True, gpu_capability: tuple[int, int] | None = None) -> Run:
    """Resolve the config for the device, check it, open the run directory (new, or the
    one to resume: locked either way, see RunLock) and load the data. config.json is
    written at once for a new run, and again by Run.begin, once the checkpoint's step has
    been checked too. writer=False (the other processes of a data-parallel run): the
    same, but the directory is left to the writer, and nothing is printed.
    gpu_capability: the CUDA compute capability of a GPU run, for --precision auto
    (hardware.auto_precision); None on a CPU."""
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
        init = load_init(cfg, writer)
    lock = None
    if writer:
        run_dir, resume_from, lock = open_run_dir(cfg, checkpoint_name)
    else:                                     # the writer has opened (and checked) it
        run_dir = Path(cfg.out)
        resume_from = run_dir / checkpoint_name if cfg.resume and (run_dir / checkpoint_name).is_file() else None
    try:
        if cfg.resume and resume_from is None:
            if writer:
                print(f"--resume {run_dir}: no checkpoint there yet (the run was stopped before "
                      "its first one): starting it again from step 0")
            if cfg.init_weights:              # as it started the first time
                init = load_init(cfg, writer)
        images, cfg.data_source = load_images(cfg)
        batches = Batches(images, cfg.batch_size, cfg.seed)
    except BaseException:
        abandon(cfg, run_dir, lock)
        raise
    if writer:
        print(f"data: {cfg.data_source}; {len(images):,} images of {images.shape[1:]}, "
              f"{batches.per_epoch} steps per epoch")
    return Run(cfg, run_dir, resume_from, batches, init, writer, checkpoint_name, lock)


def abandon(cfg: Config, run_dir: Path, lock: RunLock | None) -> None:
    """A run that fails before it writes (bad input): as if it had not started."""
    if lock is not None and cfg.resume:
        lock.release(restore=True)
    elif lock is not None:
        abandon_new_run(run_dir, lock)


def load_init(cfg: Config, writer: bool) -> dict:
    init, header = weights.load_init(cfg.init_weights, cfg)
    if writer:
        print(f"initial weights: {cfg.init_weights} (written by {header.get('framework', '?')} "
              f"at step {header.get('step', '?')}); the optimizers start fresh")
    return init
