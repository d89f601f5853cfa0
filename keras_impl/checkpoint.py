"""The native checkpoint of a Keras run (checkpoint.keras), which --resume continues from
exactly, and its validation: a damaged file or another network's is one clear error."""
import json
import zipfile

from common import runfiles
from common.weights import network_diff


# ========================================================================================
# checkpoints

def save_checkpoint(path, gan):
    # Keras' own format: the GAN's config, and every variable it tracks (both networks, the
    # optimizers' moments and step counts). The data order and the noise are functions of
    # (seed, step): the step is all the position.
    runfiles.atomic_save(path, gan.save)


def load_checkpoint(path, gan) -> int:
    # A .keras file is a zip: a truncated or non-zip file raises zipfile.BadZipFile (a
    # flipped byte too: the zip's CRC), another framework's zip has no config.json (and no
    # model.weights.h5: KeyError). A .keras of another network would fail in load_weights
    # with a page about an optimizer variable; its config.json says which network it holds.
    try:
        with zipfile.ZipFile(path) as z:
            if "config.json" not in z.namelist():
                raise ValueError("no config.json in it: not a checkpoint of keras_impl.train")
            saved = json.loads(z.read("config.json"))["config"]["config"]
        if not isinstance(saved, dict):
            raise ValueError("its config is not a JSON object")
        if network_diff(saved, gan.cfg):
            raise ValueError(f"it holds another network: {network_diff(saved, gan.cfg)}")
        runfiles.check_same_run(path, saved, gan.cfg)       # the same shapes, but another run?
        gan.load_weights(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise runfiles.checkpoint_error(path, e) from None
    return gan.step
