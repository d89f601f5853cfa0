"""TensorBoard event files for a run, written with tensorboardX, the same tags whatever the
framework, so that `tensorboard --logdir runs` draws the three frameworks' curves on one
chart. The event files lie in the run directory itself, so each run directory is one run in
TensorBoard, named after it.

    loss/d  loss/g                        d_loss, g_loss (metrics.csv's columns)
    D/real  D/fake_before  D/fake_after   D(x), D(G(z)) before and after the D update
    time/step_seconds                     seconds, the step's wall-clock time
    samples/fixed_noise                   the fixed-noise grid after each epoch (an image)
    config/text_summary                   config.json (text), at the step a run (re)starts
"""
from __future__ import annotations

import builtins
import sys
from pathlib import Path

import numpy as np

# metrics.csv's column -> its TensorBoard tag; "loss/..." and "D/..." group into sections
SCALAR_TAGS = {"d_loss": "loss/d", "g_loss": "loss/g", "d_real": "D/real",
               "d_fake": "D/fake_before", "d_fake_after": "D/fake_after",
               "seconds": "time/step_seconds"}
IMAGE_TAG = "samples/fixed_noise"
TEXT_TAG = "config"                 # tensorboardX stores text under "config/text_summary"


def _tensorboardx():
    """tensorboardX's writer module runs `import torch` when it loads (to accept torch
    tensors as well as arrays). common/ must not load a framework (a jax run would pay a
    second and a half for it), so unless the process has torch already, `import torch`
    fails while tensorboardX loads, as if torch were not installed, and tensorboardX takes
    NumPy arrays only. (sys.modules["torch"] = None would block it too, but Python's
    -X importtime still lists an import blocked that way, and the tests read that list to
    show that a jax or keras run never imports torch.)"""
    real_import = builtins.__import__

    def import_without_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("common/ does not import torch")
        return real_import(name, *args, **kwargs)

    hide = "torch" not in sys.modules and "tensorboardX" not in sys.modules
    if hide:
        builtins.__import__ = import_without_torch
    try:
        import tensorboardX
        from tensorboardX.proto.summary_pb2 import Summary
        from tensorboardX.summary import scalar
    finally:
        builtins.__import__ = real_import
    return tensorboardX.SummaryWriter, Summary, scalar


class TensorBoardLog:
    """The run's TensorBoard events. On resume, resume_step is the checkpoint's step: what
    an interrupted run logged after it is hidden from TensorBoard (tensorboardX's
    purge_step), as MetricsLog drops those rows, so every step shows once."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        SummaryWriter, self._summary, self._scalar = _tensorboardx()
        # tensorboardX names the file events.out.tfevents.<second>.<host><suffix>, and
        # TensorBoard reads a directory's files in the order of their names. A resume within
        # the same second would get the same name (and overwrite the file); the number of
        # files already there, as the suffix, keeps the names apart and in order.
        n = len(list(Path(run_dir).glob("events.out.tfevents.*")))
        self.writer = SummaryWriter(str(run_dir), flush_secs=5, filename_suffix=f".{n:03d}",
                                    purge_step=None if resume_step is None else resume_step + 1)

    def config(self, step: int, config_json: str) -> None:
        # markdown: indented four spaces, the JSON shows as a code block
        text = "\n".join("    " + line for line in config_json.splitlines())
        self.writer.add_text(TEXT_TAG, text, step)

    def step(self, step: int, m: dict, seconds: float) -> None:
        # one event holding the six values: half the time of six add_scalar calls (0.12
        # against 0.26 ms a step on a 2-core CPU), which counts beside a GPU step of a few ms
        values = dict(m, seconds=seconds)
        summary = self._summary(value=[self._scalar(tag, float(values[k])).value[0]
                                       for k, tag in SCALAR_TAGS.items()])
        self.writer.file_writer.add_summary(summary, step)

    def image(self, step: int, grid: np.ndarray) -> None:
        """grid: runfiles.grid's uint8 (H, W, C) picture, C = 1 or 3."""
        self.writer.add_image(IMAGE_TAG, grid, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()              # writes what is still queued, then closes the file
