"""The three implementations side by side, section by section, generated from the sources.

    python -m docs.side_by_side               # write docs/side-by-side.html and .md
    python -m docs.side_by_side --check       # exit 1 if they differ from what the sources give
    python -m docs.side_by_side --screenshot  # also docs/side-by-side.png (headless chromium)

A section starts at a banner, two comment lines at the start of a line:

    # ======================================  (or a line of '-': '#' then 10 or more of one)
    # the training loop: anything after ':' or '(' is commentary

and runs to the next banner or the end of the file. What comes before the first banner
(docstring, imports, constants) is the section "header"; a file with no banner is one
section, "whole file". The banner's name, lowercased and cut at the first ':' or '(', is
the key that lines the three columns up. Inside a section, a numbered step comment at any
indentation,

        # (1) Update D: anything after ':' is commentary

starts a sub-section ("one gan step / update d") that runs to the next one or the end of
the section, so that the D step and the G step of one function line up on their own. The notes under each section are ours, keyed by
"<file>/<key>" in NOTES below. Framework-free: the sources are read as text, never imported.
The output is deterministic (no dates, no absolute paths), so a test can compare bytes.
"""
import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

ROOT = Path(__file__).resolve().parents[1]
HTML_OUT, MD_OUT, PNG_OUT = "docs/side-by-side.html", "docs/side-by-side.md", "docs/side-by-side.png"
FRAMEWORKS = (("pytorch", "PyTorch", "pytorch_impl"),
              ("jax", "JAX (Flax NNX + optax)", "jax_impl"),
              ("keras", "Keras 3 (TensorFlow)", "keras_impl"))
FILES = ("model.py", "step.py", "train.py", "layers.py", "parallel.py", "checkpoint.py", "sample.py")  # reading order
HEADER, WHOLE_FILE = "header", "whole file"
PYGMENTS_STYLE = "default"

