"""pytorch/examples' dcgan/main.py checkpoints in and out (pytorch_impl/port.py), against
files the real main.py writes and loads: its copy in shared/peers (never in this
repository) runs a one-step dry run on its fake data in a temporary folder, and its own
Generator, imported from that file by path and run in eval mode, is the reference our
three frameworks must match to 1e-4, in both directions."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from common import weights
from common.config import Config, run_main
from pytorch_impl import port
from tests.conftest import ROOT

MAIN_PY = ROOT.parent / "shared" / "peers" / "pytorch-examples-dcgan" / "main.py"
FRAMEWORKS = ("pytorch", "jax", "keras")
# main.py's fake data is 3-channel 64x64, and its default widths
NET = dict(arch="dcgan", image_size=64, channels=3, nz=100, ngf=64, ndf=64)
MAIN_ARGS = ["--dataset", "fake", "--dry-run", "--niter", "1", "--workers", "0",
             "--batchSize", "16", "--manualSeed", "7"]

need_main_py = pytest.mark.skipif(
    not MAIN_PY.is_file(), reason=f"needs pytorch/examples' dcgan/main.py at {MAIN_PY} "
    "(the shared/ folder beside the repository)")

# Runs main.py as a module, by path: its top level is the script (parse the flags, build,
# load --netG/--netD strictly, one dry-run step, save its checkpoints in --outf); then its
# own Generator and Discriminator classes, in eval mode, load the files named and compute
# G(z) as (N, H, W, C) and D(x).
REFERENCE = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np, torch
    main_py, netg, netd, io = sys.argv[1:5]
    sys.argv = [main_py] + sys.argv[5:]
    spec = importlib.util.spec_from_file_location("examples_dcgan_main", main_py)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    g, d = m.Generator(1), m.Discriminator(1)
    g.load_state_dict(torch.load(netg)); d.load_state_dict(torch.load(netd))
    g.eval(); d.eval()
    inputs = np.load(io + ".in.npz")
    with torch.no_grad():
        images = g(torch.from_numpy(inputs["z"])[:, :, None, None]).permute(0, 2, 3, 1).numpy()
        probs = d(torch.from_numpy(inputs["x"]).permute(0, 3, 1, 2)).numpy()
    np.savez(io + ".out.npz", images=images, probs=probs)
""")


def run_main_py(tmp, outf, netg, netd, z, x, *flags):
    """main.py with MAIN_ARGS and flags, then its own networks on netg, netd: (G(z), D(x))."""
    io = tmp / "peer"
    np.savez(str(io) + ".in.npz", z=z, x=x)
    r = subprocess.run([sys.executable, "-c", REFERENCE, str(MAIN_PY), str(netg), str(netd), str(io),
                        *MAIN_ARGS, "--outf", str(outf), *flags], cwd=tmp, capture_output=True,
                       text=True, timeout=600, env=dict(os.environ, PYTHONPATH=""))
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(str(io) + ".out.npz") as f:
        return f["images"], f["probs"]


def sample_in_each_framework(tmp, weights_path, z):
    """`python -m <fw>_impl.sample --weights W --noise z.npy --out x.npy` in each framework."""
    np.save(tmp / "z.npy", z)
    out = {}
    for fw in FRAMEWORKS:
        dest = tmp / f"{fw}.npy"
        code = (f"from {fw}_impl.sample import main; main(['--weights', {str(weights_path)!r}, "
                f"'--noise', {str(tmp / 'z.npy')!r}, '--out', {str(dest)!r}, '--device', 'cpu'])")
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr[-3000:]
        out[fw] = np.load(dest)
    return out


def assert_same_images(images, ref, fw):
    """To 1e-4, and to 1e-3 of their spread: a G fresh from the paper's initialisation draws
    faint images in eval mode (a spread of about 5e-3 at widths 64), which 1e-4 alone would
    hardly tell from any other faint images."""
    np.testing.assert_allclose(images, ref, atol=1e-4, err_msg=fw)
    assert ref.std() > 1e-3 and np.abs(images - ref).max() <= 1e-3 * ref.std(), \
        (fw, float(np.abs(images - ref).max()), float(ref.std()))


def port_cli(*argv):
    with pytest.raises(SystemExit) as e:
        run_main(port.main, [str(a) for a in argv])
        raise SystemExit(0)
    return e.value.code


