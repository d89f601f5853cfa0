"""common/tensorboard_log.py as runfiles.Run drives it, without a framework: a run killed
after its checkpoint, then resumed from that checkpoint, shows every step once in
TensorBoard. (Each implementation's short-run and resume tests check its events too.)"""
from types import SimpleNamespace

import numpy as np

from common import runfiles
from common.config import Config
from tests import helpers


def metrics(value):
    return {k: value + i / 10 for i, k in enumerate(runfiles.METRICS)}


def test_a_resumed_run_shows_each_step_once(tmp_path, monkeypatch):
    # Both writers in one second, as when a run is resumed within a second of its start:
    # tensorboardX's naming alone would give the two event files one name, the second
    # overwriting the first.
    import time
    from common import tensorboard_log
    monkeypatch.setattr(tensorboard_log, "time", SimpleNamespace(time=lambda: 1.8e9, monotonic=time.monotonic))
    d = tmp_path / "r"
    (d / "samples").mkdir(parents=True)
    cfg = Config(dataset="synthetic", image_size=16, channels=1, nz=16, max_steps=12, out=str(d))
    cfg.framework = "test"
    batches = SimpleNamespace(per_epoch=8)
    images = np.zeros((4, 16, 16, 1), np.float32)

    # a run whose checkpoint is from step 8, killed after it logged steps 9 and 10 and
    # their grid (end of its --max-steps 10), but before it saved the checkpoint of step 10
    run = runfiles.Run(cfg, d, None, batches)
    run.begin()
    for step in range(1, 11):
        run.log_step(step, metrics(step), 0.5)
        if step in (8, 10):
            run.end_epoch(step, images - 1)            # black grids
    run.close(10)
    assert helpers.read_events(d)["scalars"]["loss/d"][0].tolist() == list(range(1, 11))

    # resumed from the checkpoint of step 8: steps 9 and 10 again, with other numbers
    run = runfiles.Run(cfg, d, d / "checkpoint", batches)
    run.begin(lambda checkpoint: 8)
    for step in range(9, 13):
        run.log_step(step, metrics(100 + step), 0.25)
    run.end_epoch(12, images + 1)                      # a white grid
    run.close(12)

    assert len(list(d.glob("events.out.tfevents.1800000000.*"))) == 2
    helpers.check_events(d, starts=[0, 8], image_steps=[8, 12])
    steps, values = helpers.read_events(d)["scalars"]["loss/d"]
    assert steps.tolist() == list(range(1, 13))
    np.testing.assert_allclose(values, list(range(1, 9)) + [109, 110, 111, 112])