# Under each section: what differs between the three and why. Short and factual; `code`.
NOTES = {
    "model.py/header": [
        "Layout, stated in each docstring: PyTorch is NCHW with OIHW kernels (transposed: IOHW); "
        "JAX and Keras are NHWC with HWIO kernels (transposed: HW-out-in). The data come as NHWC, "
        "so only PyTorch transposes them.",
        "Keras: `keras_impl/__init__.py`, which Python runs first, sets `KERAS_BACKEND` before "
        "anything imports `keras`.",
    ],
    "model.py/building blocks": [
        "One spec layer is one block: PyTorch's `block()` returns an `nn.Sequential` of named "
        "children, JAX's `Block` is an `nnx.Module` that calls its parts in turn, Keras's `block()` "
        "a nested `keras.Sequential`. In all three `op(blk)` finds its `conv` or `fc` and "
        "`act_first` puts the activation before BatchNorm. The BatchNorm each uses is its "
        "`layers.py`'s.",
        "PyTorch's `linear()` is `nn.Linear` plus the (C, H, W) map its input comes from or "
        "its output becomes (`in_map`, `out_map`), for the portable conversion. JAX's `conv()` "
        "and `linear()`, Keras's `conv()` and `dense()` pin what Flax and Keras would choose "
        "otherwise: the padding, N(0, 0.02) kernels, zero biases.",
    ],
    "model.py/the tutorial's network": [
        "z goes in as a 1x1 map, nz channels: PyTorch `z.view(B, -1, 1, 1)`, JAX "
        "`z.reshape(B, 1, 1, -1)`, Keras `Reshape((1, 1, nz))`; the 1x1 logit comes out as "
        "`.view(-1)`, `reshape(-1)`, `Reshape(())`.",
        "Every layer is 4x4 with PyTorch's numbers: stride 1 padding 0 for G's first and D's "
        "last, stride 2 padding 1 between. JAX passes them as they are; Keras writes 'valid' for "
        "p0 and 'same' for p1, which TF splits 1 + 1 because k - s = 2 is even.",
        "LeakyReLU's slope is set to 0.2 (`LEAKY_SLOPE`) in all three, here and in the paper's "
        "network: PyTorch's and Flax's default is 0.01, Keras's 0.3.",
    ],
    "model.py/the paper's network": [
        "G's 5x5 stride-2 transposed convolutions scatter 2H + 3 rows. PyTorch's `padding=2, "
        "output_padding=1` crops 2 at the top and 1 at the bottom (left and right alike): the "
        "extra row goes at the end. JAX's `ConvTranspose(ch, ch // 2, 5, 2, 2, 1)` crops the same. "
        "'SAME' gives the same 2H x 2W but crops 1 at the top and 2 at the bottom, the image "
        "one pixel off with no error: Keras's `Conv2DTranspose` (with or without "
        "`output_padding=1`) and Flax's `nnx.ConvTranspose` (which also leaves the kernel "
        "unflipped). So Keras goes 'valid' (2H + 3), `output_padding=1` (2H + 4), `Cropping2D(2)`.",
        "D's 5x5 stride-2 convolutions pad 2 on every side: PyTorch `padding=2`, JAX ((2, 2), (2, 2)), "
        "Keras `ZeroPadding2D(2)` before a 'valid' `Conv2D`. Flax's and Keras's 'SAME' would pad "
        "1 at the top and left, 2 at the bottom and right: the same size, other numbers.",
        "Flatten order: PyTorch's `nn.Flatten` before D's fully connected layer and `nn.Unflatten` "
        "after G's projection use (C, H, W); a reshape of NHWC (JAX's `reshape_in` / `reshape_out`, "
        "Keras's `Flatten` / `Reshape`) uses (H, W, C), the portable order of `common/weights.py`. "
        "So PyTorch's `to_portable` / `load_portable` permute the rows of d5's kernel and the "
        "columns of g1's with `weights.chw_to_hwc`, and JAX and Keras permute nothing. Left in "
        "PyTorch's order a kernel loads and gives another network: each framework's model test "
        "shows how far off.",
    ],
    "model.py/the cs231n network": [
        "The activation comes before BatchNorm in g1 to g3 (`act_first=True` in all three), so "
        "every layer keeps its bias: PyTorch's default; JAX and Keras pass `True`.",
        "g1 and g2 normalise each fully connected feature over the batch: PyTorch "
        "`BatchNorm1d`, JAX and Keras the `BatchNorm` they use on maps. g2's 7*7*ch features are in "
        "(C, H, W) order in PyTorch (g3's `nn.Unflatten` views them as (ch, 7, 7)), so `to_portable` "
        "permutes g2's kernel columns, bias and BatchNorm vectors (`feature_order`), and the rows "
        "of d3's kernel after D's flatten; JAX's and Keras's reshapes are already in (H, W, C) order.",
        "Max-pool 2x2, stride 2: PyTorch's `MaxPool2d(2)` and Keras's `MaxPooling2D(2)` make the "
        "stride the window; Flax's `nnx.max_pool` defaults to stride 1 (23x23 instead of 12x12), so "
        "JAX pins `strides` and 'VALID'. The 5x5 convolutions have no padding: PyTorch's default, "
        "Keras's 'valid', JAX's explicit 0 (Flax's 'SAME' would keep 28x28).",
        "LeakyReLU 0.01 (`CS231N_SLOPE`), given in all three: PyTorch's and Flax's default, "
        "where Keras's is 0.3.",
    ],
    "model.py/initialisation": [
        "Weights N(0, 0.02), BatchNorm gamma N(1, 0.02) and beta 0 replace each default "
        "(kaiming-uniform, lecun-normal, glorot-uniform): PyTorch applies `dcgan_init` after "
        "building; JAX and Keras give initializers to the layers above.",
        "Randomness: PyTorch and Keras seed a global generator (`torch.manual_seed`, "
        "`keras.utils.set_random_seed`); JAX splits explicit keys off `nnx.Rngs(seed)`. The same "
        "seed gives different weights in each framework: the tests share weights through the portable file.",
    ],
    "model.py/portable weights": [
        "One layout for all three, kernels (kh, kw, in, out): PyTorch permutes OIHW (conv) and "
        "IOHW (transposed); JAX and Keras only swap in and out of the transposed kernel, never flip it.",
        "Reading and writing state: PyTorch `.detach().cpu()` copied by `np.array` (a snapshot) and "
        "`copy_` under `no_grad`; JAX `np.asarray(v[...])` and `v[...] = `; Keras "
        "`ops.convert_to_numpy` and `assign`. Every loader asserts each shape before it copies.",
    ],
    "model.py/summary": [
        "One table format, measured on the real networks: PyTorch counts `requires_grad` "
        "parameters and the BatchNorm buffers; JAX `nnx.Param` and `nnx.BatchStat` state; Keras "
        "`trainable_weights` and `non_trainable_weights` (its `count_params()` adds the two).",
    ],
    "step.py/header": [
        "Single-device code in all three, with no data-parallel import: what runs it on several "
        "devices is `parallel.py`'s, around it.",
    ],
    "step.py/one gan step": [
        "The step's shape, the same in all three: G runs once, D is updated on real and fake, "
        "then G is updated through the updated D on the same fake batch.",
        "How state is carried: PyTorch mutates modules and optimizers in place "
        "(`zero_grad`, `backward`, `step`); JAX's `@nnx.jit` compiles the step and writes the new "
        "state back into the NNX objects; Keras keeps everything in a `GAN(keras.Model)` whose "
        "`train_step` `fit` calls, and compiles it into a `tf.function`.",
        "What G's backward pass needs is kept from the one forward pass: PyTorch's autograd graph "
        "hangs on `fake`; JAX keeps `g_backward` from `nnx.vjp` (a second G(z) inside a loss "
        "function would move G's BatchNorm statistics twice); Keras opens `g_tape` around G(z).",
    ],
    "step.py/one gan step / update d": [
        "Where gradients stop: PyTorch `fake.detach()`; JAX differentiates with respect to D's "
        "parameters only and `fake` enters as a plain array; Keras made `fake` before `d_tape` "
        "started recording, and takes the gradient for D's `trainable_variables`.",
        "BatchNorm: real and fake go through D in two calls, in training mode, so each batch is "
        "normalised with its own statistics (one call on both would mix them).",
        "The update: PyTorch `zero_grad` / `backward` / `step`; JAX `nnx.value_and_grad` then "
        "`optimizer.update(model, grads)`; Keras `tape.gradient` then `optimizer.apply`.",
    ],
    "step.py/one gan step / update g": [
        "The gradient goes through D into G, but D's own weight gradients are not computed: "
        "PyTorch turns them off (`requires_grad_(False)`), JAX and Keras ask only for what G needs "
        "(JAX the gradient with respect to `fake`, then `g_backward`; Keras G's variables).",
        "The metrics leave the device in one copy per step: a stacked tensor in PyTorch and JAX; "
        "Keras returns a dict, which `fit` hands to the callbacks.",
    ],
    "step.py/mixed precision": [
        "`--precision bf16`: PyTorch wraps the forward passes in `torch.autocast`; JAX sets each "
        "layer's computation `dtype`; Keras builds the layers under the `mixed_bfloat16` policy. "
        "In all three the parameters, their gradients and Adam's moments stay float32, BatchNorm "
        "computes its statistics in float32 and the losses are float32.",
    ],
    "step.py/sampling": [
        "BatchNorm in inference mode (running statistics): PyTorch `eval()` under "
        "`torch.no_grad()`, then back to `train()`, and NCHW to NHWC; NNX `eval()` changes a "
        "static attribute, so `nnx.jit` compiles a second version, once; Keras `training=False`.",
    ],
    "train.py/header": [
        "The loop only: the step is `step.py`'s, the devices `parallel.py`'s, the native "
        "checkpoint (`checkpoint.pt`, `checkpoint.npz` or `checkpoint.keras`) `checkpoint.py`'s; "
        "the portable `weights.npz` is the same for all three.",
    ],
    "train.py/the training loop": [
        "PyTorch and JAX write the loop out (JAX dispatches each step asynchronously: copying "
        "its metrics to the host waits for it). Keras's loop is `fit`, one epoch per call, and a "
        "`keras.callbacks.Callback` writes the run files; Ctrl-C or SIGTERM sets `stop_training`.",
        "All three: a checkpoint after every epoch (and every `--checkpoint-every` steps), at the "
        "end and on Ctrl-C or SIGTERM; portable weights always. `runfiles.Run` does the writing "
        "(one writer per run directory, a full disk in one line); the framework only saves.",
    ],
    "layers.py/header": [
        "PyTorch is the reference, so its `layers.py` only pins the defaults that matter; JAX's "
        "and Keras's write out what their own layers compute differently. Every row of DESIGN's "
        "table of silently differing defaults that a layer can fix is fixed here.",
    ],
    "layers.py/batchnorm": [
        "Pinned to PyTorch's eps 1e-5 and momentum 0.1 (weight of the new value): JAX writes "
        "BatchNorm out and Keras subclasses it, since theirs weigh the old value (0.99), Keras's "
        "eps is 1e-3, and both feed the running variance the biased batch variance, PyTorch the "
        "unbiased. PyTorch picks `BatchNorm1d` or `BatchNorm2d`; JAX's and Keras's one class "
        "normalises over every axis but the last, which is either.",
        "How BatchNorm knows train from eval: PyTorch `.train()` / `.eval()` set a flag on every "
        "module; NNX `.train()` / `.eval()` set `use_running_average`; Keras takes `training=` in each call.",
        "Keras's is also the synchronised BatchNorm of a data-parallel run (`synchronized=True`); "
        "PyTorch's is swapped for one in `parallel.py`; JAX's means are over the global array already.",
    ],
    "layers.py/transposed convolution": [
        "PyTorch's padding p crops the output (and output_padding q crops q less at the bottom "
        "and right). JAX has its own `ConvTranspose` that takes PyTorch's p and q, not "
        "`nnx.ConvTranspose`, whose padding pads the dilated input: it hands `lax.conv_transpose` "
        "the flipped kernel and K - 1 - p before, K - 1 - p + q after, with a hand-written "
        "backward pass (`custom_vjp`) for XLA:CPU's speed. Keras has only 'valid' and 'same', "
        "which are p0 and p1 for 4x4 kernels; the paper's 5x5 layers get `conv5x5_s2` and "
        "`conv_transpose5x5_s2` in its `model.py`.",
    ],
    "layers.py/adam": [
        "PyTorch and optax add eps to the bias-corrected sqrt(v); Keras's Adam adds it to the "
        "uncorrected one, which acts like an eps 32x larger at step 1: `PyTorchAdam` computes "
        "the update as PyTorch does, bias corrections in float64.",
        "Under a tf.distribute strategy Keras sums the replicas' gradients where PyTorch's DDP "
        "averages them: `PyTorchAdam.apply` divides by the number of replicas first.",
    ],
    "parallel.py/header": [
        "How each framework is told to use several devices: PyTorch needs one process per "
        "device from `torchrun`; JAX and Keras take `--devices N` in one process.",
    ],
    "parallel.py/devices": [
        "PyTorch picks a `torch.device` (CUDA, MPS or CPU) and moves tensors with `.to()`; JAX "
        "picks a `jax.Device` and puts arrays on it (the jax from PyPI sees no GPU); "
        "TensorFlow runs every op on a GPU when it sees one, so `--device cpu` hides the GPUs.",
    ],
    "parallel.py/data parallel": [
        "PyTorch runs one process per device (`torchrun`), each training its own slice of the "
        "global batch in `DistributedDataParallel`, which averages the gradients (`DDP` steps "
        "aside while D is frozen for G's update); BatchNorm is `nn.SyncBatchNorm` (on the CPU, "
        "which it refuses, `CPUSyncBatchNorm` all-reduces the same sums); the loop averages the "
        "metrics, and only rank 0 writes the run directory.",
        "JAX runs one program over a one-axis `Mesh`: the state replicated, the batch sharded, "
        "the step unchanged; its means, BatchNorm's included, are over the global array.",
        "Keras replicates the model on each device with `tf.distribute.MirroredStrategy`, one "
        "replica per device in one process; `fit` runs `train_step` on each and averages the "
        "metrics it returns.",
    ],
    "checkpoint.py/header": [
        "The native checkpoint is `checkpoint.pt`, `checkpoint.npz` or `checkpoint.keras`; any "
        "damaged or foreign file is one error line naming it.",
    ],
    "checkpoint.py/checkpoints": [
        "PyTorch saves the `state_dict`s of networks and optimizers (`torch.save`); JAX flattens "
        "the four NNX objects' state into a plain `.npz`; Keras saves the whole `GAN` model, "
        "optimizers included, and reads its step from the optimizer's update count.",
        "Written atomically. The step is the whole position: the data order and the noise are "
        "functions of (seed, step). PyTorch writes through a file object, where a full disk is "
        "an `OSError`; a checkpoint of the same shapes from another run (seed, lr, ...) is refused.",
    ],
    "sample.py/whole file": [
        "The same steps in all three: read portable weights (written by any of the three), "
        "build, load, generate with BatchNorm in inference mode. Keras picks the device first: "
        "TensorFlow can hide its GPUs only before it runs an op.",
    ],
}