def inputs(seed=3, n=6):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 100)).astype(np.float32),
            rng.uniform(-1, 1, (n, 64, 64, 3)).astype(np.float32))


def our_weights(path, seed=5):
    """Portable weights that never saw main.py: the paper's initialisation, with BatchNorm
    running statistics far from fresh (mean 0, var 1) so that eval mode is tested."""
    cfg = Config(**NET)
    arrays = weights.initial(cfg, seed)
    rng = np.random.default_rng(seed)
    for k in arrays:
        if k.endswith("running_mean"):
            arrays[k] = rng.normal(0, 0.5, arrays[k].shape).astype(np.float32)
        elif k.endswith("running_var"):
            arrays[k] = rng.uniform(0.3, 3, arrays[k].shape).astype(np.float32)
    weights.save(path, cfg, arrays, z_dist="normal", framework="test")
    return path


def our_discriminator(weights_path, x):
    from pytorch_impl.model import build, load_portable
    cfg, arrays, _ = weights.load(weights_path)
    g, d = build(cfg)
    load_portable(g, d, arrays)
    d.eval()
    with torch.no_grad():
        return torch.sigmoid(d(torch.from_numpy(x).permute(0, 3, 1, 2))).numpy()


# ----------------------------------------------------------------------------------------
# against the real main.py

@need_main_py
def test_from_examples_samples_what_main_py_draws_in_all_three(tmp_path):
    z, x = inputs()
    outf = tmp_path / "outf"
    # main.py's own dry run writes netG_epoch_0.pth and netD_epoch_0.pth; its own classes
    # then draw from those files
    ref_images, ref_probs = run_main_py(tmp_path, outf, outf / "netG_epoch_0.pth",
                                        outf / "netD_epoch_0.pth", z, x)
    assert port_cli("--from-examples", outf / "netG_epoch_0.pth", "--netD", outf / "netD_epoch_0.pth",
                    "--out", tmp_path / "w.npz") == 0
    cfg, _, header = weights.load(tmp_path / "w.npz")
    assert (cfg.arch, cfg.image_size, cfg.channels, cfg.nz, cfg.ngf, cfg.ndf) == tuple(NET.values())
    assert header["z_dist"] == "normal"
    for fw, images in sample_in_each_framework(tmp_path, tmp_path / "w.npz", z).items():
        assert_same_images(images, ref_images, fw)
    # and D: main.py's ends in a Sigmoid where ours gives the logit
    np.testing.assert_allclose(our_discriminator(tmp_path / "w.npz", x), ref_probs, atol=1e-5)


@need_main_py
def test_to_examples_files_load_in_main_py_and_draw_our_images(tmp_path):
    z, x = inputs(seed=4)
    ours = our_weights(tmp_path / "ours.npz")
    assert port_cli("--to-examples", ours, "--out", tmp_path / "for_main") == 0
    netg, netd = tmp_path / "for_main" / "netG.pth", tmp_path / "for_main" / "netD.pth"
    # main.py --netG --netD loads them with load_state_dict (strict), then trains a step
    ref_images, ref_probs = run_main_py(tmp_path, tmp_path / "outf", netg, netd, z, x,
                                        "--netG", netg, "--netD", netd)
    for fw, images in sample_in_each_framework(tmp_path, ours, z).items():
        assert_same_images(images, ref_images, fw)
    np.testing.assert_allclose(our_discriminator(ours, x), ref_probs, atol=1e-5)
    # and back: --from-examples of what --to-examples wrote is the file we started from
    assert port_cli("--from-examples", netg, "--netD", netd, "--out", tmp_path / "back.npz") == 0
    _, a, _ = weights.load(ours)
    _, b, _ = weights.load(tmp_path / "back.npz")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------
# without main.py: the names, a generator alone, and bad input

def test_the_names_are_main_py_s_numbering():
    from pytorch_impl.model import build
    g, d = build(Config(**NET))
    gn, dn = port.examples_names(g), port.examples_names(d)
    # main.py: G = ConvT, BN, ReLU, ConvT, BN, ReLU, ... ConvT, Tanh; D = Conv, LReLU, Conv, BN, LReLU, ...
    assert [k for k in gn.values() if k.endswith(".weight")] == [
        "main.0.weight", "main.1.weight", "main.3.weight", "main.4.weight", "main.6.weight",
        "main.7.weight", "main.9.weight", "main.10.weight", "main.12.weight"]
    assert [k for k in dn.values() if k.endswith(".weight")] == [
        "main.0.weight", "main.2.weight", "main.3.weight", "main.5.weight", "main.6.weight",
        "main.8.weight", "main.9.weight", "main.11.weight"]
    assert gn["main.g1.bn.num_batches_tracked"] == "main.1.num_batches_tracked"


