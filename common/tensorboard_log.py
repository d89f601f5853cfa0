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
import os
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np

# metrics.csv's column -> its TensorBoard tag; "loss/..." and "D/..." group into sections
SCALAR_TAGS = {"d_loss": "loss/d", "g_loss": "loss/g", "d_real": "D/real",
               "d_fake": "D/fake_before", "d_fake_after": "D/fake_after",
               "seconds": "time/step_seconds"}
IMAGE_TAG = "samples/fixed_noise"
TEXT_TAG = "config"                 # tensorboardX stores text under "config/text_summary"
FLUSH_SECONDS = 5                   # how stale TensorBoard's view of a running run may get


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
        from tensorboardX import summary
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.record_writer import masked_crc32c
    finally:
        builtins.__import__ = real_import
    return summary, Event, SessionLog, masked_crc32c


class EventFile:
    """One events.out.tfevents file, in TensorFlow's record format (length, its CRC, the
    event, its CRC), written by the caller's thread. tensorboardX's SummaryWriter writes from
    a thread of its own: on a full disk that thread dies with a traceback of its own, and
    the queue feeding it then blocks the training loop for good. Here events wait in memory
    until flush(), which writes them with os.write; if the disk refuses them, the file is
    cut back to its last whole record (so TensorBoard reads it to the end) and the OSError
    goes to the caller."""

    def __init__(self, path: Path, crc):
        self.path, self.crc = path, crc
        self.pending = bytearray()
        self.size = 0                     # bytes on disk, all of them whole records
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def add(self, event) -> None:
        event.wall_time = event.wall_time or time.time()
        data = event.SerializeToString()
        header = struct.pack("Q", len(data))
        self.pending += (header + struct.pack("I", self.crc(header)) + data
                         + struct.pack("I", self.crc(data)))

    def flush(self) -> None:
        try:
            done = 0
            while done < len(self.pending):
                done += os.write(self.fd, self.pending[done:])
        except OSError:
            os.ftruncate(self.fd, self.size)
            raise
        self.size += len(self.pending)
        self.pending.clear()

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                self.flush()
        finally:
            os.close(self.fd)


class TensorBoardLog:
    """The run's TensorBoard events. On resume, resume_step is the checkpoint's step: what
    an interrupted run logged after it is hidden from TensorBoard (the purge_step of
    tensorboardX's SummaryWriter: a SessionLog START at that step), as MetricsLog drops
    those rows, so every step shows once. Events reach the file at flush(), which the run
    calls at each checkpoint, and every FLUSH_SECONDS."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self._summary, self._event, session_log, crc = _tensorboardx()
        # The file's name is tensorboardX's, events.out.tfevents.<second>.<host><suffix>,
        # and TensorBoard reads a directory's files in the order of their names. A resume
        # within the same second would get the same name (and overwrite the file); the
        # number of files already there, as the suffix, keeps the names apart and in order.
        n = len(list(Path(run_dir).glob("events.out.tfevents.*")))
        name = f"events.out.tfevents.{str(time.time())[:10]}.{socket.gethostname()}.{n:03d}"
        self.path = Path(run_dir) / name
        self.file = EventFile(self.path, crc)
        self.file.add(self._event(file_version="brain.Event:2"))
        if resume_step is not None:
            self.file.add(self._event(step=resume_step + 1,
                                      session_log=session_log(status=session_log.START)))
        self.flush()

    def _add(self, summary, step: int) -> None:
        self.file.add(self._event(summary=summary, step=step))
        if time.monotonic() - self.flushed > FLUSH_SECONDS:
            self.flush()

    def config(self, step: int, config_json: str) -> None:
        # markdown: indented four spaces, the JSON shows as a code block
        text = "\n".join("    " + line for line in config_json.splitlines())
        self._add(self._summary.text(TEXT_TAG, text), step)

    def step(self, step: int, m: dict, seconds: float) -> None:
        # one event holding the six values: half the time of six add_scalar calls (0.12
        # against 0.26 ms a step on a 2-core CPU), which counts beside a GPU step of a few ms
        values = dict(m, seconds=seconds)
        self._add(self._summary.Summary(value=[self._summary.scalar(tag, float(values[k])).value[0]
                                               for k, tag in SCALAR_TAGS.items()]), step)

    def image(self, step: int, grid: np.ndarray) -> None:
        """grid: runfiles.grid's uint8 (H, W, C) picture, C = 1 or 3."""
        self._add(self._summary.image(IMAGE_TAG, grid, dataformats="HWC"), step)

    def flush(self) -> None:
        self.file.flush()
        self.flushed = time.monotonic()

    def close(self, flush: bool = True) -> None:
        """flush=False: leave what was not written yet (the disk refused it already)."""
        self.file.close(flush)
