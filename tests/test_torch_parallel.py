"""pytorch_impl data parallel (issue 16): two gloo processes under torchrun, each on its
half of the global batch, with synchronised BatchNorm, are the same algorithm as one
process on the whole batch. Every multi-process check is a torchrun subprocess on a free
port, with a timeout, so that a hang fails the test instead of blocking the suite."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from common import runfiles, weights
from common.config import ADAM_EPS, Config, UserError, parse_config
from pytorch_impl import sample as torch_sample
from pytorch_impl import parallel
from pytorch_impl import train as train_mod
from pytorch_impl.model import build, to_portable
from pytorch_impl.step import train_step
from tests import helpers

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--image-size", "16", "--ngf", "8", "--ndf", "8",
        "--nz", "16", "--batch-size", "16", "--device", "cpu"]
CFG = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=16)
TOL_ONE, TOL_TEN = 1e-5, 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, timeout=300):
    """`torchrun --nproc-per-node 2 ...` in the repository, on a port of its own. On a
    timeout torchrun gets SIGTERM, on which it stops its workers (they run in sessions of
    their own, out of reach of a kill of torchrun's group), and the test fails."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *args]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", DCGAN_OFFLINE="1")
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        pytest.fail(f"torchrun {' '.join(args)} ran past {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


# ----------------------------------------------------------------------------------------
# (1) and (2): pytorch_impl's own train_step in one process and in two

def batches():
    """Ten global batches (real NCHW, z) that the parent and both children draw alike."""
    rng = np.random.default_rng(1)
    return [(torch.from_numpy(rng.uniform(-1, 1, (16, 1, 16, 16)).astype(np.float32)),
             torch.from_numpy(rng.standard_normal((16, 16)).astype(np.float32))) for _ in range(10)]


def setup():
    generator, discriminator = build(CFG, 0)          # the same seed: the same weights
    opt = lambda net: torch.optim.Adam(net.parameters(), lr=CFG.lr, betas=(CFG.beta1, CFG.beta2), eps=ADAM_EPS)
    generator.train(), discriminator.train()
    return generator, discriminator, opt(generator), opt(discriminator)


def everything(generator, discriminator, g_optimizer, d_optimizer) -> dict:
    """Weights, BatchNorm running statistics and Adam's moments and step counts."""
    out = {f"portable/{k}": v for k, v in to_portable(generator, discriminator).items()}
    for name, opt in (("g_opt", g_optimizer), ("d_opt", d_optimizer)):
        for i, state in opt.state_dict()["state"].items():
            out.update({f"{name}/{i}/{k}": t.numpy().copy() for k, t in state.items()})
    return out


def child_steps(out: str):
    """Run by torchrun in each of the two processes: ten steps with synchronised BatchNorm
    (pytorch_impl.parallel's data_parallel), then one from the same start with per-process
    BatchNorm (DDP alone). Each rank saves its metrics (averaged over the processes, as the
    loop does) and state after every step."""
    rank, _, size = parallel.world()
    assert size == 2
    device = parallel.start_processes(torch.device("cpu"))
    saved = {}
    for name, n_steps in (("sync", 10), ("plain", 1)):
        generator, discriminator, g_opt, d_opt = setup()
        if name == "sync":
            nets = [parallel.data_parallel(net, device) for net in (generator, discriminator)]
            saved["sync/classes"] = np.array(sorted({type(m).__name__ for m in discriminator.modules()}))
        else:
            nets = [parallel.DDP(net, forward_sync_buffers=False) for net in (generator, discriminator)]
        for i, (real, z) in enumerate(batches()[:n_steps]):
            real, z = parallel.my_slice(real), parallel.my_slice(z)
            if i == 0:
                saved[f"{name}/rows"] = np.array(len(real))
            m = parallel.global_mean(train_step(*nets, g_opt, d_opt, real, z))
            saved[f"{name}/{i}/metrics"] = np.array([m[k] for k in runfiles.METRICS])
            saved.update({f"{name}/{i}/{k}": v for k, v in everything(generator, discriminator, g_opt, d_opt).items()})
    np.savez(Path(out) / f"rank{rank}.npz", **saved)
    torch.distributed.destroy_process_group()


def largest_difference(a: dict, b: dict, prefix: str) -> float:
    keys = [k for k in a if k.startswith(prefix) and a[k].dtype.kind == "f"]
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in keys)


def test_two_processes_step_equals_one_process_step(tmp_path):
    r = torchrun("-m", "tests.test_torch_parallel", str(tmp_path))
    assert r.returncode == 0, r.stderr[-4000:]
    ranks = [dict(np.load(tmp_path / f"rank{i}.npz")) for i in (0, 1)]

    # the reference: one process, plain BatchNorm, the whole batch
    one = {}
    objs = setup()
    for i, (real, z) in enumerate(batches()):
        m = train_step(*objs, real, z)
        one[f"{i}/metrics"] = np.array([m[k] for k in runfiles.METRICS])
        one.update({f"{i}/{k}": v for k, v in everything(*objs).items()})

    two = {k.removeprefix("sync/"): v for k, v in ranks[0].items() if k.startswith("sync/")}
    # each process trained on half the batch, its BatchNorm layers the synchronised kind
    assert two["rows"] == 8 and "CPUSyncBatchNorm" in two["classes"]
    assert {k for k in two if k.startswith("0/")} == {k for k in one if k.startswith("0/")}
    assert sum(k.startswith("0/portable/") and k.endswith(weights.RUNNING_STATS) for k in one) > 0
    # (1) one step: metrics, weights, running statistics, Adam's moments to 1e-5, Adam's
    # step counts exactly; ten steps within 1e-4
    first = largest_difference(one, two, "0/")
    ten = max(largest_difference(one, two, f"{i}/") for i in range(10))
    print(f"\n2 processes vs 1: one step {first:.1e}, ten steps {ten:.1e}")
    assert first < TOL_ONE and ten < TOL_TEN, (first, ten)
    assert all(np.array_equal(one[k], two[k]) for k in one if one[k].dtype.kind != "f")
    # the two processes hold the same state, bit for bit: nothing drifts apart
    assert all(np.array_equal(ranks[0][k], ranks[1][k]) for k in ranks[0] if k.startswith("sync/"))

    # (2) per-process BatchNorm, the same step: each half normalised by its own statistics
    plain = {k.removeprefix("plain/"): v for k, v in ranks[0].items() if k.startswith("plain/")}
    unsync = largest_difference(one, plain, "0/")
    unsync_metrics = float(np.max(np.abs(one["0/metrics"] - plain["0/metrics"])))
    print(f"per-process BatchNorm vs 1 process: one step {unsync:.1e} (metrics {unsync_metrics:.1e})")
    assert unsync > 100 * TOL_ONE and unsync_metrics > 100 * TOL_ONE, (unsync, unsync_metrics)


# ----------------------------------------------------------------------------------------
# (3) the command line: one run directory, the same metrics, resume, portable weights

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-process run of 6 steps in a folder of its own, and a 2-process run of 3 steps."""
    base = tmp_path_factory.mktemp("torchrun")
    (base / "alone").mkdir()
    whole = torchrun("-m", "pytorch_impl.train", *TINY, "--max-steps", "6", "--out", str(base / "alone" / "d2"))
    half = torchrun("-m", "pytorch_impl.train", *TINY, "--max-steps", "3", "--out", str(base / "half"))
    return base, whole, half


def test_two_process_run_writes_one_run_like_one_process(runs, tmp_path):
    base, r, _ = runs
    assert r.returncode == 0, r.stderr[-4000:]
    d2 = base / "alone" / "d2"
    assert r.stdout.splitlines()[0].startswith("device: cpu") and "devices: 2" in r.stdout.splitlines()[0], r.stdout
    assert r.stdout.count("steps done") == 1             # one process speaks, and writes:
    assert [p.name for p in (base / "alone").iterdir()] == ["d2"]
    assert json.loads((d2 / "config.json").read_text())["devices"] == 2
    assert len(list(d2.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in (d2 / "samples").iterdir()] == ["epoch_001.png"]
    ckpt = torch.load(d2 / "checkpoint.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["generator"]) and ckpt["step"] == 6
    d1 = helpers.run_tiny(train_mod.train, tmp_path / "d1", "--batch-size", "16", "--max-steps", "6")
    assert json.loads((d1 / "config.json").read_text())["devices"] == 1
    m1, m2 = (helpers.metrics_without_time(d) for d in (d1, d2))
    assert m1.shape == m2.shape == (6, 7)
    # 1e-5: one step agrees to 1e-7 and ten to 1e-6 (the step test above); metrics.csv
    # rounds to 6 decimals, so two equal runs may differ by 1e-6 in the last digit
    np.testing.assert_allclose(m2, m1, atol=1e-5, rtol=0)


def test_two_process_run_resumes_exactly_in_two_processes_or_one(runs, tmp_path):
    base, whole, half = runs
    assert whole.returncode == 0 and half.returncode == 0, half.stderr[-4000:]
    d = base / "half"
    assert weights.load(d / "weights.npz")[2]["step"] == 3
    one = tmp_path / "resumed-in-one"
    shutil.copytree(d, one)
    r = torchrun("-m", "pytorch_impl.train", "--resume", str(d), "--max-steps", "6")
    assert r.returncode == 0, r.stderr[-4000:]
    assert "resuming" in r.stdout and r.stdout.count("steps done") == 1
    helpers.assert_same_run(base / "alone" / "d2", d)      # to the last bit
    # the 2-process checkpoint in one process (the command line's: config.json says
    # devices 2, and --resume without --devices takes as many as there are processes):
    # the same run, to the tolerance above
    train_mod.main(["--resume", str(one), "--max-steps", "6"])
    assert json.loads((one / "config.json").read_text())["devices"] == 1
    np.testing.assert_allclose(helpers.metrics_without_time(one),
                               helpers.metrics_without_time(d), atol=1e-5, rtol=0)


def test_two_process_weights_sample_in_jax_and_keras(runs, tmp_path):
    base, r, _ = runs
    assert r.returncode == 0, r.stderr[-4000:]
    w = base / "alone" / "d2" / "weights.npz"
    z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    want = torch_sample.sample(w, z, "cpu")
    assert want.std() > 0
    for package in ("jax_impl", "keras_impl"):
        out = tmp_path / f"{package}.npy"
        s = subprocess.run([sys.executable, "-m", f"{package}.sample", "--weights", str(w),
                            "--noise", str(tmp_path / "z.npy"), "--out", str(out), "--device", "cpu"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES=""))
        assert s.returncode == 0, s.stderr[-3000:]
        np.testing.assert_allclose(np.load(out), want, atol=1e-5, rtol=0, err_msg=package)


def start_long_torchrun(out: Path) -> subprocess.Popen:
    """A 2-process torchrun of a long run in out, returned once it has logged three steps."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), "-m", "pytorch_impl.train", *TINY,
           "--max-steps", "5000", "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) > 3):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"no steps logged: {p.communicate()[1][-3000:]}")
        time.sleep(0.2)
    return p


def test_ctrl_c_under_torchrun_saves_one_step_and_ends(tmp_path):
    """SIGINT to torchrun, as Ctrl-C in its terminal: torchrun passes it to both processes,
    which stop after the same step; rank 0 saves that step's checkpoint and weights."""
    out = tmp_path / "r"
    p = start_long_torchrun(out)
    try:
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)        # no process left waiting
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0 and "interrupted after step" in stdout, stderr[-3000:]
    step = int(stdout.split("interrupted after step ")[1].split(" ")[0])
    assert 3 <= step < 5000
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == step
    assert weights.load(out / "weights.npz")[2]["step"] == step
    assert runfiles.read_metrics(out / "metrics.csv")["step"][-1] == step


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (/proc/*/stat, field 4)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else "dir" for p in sorted(d.rglob("*"))}


def test_one_writer_and_sigterm_under_torchrun(tmp_path):
    """Real processes and signals (issue 25). A 2-process run: rank 0 holds the run
    directory's lock. With both processes frozen (SIGSTOP), a second torchrun --resume on
    the directory gets one line naming rank 0's pid and changes nothing. Then SIGTERM to
    torchrun, as Slurm or Kubernetes sends it: torchrun passes it to both processes, which
    stop after the same step; rank 0 saves that step's checkpoint and weights and says so,
    once, and metrics.csv ends at that step."""
    out = tmp_path / "r"
    p = start_long_torchrun(out)
    try:
        workers = children(p.pid)
        holder = int((out / "run.lock").read_text())
        assert len(workers) == 2 and holder in workers, (workers, holder)
        for w in workers:
            os.kill(w, signal.SIGSTOP)
        try:
            time.sleep(0.2)
            files = snapshot(out)
            steps_now = len((out / "metrics.csv").read_text().splitlines())
            r = torchrun("-m", "pytorch_impl.train", "--resume", str(out), "--max-steps", str(steps_now + 20),
                         timeout=180)
            ours = [line for line in r.stderr.splitlines() if line.startswith("error:")]
            assert r.returncode != 0 and len(ours) == 1, r.stderr[-4000:]
            assert f"{out} is in use: process {holder} is training there" in ours[0]
            assert snapshot(out) == files
        finally:
            for w in workers:
                os.kill(w, signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:          # SIGTERM first: torchrun's workers are out of a kill's reach
            p.send_signal(signal.SIGTERM)
            try:
                p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
    assert stdout.count("interrupted after step") == 1 and "(SIGTERM)" in stdout, stderr[-3000:]
    step = int(stdout.split("interrupted after step ")[1].split(" ")[0])
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == step
    assert weights.load(out / "weights.npz")[2]["step"] == step
    assert runfiles.read_metrics(out / "metrics.csv")["step"].tolist() == list(range(1, step + 1))


# ----------------------------------------------------------------------------------------
# (4) bad input: one line, nothing written

def check_refused(tmp_path, *extra, says):
    out = tmp_path / "bad"
    r = torchrun("-m", "pytorch_impl.train", *TINY, "--out", str(out), *extra, timeout=180)
    assert r.returncode != 0                       # torchrun's own status: 1
    ours = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and says in ours[0], r.stderr[-4000:]
    assert not out.exists()


def test_batch_that_does_not_split_under_torchrun(tmp_path):
    check_refused(tmp_path, "--batch-size", "15",
                  says="--batch-size 15 does not split into 2 equal slices")


def test_devices_that_disagree_with_torchrun(tmp_path):
    check_refused(tmp_path, "--devices", "3", says="torchrun started 2 processes")


def test_devices_without_torchrun(tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(UserError, match="start them with torchrun: torchrun --nproc-per-node 2 -m pytorch_impl.train"):
        train_mod.train(parse_config(TINY + ["--out", str(out), "--devices", "2"], "test"))
    assert not out.exists()



def test_more_gpu_processes_than_gpus(monkeypatch):
    """Checked on every process before the process group forms (no GPU needed here)."""
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match="torchrun started 2 processes on this machine, which has "
                                        "1 GPU: one per GPU, --nproc-per-node 1 at most"):
        parallel.start_processes(torch.device("cuda"))
    assert not torch.distributed.is_initialized()


if __name__ == "__main__":          # torchrun -m tests.test_torch_parallel OUT: the children
    child_steps(sys.argv[1])
