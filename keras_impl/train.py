"""Train the DCGAN with Keras 3 on TensorFlow: the GAN(keras.Model) of step.py, driven by
fit() and callbacks.

    python -m keras_impl.train                          # MNIST, defaults for this device
    python -m keras_impl.train --max-steps 20 --out runs/try
    python -m keras_impl.train --resume runs/try --max-steps 40
    python -m keras_impl.train --dataset celeba --data-dir data --device gpu
    python -m keras_impl.train --devices 8 --batch-size 1024    # data parallel over 8 GPUs

The loop: build, make the optimisers, resume, step, log, save. The GAN step is step.py's;
the devices and MirroredStrategy are parallel.py's; the checkpoint is checkpoint.py's.
"""
import time

import keras

from common import data, runfiles
from common.config import parse_config, run_main
from keras_impl import parallel
from keras_impl.checkpoint import load_checkpoint, save_checkpoint
from keras_impl.layers import adam
from keras_impl.model import load_portable, to_portable
from keras_impl.step import GAN, generate

FRAMEWORK = "keras"
CHECKPOINT = "checkpoint.keras"


# ========================================================================================
# the training loop
#
# fit() is the loop and callbacks are its body's bookkeeping. One fit() runs the whole run,
# from the step it resumes at to the last, as one Keras "epoch": our epochs (a grid and a
# checkpoint each) end inside it, in the callback. A fit() per epoch cost about 2 s of
# set-up each time (a new dataset, iterator and callbacks), 50 ms a step over the offline
# sample's 39-step epochs: a third of the step on a 2-core CPU.

def step_batch(run):
    """A function of a step number: that step's (real, z). z is common's noise of the step,
    made here and not in the model, so that every framework trains on the same z."""
    cfg = run.cfg

    def batch(step):
        return run.batches.batch(step), data.noise(cfg.seed, int(step), cfg.batch_size, cfg.nz, cfg.z_dist)
    return batch


class RunFiles(keras.callbacks.Callback):
    """After each step: a metrics row and the progress bar. After each epoch's last step (and
    the run's): the log line, the fixed-noise grid and the checkpoint; a checkpoint after
    every --checkpoint-every N steps as well. The first Ctrl-C
    (runfiles.StepEndCtrlC, as in the other two) sets model.stop_training, which fit reads
    after each step, as EarlyStopping does: the checkpoint, the weights and metrics.csv all
    end at a step that was logged. The epoch that stops is not ended here: train saves its
    checkpoint."""

    def __init__(self, run, checkpoint, ctrl_c):
        super().__init__()
        self.run, self.checkpoint, self.ctrl_c = run, checkpoint, ctrl_c

    def on_train_batch_begin(self, batch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        m = {k: float(logs[k]) for k in runfiles.METRICS}
        step = self.model.step
        self.run.log_step(step, m, time.perf_counter() - self.t0)
        if self.ctrl_c.asked:
            self.model.stop_training = True
        elif step % self.run.per_epoch == 0 or step == self.run.last:
            self.run.end_epoch(step, generate(self.model.generator, self.run.fixed_noise))
            self.checkpoint()
        elif self.run.checkpoint_due(step):
            self.run.check_finite(step, generate(self.model.generator, self.run.fixed_noise))
            self.checkpoint()


def train(cfg):
    """Train as cfg says and return the run directory. Tests call this directly."""
    device = parallel.pick_device(cfg.device)
    strategy = parallel.pick_strategy(cfg, device)   # UserError here: nothing is written yet
    print(f"device: {parallel.describe_device(device)}; devices: {strategy.num_replicas_in_sync}"
          f"{parallel.describe(strategy, cfg)}")
    run = runfiles.start_run(cfg, FRAMEWORK, device, CHECKPOINT, gpu_capability=parallel.gpu_capability(device))
    cfg = run.cfg

    # Made in the strategy's scope, the variables (weights, BatchNorm statistics, Adam's
    # moments) are mirrored on every replica, and fit runs train_step on each of them.
    with strategy.scope():
        gan = GAN(cfg)              # generator and discriminator, initialised from cfg.seed
        if run.init_weights:  # --init-weights: weights and BatchNorm statistics from the file
            load_portable(gan.generator, gan.discriminator, run.init_weights)
        # Keras' default jit_compile="auto" would compile train_step with XLA; this is the
        # plain tf.function (benchmarks/bench_keras.py times both).
        gan.compile(d_optimizer=adam(cfg), g_optimizer=adam(cfg), jit_compile=False)
        run.begin(lambda path: load_checkpoint(path, gan))

    def checkpoint():
        run.checkpoint(gan.step, lambda path: save_checkpoint(path, gan))

    def stop_fit():
        gan.stop_training = True

    with runfiles.StepEndCtrlC(on_ask=stop_fit) as ctrl_c:      # Ctrl-C and SIGTERM
        files = RunFiles(run, checkpoint, ctrl_c)
        try:
            first = gan.step
            batches = parallel.distribute(strategy, step_batch(run), first, run.last, cfg)
            if not ctrl_c.asked:        # a signal may have come while the run was set up
                gan.fit(batches, steps_per_epoch=run.last - first, epochs=1, callbacks=[files],
                        shuffle=False, verbose=0)
            if ctrl_c.asked:            # fit stopped after the step that Ctrl-C fell in
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not ctrl_c.hard:  # a second Ctrl-C may have fallen mid-step: keep the last checkpoint
                checkpoint()
            run.interrupted(gan.step, ctrl_c)
            raise
        finally:
            if not ctrl_c.hard:
                run.save_weights(to_portable(gan.generator, gan.discriminator), gan.step)
            run.close(gan.step)
    return run.dir


def main(argv=None):
    return train(parse_config(argv, "python -m keras_impl.train"))


if __name__ == "__main__":
    run_main(main)
