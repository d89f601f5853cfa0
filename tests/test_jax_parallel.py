"""jax_impl data parallel (issue 16): `--devices 2` over two XLA host devices is the same
algorithm as one device. JAX fixes its device count when it starts, so each check runs in
a child process with XLA_FLAGS=--xla_force_host_platform_device_count=2. The same
step under shard_map, with per-device BatchNorm statistics, is shown to be another one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from common import runfiles, weights

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--image-size", "16", "--ngf", "8", "--ndf", "8",
        "--nz", "16", "--batch-size", "16", "--max-steps", "6"]


def two_device_env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def run_child(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=two_device_env(),
                          capture_output=True, text=True, timeout=600)


# ----------------------------------------------------------------------------------------
# (1) and (2): jax_impl's own train_step on one device and on a 2-device mesh

def child_steps():
    """Run in the child: one step, then nine more, of the same models on one device and
    on two; print the largest differences and what the 2-device arrays are sharded over."""
    import jax
    import optax
    from flax import nnx

    from common.config import ADAM_EPS, Config
    from jax_impl.checkpoint import flat_state
    from jax_impl.model import build, to_portable
    from jax_impl.parallel import placements
    from jax_impl.step import step_metrics, train_step

    cfg = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=16)
    devices = jax.devices("cpu")
    assert len(devices) == 2, devices

    def setup(state_at):
        generator, discriminator = build(cfg, 0)      # the same seed: the same weights
        tx = optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=ADAM_EPS)
        objs = (generator, discriminator, nnx.Optimizer(generator, tx, wrt=nnx.Param),
                nnx.Optimizer(discriminator, tx, wrt=nnx.Param))
        for obj in objs:
            nnx.update(obj, jax.device_put(nnx.state(obj), state_at))
        generator.train(), discriminator.train()
        return objs

    def everything(objs):
        """Weights, BatchNorm running statistics and Adam moments, as NumPy."""
        generator, discriminator, g_opt, d_opt = objs
        out = {f"portable/{k}": v for k, v in to_portable(generator, discriminator).items()}
        for name, opt in (("g_opt", g_opt), ("d_opt", d_opt)):
            out.update({f"{name}/{k}": np.asarray(v) for k, v in flat_state(opt).items()})
        return out

    rng = np.random.default_rng(1)
    batches = [(rng.uniform(-1, 1, (16, 16, 16, 1)).astype(np.float32),
                rng.standard_normal((16, 16)).astype(np.float32)) for _ in range(10)]
    one = setup(devices[0])
    state_at, batch_at = placements(devices)
    two = setup(state_at)
    report = {"metrics": [], "state": []}
    for i, (real, z) in enumerate(batches):
        m1 = step_metrics(train_step(*one, jax.device_put(real, devices[0]), jax.device_put(z, devices[0])))
        real2, z2 = jax.device_put(real, batch_at), jax.device_put(z, batch_at)
        if i == 0:
            report["real_devices"] = len(real2.sharding.device_set)
            report["real_shard_rows"] = sorted(s.data.shape[0] for s in real2.addressable_shards)
        m2 = step_metrics(train_step(*two, real2, z2))
        report["metrics"].append(max(abs(m1[k] - m2[k]) for k in m1))
        s1, s2 = everything(one), everything(two)
        assert s1.keys() == s2.keys()
        report["state"].append(max(float(np.max(np.abs(s1[k].astype(np.float64) - s2[k])))
                                   for k in s1 if s1[k].dtype.kind == "f"))
        report["counts_equal"] = all(np.array_equal(s1[k], s2[k]) for k in s1 if s1[k].dtype.kind != "f")
        report["n_running_stats"] = sum(k.endswith(weights.RUNNING_STATS) for k in s1)
    kernel = jax.tree_util.tree_leaves(nnx.state(two[0], nnx.Param))[0]
    report["weight_devices"] = len(kernel.sharding.device_set)
    report["weight_replicated"] = bool(kernel.sharding.is_fully_replicated)
    print("REPORT " + json.dumps(report))


def test_two_devices_step_equals_one_device_step():
    r = run_child("-c", "import tests.test_jax_parallel as t; t.child_steps()")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.split("REPORT ", 1)[1])
    # (2) the 2-device run really is split: half the batch on each device, and the
    # weights replicated on both
    assert report["real_devices"] == 2 and report["real_shard_rows"] == [8, 8]
    assert report["weight_devices"] == 2 and report["weight_replicated"]
    # (1) one step: losses, weights, running statistics and Adam moments to 1e-5, and
    # Adam's step counts exactly; ten steps within 1e-4
    assert report["n_running_stats"] > 0
    assert report["metrics"][0] < 1e-5 and report["state"][0] < 1e-5, report
    assert max(report["metrics"]) < 1e-4 and max(report["state"]) < 1e-4, report
    assert report["counts_equal"]


# ----------------------------------------------------------------------------------------
# (2b) why it matters: the same step with per-device BatchNorm is another algorithm

def child_per_device_bn():
    """Run in the child: jax_impl's own train_step under nnx.shard_map, where each device
    sees only its slice of (real, z), so every BatchNorm normalises with its slice's
    statistics. train_step cannot be asked to average the gradients (under jit on global
    arrays XLA does it), so the optimisers do: optax.chain(average_gradients(), adam),
    whose first link is a pmean over the mesh axis; the optimizer is train_step's own
    argument, so jax_impl is unchanged. After the step the BatchNorm running statistics,
    the one state each device now holds differently, are pmean'd too, so that the state
    stays replicated (out_specs P()). Checks of the wrapper itself: on a 1-device mesh,
    and on 2 devices given the same half-batch twice, it equals the ordinary step."""
    import jax
    import optax
    from flax import nnx
    from jax.sharding import PartitionSpec as P

    from common.config import ADAM_EPS, Config
    from jax_impl.checkpoint import flat_state
    from jax_impl.model import build, to_portable
    from jax_impl.step import step_metrics, train_step

    cfg = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=16)
    devices = jax.devices("cpu")
    assert len(devices) == 2, devices
    adam = optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=ADAM_EPS)

    def average_gradients():
        def update(grads, state, params=None):
            return jax.lax.pmean(grads, "batch"), state
        return optax.GradientTransformation(lambda params: optax.EmptyState(), update)

    def setup(tx):
        generator, discriminator = build(cfg, 0)
        objs = (generator, discriminator, nnx.Optimizer(generator, tx, wrt=nnx.Param),
                nnx.Optimizer(discriminator, tx, wrt=nnx.Param))
        generator.train(), discriminator.train()
        return objs

    rows_seen = []

    def per_device_step(mesh):
        # check_vma=False: model.py's conv_transpose is a jax.custom_vjp, and the vma
        # checker types its kernel gradient as device-varying for a replicated kernel;
        # every output is pmean'd below, so out_specs P() holds all the same
        # (test: replicas_disagree)
        @nnx.jit
        @nnx.shard_map(mesh=mesh, in_specs=(P(), P(), P(), P(), P("batch"), P("batch")),
                       out_specs=P(), check_vma=False)
        def step(generator, discriminator, g_optimizer, d_optimizer, real, z):
            rows_seen.append(real.shape[0])               # at trace time: one slice's rows
            values = train_step(generator, discriminator, g_optimizer, d_optimizer, real, z)
            for model in (generator, discriminator):
                nnx.update(model, jax.lax.pmean(nnx.state(model, nnx.BatchStat), "batch"))
            return jax.lax.pmean(values, "batch")        # equal slices: the global means
        return step

    def everything(objs, values):
        """Metrics, weights, BatchNorm running statistics and Adam's state, as NumPy, under
        the ordinary step's names (the chain's Adam state is one level down)."""
        generator, discriminator, g_opt, d_opt = objs
        out = {f"metrics/{k}": np.float32(v) for k, v in step_metrics(values).items()}
        out.update({f"portable/{k}": v for k, v in to_portable(generator, discriminator).items()})
        for name, opt in (("g_opt", g_opt), ("d_opt", d_opt)):
            out.update({f"{name}/{k.replace('opt_state/1/', 'opt_state/', 1)}": np.asarray(v)
                        for k, v in flat_state(opt).items()})
        return out

    def largest(a, b, keep=lambda k: True):
        assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())[:5]
        return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a
                   if keep(k) and a[k].dtype.kind == "f")

    def ordinary(real, z):
        objs = setup(adam)
        return everything(objs, train_step(*objs, real, z))

    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (16, 16, 16, 1)).astype(np.float32)
    z = rng.standard_normal((16, 16)).astype(np.float32)
    both = jax.sharding.Mesh(np.array(devices), ("batch",))
    step2 = per_device_step(both)
    report = {}

    # the synchronised step: jax_impl's ordinary train_step on the whole batch (test (1):
    # the same to 1e-5 as that step on the 2-device mesh with global arrays)
    sync = ordinary(real, z)
    # the per-device step, 8 images on each device
    objs = setup(optax.chain(average_gradients(), adam))
    per_device = everything(objs, step2(*objs, real, z))
    report["rows_seen"] = sorted(set(rows_seen))
    kernels = [v for v in jax.tree_util.tree_leaves(nnx.state(objs[1], nnx.Param))]
    report["replica_devices"] = len(kernels[0].sharding.device_set)
    report["replicas_disagree"] = max(
        float(np.max(np.abs(np.asarray(k.addressable_shards[0].data) - np.asarray(k.addressable_shards[1].data))))
        for k in kernels)
    stats = lambda k: k.endswith(weights.RUNNING_STATS)
    report["per_device"] = {
        "metrics": largest(sync, per_device, lambda k: k.startswith("metrics/")),
        "weights": largest(sync, per_device, lambda k: k.startswith("portable/") and not stats(k)),
        "running stats": largest(sync, per_device, stats),
        "Adam moments": largest(sync, per_device, lambda k: "_opt/" in k),
        "state": largest(sync, per_device, lambda k: not k.startswith("metrics/"))}
    report["counts_equal"] = all(np.array_equal(sync[k], per_device[k]) for k in sync
                                 if sync[k].dtype.kind != "f")

    # control (a): the wrapper on a 1-device mesh, where a slice is the whole batch
    one = jax.sharding.Mesh(np.array(devices[:1]), ("batch",))
    objs = setup(optax.chain(average_gradients(), adam))
    report["control_one_device"] = largest(sync, everything(objs, per_device_step(one)(*objs, real, z)))
    # control (b): the 2-device wrapper given the same 8 images and z on both devices,
    # where each device's statistics are those of the global batch: the ordinary step
    # on those 8
    twice = np.concatenate([real[:8]] * 2), np.concatenate([z[:8]] * 2)
    objs = setup(optax.chain(average_gradients(), adam))
    report["control_same_halves"] = largest(ordinary(real[:8], z[:8]), everything(objs, step2(*objs, *twice)))
    print("REPORT " + json.dumps(report))


def test_per_device_batchnorm_is_another_algorithm():
    r = run_child("-c", "import tests.test_jax_parallel as t; t.child_per_device_bn()")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.split("REPORT ", 1)[1])
    print(f"\n{report}")
    # the wrapper is a data-parallel step: each device saw 8 of the 16 images, and the
    # averaged gradients left the same weights on both devices
    assert report["rows_seen"] == [8] and report["replica_devices"] == 2
    assert report["replicas_disagree"] == 0.0 and report["counts_equal"]
    # (1) the wrapper itself is right: where each device's BatchNorm statistics are the
    # whole batch's, it is the ordinary step to 1e-5
    assert report["control_one_device"] < 1e-5 and report["control_same_halves"] < 1e-5, report
    # (2) per-device BatchNorm, one step: far outside the tolerance
    per_device = report["per_device"]
    print("per-device BatchNorm vs synchronised, one step: "
          + ", ".join(f"{k} {v:.1e}" for k, v in per_device.items()))
    assert per_device["metrics"] > 10 * 1e-5 and per_device["state"] > 100 * 1e-5, report


# ----------------------------------------------------------------------------------------
# (3) the command line: one run directory, devices recorded, the same metrics

def train_cli(tmp_path, name, *extra):
    out = tmp_path / name
    r = run_child("-m", "jax_impl.train", *TINY, "--out", str(out), *extra)
    return out, r


def test_two_device_run_matches_one_device_run(tmp_path):
    d2, r2 = train_cli(tmp_path, "d2", "--devices", "2")
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "devices: 2" in r2.stdout.splitlines()[0], r2.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["d2"]
    assert json.loads((d2 / "config.json").read_text())["devices"] == 2
    cfg, arrays, header = weights.load(d2 / "weights.npz")
    assert header["framework"] == "jax" and arrays
    d1, r1 = train_cli(tmp_path, "d1", "--devices", "1")
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert "devices: 1" in r1.stdout.splitlines()[0]
    assert json.loads((d1 / "config.json").read_text())["devices"] == 1
    m1, m2 = (runfiles.read_metrics(d / "metrics.csv") for d in (d1, d2))
    assert len(m1["step"]) == len(m2["step"]) == 6
    for col in runfiles.COLUMNS[:-1]:                      # all but the clock
        np.testing.assert_allclose(m2[col], m1[col], atol=1e-4, rtol=0, err_msg=col)


# ----------------------------------------------------------------------------------------
# (4) bad input: one line, exit status 2, nothing written

def check_refused(tmp_path, *extra, says):
    out, r = train_cli(tmp_path, "bad", *extra)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], r.stderr
    assert not out.exists()


def test_more_devices_than_there_are(tmp_path):
    check_refused(tmp_path, "--devices", "3", says="JAX sees 2 cpu devices")


def test_batch_that_does_not_split(tmp_path):
    check_refused(tmp_path, "--devices", "2", "--batch-size", "15", says="does not split")


def test_zero_devices(tmp_path):
    check_refused(tmp_path, "--devices", "0", says="--devices: must be from 1 to 4096, got 0")
