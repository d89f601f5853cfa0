"""keras_impl data parallel (issue 16): `--devices 2`, a tf.distribute.MirroredStrategy over
two logical CPU devices, is the same algorithm as one device. TensorFlow fixes its devices
when it runs its first op, and pytest's process has usually run one already, so each check
runs in a child process that splits the CPU into two logical devices first."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from common import runfiles, weights

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--image-size", "16", "--ngf", "8", "--ndf", "8",
        "--nz", "16", "--batch-size", "16", "--device", "cpu"]
TIMEOUT = 600          # seconds for any child: a hang fails the test instead of blocking CI


def run_child(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT)


def report_of(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.split("REPORT ", 1)[1])


# ----------------------------------------------------------------------------------------
# (1) to (3): keras_impl's own GAN, train_step and data path on one device and on two

def child_steps():
    """Run in the child: ten steps of the same GAN, from the same weights, batches and z,
    on one device (no strategy) and on two (MirroredStrategy), and one step with
    per-replica BatchNorm; print the largest differences and what each replica saw."""
    import keras_impl  # noqa: F401  (KERAS_BACKEND)
    import tensorflow as tf
    from keras_impl.parallel import logical_cpus
    names = logical_cpus(2)          # before TensorFlow's first op

    import keras
    from keras import ops

    from common.config import ADAM_EPS, Config
    from keras_impl.layers import BatchNorm, PyTorchAdam
    from keras_impl.model import to_portable
    from keras_impl.parallel import distribute, mirrored
    from keras_impl.step import GAN

    cfg = Config(image_size=16, channels=1, nz=16, ngf=8, ndf=8, batch_size=16)
    B = cfg.batch_size
    rng = np.random.default_rng(1)
    batches = [(rng.uniform(-1, 1, (B, 16, 16, 1)).astype(np.float32),
                rng.standard_normal((B, cfg.nz)).astype(np.float32)) for _ in range(10)]
    seen = []                        # (replica, real, z) as train_step received them

    class Spy(GAN):
        def train_step(self, batch):
            real, z = batch
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            tf.py_function(lambda r, x, y: seen.append((int(r), x.numpy(), y.numpy())),
                           [replica, real, z], [])
            return super().train_step(batch)

    def setup(strategy, synchronized=True):
        with strategy.scope():
            gan = Spy(cfg)           # the same seed: the same weights
            for net in (gan.generator, gan.discriminator):
                for layer in net._flatten_layers():
                    if isinstance(layer, BatchNorm):
                        layer.synchronized = synchronized
            adam = lambda: PyTorchAdam(learning_rate=cfg.lr, beta_1=cfg.beta1,
                                       beta_2=cfg.beta2, epsilon=ADAM_EPS)
            gan.compile(d_optimizer=adam(), g_optimizer=adam(), jit_compile=False)
        return strategy, gan

    def everything(gan) -> dict:
        """Weights, BatchNorm moving statistics, Adam moments and step counts, as NumPy."""
        out = {f"portable/{k}": v for k, v in to_portable(gan.generator, gan.discriminator).items()}
        for name, opt in (("g_opt", gan.g_optimizer), ("d_opt", gan.d_optimizer)):
            out.update({f"{name}/{i}/{v.name}": ops.convert_to_numpy(v)
                        for i, v in enumerate(opt.variables)})
        return out

    def replicas_disagree(gan) -> float:
        """How far the copies of each mirrored variable are apart (0: every replica applied
        the same, all-reduced update)."""
        worst = 0.0
        for v in gan.variables + gan.g_optimizer.variables + gan.d_optimizer.variables:
            copies = [np.asarray(c.numpy(), np.float64) for c in v.value.values]
            assert len(copies) == 2, v.path
            worst = max(worst, float(np.max(np.abs(copies[0] - copies[1]))))
        return worst

    def train(run, steps):
        strategy, gan = run
        metrics, states = [], []

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                metrics.append({k: float(logs[k]) for k in runfiles.METRICS})
                states.append(everything(gan))

        gan.fit(distribute(strategy, lambda step: batches[step], 0, steps, cfg), steps_per_epoch=steps,
                callbacks=[Record()], shuffle=False, verbose=0)
        return metrics, states

    def differences(a, b):
        (la, sa), (lb, sb) = a, b
        assert len(la) == len(lb) and all(x.keys() == y.keys() for x, y in zip(sa, sb))
        metrics = [max(abs(x[k] - y[k]) for k in x) for x, y in zip(la, lb)]
        state = [max(float(np.max(np.abs(x[k].astype(np.float64) - y[k]))) for k in x
                     if x[k].dtype.kind == "f") for x, y in zip(sa, sb)]
        counts = all(np.array_equal(x[k], y[k]) for x, y in zip(sa, sb) for k in x if x[k].dtype.kind != "f")
        return metrics, state, counts

    one = setup(tf.distribute.get_strategy())
    two = setup(mirrored(tuple(names)))
    per_replica = setup(mirrored(tuple(names)), synchronized=False)
    start = [everything(g) for _, g in (one, two, per_replica)]
    report = {"same_start": all(np.array_equal(start[0][k], s[k]) for s in start[1:] for k in start[0]),
              "n_state": len(start[0]),
              "n_moving_stats": sum(k.endswith(("running_mean", "running_var")) for k in start[0])}

    r1 = train(one, 10)
    report["one_device_saw"] = [(r, x.shape[0]) for r, x, _ in seen]
    seen.clear()
    r2 = train(two, 10)
    report["metrics"], report["state"], report["counts_equal"] = differences(r1, r2)
    report["replicas_disagree"] = replicas_disagree(two[1])
    # which rows of the global batch each replica received, at every step
    rows = []
    for step, (real, z) in enumerate(batches):
        for r, x, y in seen[2 * step:2 * step + 2]:
            lo, hi = r * B // 2, (r + 1) * B // 2
            rows.append((r, x.shape[0], bool(np.array_equal(x, real[lo:hi]) and np.array_equal(y, z[lo:hi]))))
    report["replica_rows"] = rows
    report["steps_seen"] = len(seen)

    r3 = train(per_replica, 1)
    m, s, _ = differences((r1[0][:1], r1[1][:1]), r3)
    a, b = r1[1][0], r3[1][0]
    part = lambda keys: max(float(np.max(np.abs(a[k] - b[k]))) for k in keys)
    stats = [k for k in a if k.endswith(("running_mean", "running_var"))]
    moments = [k for k in a if not k.startswith("portable/") and a[k].dtype.kind == "f"]
    report["per_replica_bn"] = {"metrics": m[0], "state": s[0], "moving_stats": part(stats),
                                "weights": part(set(a) - set(stats) - set(moments)),
                                "adam_moments": part(moments)}
    print("REPORT " + json.dumps(report))


def test_two_devices_step_equals_one_device_step():
    report = report_of(run_child("-c", "import tests.test_keras_parallel as t; t.child_steps()"))
    print({k: report[k] for k in ("metrics", "state", "replicas_disagree", "per_replica_bn")})
    assert report["same_start"] and report["n_moving_stats"] > 0
    # (3) each replica really trains on its half of the global batch: replica r receives
    # rows r*B/2..(r+1)*B/2 of real and of z, at every step; one device the whole batch
    assert report["one_device_saw"] == [[0, 16]] * 10
    assert report["steps_seen"] == 20
    assert report["replica_rows"] == [[r, 8, True] for _ in range(10) for r in (0, 1)]
    # (1) one step: metrics, weights, BatchNorm moving statistics and Adam's moments to
    # 1e-5, Adam's step counts exactly; ten steps within 1e-4
    assert report["metrics"][0] < 1e-5 and report["state"][0] < 1e-5, report
    assert max(report["metrics"]) < 1e-4 and max(report["state"]) < 1e-4, report
    assert report["counts_equal"]
    # the optimizers applied all-reduced gradients: both replicas' copies of every
    # variable are the same after ten steps
    assert report["replicas_disagree"] == 0.0
    # (2) per-replica BatchNorm (synchronized=False: each replica normalises its half with
    # its own statistics) is another algorithm, far outside the tolerance after one step
    per_replica = report["per_replica_bn"]
    print("per-replica BatchNorm, one step, largest differences from one device: "
          + ", ".join(f"{k} {v:.1e}" for k, v in per_replica.items()))
    assert per_replica["metrics"] > 10 * 1e-5 and per_replica["state"] > 100 * 1e-5


# ----------------------------------------------------------------------------------------
# (4) the command line: one run directory, the same metrics as one device, exact resume,
# Ctrl-C, and weights that the other frameworks load

RUN = ["--batch-size", "64", "--max-steps", "10"]    # 8 steps an epoch: two epochs (the
                                                     # last of two flags given twice wins)


def child_runs(tmp):
    """Run in the child, after `python -m keras_impl.train --devices 2` wrote tmp/d2: the
    1-device run, a 2-device run stopped by a real SIGINT after step 3 (a copy of it taken
    there) and resumed to step 10 on two devices, the copy resumed on one, and Keras' own
    images from d2's weights.npz."""
    import os
    import signal
    tmp = Path(tmp)
    import keras_impl  # noqa: F401
    from keras_impl import parallel, train as train_mod
    parallel.logical_cpus(2)                   # before TensorFlow's first op
    from common.config import parse_config
    from keras_impl.sample import sample
    from tests.helpers import resume

    def train(name, *extra):
        return train_mod.train(parse_config(TINY + RUN + ["--out", str(tmp / name), *extra], "test"))

    report = {}
    train("d1")
    real_end = train_mod.RunFiles.on_train_batch_end

    def end_then_ctrl_c(self, batch, logs=None):
        real_end(self, batch, logs)
        if self.model.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    train_mod.RunFiles.on_train_batch_end = end_then_ctrl_c
    handler_before = signal.getsignal(signal.SIGINT)
    try:
        train("stopped", "--devices", "2")
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["handler_restored"] = signal.getsignal(signal.SIGINT) is handler_before
    train_mod.RunFiles.on_train_batch_end = real_end
    report["weights_step"] = weights.load(tmp / "stopped" / "weights.npz")[2]["step"]
    report["metrics_steps"] = runfiles.read_metrics(tmp / "stopped" / "metrics.csv")["step"].tolist()
    shutil.copytree(tmp / "stopped", tmp / "stopped_copy")
    resume(train_mod.train, tmp / "stopped", 10)
    train_mod.train(parse_config(["--resume", str(tmp / "stopped_copy"), "--max-steps", "10",
                                  "--devices", "1"], "test"))
    z = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    np.save(tmp / "z.npy", z)
    np.save(tmp / "keras.npy", sample(tmp / "d2" / "weights.npz", z, "cpu"))
    print("REPORT " + json.dumps(report))


