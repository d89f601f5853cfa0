"""common/sampling.py: the z of the three sample commands and the files they write, latent
walks included (spherical for Gaussian z, linear for uniform z). That the three frameworks
draw the same walks from the same weights is in tests/test_shipped_weights.py."""
import argparse

import numpy as np
import pytest
from PIL import Image

from common import sampling
from common.config import UserError, parse_sample_args
from common.data import draw_z


def args(**kw):
    a = dict(seed=0, n=3, noise=None, walk=None)
    a.update(kw)
    return argparse.Namespace(**a)


def test_slerp_keeps_the_ends_and_takes_the_length_linearly():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((4, 100)), rng.standard_normal((4, 100))
    t = np.linspace(0, 1, 7)
    path = sampling.slerp(z0, z1, t)
    assert path.shape == (4, 7, 100)
    np.testing.assert_allclose(path[:, 0], z0, atol=1e-12)
    np.testing.assert_allclose(path[:, -1], z1, atol=1e-12)
    n0, n1 = np.linalg.norm(z0, axis=1), np.linalg.norm(z1, axis=1)
    np.testing.assert_allclose(np.linalg.norm(path, axis=2), (1 - t) * n0[:, None] + t * n1[:, None])
    # the angle to z0 grows by equal steps: a great circle, walked at constant speed
    cos = (path * z0[:, None]).sum(2) / np.linalg.norm(path, axis=2) / n0[:, None]
    angles = np.arccos(np.clip(cos, -1, 1))
    np.testing.assert_allclose(np.diff(angles, axis=1), np.repeat(angles[:, -1:] / 6, 6, axis=1), atol=1e-9)


def test_slerp_is_the_textbook_formula_for_vectors_of_equal_length():
    """Shoemake's slerp, sin((1-t)w)/sin w p + sin(tw)/sin w q, on unit vectors."""
    p, q = np.array([[1.0, 0, 0]]), np.array([[0.0, 1, 0]])
    t = np.array([0.25, 0.5])
    w = np.pi / 2
    want = (np.sin((1 - t) * w)[:, None] * p + np.sin(t * w)[:, None] * q) / np.sin(w)
    np.testing.assert_allclose(sampling.slerp(p, q, t)[0], want, atol=1e-12)
    # the straight line's midpoint would be 1/sqrt(2) long: slerp's stays on the sphere
    assert abs(np.linalg.norm(sampling.slerp(p, q, np.array([0.5]))[0, 0]) - 1) < 1e-12


def test_slerp_of_one_direction_is_the_straight_line():
    z0 = np.array([[1.0, 2.0, 2.0]])
    path = sampling.slerp(z0, 3 * z0, np.linspace(0, 1, 5))
    np.testing.assert_allclose(path[0], sampling.lerp(z0, 3 * z0, np.linspace(0, 1, 5))[0], atol=1e-12)
    assert np.isfinite(path).all()


def test_the_walk_follows_the_z_distribution():
    """Gaussian z: slerp (each point of typical length); uniform z: a straight line (which
    stays in the cube, where slerp would not always)."""
    ends = draw_z(np.random.default_rng(1), 6, 100, "normal")
    walk = sampling.walk(ends, 5, "normal")
    assert walk.shape == (3, 5, 100) and walk.dtype == np.float32
    mid = np.linalg.norm(walk[:, 2], axis=1)
    line_mid = np.linalg.norm((ends[0::2] + ends[1::2]) / 2, axis=1)
    assert (mid > 9).all() and (line_mid < 8.5).all()      # sqrt(100) = 10; the line's ~7.1
    ends = draw_z(np.random.default_rng(1), 6, 100, "uniform")
    walk = sampling.walk(ends, 5, "uniform")
    np.testing.assert_allclose(walk[:, 2], (ends[0::2] + ends[1::2]) / 2, atol=1e-6)
    assert np.abs(walk).max() <= 1


def test_walk_ends_are_drawn_from_the_seed_or_read_in_pairs(tmp_path):
    z = sampling.noise(args(walk=4, n=3, seed=9), 16, "normal")
    ends = draw_z(np.random.default_rng(9), 6, 16, "normal")
    np.testing.assert_allclose(z[:, 0], ends[0::2], atol=1e-6)
    np.testing.assert_allclose(z[:, -1], ends[1::2], atol=1e-6)
    np.save(tmp_path / "z.npy", ends[:4])
    z = sampling.noise(args(walk=3, noise=str(tmp_path / "z.npy")), 16, "normal")
    assert z.shape == (2, 3, 16)
    np.testing.assert_allclose(z[1, -1], ends[3], atol=1e-6)
    np.save(tmp_path / "odd.npy", ends[:3])
    with pytest.raises(UserError, match="has 3: give an even number"):
        sampling.noise(args(walk=3, noise=str(tmp_path / "odd.npy")), 16, "normal")
    # no --walk: the plain samples, as before
    assert sampling.noise(args(n=5), 16, "normal").shape == (5, 16)


def test_walk_files_png_one_row_per_walk_npy_and_a_gif_there_and_back(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (3, 5, 8, 8, 1)).astype(np.float32)
    assert sampling.save(images, tmp_path / "w.png") == "3 walks of 5 images of (8, 8, 1)"
    assert Image.open(tmp_path / "w.png").size == (5 * 10 + 2, 3 * 10 + 2)
    sampling.save(images, tmp_path / "w.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), images)
    sampling.save(images, tmp_path / "w.gif")
    gif = Image.open(tmp_path / "w.gif")
    assert gif.n_frames == 2 * 5 - 2
    assert gif.size == (2 * (3 * 10 + 2), 2 * (1 * 10 + 2))     # the 3 walks side by side, doubled
    assert sampling.save(images[0], tmp_path / "p.png") == "5 images of (8, 8, 1)"


def test_sample_flags_for_walks(tmp_path, capsys):
    a = parse_sample_args(["--weights", "w", "--walk", "6", "--out", str(tmp_path / "w.gif")], "p")
    assert (a.walk, a.n) == (6, 8)                       # 8 walks unless --n says
    assert parse_sample_args(["--weights", "w", "--out", str(tmp_path / "x.png")], "p").n == 64
    for argv, message in ((["--out", str(tmp_path / "x.gif")], "a .gif is an animation along latent walks: add --walk K"),
                          (["--walk", "1", "--out", str(tmp_path / "x.png")], "--walk: must be from 2"),
                          (["--walk", "3", "--out", str(tmp_path / "x.jpg")], "must end in .png, .npy or .gif")):
        with pytest.raises(SystemExit) as e:
            parse_sample_args(["--weights", "w", *argv], "p")
        assert e.value.code == 2 and message in capsys.readouterr().err
