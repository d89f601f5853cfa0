"""The machine a figure was measured on, for the benchmark's output and the reports.

    describe()      CPU model, the instruction-set features that matter for these
                    frameworks, cores, OS and Python: a dict, framework-free
    lines()         that dict as the lines `benchmarks.step_time` prints
    summary()       the same on one line
    about(fw)       one framework's version and backend: IMPORTS THAT FRAMEWORK, so call it
                    only in that framework's own process (benchmarks.step_time's children)

A step time means little without the machine: on two 2-core x86-64 machines the ranking of
the three frameworks came out differently (docs/speed.md). The features are those the
frameworks' CPU kernels dispatch on: AVX2 and AVX-512F (float32 convolutions and matmuls),
AVX512-BF16 and AMX (bfloat16). Importing this module imports no framework; only about()
does, inside the function.
"""
import os
import platform
import sys

from common.hardware import FEATURES, cpuinfo, cpu_features, cpu_model


def cores() -> tuple[int | None, str]:
    """(cores this process may run on, how that was found)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)), "os.sched_getaffinity"
    return os.cpu_count(), "os.cpu_count"


def load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none: Windows). On a
    2-core machine one other busy process is enough to ruin a figure: two threads that
    wait for each other at every parallel region lose a time slice whenever one of them is
    descheduled (a 0.7 ms convolution took 55 ms so, while a test ran on the other core)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe() -> dict:
    """The machine, as a dict (JSON-ready), and its load now: take it before the work."""
    info = cpuinfo()
    n, source = cores()
    return {"cpu": cpu_model(info), "arch": platform.machine(), "features": cpu_features(info),
            "cores": n, "cores_from": source, "cpu_count": os.cpu_count(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "load": load()}


def _features_text(d: dict) -> str:
    if d["features"] is None:
        return f"not read (no x86 flags in /proc/cpuinfo on this {platform.system() or 'OS'})"
    return ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in d["features"].items())


def lines(d: dict | None = None) -> list[str]:
    """The machine block: 'machine: CPU' and indented details (the load where it is known)."""
    d = describe() if d is None else d
    online = f" of {d['cpu_count']} online" if d["cpu_count"] not in (None, d["cores"]) else ""
    out = [f"machine: {d['cpu']}, {d['arch']}, {d['os']}, Python {d['python']}",
           f"  instruction sets: {_features_text(d)}",
           f"  cores: {d['cores']} available to this process{online} ({d['cores_from']})"]
    if d.get("load") is not None:
        busy = d["load"][0] >= 0.5
        out.append(f"  load average before the run: {d['load'][0]:.2f} (1 min), {d['load'][1]:.2f} (5 min)"
                   + ("; the last minute was busy (other processes, or an earlier run): figures may be too slow" if busy else ""))
    return out


def summary(d: dict | None = None) -> str:
    """One line: 'CPU, N cores, AVX2 AVX-512F ...' (the features present)."""
    d = describe() if d is None else d
    feats = "" if d["features"] is None else ", " + (
        " ".join(name for name, on in d["features"].items() if on) or "none of " + "/".join(n for n, _ in FEATURES))
    return f"{d['cpu']}, {d['cores']} cores{feats}"


# ----------------------------------------------------------------------------------------
# Each framework's version and backend. These import the framework: call one only in the
# process that runs that framework (never in a parent that runs several).

def _about_pytorch() -> str:
    import torch
    cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "?")()
    onednn = ("NOT available" if not torch.backends.mkldnn.is_available()
              else "on" if torch.backends.mkldnn.enabled else "available but off")
    return (f"torch {torch.__version__}, oneDNN (mkldnn) {onednn}, "
            f"{torch.get_num_threads()} threads, CPU kernels {cap}")


def _about_jax() -> str:
    import jax
    import jaxlib
    devices = ", ".join(str(d) for d in jax.devices())
    return (f"jax {jax.__version__} (jaxlib {jaxlib.__version__}), backend {jax.default_backend()}, "
            f"devices {devices}")


def _about_keras() -> str:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")   # as keras_impl sets it, before keras
    import keras
    import tensorflow as tf
    # IsMklEnabled() is what TensorFlow itself asks before it uses oneDNN (and prints
    # "oneDNN custom operations are on"): the build, this CPU and TF_ENABLE_ONEDNN_OPTS.
    try:
        from tensorflow.python.util import _pywrap_util_port
        onednn = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except (ImportError, AttributeError):
        onednn = "unknown"
    env = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    keras_impl = sys.modules.get("keras_impl")          # which sets it unless the user did
    if env is not None and keras_impl is not None and not keras_impl.ONEDNN_ASKED_BY_USER:
        env += ", set by keras_impl"
    return (f"tensorflow {tf.__version__}, keras {keras.__version__} (backend {keras.backend.backend()}), "
            f"oneDNN {onednn} (TF_ENABLE_ONEDNN_OPTS={'unset' if env is None else env}), "
            f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")


def _about_peer() -> str:
    import torchvision
    return f"{_about_pytorch()}, torchvision {torchvision.__version__}"


ABOUT = {"pytorch": _about_pytorch, "jax": _about_jax, "keras": _about_keras, "peer": _about_peer}


def about(fw: str) -> str:
    """One framework's version and backend ('pytorch', 'jax', 'keras' or 'keras-xla',
    'peer'). Imports the framework; a failure to describe it is reported, not raised."""
    try:
        return ABOUT[fw.split("-")[0]]()
    except Exception as e:                 # the figures matter more than their label
        return f"could not describe {fw}: {type(e).__name__}: {e}"