def test_two_device_run_matches_one_device_run_resumes_and_ports(tmp_path):
    from tests.helpers import assert_same_run, metrics_without_time

    r = run_child("-m", "keras_impl.train", *TINY, *RUN, "--devices", "2", "--out", str(tmp_path / "d2"))
    assert r.returncode == 0, r.stderr[-3000:]
    first = r.stdout.splitlines()[0]
    assert "devices: 2" in first and "MirroredStrategy" in first and "32 images each" in first, first
    assert [p.name for p in tmp_path.iterdir()] == ["d2"]        # one run directory
    d2 = tmp_path / "d2"
    assert json.loads((d2 / "config.json").read_text())["devices"] == 2
    assert runfiles.read_metrics(d2 / "metrics.csv")["step"].tolist() == list(range(1, 11))
    assert weights.load(d2 / "weights.npz")[2]["framework"] == "keras"

    report = report_of(run_child("-c", f"import tests.test_keras_parallel as t; t.child_runs({str(tmp_path)!r})"))
    d1, stopped, copy = (tmp_path / n for n in ("d1", "stopped", "stopped_copy"))
    assert json.loads((d1 / "config.json").read_text())["devices"] == 1
    # The same run on one device: metrics.csv holds 6 decimals, and ten steps of the two
    # differ by ~1e-7 in memory (test above), so a column may differ by one unit in its
    # last decimal, from rounding; 2e-6 allows that and nothing more.
    np.testing.assert_allclose(metrics_without_time(d2), metrics_without_time(d1), atol=2e-6, rtol=0)
    _, w1, _ = weights.load(d1 / "weights.npz")
    _, w2, _ = weights.load(d2 / "weights.npz")
    assert w1.keys() == w2.keys()
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], atol=1e-5, rtol=0, err_msg=k)
    # Ctrl-C after step 3 on two devices: everything ends at step 3, and resuming (on two
    # devices, from the checkpoint) gives the uninterrupted run exactly
    assert report == {"interrupted": True, "handler_restored": True, "weights_step": 3,
                      "metrics_steps": [1, 2, 3]}
    assert_same_run(d2, stopped)
    # --resume may change --devices: the copy went on from step 3 on one device
    assert json.loads((copy / "config.json").read_text())["devices"] == 1
    np.testing.assert_allclose(metrics_without_time(copy), metrics_without_time(d2), atol=2e-6, rtol=0)

    # the 2-device weights.npz in the PyTorch and JAX sample commands: Keras' own images
    for package in ("pytorch_impl", "jax_impl"):
        out = tmp_path / f"{package}.npy"
        r = run_child("-m", f"{package}.sample", "--weights", str(d2 / "weights.npz"),
                      "--noise", str(tmp_path / "z.npy"), "--out", str(out), "--device", "cpu")
        assert r.returncode == 0, r.stderr[-3000:]
        np.testing.assert_allclose(np.load(out), np.load(tmp_path / "keras.npy"), atol=1e-5, err_msg=package)


