"""pytorch/examples' DCGAN checkpoints in and out: the netG_epoch_N.pth and netD_epoch_N.pth
that its dcgan/main.py writes, to and from portable weights (common/weights.py).

    python -m pytorch_impl.port --from-examples netG_epoch_24.pth --netD netD_epoch_24.pth --out weights.npz
    python -m pytorch_impl.port --from-examples netG_epoch_24.pth --out weights.npz   # G alone
    python -m pytorch_impl.port --to-examples runs/x/weights.npz --out DIR            # DIR/netG.pth, DIR/netD.pth
    python main.py --dataset ... --netG DIR/netG.pth --netD DIR/netD.pth              # pytorch/examples

main.py's Generator and Discriminator are our tutorial network (--arch dcgan) at 64x64,
layer for layer: the same convolutions and BatchNorms with the same shapes, in the same
order, in one nn.Sequential each. Only the names differ (its `main.3.weight` is our
`main.g2.conv.weight`), and its D ends in a Sigmoid where ours gives the logit (no
parameter either way). So a file converts by walking the two state_dicts side by side,
every shape asserted before a tensor is copied; our model.py then writes the portable file.
nc, nz, ngf and ndf come from the tensors' shapes, the image size from the number of
layers (64 for main.py). z is N(0, 1) there, as in our dcgan.

Without --netD the file still samples (only G is needed); its discriminator is the paper's
initialisation, untrained, with ndf = ngf (main.py's defaults make them equal), and the
file says so in its header.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from common import weights
from common.config import ArgumentParser, Config, UserError, run_main
from common.runfiles import atomic_save
from pytorch_impl.model import build, load_portable, to_portable

FROM_WHERE = "the netG_epoch_N.pth (or netD_epoch_N.pth) that pytorch/examples' dcgan/main.py wrote"


# ----------------------------------------------------------------------------------------
# the names: main.py's from ours

def examples_names(model: torch.nn.Module) -> dict[str, str]:
    """{our state_dict key: main.py's}. main.py numbers the modules of one flat
    nn.Sequential (conv, BatchNorm, activation, conv, ...); ours groups each layer's into
    a block (`main.g2` = conv, bn, act), so a module's number there is the count of modules
    in the blocks before it plus its place in its own."""
    names, offset = {}, 0
    for block_name, blk in model.main.named_children():
        for place, (sub, module) in enumerate(blk.named_children()):
            for key in module.state_dict():
                names[f"main.{block_name}.{sub}.{key}"] = f"main.{offset + place}.{key}"
        offset += len(blk)
    return names


def network_of(sd: dict, path: Path, role: str) -> dict:
    """The sizes a main.py state_dict implies: {nz, ngf, channels, image_size} for the
    generator, {ndf, channels, image_size} for the discriminator; UserError if it is not
    one."""
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path}: not a state_dict of tensors; give {FROM_WHERE}")
    convs = [v for k, v in sd.items() if k.endswith(".weight") and v.ndim == 4]
    layers = len(convs)
    if not all(k.startswith("main.") for k in sd) or layers < 3:
        raise UserError(f"{path}: not a pytorch/examples DCGAN {role} (keys {list(sd)[:3]} ...); "
                        f"give {FROM_WHERE}")
    size = 2 ** (layers + 1)
    is_d = convs[-1].shape[0] == 1               # D's last layer gives one number per image
    if is_d != (role == "discriminator"):
        other = "discriminator" if is_d else "generator"
        raise UserError(f"{path}: holds a DCGAN {other}, not a {role}: give netG_epoch_N.pth "
                        "as --from-examples and netD_epoch_N.pth as --netD")
    if role == "generator":       # ConvTranspose2d weights: (in, out, kh, kw)
        return dict(nz=convs[0].shape[0], ngf=convs[-2].shape[1], channels=convs[-1].shape[1], image_size=size)
    return dict(ndf=convs[0].shape[0], channels=convs[0].shape[1], image_size=size)  # Conv2d: (out, in, ...)


def copy_in(model: torch.nn.Module, sd: dict, path: Path, role: str) -> None:
    """main.py's tensors into our model, name by name, every shape asserted first."""
    names = examples_names(model)
    ours = model.state_dict()
    missing = [theirs for theirs in names.values() if theirs not in sd]
    extra = sorted(set(sd) - set(names.values()))
    if missing or extra:
        raise UserError(f"{path}: not a pytorch/examples DCGAN {role} of this shape (missing "
                        f"{missing[:3]}, unexpected {extra[:3]}); give {FROM_WHERE}")
    for key, theirs in names.items():
        t = sd[theirs]
        if tuple(t.shape) != tuple(ours[key].shape):
            raise UserError(f"{path}: {theirs} has shape {tuple(t.shape)}, the {role} its other "
                            f"tensors describe needs {tuple(ours[key].shape)}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise UserError(f"{path}: {theirs} holds NaN or infinite values")
    with torch.no_grad():
        for key, theirs in names.items():
            ours[key].copy_(sd[theirs])


def read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: " + ("not a file" if path.exists() else "no such file") + f"; give {FROM_WHERE}")
    try:              # weights_only: tensors and containers, never arbitrary pickled code
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:         # torch.load raises many kinds (zip, pickle, version): all mean the same here
        if zipfile.is_zipfile(path) and "config.npy" in portable_names(path):
            raise UserError(f"{path}: already portable weights: give it to sample --weights or "
                            "train --init-weights as it is") from None
        raise UserError(f"{path}: not a PyTorch state_dict file (torch.load cannot read it); "
                        f"give {FROM_WHERE}") from None
    if isinstance(sd, dict):           # saved from a DataParallel-wrapped model
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


# ----------------------------------------------------------------------------------------
# in: main.py's files -> weights.npz

def from_examples(netg: Path, netd: Path | None, out: Path) -> str:
    g_sd = read_state_dict(netg)
    g = network_of(g_sd, netg, "generator")
    d = network_of(read_state_dict(netd), netd, "discriminator") if netd else None
    if d and (d["channels"], d["image_size"]) != (g["channels"], g["image_size"]):
        raise UserError(f"{netd}: a discriminator of {d['channels']}-channel {d['image_size']}x"
                        f"{d['image_size']} images, but {netg} draws {g['channels']}-channel "
                        f"{g['image_size']}x{g['image_size']}: give the netD of the same run")
    cfg = Config(arch="dcgan", ndf=d["ndf"] if d else g["ngf"], **g)
    try:
        generator, discriminator = build(cfg)
    except UserError as e:
        raise UserError(f"{netg}: not a pytorch/examples DCGAN generator ({e})") from None
    copy_in(generator, g_sd, netg, "generator")
    if netd:
        copy_in(discriminator, read_state_dict(netd), netd, "discriminator")
    arrays = to_portable(generator, discriminator)
    if not netd:                     # the paper's initialisation, drawn as every framework would
        arrays.update({k: v for k, v in weights.initial(cfg, 0).items() if k.startswith("discriminator.")})
    refuse_existing(out)
    weights.save(out, cfg, arrays, z_dist="normal", framework="pytorch/examples dcgan/main.py",
                 source=str(netg), discriminator=str(netd) if netd else
                 "none given: the paper's initialisation (seed 0), untrained")
    return (f"wrote {out}: the {cfg.image_size}x{cfg.image_size} generator of {netg} "
            f"(nc {cfg.channels}, nz {cfg.nz}, ngf {cfg.ngf})"
            + (f" and the discriminator of {netd} (ndf {cfg.ndf})" if netd else
               f"; no --netD, so its discriminator is untrained (ndf {cfg.ndf}): fine for sampling"))


# ----------------------------------------------------------------------------------------
# out: weights.npz -> netG.pth, netD.pth that main.py --netG --netD loads

def to_examples(path: Path, out: Path) -> str:
    cfg, arrays, header = weights.load(path)
    if cfg.arch != "dcgan" or cfg.image_size != 64:
        raise UserError(f"{path}: holds --arch {cfg.arch} at {cfg.image_size}x{cfg.image_size}; "
                        "pytorch/examples' main.py has only the tutorial network at 64x64 "
                        "(--arch dcgan --image-size 64)")
    if header.get("z_dist", "normal") != "normal":
        raise UserError(f"{path}: its generator was trained on z ~ U(-1, 1); main.py draws "
                        "z ~ N(0, 1), and would sample it wrongly")
    if not out.parent.resolve().is_dir():
        raise UserError(f"--out {out}: {out.parent} is not a directory")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a directory for netG.pth and netD.pth")
    files = {"netG.pth": out / "netG.pth", "netD.pth": out / "netD.pth"}
    for f in files.values():
        refuse_existing(f)
    generator, discriminator = build(cfg)
    load_portable(generator, discriminator, arrays)
    out.mkdir(exist_ok=True)
    for model, f in ((generator, files["netG.pth"]), (discriminator, files["netD.pth"])):
        sd = model.state_dict()
        state = {theirs: sd[ours].detach().cpu().contiguous() for ours, theirs in examples_names(model).items()}
        atomic_save(f, lambda tmp: torch.save(state, tmp))
    return (f"wrote {files['netG.pth']} and {files['netD.pth']} (nc {cfg.channels}, nz {cfg.nz}, "
            f"ngf {cfg.ngf}, ndf {cfg.ndf}): python main.py --dataset ... --nz {cfg.nz} --ngf "
            f"{cfg.ngf} --ndf {cfg.ndf} --netG {files['netG.pth']} --netD {files['netD.pth']}")


def portable_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return z.namelist()


def refuse_existing(path: Path) -> None:
    if path.exists():
        raise UserError(f"--out: {path} already exists; move it away or choose another --out "
                        "(port overwrites nothing)")


def main(argv=None):
    p = ArgumentParser(prog="python -m pytorch_impl.port", description="Convert pytorch/examples' "
                       "dcgan/main.py checkpoints to portable weights (--from-examples) and back "
                       "(--to-examples).")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--from-examples", metavar="NETG.pth", help="main.py's generator state_dict "
                   "(netG_epoch_N.pth): nc, nz, ngf from its shapes")
    g.add_argument("--to-examples", metavar="WEIGHTS.npz", help="portable weights of --arch dcgan "
                   "at 64x64, written as DIR/netG.pth and DIR/netD.pth")
    p.add_argument("--netD", metavar="NETD.pth", help="with --from-examples: main.py's "
                   "discriminator (netD_epoch_N.pth); without it D is untrained (sampling needs G only)")
    p.add_argument("--out", required=True, help="--from-examples: the weights.npz to write; "
                   "--to-examples: the directory for netG.pth and netD.pth")
    a = p.parse_args(argv)
    if a.netD and not a.from_examples:
        p.error("--netD goes with --from-examples")
    out = Path(a.out)
    if a.from_examples:
        if out.suffix != ".npz":
            p.error(f"--out {a.out}: must end in .npz")
        if not out.resolve().parent.is_dir():
            p.error(f"--out {a.out}: directory {out.parent} does not exist")
        print(from_examples(Path(a.from_examples), Path(a.netD) if a.netD else None, out))
    else:
        print(to_examples(Path(a.to_examples), out))


if __name__ == "__main__":
    run_main(main)