# ----------------------------------------------------------------------------------------
# sections

RULE = re.compile(r"#\s?([=-])\1{9,}\s*")
NAME = re.compile(r"#\s+(\S.*?)\s*")
STEP = re.compile(r"\s*#\s\((\d+)\)\s+(\S.*?)\s*")     # '    # (1) Update D: ...'


@dataclass(frozen=True)
class Section:
    key: str            # what aligns the columns
    title: str          # the banner (or step comment) as written
    start: int          # first line (1-based): the banner, the step comment, or 1
    end: int            # last non-blank line
    body: int           # first line shown: after the banner and the blank lines below it
    label: str = ""     # the name in headings: the title cut at ':' ('one GAN step · (1) Update D')


def section_key(title: str) -> str:
    return re.split(r"[:(]", title, maxsplit=1)[0].strip().lower()


def step_name(line: str):
    """'(1) Update D' for a step comment line, else None."""
    m = STEP.fullmatch(line)
    return f"({m.group(1)}) {m.group(2).split(':', 1)[0].strip()}" if m else None


def step_key(parent_key: str, name: str) -> str:
    """'one gan step / update d' for the step '(1) Update D' of section 'one gan step'."""
    return f"{parent_key} / {name.split(')', 1)[1].strip().lower()}"


def last_line(lines: list, start: int, stop: int) -> int:
    """The last non-blank line (1-based) among lines[start:stop], or start if none."""
    while stop > start and not lines[stop - 1].strip():
        stop -= 1
    return stop


