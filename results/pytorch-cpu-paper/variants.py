"""The variants of results/pytorch-cpu-paper/README.md's table (issue 12): one 300-step run of
`--arch paper` with one change, through pytorch_impl.train.train (its build is swapped for
one that alters the network), judged by common.judge.evaluate on 1,000 samples of z from seed 0,
in inference and in training mode. A diagnosis tool, not a test: it patches train at run
time, writes no portable weights, and appends one line to runs/paper-variants/table.txt.

    PYTHONPATH=. python results/pytorch-cpu-paper/variants.py NAME VARIANT [train flags]
    PYTHONPATH=. python results/pytorch-cpu-paper/variants.py g3 g3 --max-steps 300
    PYTHONPATH=. python results/pytorch-cpu-paper/variants.py ctl none --arch dcgan --max-steps 300

VARIANT: none, bn1d, noact1, k4, d4, k4d4, dnobn4, s3, g3, d3 (see build_variant).
"""
import contextlib
import csv
import io
import os
import sys
from collections import OrderedDict
import numpy as np
import torch
from torch import nn
import pytorch_impl.step as S
import pytorch_impl.train as T
import pytorch_impl.model as M
from common import data, runfiles
from common.judge import evaluate as E
from common.config import parse_config

name, variant, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
held = {}

def build_variant(cfg, seed=0):
    g, d = M.build(cfg, seed)
    if variant == "bn1d":            # Radford's Theano code: BN over every projected feature
        ch, s0 = cfg.ngf * 16, cfg.image_size // 16
        blk = g.main.g1
        layers = [("fc", blk.fc), ("bn", nn.BatchNorm1d(ch * s0 * s0)), ("act", nn.ReLU(True)),
                  ("unflatten", nn.Unflatten(1, (ch, s0, s0)))]
        g.main.g1 = nn.Sequential(OrderedDict(layers))
        M.dcgan_init(g.main.g1.bn)
    if variant in ("k4", "k4d4"):              # diagnosis only: 4x4 stride-2 transposed convs (even overlap)
        for i in range(2, 6):
            c = g.main[i - 1].conv
            new = nn.ConvTranspose2d(c.in_channels, c.out_channels, 4, 2, 1, bias=c.bias is not None)
            M.dcgan_init(new)
            g.main[i - 1].conv = new
    if variant in ("d4", "k4d4"):              # diagnosis only: D with 4x4 stride-2 convs
        for i in range(1, 5):
            c = d.main[i - 1].conv
            new = nn.Conv2d(c.in_channels, c.out_channels, 4, 2, 1, bias=c.bias is not None)
            M.dcgan_init(new)
            d.main[i - 1].conv = new
    if variant in ("s3", "g3", "d3"):              # diagnosis only: three stride-2 layers, a 4x4 map at the middle
        lr = lambda: nn.LeakyReLU(0.2, True)
        ch = cfg.ngf * 16
        gb = OrderedDict(g1=M.block(M.linear(cfg.nz, ch * 16, False, out_map=(ch, 4, 4)), ch, True, nn.ReLU(True), reshape_out=(ch, 4, 4)))
        for i in range(2, 4):
            gb[f"g{i}"] = M.block(nn.ConvTranspose2d(ch, ch // 2, 5, 2, 2, output_padding=1, bias=False), ch // 2, True, nn.ReLU(True)); ch //= 2
        gb["g4"] = M.block(nn.ConvTranspose2d(ch, 1, 5, 2, 2, output_padding=1), 1, False, nn.Tanh())
        if variant != "d3": g.main = nn.Sequential(gb)
        db, c = OrderedDict(), 1
        for i in range(1, 4):
            o = cfg.ndf * 2 ** (i + 1)
            db[f"d{i}"] = M.block(nn.Conv2d(c, o, 5, 2, 2, bias=i == 1), o, i > 1, lr()); c = o
        db["d4"] = M.block(M.linear(c * 16, 1, True), 1, False, None, flatten_in=True)
        if variant != "g3": d.main = nn.Sequential(db)
        g.apply(M.dcgan_init); d.apply(M.dcgan_init)
    if variant == "noact1":          # the seed write-up's G: no ReLU after the projection's BatchNorm
        del g.main.g1.act
    if variant == "dnobn4":          # diagnosis only: no BatchNorm in D's last convolution
        del d.main.d4.bn
    held["g"] = g
    return g, d

T.build = build_variant
runfiles.Run.save_weights = lambda self, arrays, step: None
torch.set_num_threads(int(os.environ.get("NT", "1")))     # one thread: runs side by side
out = f"runs/paper-variants/{name}"
cfg = parse_config(["--arch", "paper"] + argv + ["--out", out], "exp")
with contextlib.redirect_stdout(io.StringIO()):
    T.train(cfg)
g = held["g"]
z = data.draw_z(np.random.default_rng(0), 1000, cfg.nz, cfg.z_dist)
x = S.generate(g, z, torch.device("cpu"))
judge = E.load_judge("mnist")
g.train()
with torch.no_grad():
    xt = g(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
st = E.evaluate(judge, xt)
s = E.evaluate(judge, x)
rows = list(csv.DictReader(open(f"{out}/metrics.csv")))
def at(k): r = rows[min(k, len(rows)) - 1]; return f"{float(r['d_real']):.2f}/{float(r['d_fake']):.2f}"
med = np.median([float(r["seconds"]) for r in rows])
hist = " ".join(f"{h*100:.0f}" for h in s.histogram)
line = (f"{name:18s} {variant:6s} {' '.join(argv):40s} FD {s.fd:7.1f} IS {s.score:5.2f} (train-mode FD {st.fd:6.1f} IS {st.score:4.2f}) "
        f"Dx/DGz@100 {at(100)} @300 {at(300)} @end {at(len(rows))} med {med:.3f}s hist [{hist}]")
print(line)
open("runs/paper-variants/table.txt", "a").write(line + "\n")
