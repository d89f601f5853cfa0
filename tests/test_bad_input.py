"""Bad input to the six commands (train and sample, in each framework): every path a user
gives, when missing, unreadable, unwritable, truncated, corrupt, of the wrong shape or
dtype, or another program's file, ends in exit status 2 and one line on stderr that says
what is wrong, with no traceback and nothing on disk changed or left half-made.

Each case builds its bad input in tmp_path and returns the command's argv; the command runs
in-process through run_main, as `python -m` would run it. Cases that need a real run copy a
2-step TINY run of the framework, made once for the module."""
import dataclasses
import hashlib
import importlib
import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from common import data, weights
from common.config import Config, run_main
from tests import helpers
from tests.conftest import run_cli

FRAMEWORKS = ("pytorch", "jax", "keras")
CHECKPOINTS = {"pytorch": "checkpoint.pt", "jax": "checkpoint.npz", "keras": "checkpoint.keras"}
UNDER_PROC = "/proc/dcgan-test/run"           # /proc refuses new entries, even to root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """trained(fw, *flags): a TINY run of fw, 2 steps unless flags say otherwise, made once."""
    made = {}

    def get(fw, *flags):
        if (fw, flags) not in made:
            train = importlib.import_module(f"{fw}_impl.train").train
            out = tmp_path_factory.mktemp(fw) / "run"
            made[fw, flags] = helpers.run_tiny(train, out, *(flags or ("--max-steps", "2")))
        return made[fw, flags]
    return get


@dataclass
class Ctx:
    """What a case builds with: its tmp folder, the framework under test, trained runs."""
    tmp: Path
    fw: str
    trained: Callable

    @property
    def ckpt(self) -> str:
        return CHECKPOINTS[self.fw]

    def run(self, fw=None) -> Path:
        """A copy of a trained run of fw (default: the framework under test) in tmp."""
        dst = self.tmp / f"run-{fw or self.fw}"
        if not dst.exists():
            shutil.copytree(self.trained(fw or self.fw), dst)
        return dst

    def trained_copy(self, *flags, spoil) -> Path:
        """A copy of the run trained with flags, spoiled by spoil(run_dir)."""
        dst = self.tmp / "run-flags"
        shutil.copytree(self.trained(self.fw, *flags), dst)
        spoil(dst)
        return dst

    def other_fw(self) -> str:
        return FRAMEWORKS[(FRAMEWORKS.index(self.fw) + 1) % 3]


@dataclass
class Case:
    name: str
    build: Callable[[Ctx], list]         # argv of the command
    message: str                         # what the one line on stderr must contain
    frameworks: tuple = FRAMEWORKS       # where this way of spoiling the input exists

    def __repr__(self):
        return self.name


def snapshot(d: Path) -> dict:
    """Every entry below d: a file's sha256, or "dir"; so nothing changed and nothing new."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def visible_lines(err: str) -> list[str]:
    """The lines a terminal would show: a progress bar redrawn with \\r and then cleared
    (tqdm's leave=False) leaves nothing."""
    return [s for s in (line.rsplit("\r", 1)[-1] for line in err.split("\n")) if s.strip()]


# ----------------------------------------------------------------------------------------
# Ways to spoil a file.

def cut(path: Path, keep: float = 0.5) -> None:
    b = path.read_bytes()
    path.write_bytes(b[:int(len(b) * keep)])


def flip(path: Path) -> None:
    """Overwrite 16 bytes in the middle: the length stays, the content is corrupt."""
    b = bytearray(path.read_bytes())
    i = len(b) // 2
    b[i:i + 16] = bytes(255 - x for x in b[i:i + 16])
    path.write_bytes(bytes(b))


def junk(path: Path, n: int = 4096) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(n))


def into_dir(path: Path) -> None:
    """A directory where the file should be."""
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")


def random_npz(path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, a=np.zeros(3))


def touch(path: Path, text: str = "x") -> Path:
    path.write_text(text)
    return path