def split_steps(lines: list, s: "Section") -> list:
    """The section, cut at its numbered step comments: [head, step 1, step 2, ...]."""
    marks = [i for i in range(s.body - 1, s.end) if step_name(lines[i])]
    if not marks:
        return [s]
    out = [Section(s.key, s.title, s.start, last_line(lines, s.start - 1, marks[0]), s.body, s.label)]
    for n, i in enumerate(marks):
        stop = marks[n + 1] if n + 1 < len(marks) else s.end
        name = step_name(lines[i])
        out.append(Section(step_key(s.key, name), lines[i].strip().lstrip("#").strip(), i + 1,
                           last_line(lines, i, stop), i + 1, f"{s.label} · {name}"))
    return out


def parse_sections(text: str) -> list:
    lines = text.splitlines()
    starts = [(i, NAME.fullmatch(lines[i + 1]).group(1)) for i in range(len(lines) - 1)
              if RULE.fullmatch(lines[i]) and NAME.fullmatch(lines[i + 1])]
    bounds = [(0, None)] + starts if not starts or starts[0][0] > 0 else starts
    sections = []
    for n, (i, title) in enumerate(bounds):
        stop = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        end = stop
        while end > i and not lines[end - 1].strip():
            end -= 1
        body = i if title is None else i + 2
        while body < end and not lines[body].strip():
            body += 1
        if title is None:
            if end == 0:
                continue
            title = WHOLE_FILE if not starts else HEADER
        label = re.split(r"[:(]", title, maxsplit=1)[0].strip()
        sections += split_steps(lines, Section(section_key(title), title, i + 1, end, body + 1, label))
    return sections


