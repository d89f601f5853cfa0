"""Portable weights: one .npz file that every implementation writes and reads.

Layout (format "dcgan-portable-v1"), one float32 array per key, under the spec's names:

    {net}.{layer}.kernel        (kh, kw, in, out)   see below
    {net}.{layer}.bias          (out,)              only for layers with bias
    {net}.{layer}.gamma         (out,)              BatchNorm scale
    {net}.{layer}.beta          (out,)              BatchNorm shift
    {net}.{layer}.running_mean  (out,)              BatchNorm statistics
    {net}.{layer}.running_var   (out,)              (unbiased batch variance averaged in)
    config                      a JSON string: the network's config and provenance

net is "generator" or "discriminator", layer the spec's name ("g1", "d3", ...).

The kernel K[i, j, c, o] means, with stride s and padding p of the spec, for a `conv`
(cross-correlation, which all three frameworks compute):
    out[y, x, o] = sum_{i, j, c} in[y*s - p + i, x*s - p + j, c] * K[i, j, c, o]
and for a `conv_transpose` (each input pixel scatters a copy of the kernel):
    out[y*s - p + i, x*s - p + j, o] += in[y, x, c] * K[i, j, c, o]
which is PyTorch's ConvTranspose2d. In PyTorch terms: Conv2d.weight (o, c, i, j) is
K.transpose(3, 2, 0, 1); ConvTranspose2d.weight (c, o, i, j) is K.transpose(2, 3, 0, 1).
A conv_transpose with output padding q crops p rows and columns at the top and left but
only p - q at the bottom and right (PyTorch's output_padding adds them at the end).

A fully connected (`linear`) layer's kernel is (in, out): out[o] = sum_i in[i] K[i, o]
(+ bias[o]), which is Linear.weight.T in PyTorch and the Dense kernel of Flax and Keras.
Where its input is a feature map, the map is flattened in (H, W, C) order: i = (y * W +
x) * C + c. Where its output is viewed as a map, o is read in the same (H, W, C) order,
and so are the BatchNorm vectors of a layer that normalises those features one by one.
This is the order Flax and Keras get from a plain reshape of their (N, H, W, C) arrays;
PyTorch's `x.view(N, -1)` of an (N, C, H, W) tensor flattens in (C, H, W) order instead,
so pytorch_impl permutes the rows (or columns) of such a kernel as it converts it. A
kernel that skipped that permutation would load without error and compute another
network: the classic porting bug, which the cross-framework tests would catch.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .config import INIT_STD, Config, UserError, saved_config_problem
from .spec import ARCHITECTURES, Layer, discriminator_spec, generator_spec

FORMAT = "dcgan-portable-v1"
NETWORK_KEYS = ("arch", "image_size", "channels", "nz", "ngf", "ndf")
RUNNING_STATS = (".running_mean", ".running_var")   # BatchNorm state, not parameters


def expected_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """Every key of a portable file for cfg's networks and the shape it must have."""
    shapes = {}
    for net, layers in (("generator", generator_spec(cfg)), ("discriminator", discriminator_spec(cfg))):
        for l in layers:
            shapes.update(layer_shapes(f"{net}.{l.name}", l))
    return shapes


def layer_shapes(prefix: str, l: Layer) -> dict[str, tuple[int, ...]]:
    s = {f"{prefix}.kernel": l.kernel_shape}
    if l.bias:
        s[f"{prefix}.bias"] = (l.out_ch,)
    if l.batchnorm:
        for k in ("gamma", "beta", "running_mean", "running_var"):
            s[f"{prefix}.{k}"] = (l.norm_features,)
    return s


def chw_to_hwc(chw: tuple[int, int, int]) -> np.ndarray:
    """For features that PyTorch lays out as a (C, H, W) map flattened: the index array
    that puts them in the portable (H, W, C) order, portable = pytorch[chw_to_hwc(...)]."""
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


def running_stats(arrays: dict, net: str) -> dict:
    """The BatchNorm running means and variances of one network ("generator" or
    "discriminator"): the state a training step changes besides the weights."""
    return {k: v for k, v in arrays.items()
            if k.startswith(net + ".") and k.endswith(RUNNING_STATS)}


def network_config(cfg: Config) -> dict:
    return {k: getattr(cfg, k) for k in NETWORK_KEYS}


def network_diff(saved: dict, cfg: Config) -> str:
    """'ngf 4 (wanted 8), ...' for each network key where a saved config differs from cfg."""
    return ", ".join(f"{k} {saved.get(k)} (wanted {getattr(cfg, k)})" for k in NETWORK_KEYS
                     if saved.get(k) != getattr(cfg, k))


