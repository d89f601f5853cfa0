"""benchmarks.profile_jax: what it reads from XLA's compiled program is checked against
counts made by hand from the shapes, and its end-of-run check (the compiled step's FLOPs
against benchmarks.flops' count from the spec) holds for the tutorial network. The times it
prints are figures, not asserted beyond being there."""
import re

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.profile_jax import parse_hlo
from jax_impl.layers import DN, conv_transpose
from tests.conftest import run_cli

TINY = ("--size", "16", "--width", "4", "--batch-size", "4", "--steps", "1", "--warmup", "1")


def compiled_flops(f, *args) -> int:
    ops = parse_hlo(jax.jit(f).lower(*args).compile().as_text())
    return sum(o["flops"] for o in ops.values() if not o["fused"])


def test_flops_of_xla_s_own_program_match_counts_from_the_shapes():
    n, h, c, o, k = 3, 8, 5, 7, 4
    x = jnp.ones((n, h, h, c))
    kernel = jnp.ones((k, k, c, o))
    # a 4x4 stride-2 convolution, padding 1: (h/2)^2 output pixels, k*k*c multiply-adds each
    conv = lambda x, w: lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN)
    assert compiled_flops(conv, x, kernel) == 2 * n * (h // 2) ** 2 * k * k * c * o
    # a matrix product (m, kk) @ (kk, p)
    a, b = jnp.ones((6, 11)), jnp.ones((11, 9))
    assert compiled_flops(lambda a, b: a @ b, a, b) == 2 * 6 * 11 * 9
    # a transposed convolution, stride 2: each input pixel scatters k*k*o multiply-adds per
    # input channel; the zeros XLA's form inserts between input pixels are not counted
    tconv = lambda x, w: conv_transpose(x, w, 2, 1)
    assert compiled_flops(tconv, x, kernel) == 2 * n * h * h * k * k * c * o
    # one input pixel (the tutorial's first layer): one matrix product, no padding taps
    assert compiled_flops(lambda z, w: conv_transpose(z, w, 1, 0), jnp.ones((n, 1, 1, c)), kernel) \
        == 2 * n * k * k * c * o


def test_profile_prints_ops_and_the_compiled_step_does_the_spec_s_flops():
    out = run_cli("benchmarks.profile_jax", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "machine: " in out.stdout and "  jax " in out.stdout
    assert re.search(r"median step [\d.]+ s \(wall\)", out.stdout)
    rows = re.findall(r"\n\s+([\d.]+)\s+[\d.]+%\s+([\d.]+)\s+(?:[\d.]+)?\s+(\S+): ", out.stdout)
    assert len(rows) >= 5 and any(float(ms) > 0 for ms, _, _ in rows), out.stdout
    m = re.search(r"do ([\d.]+) GFLOP; benchmarks.flops counts ([\d.]+) from the spec \(([\d.]+)x\)", out.stdout)
    assert m, out.stdout
    # the compiled step does the algorithm's work and at most the border padding more (a
    # first layer of G computed as a padded convolution, as before, made it 1.4x here)
    assert 1.0 <= float(m.group(3)) <= 1.1, out.stdout


def test_profile_refuses_a_size_the_network_cannot_make():
    out = run_cli("benchmarks.profile_jax", "--size", "20")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "power of two" in out.stderr