@dataclass
class Column:
    fw: str
    path: str           # relative to the repository root
    section: Section
    html_lines: list    # highlighted lines body..end
    text_lines: list


def read_sources(root: Path) -> dict:
    """{(file, fw): (text, sections)} for the files that exist."""
    out = {}
    for fw, _, pkg in FRAMEWORKS:
        for f in FILES:
            p = root / pkg / f
            if p.is_file():
                text = p.read_text(encoding="utf-8")
                out[(f, fw)] = (text, parse_sections(text))
    return out


def merged_order(lists: list) -> list:
    """The keys of several ordered lists in one order: the first list's, with another
    list's extra keys placed just before the key that follows them there."""
    order = []
    for keys in lists:
        for i, k in enumerate(keys):
            if k not in order:
                after = [n for n in keys[i + 1:] if n in order]
                order.insert(order.index(after[0]) if after else len(order), k)
    return order


def build_table(root: Path) -> list:
    """[(file, key, {fw: Column or None})] in page order."""
    sources = read_sources(root)
    lexer = PythonLexer(stripnl=False, ensurenl=True)
    formatter = HtmlFormatter(nowrap=True)
    rows = []
    for f in FILES:
        per_fw = {}
        for fw, _, pkg in FRAMEWORKS:
            if (f, fw) not in sources:
                continue
            text, sections = sources[(f, fw)]
            # the whole file at once, so a string that spans lines is lexed as one;
            # pygments closes and reopens its spans at every newline
            hl = highlight(text, lexer, formatter).split("\n")
            raw = text.splitlines()
            assert len(hl) >= len(raw), (pkg, f)
            per_fw[fw] = {s.key: Column(fw, f"{pkg}/{f}", s, hl[s.body - 1:s.end], raw[s.body - 1:s.end])
                          for s in sections}
        for key in merged_order([[s.key for s in sources[(f, fw)][1]]
                                 for fw, _, _ in FRAMEWORKS if (f, fw) in sources]):
            rows.append((f, key, {fw: per_fw.get(fw, {}).get(key) for fw, _, _ in FRAMEWORKS}))
    return rows


