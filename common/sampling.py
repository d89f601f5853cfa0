"""What the three `sample` commands share: the z they give the generator, and the file they
write. Each `<fw>_impl/sample.py` only runs its framework's G on these z.

    plain   --n N --seed S (or --noise z.npy): N images, (N, H, W, C)
    --walk K                                   N walks of K images, (N, K, H, W, C)

A latent walk (the DCGAN paper, section 6.1: "walking in the latent space") is K images
along the way from one z to another: smooth changes from one image to the next say the
generator has learnt a space, abrupt jumps that it has memorised images. The path depends
on how z was drawn (the weights file's z_dist):

- z ~ N(0, 1) (`normal`): spherical (slerp). In nz dimensions a Gaussian z lies near the
  sphere of radius sqrt(nz); the straight line between two of them cuts inside it (its
  midpoint is about 1/sqrt(2) as long as they are), where G met almost no z in training.
  Slerp turns from one to the other along the great circle and takes the length from
  one to the other, so every point is a z of typical length.
- z ~ U(-1, 1) (`uniform`): linear. The cube holds the whole segment between two of its
  points, and a straight line is what G has seen; slerp would leave the cube.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from . import runfiles
from .config import UserError
from .data import draw_z, load_noise

GIF_MS = 120          # per frame of a walk's animation


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation, rows of z0 (W, nz) to rows of z1 at the fractions t (K,):
    (W, K, nz). The angle between the two directions is split by t and the length goes
    linearly from |z0| to |z1|; where the two point the same way it is the straight line."""
    z0, z1, t = (np.asarray(a, np.float64) for a in (z0, z1, t))
    n0 = np.linalg.norm(z0, axis=1, keepdims=True)
    n1 = np.linalg.norm(z1, axis=1, keepdims=True)
    u0, u1 = z0 / n0, z1 / n1
    omega = np.arccos(np.clip((u0 * u1).sum(1, keepdims=True), -1.0, 1.0))[:, None]  # (W, 1, 1)
    t = t[None, :, None]
    small = np.sin(omega) < 1e-6                          # the same direction (or opposite)
    so = np.where(small, 1.0, np.sin(omega))
    a = np.where(small, 1 - t, np.sin((1 - t) * omega) / so)
    b = np.where(small, t, np.sin(t * omega) / so)
    direction = a * u0[:, None] + b * u1[:, None]
    length = (1 - t) * n0[:, None] + t * n1[:, None]
    return direction / np.linalg.norm(direction, axis=2, keepdims=True) * length


def lerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation: (W, nz), (W, nz), (K,) -> (W, K, nz)."""
    z0, z1, t = (np.asarray(a, np.float64) for a in (z0, z1, t))
    return (1 - t[None, :, None]) * z0[:, None] + t[None, :, None] * z1[:, None]


def walk(ends: np.ndarray, steps: int, z_dist: str) -> np.ndarray:
    """(2W, nz) z, taken in pairs (0, 1), (2, 3), ... -> (W, steps, nz) float32, each walk
    from the first of its pair (t = 0) to the second (t = 1) in `steps` equal steps of t."""
    t = np.linspace(0.0, 1.0, steps)
    path = slerp if z_dist == "normal" else lerp
    return path(ends[0::2], ends[1::2], t).astype(np.float32)


def noise(args, nz: int, z_dist: str) -> np.ndarray:
    """The z of a `sample` command: (N, nz), or (walks, K, nz) with --walk K. The ends of
    the walks are drawn from --seed (2 per walk, as the plain samples are), or are the
    rows of --noise in pairs."""
    if not args.walk:
        return load_noise(args, nz, z_dist)
    if args.noise is None:
        ends = draw_z(np.random.default_rng(args.seed), 2 * args.n, nz, z_dist)
    else:
        ends = load_noise(args, nz, z_dist)
        if len(ends) % 2:
            raise UserError(f"--noise {args.noise}: --walk takes its rows in pairs (start, "
                            f"end), and it has {len(ends)}: give an even number")
    return walk(ends, args.walk, z_dist)


def save(images: np.ndarray, out: str | Path) -> str:
    """Write what `sample --out` asks for; returns what was written, in words. images:
    (N, H, W, C) -> a grid (.png) or the array (.npy); (walks, K, H, W, C) -> a grid with
    one row per walk (.png), the array (.npy) or an animation (.gif) whose frame k holds
    image k of every walk, there and back."""
    out = Path(out)
    if images.ndim == 4:
        runfiles.save_images(images, out)
        return f"{len(images)} images of {images.shape[1:]}"
    walks, steps = images.shape[:2]

    def write(tmp):
        if out.suffix == ".npy":
            np.save(tmp, images.astype(np.float32))
        elif out.suffix == ".png":
            runfiles.save_grid(images.reshape(-1, *images.shape[2:]), tmp, nrow=steps)
        else:
            frames = [picture(images[:, k], nrow=min(8, walks)) for k in range(steps)]
            frames += frames[-2:0:-1]                       # and back, so that the loop is smooth
            frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                           duration=GIF_MS, loop=0)
    try:
        runfiles.atomic_save(out, write)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write it ({e.strerror or e}); choose "
                        "another place") from None
    return f"{walks} walks of {steps} images of {images.shape[2:]}"


def picture(images: np.ndarray, nrow: int) -> Image.Image:
    """A grid of (N, H, W, C) images as one frame, doubled in size when small (as
    runfiles.make_gif does)."""
    g = runfiles.grid(images, nrow)
    im = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
    return im.resize((im.width * 2, im.height * 2), Image.NEAREST) if im.width < 256 else im
