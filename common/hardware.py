"""What the implementations need to know of the machine: the CPU's instruction-set
features (from /proc/cpuinfo), and what `--precision auto` picks from them or from a GPU's
compute capability. Framework-free. benchmarks/machine.py describes the whole machine for
the figures it prints.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

# (the name printed, the flag in /proc/cpuinfo)
FEATURES = (("AVX2", "avx2"), ("AVX-512F", "avx512f"), ("AVX512-BF16", "avx512_bf16"),
            ("AMX-BF16", "amx_bf16"), ("AMX-TILE", "amx_tile"))


def cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo ({} where there is none: macOS, Windows)."""
    info = {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            if info:
                break                  # the first processor is enough: they are all alike
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_model(info: dict[str, str] | None = None) -> str:
    """e.g. 'Intel(R) Xeon(R) Processor (family 6, model 143)'. A virtual machine often
    names only the brand; the family and model numbers still say which generation."""
    info = cpuinfo() if info is None else info
    name = info.get("model name") or info.get("Processor") or info.get("Hardware")
    if name:
        if info.get("cpu family") and info.get("model"):
            name += f" (family {info['cpu family']}, model {info['model']})"
        return name
    if sys.platform == "darwin":          # no /proc: ask sysctl; degrade to platform's answer
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_features(info: dict[str, str] | None = None) -> dict[str, bool] | None:
    """{name: present} for FEATURES, from the cpuinfo flags; None where they cannot be read
    (no /proc/cpuinfo, or a CPU that lists no x86 flags)."""
    info = cpuinfo() if info is None else info
    flags = info.get("flags")
    if flags is None:
        return None
    have = set(flags.split())
    return {name: flag in have for name, flag in FEATURES}


def auto_precision(gpu_capability: tuple[int, int] | None = None,
                   features: dict[str, bool] | None = None, gpu: bool = False) -> tuple[str, str]:
    """What `--precision auto` picks, and why: bf16 where the hardware has bfloat16 units
    that make it faster, fp32 everywhere else. gpu_capability: the CUDA compute capability
    of the run's GPU, None for a CPU run. On a CPU, AMX-BF16 is the mark: on our 2-core
    AVX512-BF16 CPU without AMX, idle, bf16 steps were 0.62 to 0.94x fp32's at 64 px in all
    three frameworks and 0.75 to 1.13x at 32 px (docs/speed.md, Mixed precision), while issue 14's
    probe on a Xeon with AVX512-BF16 (AMX not recorded) ran PyTorch's 1.7x faster.
    gpu=True with no capability (a GPU that does not report one): fp32, not the CPU's rule."""
    if gpu and gpu_capability is None:
        return "fp32", "a GPU whose compute capability is not known"
    if gpu_capability is not None:
        cc = ".".join(map(str, gpu_capability))
        if tuple(gpu_capability) >= (8, 0):
            return "bf16", f"a GPU of compute capability {cc} (bfloat16 tensor cores from 8.0)"
        return "fp32", f"a GPU of compute capability {cc}: no bfloat16 tensor cores (they start at 8.0)"
    f = cpu_features() if features is None else features
    if f and f.get("AMX-BF16"):
        return "bf16", "a CPU with AMX-BF16"
    return "fp32", ("a CPU without AMX-BF16, where bfloat16 measured no faster than float32"
                    if f is not None else "a CPU whose features could not be read")