def child_one_device(tmp):
    """Run in the child: --devices 1 through train.py's tf.data path, and through the plain
    Python generator that fit was given before data parallelism, for two networks."""
    tmp = Path(tmp)
    import keras_impl  # noqa: F401
    from common.config import parse_config
    from keras_impl import parallel, train as train_mod
    for arch in ("dcgan", "cs231n"):
        argv = TINY + ["--arch", arch, "--image-size", "16" if arch == "dcgan" else "28",
                       "--ngf", "4", "--ndf", "4", "--max-steps", "4"]
        train_mod.train(parse_config(argv + ["--out", str(tmp / f"{arch}-dataset")], "test"))
        distribute = parallel.distribute
        parallel.distribute = lambda strategy, batch_of_step, first, last, cfg: (
            batch_of_step(step) for step in range(first, last))
        train_mod.train(parse_config(argv + ["--out", str(tmp / f"{arch}-generator")], "test"))
        parallel.distribute = distribute


def test_one_device_is_the_run_it_was(tmp_path):
    """--devices 1 feeds fit a tf.data dataset where it fed a Python generator: the same
    bits. (A known batch size in the dataset's spec moved --arch cs231n by 1e-7.)"""
    from tests.helpers import assert_same_run
    r = run_child("-c", f"import tests.test_keras_parallel as t; t.child_one_device({str(tmp_path)!r})")
    assert r.returncode == 0, r.stderr[-3000:]
    for arch in ("dcgan", "cs231n"):
        assert_same_run(tmp_path / f"{arch}-dataset", tmp_path / f"{arch}-generator")


