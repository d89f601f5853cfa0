"""benchmarks.step_time's machine block and its --peer row (the timings themselves are
printed figures, not asserted: only that they are there and labelled).

The peer is pytorch/examples' dcgan/main.py, which is not part of the repository: its copy
sits next to the checkout, in ../shared/peers/, on the machine where the issue was worked
on, and not in a clean clone (CI). The test of the real file skips there; the test with a
stand-in script of the same shape, and the missing-file test, need nothing outside."""
import json
import re
import subprocess
import sys
import textwrap

import pytest

from benchmarks import bench_peer
from benchmarks import machine
from common import hardware
from common.config import Config
from tests.conftest import ROOT, run_cli

FRAMEWORK_MODULES = ("torch", "torchvision", "jax", "jaxlib", "flax", "tensorflow", "keras")
PEER = ROOT.parent / "shared" / "peers" / "pytorch-examples-dcgan" / "main.py"
TINY = ("--sizes", "16", "--width", "4", "--batch-size", "4", "--steps", "1", "--warmup", "1")


def frameworks_after(code: str) -> tuple[list[str], str]:
    """Run code in a fresh Python; (the framework modules it imported, its stdout)."""
    out = subprocess.run([sys.executable, "-c", code + f"\nimport json, sys\nprint('IMPORTED', "
                          f"json.dumps([m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    return json.loads(last.removeprefix("IMPORTED ")), out.stdout


def test_machine_description_has_its_fields_and_imports_no_framework():
    imported, stdout = frameworks_after(
        "import json\nfrom benchmarks import machine\nd = machine.describe()\n"
        "print(json.dumps({'d': d, 'lines': machine.lines(d), 'summary': machine.summary(d)}))")
    assert imported == []
    got = json.loads(stdout.strip().splitlines()[-2])
    d = got["d"]
    assert set(d) == {"cpu", "arch", "features", "cores", "cores_from", "cpu_count", "os", "python", "load"}
    assert d["cpu"] and d["cores"] >= 1
    if sys.platform == "linux" and "flags" in hardware.cpuinfo():
        assert list(d["features"]) == [name for name, _ in machine.FEATURES]
    assert got["lines"][0].startswith(f"machine: {d['cpu']}")
    assert got["lines"][1].startswith("  instruction sets: ") and got["lines"][2].startswith("  cores: ")
    assert got["summary"].startswith(f"{d['cpu']}, {d['cores']} cores")


def test_cpu_model_and_features_are_read_from_cpuinfo_and_degrade_without_it(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                   "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse2 avx2 avx512f "
                   "avx512_bf16 amx_tile\n\nprocessor\t: 1\nmodel name\t: another\nflags\t\t: fpu\n")
    info = hardware.cpuinfo(str(x86))
    assert machine.cpu_model(info) == "Intel(R) Xeon(R) Platinum 8480+ (family 6, model 143)"
    assert machine.cpu_features(info) == {"AVX2": True, "AVX-512F": True, "AVX512-BF16": True,
                                          "AMX-BF16": False, "AMX-TILE": True}
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n")
    none = hardware.cpuinfo(str(tmp_path / "missing"))      # macOS, Windows: no /proc/cpuinfo
    for info in (hardware.cpuinfo(str(arm)), none):
        assert machine.cpu_features(info) is None
        assert machine.cpu_model(info)                       # platform's answer, or sysctl's
    d = {**machine.describe(), "features": None}
    assert "not read" in machine.lines(d)[1] and machine.summary(d).endswith(" cores")


def test_step_time_prints_the_machine_block_and_its_parent_imports_no_framework():
    imported, stdout = frameworks_after(
        "import json\nfrom benchmarks import step_time\n"
        f"step_time.main(['--frameworks', 'pytorch', *{TINY!r}])")
    assert imported == [], "the parent must leave each framework to its own child"
    head, table = stdout.split("\n\n size", 1)
    assert "machine: " in head and "  instruction sets: AVX2 " in head and "  cores: " in head
    assert re.search(r"  pytorch: torch \S+, oneDNN \(mkldnn\) (on|available but off|NOT available), \d+ threads", head)
    assert re.search(r"\n\s+16\s+4 pytorch\s+fp32\s+\d", table)


def test_step_time_times_fp32_and_bf16_side_by_side():
    out = run_cli("benchmarks.step_time", "--frameworks", "pytorch", "--precision", "fp32", "bf16", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = re.findall(r"\n\s+16\s+4 pytorch\s+(fp32|bf16)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+([\d.]+)x", out.stdout)
    assert [r[0] for r in rows] == ["fp32", "bf16"] and rows[0][1] == "1.00", out.stdout


def test_peer_given_as_a_missing_file_is_one_line_and_exit_2(tmp_path):
    out = run_cli("benchmarks.step_time", "--peer", str(tmp_path / "main.py"), *TINY)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "--peer" in out.stderr and "no such file" in out.stderr


# A stand-in of the peer's shape: argparse at import time, a data set from torchvision's
# MNIST, netG and netD, one printed line per iteration, an image "save" at i % 100 == 0.
STANDIN = """
import argparse, time
import torch, torch.nn as nn, torch.utils.data
import torchvision.datasets as dset, torchvision.transforms as transforms
p = argparse.ArgumentParser()
for flag in ("--dataset", "--dataroot", "--outf"):
    p.add_argument(flag)
for flag in ("--workers", "--batchSize", "--imageSize", "--nz", "--ngf", "--ndf", "--niter", "--manualSeed"):
    p.add_argument(flag, type=int)
for flag in ("--lr", "--beta1"):
    p.add_argument(flag, type=float)
opt = p.parse_args()
print(opt)
assert opt.dataset == "mnist" and opt.workers == 0
dataset = dset.MNIST(root=opt.dataroot, download=True, transform=transforms.ToTensor())
loader = torch.utils.data.DataLoader(dataset, batch_size=opt.batchSize, num_workers=opt.workers)
netG, netD = nn.Linear(opt.nz, 3), nn.Linear(2, 1)
print(netD)
for epoch in range(opt.niter):
    for i, data in enumerate(loader, 0):
        assert data[0].shape == (opt.batchSize, 1, opt.imageSize, opt.imageSize), data[0].shape
        print('[%d/%d][%d/%d] Loss_D: 1.0 Loss_G: 1.0' % (epoch, opt.niter, i, len(loader)))
        if i % 100 == 0:
            time.sleep(0.5)          # as if saving two images
"""


def test_peer_is_timed_by_its_own_lines_with_image_saving_steps_left_out(tmp_path):
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(STANDIN))
    cfg = Config(image_size=bench_peer.SIZE, channels=1, nz=5, ngf=4, ndf=4, batch_size=2)
    times, details = bench_peer.time_steps(cfg, 3, str(script))
    assert len(times) == len(details["data"]) == 3
    assert max(times) < 0.4, f"a step after the image save was timed: {times}"
    assert details["g_params"] == 5 * 3 + 3 and details["d_params"] == 2 + 1
    assert details["argv"][:2] == ["--dataset", "mnist"] and "--ngf" in details["argv"]
    assert [bench_peer.iterations_for(n) for n in (1, 2, 3, 100, 101)] == [1, 3, 4, 101, 103]


@pytest.mark.skipif(not PEER.is_file(), reason=f"the peer's copy is not at {PEER} (it is not part "
                    "of the repository; a clean clone has no ../shared)")
def test_peer_row_runs_the_real_main_py_on_the_same_networks():
    out = run_cli("benchmarks.step_time", "--frameworks", "pytorch", "--sizes", "64", "--width", "4",
                  "--batch-size", "4", "--steps", "2", "--warmup", "1", "--peer", str(PEER))
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"\n  pytorch/examples dcgan \(peer\): torch \S+, .*torchvision ", out.stdout)
    assert re.search(r"\n\s+64\s+4 pytorch/examples dcgan \(peer\)\s+fp32\s+\d", out.stdout)
    assert "the same as pytorch_impl's." in out.stdout      # its G and D: our parameter counts