def problems(rows: list) -> list:
    """What keeps the page from being complete: sections missing somewhere, notes missing."""
    out = []
    for f, key, cols in rows:
        for fw, _, pkg in FRAMEWORKS:
            if cols[fw] is None:
                out.append(f"{pkg}/{f}: no section '{key}'")
        if f"{f}/{key}" not in NOTES:
            out.append(f"no note for section '{f}/{key}' in NOTES (docs/side_by_side.py)")
    return out


# ----------------------------------------------------------------------------------------
# rendering

def slug(text: str) -> str:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def heading(f: str, key: str, cols: dict) -> str:
    """'train.py · one GAN step': the name as the first implementation that has it writes it."""
    return f"{f} · " + next((c.section.label for c in cols.values() if c is not None), key)


def link(col: Column) -> str:
    return f"../{col.path}#L{col.section.start}-L{col.section.end}"


def lines_label(col: Column) -> str:
    return f"lines {col.section.start}–{col.section.end}"


def inline_code_html(text: str) -> str:
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p)
                   for i, p in enumerate(parts))


CSS = """
:root { --gap: 10px; --mono: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
body { margin: 0 auto; padding: 16px 14px 40px; max-width: 1800px; color: #1a1a1a;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 28px 0 6px; padding-bottom: 3px; border-bottom: 2px solid #333; }
h3 { font-size: 16px; margin: 20px 0 4px; }
a { color: #0550ae; }
code { font-family: var(--mono); font-size: 0.92em; background: #eef1f4; padding: 0 3px; border-radius: 3px; }
.sbs-intro { max-width: 1000px; margin: 0 0 10px; }
table.sbs-toc { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px; }
table.sbs-toc th, table.sbs-toc td { border: 1px solid #ccd; padding: 2px 8px; text-align: left; }
table.sbs-toc th { background: #eef1f4; }
.sbs-note { margin: 2px 0 8px; padding: 6px 10px; background: #fff8e1; border-left: 4px solid #e0a800;
            max-width: 1200px; font-size: 13.5px; }
.sbs-note ul { margin: 0; padding-left: 18px; }
.sbs-grid { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: var(--gap); }
.sbs-col { min-width: 0; border: 1px solid #d0d7de; border-radius: 4px; overflow: hidden; }
.sbs-colhead { padding: 4px 8px; background: #eef1f4; border-bottom: 1px solid #d0d7de; font-size: 13px; }
.sbs-colhead b { margin-right: 6px; }
.sbs-missing { padding: 8px; color: #a40e26; font-weight: bold; }
.sbs-code { font: 11.5px/1.4 var(--mono); padding: 4px 0; }
.sbs-l { display: grid; grid-template-columns: 4ch minmax(0, 1fr); column-gap: 1ch; }
.sbs-ln { text-align: right; color: #8c959f; user-select: none; }
/* a long line wraps, and goes on 4 characters in from its own indentation (--i) */
.sbs-t { white-space: pre-wrap; overflow-wrap: anywhere; padding-right: 6px;
         padding-left: calc((var(--i, 0) + 4) * 1ch); text-indent: calc((var(--i, 0) + 4) * -1ch); }
@media print {
  @page { size: A4 landscape; margin: 9mm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  a { color: inherit; text-decoration: none; }
  h2 { break-before: page; }
  h2:first-of-type { break-before: auto; }
  h3, .sbs-note, .sbs-colhead { break-after: avoid; }
  .sbs-code { font-size: 7pt; background: none; }
  .sbs-col { border-color: #999; }
  .sbs-l { break-inside: avoid; }
}
"""


