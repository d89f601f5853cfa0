"""How much each generator layer's output still depends on z over the first steps: the
variance between samples / all variance, for 256 fixed z in training mode, with the step of
pytorch_impl.train (results/pytorch-cpu-paper/README.md). VARIANT: base (the paper's
network) or s3 (three stages each side, as in variants.py).

    PYTHONPATH=. python results/pytorch-cpu-paper/probe.py base 100
"""
import sys
from collections import OrderedDict
import numpy as np
import torch
from torch import nn
torch.set_num_threads(1)
from common import data
from common.config import parse_config, ADAM_EPS
import pytorch_impl.step as T
import pytorch_impl.model as M
variant, steps, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cfg = parse_config(["--arch", "paper"] + argv, "probe").resolve("cpu")
cfg.channels = 1
g, d = M.build(cfg, 0)
if variant == "s3":
    lr = lambda: nn.LeakyReLU(0.2, True)
    ch = cfg.ngf * 16
    gb = OrderedDict(g1=M.block(M.linear(cfg.nz, ch * 16, False, out_map=(ch, 4, 4)), ch, True, nn.ReLU(True), reshape_out=(ch, 4, 4)))
    for i in range(2, 4):
        gb[f"g{i}"] = M.block(nn.ConvTranspose2d(ch, ch // 2, 5, 2, 2, output_padding=1, bias=False), ch // 2, True, nn.ReLU(True)); ch //= 2
    gb["g4"] = M.block(nn.ConvTranspose2d(ch, 1, 5, 2, 2, output_padding=1), 1, False, nn.Tanh())
    g.main = nn.Sequential(gb)
    db, c = OrderedDict(), 1
    for i in range(1, 4):
        o = cfg.ndf * 2 ** (i + 1)
        db[f"d{i}"] = M.block(nn.Conv2d(c, o, 5, 2, 2, bias=i == 1), o, i > 1, lr()); c = o
    db["d4"] = M.block(M.linear(c * 16, 1, True), 1, False, None, flatten_in=True)
    d.main = nn.Sequential(db)
    torch.manual_seed(0); g.apply(M.dcgan_init); d.apply(M.dcgan_init)
go = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999), eps=ADAM_EPS)
do = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999), eps=ADAM_EPS)
images = data.to_float(data.load_images(cfg)[0])
rng = np.random.default_rng(0)

def share(t):       # between-sample variance / total variance, per layer output
    t = t.detach().flatten(1)
    return (t.var(0).mean() / t.flatten().var()).item()

zp = torch.from_numpy(data.draw_z(np.random.default_rng(9), 256, cfg.nz))
def probe(step, m):
    x, out = zp, []
    with torch.no_grad():
        for name, blk in g.main.named_children():
            x = blk(x); out.append(f"{name} {share(x):.2f}")
    print(f"step {step:3d} D(x) {m.get('d_real', 0):.2f} D(G(z)) {m.get('d_fake', 0):.2f} | z-share " + "  ".join(out), flush=True)
probe(0, {})
for step in range(1, steps + 1):
    real = torch.from_numpy(images[rng.choice(len(images), 128, replace=False)]).permute(0, 3, 1, 2)
    z = torch.from_numpy(data.noise(0, step, 128, cfg.nz))
    m = T.train_step(g, d, go, do, real, z)
    if step in (5, 10, 20, 30, 40, 60, 80, 100, 120, 150, 200):
        probe(step, m)