# ----------------------------------------------------------------------------------------
# (5) bad input: one line, exit status 2, nothing written

def check_refused(r, out, says):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr
    assert not out.exists()


def test_batch_that_does_not_split(tmp_path):
    out = tmp_path / "bad"
    r = run_child("-m", "keras_impl.train", *TINY, "--devices", "3", "--out", str(out))
    check_refused(r, out, "--devices 3: --batch-size 16 does not split into 3 equal slices")


def test_more_devices_than_cores(tmp_path):
    import os
    n = os.cpu_count() + 1
    out = tmp_path / "bad"
    r = run_child("-m", "keras_impl.train", *TINY, "--batch-size", str(16 * n), "--devices", str(n),
                  "--out", str(out))
    check_refused(r, out, f"--devices {n}: this machine has {n - 1} CPU cores")


def test_tensorflow_started_with_fewer_devices(tmp_path):
    """train() in a process whose TensorFlow has run an op already, on its one CPU device."""
    out = tmp_path / "bad"
    argv = TINY + ["--devices", "2", "--out", str(out)]
    r = run_child("-c", "import keras_impl, tensorflow as tf; tf.constant(1.0); "
                  "from common.config import run_main; from keras_impl.train import main; "
                  f"run_main(main, {argv!r})")
    check_refused(r, out, "--devices 2: TensorFlow has started in this process with 1 CPU device already")