def render_html(rows: list) -> str:
    fmt = HtmlFormatter(style=PYGMENTS_STYLE)
    pyg_css = "\n".join(fmt.get_background_style_defs(".sbs-code") + fmt.get_token_style_defs(".sbs-code"))
    names = {fw: name for fw, name, _ in FRAMEWORKS}
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>One DCGAN, three frameworks: side by side</title>",
           "<!-- generated by `python -m docs.side_by_side` from the sources: do not edit -->",
           "<style>", CSS.strip(), pyg_css, "</style>", "</head>", "<body>",
           "<h1>One DCGAN, three frameworks: side by side</h1>",
           '<p class="sbs-intro">The three implementations, section by section, cut at the banners '
           "that their files share, in reading order (" + ", ".join(f"<code>{f}</code>" for f in FILES) + "), "
           "with a note on what differs and why. Generated from the sources by "
           "<code>python -m docs.side_by_side</code>; each column header links to its file and lines.</p>",
           '<table class="sbs-toc">', "<tr><th>section</th>"
           + "".join(f"<th>{html.escape(names[fw])}</th>" for fw, _, _ in FRAMEWORKS) + "</tr>"]
    for f, key, cols in rows:
        cells = "".join(
            f'<td><a href="{html.escape(link(c))}">{html.escape(c.path)} {lines_label(c)}</a></td>'
            if c else '<td class="sbs-missing">missing</td>' for c in cols.values())
        out.append(f'<tr><td><a href="#{slug(heading(f, key, cols))}">{html.escape(heading(f, key, cols))}</a></td>{cells}</tr>')
    out.append("</table>")
    current = None
    for f, key, cols in rows:
        if f != current:
            current = f
            out.append(f'<h2 id="{slug(f)}">{html.escape(f)}</h2>')
        sid = slug(heading(f, key, cols))
        out.append(f'<section class="sbs-section" id="{sid}" data-section="{html.escape(f"{f}/{key}")}">')
        out.append(f"<h3>{html.escape(heading(f, key, cols))}</h3>")
        note = NOTES.get(f"{f}/{key}")
        if note:
            out.append('<div class="sbs-note"><ul>' + "".join(f"<li>{inline_code_html(n)}</li>" for n in note)
                       + "</ul></div>")
        else:
            out.append('<div class="sbs-note sbs-missing">no note for this section yet</div>')
        out.append('<div class="sbs-grid">')
        for fw, name, pkg in FRAMEWORKS:
            c = cols[fw]
            out.append(f'<div class="sbs-col" data-fw="{fw}">')
            if c is None:
                out.append(f'<div class="sbs-colhead"><b>{html.escape(name)}</b></div>'
                           f'<div class="sbs-missing">{pkg}/{f} has no section “{html.escape(key)}”</div></div>')
                continue
            out.append(f'<div class="sbs-colhead"><b>{html.escape(name)}</b>'
                       f'<a href="{html.escape(link(c))}">{html.escape(c.path)} {lines_label(c)}</a></div>')
            out.append('<div class="sbs-code">')
            for n, (line, raw) in enumerate(zip(c.html_lines, c.text_lines), c.section.body):
                indent = min(len(raw) - len(raw.lstrip(" ")), 16)     # deep continuation lines: wrap at 20
                style = f' style="--i:{indent}"' if indent else ""
                out.append(f'<div class="sbs-l"><span class="sbs-ln">{n}</span>'
                           f'<span class="sbs-t"{style}>{line}</span></div>')
            out.append("</div></div>")
        out.append("</div></section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def fence(lines: list) -> str:
    longest = max((len(m) for l in lines for m in re.findall(r"`+", l)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(rows: list) -> str:
    names = {fw: name for fw, name, _ in FRAMEWORKS}
    out = ["# One DCGAN, three frameworks: side by side", "",
           "<!-- generated by `python -m docs.side_by_side` from the sources: do not edit -->", "",
           "The three implementations, section by section, cut at the banners that their files share, "
           "in reading order (" + ", ".join(f"`{f}`" for f in FILES) + "), with a note on what "
           "differs and why. The same page with "
           "three columns and highlighting: [side-by-side.html](side-by-side.html) (open it from a "
           "clone). Generated from the sources by `python -m docs.side_by_side`.", "",
           "| section | " + " | ".join(names[fw] for fw, _, _ in FRAMEWORKS) + " |",
           "|---|" + "---|" * len(FRAMEWORKS)]
    for f, key, cols in rows:
        cells = " | ".join(f"[{lines_label(c)}]({link(c)})" if c else "**missing**" for c in cols.values())
        out.append(f"| [{heading(f, key, cols)}](#{slug(heading(f, key, cols))}) | {cells} |")
    current = None
    for f, key, cols in rows:
        if f != current:
            current = f
            out += ["", f"## {f}"]
        out += ["", f"### {heading(f, key, cols)}", ""]
        out += [f"- {n}" for n in NOTES.get(f"{f}/{key}", ["**no note for this section yet**"])]
        for fw, name, pkg in FRAMEWORKS:
            c = cols[fw]
            out.append("")
            if c is None:
                out.append(f"**{name}**: `{pkg}/{f}` has no section “{key}”.")
                continue
            out += [f"**{name}** · [`{c.path}` {lines_label(c)}]({link(c)})", ""]
            tick = fence(c.text_lines)
            out += [tick + "python", *c.text_lines, tick]
    out.append("")
    return "\n".join(out)


def render(root: Path = ROOT, rows: list = None) -> dict:
    """{relative output path: text} for the current sources under root."""
    rows = build_table(root) if rows is None else rows
    return {HTML_OUT: render_html(rows), MD_OUT: render_markdown(rows)}


# ----------------------------------------------------------------------------------------
# screenshot: Debian's chromium, headless

def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def chromium(url: str, *args, timeout=120) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium found: install Debian's `chromium` package "
                                "(apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking",
                               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                               f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=timeout)


def screenshot(html_path: Path, png_path: Path, width=1440, height=2000) -> None:
    png_path.unlink(missing_ok=True)
    r = chromium(html_path.resolve().as_uri(), f"--screenshot={png_path.resolve()}",
                 f"--window-size={width},{height}")
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {r.returncode}): {r.stderr[-2000:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m docs.side_by_side", description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the pages are not what the sources give")
    ap.add_argument("--screenshot", action="store_true", help=f"also write {PNG_OUT} with headless chromium")
    ap.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    rows = build_table(args.root)
    pages = render(args.root, rows)
    for p in problems(rows):
        print(f"warning: {p}", file=sys.stderr)
    if args.check:
        stale = [p for p, text in pages.items()
                 if not (args.root / p).is_file() or (args.root / p).read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"{p} is stale: run python -m docs.side_by_side", file=sys.stderr)
        return 1 if stale else 0
    for p, text in pages.items():
        (args.root / p).parent.mkdir(parents=True, exist_ok=True)
        (args.root / p).write_text(text, encoding="utf-8")
        print(f"wrote {p}")
    if args.screenshot:
        screenshot(args.root / HTML_OUT, args.root / PNG_OUT)
        print(f"wrote {PNG_OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