def save(path: str | Path, cfg: Config, arrays: dict[str, np.ndarray], **meta) -> None:
    """Check every array against the spec, then write the file atomically."""
    shapes = expected_shapes(cfg)
    missing, extra = shapes.keys() - arrays.keys(), arrays.keys() - shapes.keys()
    if missing or extra:
        raise ValueError(f"portable weights: missing {sorted(missing)}, unexpected {sorted(extra)}")
    for k, shape in shapes.items():
        if tuple(arrays[k].shape) != shape:
            raise ValueError(f"portable weights: {k} has shape {arrays[k].shape}, spec says {shape}")
    header = {"format": FORMAT, **network_config(cfg), **meta}
    out = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    out["config"] = np.array(json.dumps(header))
    # runfiles.atomic_save's way (tmp-<name> beside it, removed if the write fails: a full
    # disk leaves nothing behind), written out here because runfiles imports this module
    path = Path(path)
    tmp = path.with_name("tmp-" + path.name)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **out)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: str | Path, cfg: Config | None = None) -> tuple[Config, dict[str, np.ndarray], dict]:
    """Read a portable file. Returns (network Config, arrays, header). If cfg is given, the
    file must hold that network; every array's shape is checked against the spec."""
    path = Path(path)
    fix = "give the weights.npz of a run directory"
    if not path.is_file():
        raise UserError(f"{path}: " + (f"not a file; {fix}" if path.exists() else "no such weights file"))
    try:
        with open(path, "rb") as f:       # else np.load tries a pickle, and says so
            if f.read(4) != b"PK\x03\x04":
                raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: not a portable weights file ({e}); {fix}") from None
    try:
        header = json.loads(str(arrays.pop("config")))
    except (KeyError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        what = header.get("format") if isinstance(header, dict) else None
        raise UserError(f"{path}: not a portable weights file (format {what!r}, expected "
                        f"{FORMAT!r}); {fix}")
    net = {k: header.get(k) for k in NETWORK_KEYS}
    problem = (next((f"no {k}" for k, v in net.items() if v is None), None)
               or saved_config_problem({k: v for k, v in net.items() if k != "arch"})
               or (None if isinstance(net["arch"], str) and net["arch"] in ARCHITECTURES else f"arch {net['arch']!r} is unknown"))
    if problem:
        raise UserError(f"{path}: its config does not describe a network ({problem}); {fix}")
    file_cfg = Config(**net)
    if cfg is not None and network_diff(header, cfg):
        raise UserError(f"{path} holds another network: {network_diff(header, cfg)}")
    try:
        shapes = expected_shapes(file_cfg)
    except UserError as e:
        raise UserError(f"{path}: its config does not describe a network ({e})") from None
    for k, shape in shapes.items():
        a = arrays.get(k)
        if a is None:
            raise UserError(f"{path}: array {k} is missing")
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            raise UserError(f"{path}: {k} holds {getattr(a, 'dtype', type(a).__name__)}, not "
                            "floating-point numbers (the format stores float32)")
        if a.shape != shape:
            raise UserError(f"{path}: {k} has shape {a.shape}, its config needs {shape}")
    return file_cfg, {k: arrays[k].astype(np.float32) for k in shapes}, header


# ----------------------------------------------------------------------------------------
# Where a run's weights come from when it does not draw them itself.

FLAGS = {"arch": "--arch", "image_size": "--image-size", "nz": "--nz", "ngf": "--ngf", "ndf": "--ndf"}


def load_init(path: str | Path, cfg: Config) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays of `train --init-weights FILE` and the file's header, checked against the
    run's config: the same network (arch and every size), the same z distribution where
    the file records one, and every value finite. Each problem is one UserError that says
    what to do."""
    try:
        _, arrays, header = load(path)
    except UserError as e:
        raise UserError(f"--init-weights {e}") from None
    diff = network_diff(header, cfg)
    if diff:
        flags = [f"{FLAGS[k]} {header[k]}" for k in FLAGS if header[k] != getattr(cfg, k)]
        fix = [f"with {' '.join(flags)}"] if flags else []
        if header["channels"] != cfg.channels:
            n = header["channels"]
            fix.append(f"on a --dataset of {n} channel{'s' * (n > 1)}")
        raise UserError(f"--init-weights {path} holds another network than this run's: {diff}; "
                        f"train from it {' and '.join(fix)}, or give weights of this network")
    z_dist = header.get("z_dist")
    if z_dist is not None and z_dist != cfg.z_dist:
        raise UserError(f"--init-weights {path} was trained with --z-dist {z_dist}, this run "
                        f"draws {cfg.z_dist}: pass --z-dist {z_dist} to train from it")
    shapes = expected_shapes(cfg)           # load checked the file against its own header
    for k, a in arrays.items():
        if a.shape != shapes[k]:
            raise UserError(f"--init-weights {path}: {k} has shape {a.shape}, this run needs {shapes[k]}")
        if not np.isfinite(a).all():
            raise UserError(f"--init-weights {path}: {k} holds NaN or infinite values; give "
                            "the weights.npz of a run that did not diverge")
    return arrays, header


def initial(cfg: Config, seed: int) -> dict[str, np.ndarray]:
    """The DCGAN paper's initialisation (section 4) drawn in NumPy, in the portable layout:
    kernels ~ N(0, 0.02), biases 0, BatchNorm gamma ~ N(1, 0.02), beta 0, and the running
    statistics of a fresh BatchNorm (mean 0, variance 1). It is the distribution every
    model.py draws from, with NumPy's generator instead of a framework's, so that no
    framework's own random numbers are favoured when all three start from one file."""
    rng = np.random.default_rng([seed, 4])
    out = {}
    for key, shape in expected_shapes(cfg).items():
        kind = key.rsplit(".", 1)[1]
        if kind == "kernel":
            out[key] = rng.normal(0.0, INIT_STD, shape).astype(np.float32)
        elif kind == "gamma":
            out[key] = rng.normal(1.0, INIT_STD, shape).astype(np.float32)
        elif kind == "running_var":
            out[key] = np.ones(shape, np.float32)
        else:                                 # bias, beta, running_mean
            out[key] = np.zeros(shape, np.float32)
    return out
