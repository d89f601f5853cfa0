"""The cross-framework driver's view of keras_impl, through its public functions; the
steps run through GAN.fit, as `python -m keras_impl.train` runs them."""
import keras_impl  # noqa: F401  (backend and logging set before keras is imported)
import keras
from keras import ops

from common.config import ADAM_EPS
from common.weights import RUNNING_STATS, running_stats
from keras_impl.model import build, load_portable, to_portable
from keras_impl.layers import PyTorchAdam
from keras_impl.step import GAN

def roundtrip(cfg, arrays):
    generator, discriminator = build(cfg)
    load_portable(generator, discriminator, arrays)
    return to_portable(generator, discriminator)


def generate(cfg, arrays, z, train):
    generator, discriminator = build(cfg)
    load_portable(generator, discriminator, arrays)
    images = ops.convert_to_numpy(generator(z, training=train))
    return images, running_stats(to_portable(generator, discriminator), "generator")


def discriminate(cfg, arrays, x, train):
    generator, discriminator = build(cfg)
    load_portable(generator, discriminator, arrays)
    logits = ops.convert_to_numpy(discriminator(x, training=train))
    return logits, running_stats(to_portable(generator, discriminator), "discriminator")


class Logs(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.logs = {k: float(v) for k, v in logs.items()}


class Stepper:
    def __init__(self, cfg, arrays):
        self.cfg = cfg
        self.gan = GAN(cfg)
        adam = lambda: PyTorchAdam(learning_rate=cfg.lr, beta_1=cfg.beta1, beta_2=cfg.beta2, epsilon=ADAM_EPS)
        self.gan.compile(d_optimizer=adam(), g_optimizer=adam(), jit_compile=False)
        load_portable(self.gan.generator, self.gan.discriminator, arrays)
        self.logs = Logs()

    def step(self, real, z):
        one = (b for b in [(real, z)])            # fit takes a generator, as train.py gives it
        self.gan.fit(one, steps_per_epoch=1, epochs=1, verbose=0,
                     callbacks=[self.logs], shuffle=False)
        return self.logs.logs

    def state(self):
        params = to_portable(self.gan.generator, self.gan.discriminator)
        moments = {}
        for slots, name in (("_momentums", "m"), ("_velocities", "v")):
            # twins whose trainable variables hold the moments, so the moments go through
            # the same layout conversion as the weights
            g, d = build(self.cfg)
            for model, twin, opt in ((self.gan.generator, g, self.gan.g_optimizer),
                                     (self.gan.discriminator, d, self.gan.d_optimizer)):
                for var, twin_var in zip(model.trainable_variables, twin.trainable_variables):
                    twin_var.assign(getattr(opt, slots)[opt._get_variable_index(var)])
            moments.update({f"{name}.{k}": v for k, v in to_portable(g, d).items() if not k.endswith(RUNNING_STATS)})
        return params, moments
