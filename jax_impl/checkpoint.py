"""The native checkpoint of a JAX run (checkpoint.npz), which --resume continues from
exactly, and its validation: a damaged file or another network's is one clear error."""
import json
import zipfile

import jax
import numpy as np
from flax import nnx

from common import runfiles


# ========================================================================================
# checkpoints

# checkpoint.npz, a plain NumPy archive: one array per variable of the four objects'
# nnx.state, under "generator/main/g1/conv/kernel", "g_optimizer/opt_state/0/mu/main/...",
# and so on, with dtypes kept (Adam's step counts are integers), plus "step" and
# "config" (JSON). np.load reads it without JAX; orbax would do the same job with more
# machinery than four small pytrees need.
PARTS = ("generator", "discriminator", "g_optimizer", "d_optimizer")


def flat_state(obj) -> dict:
    return {"/".join(map(str, path)): v for path, v in nnx.to_flat_state(nnx.state(obj))}


def save_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, step, cfg):
    # The data order and the noise are functions of (seed, step): step is all the position.
    arrays = {f"{name}/{k}": np.asarray(v) for name, obj in zip(PARTS, (generator, discriminator, g_optimizer, d_optimizer))
              for k, v in flat_state(obj).items()}
    arrays.update(step=np.array(step), config=np.array(cfg.to_json()))

    def write(tmp):
        with open(tmp, "wb") as f:                # a file object: np.savez(path) adds ".npz"
            np.savez(f, **arrays)
    runfiles.atomic_save(path, write)


def load_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, device, cfg) -> int:
    # np.load raises zipfile.BadZipFile for a truncated zip (and for a flipped byte: it
    # checks each array's CRC); another framework's zip loads as raw bytes under other
    # names, which the checks below refuse. A file that is no zip at all it would try as a
    # pickle, and advise loading that unsafely: the first bytes say so first.
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        step = arrays.get("step")
        if not isinstance(step, np.ndarray) or step.shape != () or step.dtype.kind not in "iu" or step < 0:
            raise ValueError("no step in it: not a checkpoint of jax_impl.train")
        updates = []
        for name, obj in zip(PARTS, (generator, discriminator, g_optimizer, d_optimizer)):
            new = []
            for key, v in flat_state(obj).items():
                a = arrays.get(f"{name}/{key}")
                if not isinstance(a, np.ndarray) or a.shape != v.shape or a.dtype != v.dtype:
                    what = f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
                    raise ValueError(f"{name}/{key} is {what}, the model needs {v.dtype}{list(v.shape)}")
                new.append((tuple(key.split("/")), a))
            updates.append((obj, new))
        stored = json.loads(str(arrays.get("config", "{}")))
        if not isinstance(stored, dict):
            raise ValueError("its config is not a JSON object")
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
        raise runfiles.checkpoint_error(path, e) from None
    runfiles.check_same_run(path, stored, cfg)       # the same shapes, but another run?
    for obj, new in updates:                          # every check passed: load
        state = nnx.state(obj)
        for (_, var), (_, a) in zip(nnx.to_flat_state(state), new):
            var.value = jax.device_put(a, device)
        nnx.update(obj, state)
    return int(step)
