"""Runs one framework on inputs from a file and writes what it computed, for the
cross-framework tests. Each framework runs in its own process, as a user's would.

    python -m tests.crossfw.driver FRAMEWORK TASK[,TASK...] IN.npz OUT.npz

IN.npz holds portable weights (`w.<key>`; `sw.<key>`, if given, are those the steps start
from), the network config (`config`, JSON) and the
inputs; OUT.npz gets the results as NumPy arrays in the portable layout (NHWC images, (B,)
logits, `<key>` parameters and statistics, `m.<key>`/`v.<key>` Adam moments), float32 for
`roundtrip` (compared bit for bit) and float64 otherwise, each named `TASK:<name>`, so
that one process (one import of the framework, the slow part) can serve several tasks.

Tasks:
  forward   G(z) and D(x) in training and inference mode, and the statistics a training-
            mode forward leaves behind (`g_stats.<key>`, `d_stats.<key>`).
  roundtrip load the weights into the framework's models and export them again.
  steps     K full GAN steps on batches `real` (K, B, H, W, C) and noise `step_z` (K, B, nz):
            per-step metrics `metrics` (K, 5), and after step 1 and after step K the
            parameters, statistics and Adam moments (`step1.` and `stepK.` prefixes).
"""
import importlib
import json
import sys

import numpy as np

from common.config import Config
from common.runfiles import METRICS


def load_inputs(path):
    with np.load(path, allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    cfg = Config.from_dict(json.loads(str(d.pop("config"))))
    arrays = {k[2:]: v for k, v in d.items() if k.startswith("w.")}
    inputs = {k: v for k, v in d.items() if not k.startswith(("w.", "sw."))}
    inputs["step_weights"] = {k[3:]: v for k, v in d.items() if k.startswith("sw.")} or arrays
    return cfg, arrays, inputs


def run_task(adapter, cfg, arrays, inputs, task):
    results = {}
    if task == "forward":
        for train in (True, False):
            tag = "train" if train else "eval"
            images, g_stats = adapter.generate(cfg, arrays, inputs["z"], train)
            logits, d_stats = adapter.discriminate(cfg, arrays, inputs["x"], train)
            results[f"g_{tag}"], results[f"d_{tag}"] = images, logits
            if train:
                results.update({f"g_stats.{k}": v for k, v in g_stats.items()})
                results.update({f"d_stats.{k}": v for k, v in d_stats.items()})
    elif task == "roundtrip":
        results = dict(adapter.roundtrip(cfg, arrays))
    elif task == "steps":
        stepper = adapter.Stepper(cfg, inputs["step_weights"])
        rows = []
        for k in range(len(inputs["real"])):
            m = stepper.step(inputs["real"][k], inputs["step_z"][k])
            rows.append([m[name] for name in METRICS])
            if k == 0 or k == len(inputs["real"]) - 1:
                tag = "step1" if k == 0 else "stepK"
                params, moments = stepper.state()
                results.update({f"{tag}.{n}": v for n, v in params.items()})
                results.update({f"{tag}.{n}": v for n, v in moments.items()})
        results["metrics"] = np.array(rows)
    else:
        raise SystemExit(f"unknown task {task}")
    dtype = np.float32 if task == "roundtrip" else np.float64
    return {k: np.asarray(v, dtype) for k, v in results.items()}


def main(fw, tasks, inp, out):
    cfg, arrays, inputs = load_inputs(inp)
    adapter = importlib.import_module(f"tests.crossfw.adapt_{fw}")
    tasks = tasks.split(",")
    results = {}
    for task in tasks:
        done = run_task(adapter, cfg, arrays, inputs, task)
        results.update({f"{task}:{k}": v for k, v in done.items()})
    np.savez(out, **results)

if __name__ == "__main__":
    main(*sys.argv[1:5])
