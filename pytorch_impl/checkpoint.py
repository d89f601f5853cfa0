"""The native checkpoint of a PyTorch run (checkpoint.pt), which --resume continues from
exactly, and its validation: a damaged file or another network's is one clear error."""
import json
import pickle
import zipfile

import torch

from common import runfiles


# ========================================================================================
# checkpoints

def save_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, step, cfg):
    # The data order and the noise are functions of (seed, step): step is all the position.
    state = {"generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
             "g_optimizer": g_optimizer.state_dict(), "d_optimizer": d_optimizer.state_dict(),
             "step": step, "config": cfg.to_json()}

    def write(tmp):
        # through a file object: given a path, torch.save reports a full disk as a
        # RuntimeError of its zip writer ("unexpected pos"); Python's own write says ENOSPC
        with open(tmp, "wb") as f:
            torch.save(state, f)
    runfiles.atomic_save(path, write)


def load_checkpoint(path, generator, discriminator, g_optimizer, d_optimizer, device, cfg) -> int:
    # torch.save writes a zip. testzip() checks each entry's CRC, which torch.load does not
    # (a flipped byte inside a tensor would load silently), and turns a truncated, empty or
    # junk file into BadZipFile. torch.load would raise a RuntimeError of C++ internals for
    # another zip (an .npz, a .keras), and UnpicklingError for a pickle weights_only refuses.
    try:
        with zipfile.ZipFile(path) as z:
            damaged = z.testzip()
            if not any(n.endswith("/data.pkl") for n in z.namelist()):
                raise ValueError("no data.pkl in it: not a checkpoint of pytorch_impl.train")
        if damaged:
            raise ValueError(f"{damaged} fails its CRC check")
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or type(state.get("step")) is not int or state["step"] < 0:
            raise ValueError("no step in it: not a checkpoint of pytorch_impl.train")
        kind = lambda t: f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"
        for name, model in (("generator", generator), ("discriminator", discriminator)):
            saved = state[name]
            for key, t in model.state_dict().items():     # load_state_dict would cast dtypes
                a = saved.get(key)
                if not isinstance(a, torch.Tensor) or a.shape != t.shape or a.dtype != t.dtype:
                    what = kind(a) if isinstance(a, torch.Tensor) else type(a).__name__
                    raise ValueError(f"{name}/{key} is {what}, the model needs {kind(t)}")
        stored = json.loads(state.get("config") or "{}")
        if not isinstance(stored, dict):
            raise ValueError("its config is not a JSON object")
        runfiles.check_same_run(path, stored, cfg)       # the same shapes, but another run?
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        g_optimizer.load_state_dict(state["g_optimizer"])
        d_optimizer.load_state_dict(state["d_optimizer"])
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError,
            zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise runfiles.checkpoint_error(path, e) from None
    return state["step"]