def edit_json(path: Path, **changes) -> None:
    d = json.loads(path.read_text())
    d.update(changes)
    path.write_text(json.dumps(d))


def killed_before_config(d: Path) -> Path:
    """What a run killed between taking its lock and writing config.json leaves."""
    (d / "samples").mkdir(parents=True)
    (d / "run.lock").write_text("99999     \n")
    return d


def mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def lone_npy(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


def edit_weights(path: Path, edit) -> None:
    """Rewrite a portable file: edit(arrays, header) changes them in place."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays.pop("config")))
    edit(arrays, header)
    with open(path, "wb") as f:
        np.savez(f, config=np.array(json.dumps(header)), **arrays)


def weights_config(path: Path, text: str) -> None:
    """Replace a portable file's config entry with `text`."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k != "config"}
    with open(path, "wb") as f:
        np.savez(f, config=np.array(text), **arrays)


def edit_checkpoint(fw: str, path: Path, what: str) -> None:
    """Rewrite fw's checkpoint (pytorch or jax) with the generator's first kernel in
    float64 (what="dtype") or the step as a string (what="step")."""
    if fw == "pytorch":
        import torch
        state = torch.load(path, weights_only=True)
        k = "main.g1.conv.weight"
        if what == "dtype":
            state["generator"][k] = state["generator"][k].double()
        else:
            state["step"] = "2"
        torch.save(state, path)
    elif fw == "jax":
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        k = "generator/main/g1/conv/kernel"
        if what == "dtype":
            arrays[k] = arrays[k].astype(np.float64)
        else:
            arrays["step"] = np.array("2")
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    else:
        raise ValueError(f"no {what} to spoil in a {fw} checkpoint")


# ----------------------------------------------------------------------------------------
# train: --out, --resume (the run directory, its config.json, checkpoint, metrics.csv and
# samples/), --data-dir and the files in it.

def new_run(c: Ctx, *flags, out=None) -> list:
    return helpers.TINY + ["--max-steps", "2", "--out", str(out or c.tmp / "new"), *flags]


def resume(run: Path) -> list:
    return ["--resume", str(run), "--max-steps", "4"]


def spoiled_run(spoil) -> Callable[[Ctx], list | None]:
    """A copy of a trained run, spoiled by spoil(ctx, run_dir), resumed."""
    def build(c):
        run = c.run()
        spoil(c, run)
        return resume(run)
    return build


def with_data(dataset: str, make) -> Callable[[Ctx], list]:
    """A new run of `dataset` from tmp/data, which make(data_dir) fills."""
    def build(c):
        d = c.tmp / "data"
        d.mkdir()
        make(d)
        return new_run(c, "--dataset", dataset, "--data-dir", str(d))
    return build


def images(folder: Path, n: int) -> None:
    for i in range(n):
        data.Image.fromarray(np.full((20, 20, 3), i * 10, np.uint8)).save(folder / f"{i}.png")


def idx_file(d: Path, write) -> None:
    (d / "mnist").mkdir()
    write(d / "mnist" / "train-images-idx3-ubyte.gz")


def cifar_archive(d: Path) -> None:
    """A truncated cifar-10-python.tar.gz (a real tar.gz of two fake batches, cut in half)."""
    import tarfile
    src = d / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    for i in (1, 2):
        (src / f"data_batch_{i}").write_bytes(np.random.default_rng(i).bytes(50_000))
    with tarfile.open(d / "cifar-10-python.tar.gz", "w:gz") as t:
        t.add(src, arcname="cifar-10-batches-py")
    shutil.rmtree(d / "src")
    cut(d / "cifar-10-python.tar.gz")


def cifar_batches(d: Path) -> None:
    """cifar-10-batches-py whose first batch is a pickle of something else."""
    (d / "cifar-10-batches-py").mkdir()
    for i in range(1, 6):
        (d / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(pickle.dumps([1, 2, 3]))


def init_weights(make) -> Callable[[Ctx], list]:
    """A new run with --init-weights tmp/init.npz, which make(ctx, path) writes."""
    def build(c):
        w = c.tmp / "init.npz"
        make(c, w)
        return new_run(c, "--init-weights", str(w))
    return build


def copy_weights(spoil=None):
    """The framework's own good weights.npz, spoiled by spoil(path) if given."""
    def make(c, w):
        shutil.copy(c.run() / "weights.npz", w)
        if spoil:
            spoil(w)
    return make


def numpy_weights(**network):
    """Portable weights of TINY's network changed by `network` (arch, channels, ...), drawn
    in NumPy by common.weights.initial: a file train would write for that network."""
    def make(c, w):
        cfg = Config(arch="dcgan", image_size=16, channels=1, nz=16, ngf=8, ndf=8)
        cfg = dataclasses.replace(cfg, **network)
        weights.save(w, cfg, weights.initial(cfg, 0), framework="numpy", step=0, z_dist="normal")
    return make


def first_value_nan(w: Path) -> None:
    def edit(arrays, header):
        k = first_kernel(arrays)
        arrays[k] = arrays[k].copy()
        arrays[k].flat[0] = np.nan
    edit_weights(w, edit)


TRAIN_CASES = [
    # --out
    Case("out under /proc", lambda c: new_run(c, out=UNDER_PROC), "cannot create the run directory"),
    Case("out below a file", lambda c: new_run(c, out=touch(c.tmp / "f.txt") / "run"),
         "cannot create the run directory"),
    Case("out is a file", lambda c: new_run(c, out=touch(c.tmp / "f.txt")), "is a file"),
    Case("out is a run already", lambda c: new_run(c, out=c.run()), "already exists and is not empty"),
    # --resume: the directory
    Case("resume a missing directory", lambda c: resume(c.tmp / "nope"), "no such run directory"),
    Case("resume a file", lambda c: resume(touch(c.tmp / "f.txt")), "not a directory"),
    Case("resume a directory with nothing of a run's", lambda c: resume(mkdir(c.tmp / "empty")),
         "config.json not found"),
    Case("resume a run killed before it wrote config.json",
         lambda c: resume(killed_before_config(c.tmp / "killed")),
         "the run there was stopped before it wrote its config.json; start it again with its flags and --out"),
    # config.json
    Case("config.json missing", spoiled_run(lambda c, r: (r / "config.json").unlink()),
         "config.json not found"),
    Case("config.json a directory", spoiled_run(lambda c, r: into_dir(r / "config.json")),
         "config.json is not a file"),
    Case("config.json truncated", spoiled_run(lambda c, r: cut(r / "config.json")),
         "is not a valid config file"),
    Case("config.json not text", spoiled_run(lambda c, r: junk(r / "config.json")),
         "is not a valid config file"),
    Case("config.json a list", spoiled_run(lambda c, r: touch(r / "config.json", "[1, 2]")),
         "a JSON list, not an object"),
    Case("config.json a size as a string",
         spoiled_run(lambda c, r: edit_json(r / "config.json", image_size="16")), "image_size is '16'"),
    Case("config.json a batch size of 0",
         spoiled_run(lambda c, r: edit_json(r / "config.json", batch_size=0)), "batch_size must be"),
    Case("config.json an unknown dataset",
         spoiled_run(lambda c, r: edit_json(r / "config.json", dataset="imagenet")), "dataset is 'imagenet'"),
    # the checkpoint
    # a run that got past its first checkpoint: not started again from step 0 (issue 25)
    Case("checkpoint missing", spoiled_run(lambda c, r: (r / c.ckpt).unlink()),
         "there, though the run saved one (it has weights.npz)"),
    Case("checkpoint missing, no weights.npz, rows of epoch 2",
         lambda c: resume(c.trained_copy("--max-steps", "9", spoil=lambda r: [(r / n).unlink() for n in (c.ckpt, "weights.npz")])),
         "there, though the run saved one (metrics.csv has rows of epoch 2)"),
    Case("checkpoint a directory", spoiled_run(lambda c, r: into_dir(r / c.ckpt)), "is not a file"),
    Case("checkpoint empty", spoiled_run(lambda c, r: (r / c.ckpt).write_bytes(b"")),
         "cannot restore this checkpoint"),
    Case("checkpoint truncated", spoiled_run(lambda c, r: cut(r / c.ckpt)), "cannot restore this checkpoint"),
    Case("checkpoint cut near its end", spoiled_run(lambda c, r: cut(r / c.ckpt, 0.99)),
         "cannot restore this checkpoint"),
    Case("checkpoint with bytes flipped", spoiled_run(lambda c, r: flip(r / c.ckpt)),
         "cannot restore this checkpoint"),
    Case("checkpoint junk", spoiled_run(lambda c, r: junk(r / c.ckpt)), "cannot restore this checkpoint"),
    Case("checkpoint a random npz", spoiled_run(lambda c, r: random_npz(r / c.ckpt)),
         "cannot restore this checkpoint"),
    Case("checkpoint of another framework, renamed",
         spoiled_run(lambda c, r: shutil.copy(c.run(c.other_fw()) / CHECKPOINTS[c.other_fw()], r / c.ckpt)),
         "cannot restore this checkpoint"),
    Case("checkpoint of another network (ngf 4)",
         spoiled_run(lambda c, r: shutil.copy(c.trained(c.fw, "--ngf", "4", "--max-steps", "1") / c.ckpt,
                                              r / c.ckpt)),
         "cannot restore this checkpoint"),
    # the same shapes, another run: it would load without a word (issue 25)
    Case("checkpoint of another run of the same shapes (seed 1, lr 0.001)",
         spoiled_run(lambda c, r: shutil.copy(c.trained(c.fw, "--seed", "1", "--lr", "0.001", "--max-steps", "2")
                                              / c.ckpt, r / c.ckpt)),
         "is another run's checkpoint: lr 0.001 (this run: 0.0002), seed 1 (this run: 0); put back "
         "this run's own checkpoint"),
    # Keras casts what it loads to the variable's dtype and keeps its step in the optimizer
    Case("checkpoint with a float64 kernel", spoiled_run(lambda c, r: edit_checkpoint(c.fw, r / c.ckpt, "dtype")),
         "the model needs float32", ("pytorch", "jax")),
    Case("checkpoint with a string step", spoiled_run(lambda c, r: edit_checkpoint(c.fw, r / c.ckpt, "step")),
         "no step in it", ("pytorch", "jax")),
    # the rest of the run directory
    Case("metrics.csv not ours", spoiled_run(lambda c, r: touch(r / "metrics.csv", "a,b\n1,2\n")),
         "not a metrics.csv of train"),
    Case("metrics.csv a directory", spoiled_run(lambda c, r: into_dir(r / "metrics.csv")), "cannot read it"),
    Case("metrics.csv a bad row inside",
         spoiled_run(lambda c, r: touch(r / "metrics.csv", (r / "metrics.csv").read_text().replace("\n1,", "\nx,", 1))),
         "line 2 is not a row of metrics"),
    Case("samples a file", spoiled_run(lambda c, r: (shutil.rmtree(r / "samples"), touch(r / "samples"))),
         "samples there is not a directory"),
    # --data-dir and the dataset's files
    Case("folder missing", lambda c: new_run(c, "--dataset", "folder", "--data-dir", str(c.tmp / "nope")),
         "is not a directory"),
    Case("folder a file", lambda c: new_run(c, "--dataset", "folder", "--data-dir", str(touch(c.tmp / "f.txt"))),
         "is not a directory"),
    Case("folder without images", with_data("folder", lambda d: touch(d / "notes.txt")), "no images"),
    Case("folder with a broken image", with_data("folder", lambda d: (images(d, 3), junk(d / "3.png", 100))),
         "3.png: not a readable image"),
    Case("folder with too few images", with_data("folder", lambda d: images(d, 3)),
         "fewer than --batch-size 64"),
    Case("mnist IDX file truncated",
         with_data("mnist", lambda d: idx_file(d, lambda p: (data.write_idx(p, np.zeros((100, 28, 28))), cut(p)))),
         "train-images-idx3-ubyte.gz: cannot read"),
    Case("mnist IDX file junk", with_data("mnist", lambda d: idx_file(d, lambda p: junk(p))),
         "train-images-idx3-ubyte.gz: cannot read"),
    Case("mnist IDX file of labels",
         with_data("mnist", lambda d: idx_file(d, lambda p: data.write_idx(p, np.zeros(100)))),
         "not images (N, rows, cols)"),
    Case("cifar10 archive truncated", with_data("cifar10", cifar_archive), "cannot unpack it"),
    Case("cifar10 batch of something else", with_data("cifar10", cifar_batches), "data_batch_1: missing or corrupt"),
    Case("celeba missing", lambda c: new_run(c, "--dataset", "celeba", "--data-dir", str(c.tmp)),
         "CelebA not found"),
    # --init-weights
    Case("init weights missing", lambda c: new_run(c, "--init-weights", str(c.tmp / "nope.npz")),
         "nope.npz: no such weights file"),
    Case("init weights a directory", lambda c: new_run(c, "--init-weights", str(mkdir(c.tmp / "w.npz"))),
         "not a file; give the weights.npz of a run directory"),
    Case("init weights junk", init_weights(lambda c, w: junk(w)), "not a portable weights file"),
    Case("init weights a lone .npy", init_weights(lambda c, w: lone_npy(w)), "not an .npz archive"),
    Case("init weights a random npz", init_weights(lambda c, w: random_npz(w)), "format None"),
    Case("init weights a training checkpoint", init_weights(lambda c, w: shutil.copy(c.run() / c.ckpt, w)),
         "not a portable weights file"),
    Case("init weights of another width",
         init_weights(lambda c, w: shutil.copy(c.trained(c.fw, "--ngf", "4", "--max-steps", "1") / "weights.npz", w)),
         "holds another network than this run's: ngf 4 (wanted 8); train from it with --ngf 4"),
    Case("init weights of another arch", init_weights(numpy_weights(arch="paper")),
         "arch paper (wanted dcgan); train from it with --arch paper,"),
    Case("init weights of another dataset's channels", init_weights(numpy_weights(channels=3)),
         "channels 3 (wanted 1); train from it on a --dataset of 3 channels"),
    Case("init weights with a kernel of another shape",
         init_weights(copy_weights(lambda w: edit_weights(
             w, lambda a, h: a.update({first_kernel(a): np.zeros((1, 2, 3, 4), np.float32)})))),
         "has shape (1, 2, 3, 4)"),
    Case("init weights not finite", init_weights(copy_weights(first_value_nan)),
         "holds NaN or infinite values"),
    Case("init weights of another z distribution",
         lambda c: new_run(c, "--z-dist", "uniform", "--init-weights", str(c.run() / "weights.npz")),
         "was trained with --z-dist normal, this run draws uniform: pass --z-dist normal"),
    Case("init weights with --resume",
         lambda c: resume(c.run()) + ["--init-weights", str(c.run() / "weights.npz")],
         "--init-weights starts a new run; --resume continues one"),
]


# ----------------------------------------------------------------------------------------
# sample: --weights, --noise, --out. Every case has an earlier output at tmp/out.png that
# must survive the failed command byte for byte.

def sample(c: Ctx, weights_path=None, *flags, out=None) -> list:
    touch(c.tmp / "out.png", "the picture an earlier command wrote")
    return ["--weights", str(weights_path or good_weights(c)), "--out", str(out or c.tmp / "out.png"), *flags]


def good_weights(c: Ctx) -> Path:
    return c.run() / "weights.npz"


def spoiled_weights(spoil) -> Callable[[Ctx], list]:
    def build(c):
        w = c.tmp / "w.npz"
        shutil.copy(good_weights(c), w)
        spoil(w)
        return sample(c, w)
    return build


def noise(make) -> Callable[[Ctx], list]:
    """sample with --noise tmp/z.npy, written by make(path)."""
    def build(c):
        z = c.tmp / "z.npy"
        make(z)
        return sample(c, None, "--noise", str(z))
    return build


def first_kernel(arrays) -> str:
    return next(k for k in arrays if k.endswith(".kernel"))


SAMPLE_CASES = [
    # --weights
    Case("weights missing", lambda c: sample(c, c.tmp / "nope.npz"), "no such weights file"),
    Case("weights a directory", lambda c: sample(c, mkdir(c.tmp / "w.npz")), "not a file"),
    Case("weights empty", spoiled_weights(lambda w: w.write_bytes(b"")), "not a portable weights file"),
    Case("weights truncated", spoiled_weights(cut), "not a portable weights file"),
    Case("weights with bytes flipped", spoiled_weights(flip), "not a portable weights file"),
    Case("weights junk", spoiled_weights(junk), "not a portable weights file"),
    Case("weights a lone .npy", spoiled_weights(lone_npy), "not an .npz archive"),
    Case("weights a random npz", spoiled_weights(random_npz), "format None"),
    Case("weights a training checkpoint", lambda c: sample(c, c.run() / c.ckpt), "not a portable weights file"),
    Case("weights whose config is a list", spoiled_weights(lambda w: weights_config(w, "[1, 2]")),
         "not a portable weights file"),
    Case("weights whose config is not JSON", spoiled_weights(lambda w: weights_config(w, "{no")),
         "not a portable weights file"),
    Case("weights whose config has no network",
         spoiled_weights(lambda w: edit_weights(w, lambda a, h: [h.pop(k) for k in weights.NETWORK_KEYS])),
         "does not describe a network (no arch)"),
    Case("weights of an impossible network (28 px)",
         spoiled_weights(lambda w: edit_weights(w, lambda a, h: h.update(image_size=28))), "cannot be made"),
    Case("weights whose width is a string",
         spoiled_weights(lambda w: edit_weights(w, lambda a, h: h.update(ngf="8"))), "ngf is '8'"),
    Case("weights of integers",
         spoiled_weights(lambda w: edit_weights(w, lambda a, h: a.update({k: v.astype(np.int32) for k, v in a.items()}))),
         "not floating-point numbers"),
    Case("weights with a kernel of another shape",
         spoiled_weights(lambda w: edit_weights(w, lambda a, h: a.update({first_kernel(a): np.zeros((1, 2, 3, 4), np.float32)}))),
         "has shape (1, 2, 3, 4)"),
    Case("weights without a kernel",
         spoiled_weights(lambda w: edit_weights(w, lambda a, h: a.pop(first_kernel(a)))), "is missing"),
    # --noise
    Case("noise missing", lambda c: sample(c, None, "--noise", str(c.tmp / "nope.npy")), "cannot read it as .npy"),
    Case("noise a directory", noise(lambda z: z.mkdir()), "cannot read it as .npy"),
    Case("noise truncated", noise(lambda z: (np.save(z, np.zeros((6, 16), np.float32)), cut(z))),
         "cannot read it as .npy"),
    Case("noise empty file", noise(lambda z: z.write_bytes(b"")), "cannot read it as .npy"),
    Case("noise of pickled objects", noise(lambda z: np.save(z, np.array([{}], object), allow_pickle=True)),
         "cannot read it as .npy"),
    Case("noise an .npz", noise(lambda z: random_npz(z)), "not a .npy file"),
    Case("noise junk", noise(junk), "not a .npy file"),
    Case("noise of another nz", noise(lambda z: np.save(z, np.zeros((4, 7), np.float32))), "shape (N, 16)"),
    Case("noise with no rows", noise(lambda z: np.save(z, np.zeros((0, 16), np.float32))), "shape (N, 16)"),
    Case("noise of strings", noise(lambda z: np.save(z, np.full((4, 16), "a"))), "holds <U1 values"),
    Case("noise of integers", noise(lambda z: np.save(z, np.zeros((4, 16), np.int64))), "holds int64 values"),
    Case("noise not finite", noise(lambda z: np.save(z, np.full((4, 16), np.nan, np.float32))), "holds NaN or infinite values"),
    # --out
    Case("out of another kind", lambda c: sample(c, None, out=c.tmp / "out.jpg"), "must end in .png or .npy"),
    Case("out in a missing directory", lambda c: sample(c, None, out=c.tmp / "nope" / "x.png"), "does not exist"),
    Case("out below a file", lambda c: sample(c, None, out=touch(c.tmp / "f.txt") / "x.png"), "f.txt is not a directory"),
    Case("out a directory", lambda c: sample(c, None, out=mkdir(c.tmp / "x.png")), "is a directory"),
    Case("out .png under /proc", lambda c: sample(c, None, out="/proc/dcgan-test.png"), "cannot write it"),
    Case("out .npy under /proc", lambda c: sample(c, None, out="/proc/dcgan-test.npy"), "cannot write it"),
    # --walk
    Case("walk of one image", lambda c: sample(c, None, "--walk", "1"), "--walk: must be from 2"),
    Case("gif without --walk", lambda c: sample(c, None, out=c.tmp / "x.gif"), "add --walk K"),
    Case("walk to another kind", lambda c: sample(c, None, "--walk", "3", out=c.tmp / "x.jpg"),
         "must end in .png, .npy or .gif"),
    Case("walk from an odd number of --noise rows",
         lambda c: (np.save(c.tmp / "z.npy", np.zeros((3, 16), np.float32)),
                    sample(c, None, "--noise", str(c.tmp / "z.npy"), "--walk", "4"))[1], "give an even number"),
    Case("walk gif under /proc", lambda c: sample(c, None, "--walk", "3", out="/proc/dcgan-test.gif"), "cannot write it"),
]


# ----------------------------------------------------------------------------------------

def check(module: str, c: Ctx, case: Case, capsys) -> None:
    argv = case.build(c)
    before = snapshot(c.tmp)
    main = importlib.import_module(module).main
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "Traceback" not in err
    lines = visible_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith(("error: ", f"python -m {module}: error: ")), lines[0]
    assert case.message in lines[0], lines[0]
    assert snapshot(c.tmp) == before, "the failed command changed files"


def per_framework(cases):
    return [pytest.param(fw, case, id=f"{fw}-{case.name}") for case in cases for fw in case.frameworks]


@pytest.mark.parametrize("fw,case", per_framework(TRAIN_CASES))
def test_train_refuses_bad_input(fw, case, tmp_path, trained, capsys):
    check(f"{fw}_impl.train", Ctx(tmp_path, fw, trained), case, capsys)


@pytest.mark.parametrize("fw,case", per_framework(SAMPLE_CASES))
def test_sample_refuses_bad_input(fw, case, tmp_path, trained, capsys):
    check(f"{fw}_impl.sample", Ctx(tmp_path, fw, trained), case, capsys)


# ----------------------------------------------------------------------------------------
# The two reported cases from the real command line: no traceback there either.

def one_error_line(r, module: str, message: str) -> None:
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = visible_lines(r.stderr)
    assert lines and lines[-1].startswith("error: ") and message in lines[-1], r.stderr[-3000:]


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_out_under_proc_from_the_command_line(fw):
    r = run_cli(f"{fw}_impl.train", *helpers.TINY, "--max-steps", "1", "--out", UNDER_PROC)
    one_error_line(r, f"{fw}_impl.train", "cannot create the run directory")


def test_truncated_jax_checkpoint_from_the_command_line(tmp_path, trained):
    run = Ctx(tmp_path, "jax", trained).run()
    cut(run / "checkpoint.npz")
    before = snapshot(run)
    r = run_cli("jax_impl.train", "--resume", str(run), "--max-steps", "4")
    one_error_line(r, "jax_impl.train", "cannot restore this checkpoint (File is not a zip file)")
    assert snapshot(run) == before