def test_a_generator_alone_samples_and_says_its_discriminator_is_untrained(tmp_path, capsys):
    ours = our_weights(tmp_path / "ours.npz")
    port_cli("--to-examples", ours, "--out", tmp_path / "m")
    assert port_cli("--from-examples", tmp_path / "m" / "netG.pth", "--out", tmp_path / "g.npz") == 0
    assert "no --netD" in capsys.readouterr().out
    _, a, _ = weights.load(ours)
    _, b, header = weights.load(tmp_path / "g.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a if k.startswith("generator."))
    assert "untrained" in header["discriminator"]


def one_line_exit_2(capsys, *argv, message):
    code = port_cli(*argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(("error: ", "python -m pytorch_impl.port: error: ")), err
    assert message in err, err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    ours = our_weights(tmp_path / "ours.npz")
    port_cli("--to-examples", ours, "--out", tmp_path / "m")
    netg, netd = tmp_path / "m" / "netG.pth", tmp_path / "m" / "netD.pth"
    (tmp_path / "junk.pth").write_bytes(b"\x00junk" * 50)
    torch.save({"model": 3}, tmp_path / "dict.pth")
    torch.save({"layer.weight": torch.zeros(3, 3, 4, 4)}, tmp_path / "other.pth")
    sd = torch.load(netg)
    sd["main.3.weight"] = sd["main.3.weight"][:, :5]
    torch.save(sd, tmp_path / "cut.pth")
    (tmp_path / "exists.npz").write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    capsys.readouterr()
    one_line_exit_2(capsys, "--from-examples", tmp_path / "nope.pth", "--out", tmp_path / "w.npz", message="no such file")
    one_line_exit_2(capsys, "--from-examples", tmp_path / "junk.pth", "--out", tmp_path / "w.npz",
                    message="not a PyTorch state_dict file")
    one_line_exit_2(capsys, "--from-examples", ours, "--out", tmp_path / "w.npz", message="already portable weights")
    one_line_exit_2(capsys, "--from-examples", tmp_path / "dict.pth", "--out", tmp_path / "w.npz",
                    message="not a state_dict of tensors")
    one_line_exit_2(capsys, "--from-examples", tmp_path / "other.pth", "--out", tmp_path / "w.npz",
                    message="not a pytorch/examples DCGAN generator")
    one_line_exit_2(capsys, "--from-examples", tmp_path / "cut.pth", "--out", tmp_path / "w.npz",
                    message="main.3.weight has shape (512, 5, 4, 4)")
    one_line_exit_2(capsys, "--from-examples", netd, "--out", tmp_path / "w.npz",
                    message="holds a DCGAN discriminator, not a generator")
    one_line_exit_2(capsys, "--from-examples", netg, "--netD", netg, "--out", tmp_path / "w.npz",
                    message="holds a DCGAN generator, not a discriminator")
    one_line_exit_2(capsys, "--from-examples", netg, "--out", tmp_path / "exists.npz", message="already exists")
    one_line_exit_2(capsys, "--from-examples", netg, "--out", tmp_path / "w.pth", message="must end in .npz")
    one_line_exit_2(capsys, "--to-examples", ours, "--out", tmp_path / "m", message="m/netG.pth already exists")
    one_line_exit_2(capsys, "--to-examples", tmp_path / "junk.pth", "--out", tmp_path / "m2",
                    message="not a portable weights file")
    small = Config(**{**NET, "image_size": 32})
    weights.save(tmp_path / "small.npz", small, weights.initial(small, 0))
    before.append("small.npz")
    one_line_exit_2(capsys, "--to-examples", tmp_path / "small.npz", "--out", tmp_path / "m3",
                    message="only the tutorial network at 64x64")
    one_line_exit_2(capsys, "--netG", netg, "--out", tmp_path / "w.npz", message="--netG: no such flag; did you mean --from-examples?")
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(before)
    assert (tmp_path / "exists.npz").read_text() == "mine"
    assert json.loads(str(np.load(ours)["config"]))["framework"] == "test"
