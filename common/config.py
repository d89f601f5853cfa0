"""One set of hyperparameters and one command line for the three `train` commands.

The defaults are the DCGAN paper's (Radford, Metz, Chintala 2015, section 3): batch 128,
Adam with lr 2e-4 and beta1 0.5, LeakyReLU slope 0.2, weights drawn from N(0, 0.02), and a
100-dimensional z from N(0, 1). Size flags left unset are resolved per device (see
`PROFILES`): the paper's 64x64 network on a GPU, a smaller one that trains to clear digits
in about ten minutes on a two-core CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# ----------------------------------------------------------------------------------------
# Constants every implementation pins (DESIGN section 4). They are not flags: changing one
# makes a different network, and the cross-framework tests assume these values.
LEAKY_SLOPE = 0.2      # LeakyReLU negative slope in D
INIT_STD = 0.02        # conv weights ~ N(0, 0.02); BatchNorm gamma ~ N(1, 0.02), beta = 0
BN_EPS = 1e-5          # PyTorch's default; Keras' default is 1e-3
BN_MOMENTUM = 0.1      # PyTorch convention: weight of the NEW batch statistic.
                       # Flax and Keras use the weight of the OLD value: 1 - 0.1 = 0.9.
ADAM_EPS = 1e-8        # PyTorch/optax default; Keras' default is 1e-7
N_FIXED = 64           # fixed-noise samples drawn for the per-epoch grid (8 x 8)

DATASETS = ("mnist", "fashion-mnist", "cifar10", "celeba", "folder", "synthetic")
DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("fp32", "bf16", "auto")  # the arithmetic of the step; parameters, Adam and
                               # BatchNorm statistics are float32 in both. auto: bf16 where the
                               # hardware has fast bfloat16, fp32 elsewhere (hardware.auto_precision);
                               # config.json records what it became
Z_DISTS = ("normal", "uniform")   # z ~ N(0, 1), or z ~ U(-1, 1)

# The networks (common/spec.py) and the defaults each brings for flags the user did not
# set; what is unset after these follows the device (PROFILES).
ARCHS = ("dcgan", "paper", "cs231n")
ARCH_DEFAULTS = {
    "dcgan": {},        # the PyTorch DCGAN tutorial's network, with the paper's settings
    "paper": {},        # the DCGAN paper's Figure 1: the same settings (section 3)
    # the CS231n GAN assignment's 28x28 MNIST network and its settings: z ~ U(-1, 1) of 96,
    # Adam lr 1e-3 (beta1 0.5 as the paper's), D and G widths of 32 and 64 at the start
    "cs231n": dict(image_size=28, nz=96, ngf=64, ndf=32, lr=1e-3, z_dist="uniform"),
}

# Defaults for flags the user did not set, by the device the run resolved to.
PROFILES = {
    # The PyTorch tutorial's 64x64 network at widths 64, for a number of steps rather than
    # epochs: 5 epochs were 2,345 steps of full MNIST but 195 of the offline 5,000-digit
    # sample, where this setting still draws noise. At this setting on the offline sample
    # (results/pytorch-cpu-64px, trained to 3,000 steps and judged every 300 to 500) every
    # class appears by step 1,100 and the judge's Frechet distance falls from 287 at 500 to
    # 96 at 1,100 and 54 at 2,500, then stays (56 at 3,000, inside the interval): 3,000
    # steps is where that curve has flattened, and 6.4 epochs of full MNIST, where the
    # tutorial trains 5.
    "gpu": dict(image_size=64, ngf=64, ndf=64, epochs=None, max_steps=3000),
    # Small enough for a two-core CPU: 32x32, half the widths, a fixed number of steps, chosen
    # by time to quality (results/time-to-quality, benchmarks/time_to_quality.py): within ten
    # minutes on our 2-core CPU, widths 32 at 32x32 beat widths 16 (more steps) and 64 (fewer)
    # over three seeds, and still gained from 2,000 steps to 4,000 (about 9 minutes there).
    "cpu": dict(image_size=32, ngf=32, ndf=32, epochs=None, max_steps=4000),
}
# Where an architecture needs other values on a device. On our 2-core CPU (PyTorch, median
# step time): the paper's network at widths 32 has ngf*16 = 512 channels at its first 5x5
# transposed convolution and took about 1 s a step, measured while other work ran (2000
# steps: half an hour or more); widths 8 give the channels of the tutorial network at
# widths 32 (G 128 -> 16, D 16 -> 128) at 0.13 s. The CS231n network keeps the write-up's
# widths (0.33 s a step) and trains 1500 steps.
ARCH_PROFILES = {
    "paper": {"cpu": dict(ngf=8, ndf=8, max_steps=2000)},
    "cs231n": {"cpu": dict(max_steps=1500)},
}


def profile_defaults(arch: str, profile: str) -> dict:
    """The values PROFILES[profile] gives, with the architecture's own where it has them."""
    return {**PROFILES[profile], **ARCH_PROFILES.get(arch, {}).get(profile, {})}


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2, nothing written."""


# The flags of pytorch/examples' dcgan/main.py that are spelled otherwise here: for each,
# ours (the first that this command has) and what a user of that script should know. A
# pointer, not an alias: one spelling per flag keeps --help, config.json and the three
# commands the same, and the user learns the name the documentation uses
# (docs/coming-from-pytorch-examples.md has the same table).
_CONVERT = ("it takes a portable weights.npz: convert main.py's files first with python -m "
            "pytorch_impl.port --from-examples NETG.pth [--netD NETD.pth] --out weights.npz")
EXAMPLES_FLAGS = {
    "--dataroot": [("--data-dir", "")],
    "--batchSize": [("--batch-size", "")],
    "--imageSize": [("--image-size", "")],
    "--niter": [("--epochs", "the number of epochs, as there")],
    "--outf": [("--out", "")],
    "--netG": [("--init-weights", _CONVERT), ("--weights", _CONVERT), ("--from-examples", "")],
    "--netD": [("--init-weights", _CONVERT), ("--weights", _CONVERT)],
    "--manualSeed": [("--seed", "")],
    "--cuda": [("--device gpu", "")],
    "--accel": [("--device gpu", "")],
    "--dry-run": [("--max-steps 1", "one step, with every file a run writes")],
    "--ngpu": [("--devices", "data parallel over N devices: docs/parallel.md")],
    "--workers": [("", "the data is in memory as NumPy arrays: there are no loader workers")],
}


def _bare(flag: str) -> str:
    return flag.lstrip("-").replace("-", "").replace("_", "").lower()


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that a mistake on the command line is one line on stderr,
    `prog: error: MESSAGE (see --help)`, exit status 2, as a UserError is: the usage block
    argparse prints first would push the reason off a small terminal. A flag it does not
    know names the nearest one it does (`--batchSize: no such flag; did you mean
    --batch-size?`), found before anything else is checked."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        for a in args:
            if a == "--":
                break
            flag = a.split("=", 1)[0]
            if a.startswith("-") and len(a) > 1 and not _is_number(a) and not self._knows(flag):
                self.error(self.no_such_flag(flag))
        return super().parse_known_args(args, namespace)

    def _knows(self, flag: str) -> bool:
        ours = self._option_string_actions
        return flag in ours or (flag.startswith("--") and self.allow_abbrev
                                and any(o.startswith(flag) for o in ours))

    def no_such_flag(self, flag: str) -> str:
        """`FLAG: no such flag; did you mean OURS?`, from EXAMPLES_FLAGS or by spelling."""
        ours = [o for o in self._option_string_actions if o.startswith("--")]
        if flag in EXAMPLES_FLAGS:
            pointers = EXAMPLES_FLAGS[flag]
            for theirs, note in pointers:
                if not theirs:
                    return f"{flag}: no such flag; {note}"
                if theirs.split()[0] in ours:
                    return f"{flag}: no such flag; did you mean {theirs}?" + (f" ({note})" if note else "")
            return f"{flag}: no such flag (pytorch/examples' {flag} is {pointers[0][0]} of train)"
        import difflib
        by_bare = {_bare(o): o for o in ours}
        near = difflib.get_close_matches(_bare(flag), list(by_bare), n=1, cutoff=0.6)
        return f"{flag}: no such flag" + (f"; did you mean {by_bare[near[0]]}?" if near else "")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@dataclass
class Config:
    dataset: str = "mnist"
    data_dir: str = "data"
    arch: str = "dcgan"
    image_size: int | None = None
    channels: int | None = None      # set from the dataset
    epochs: int | None = None
    max_steps: int | None = None
    checkpoint_every: int | None = None   # steps; besides the checkpoint after every epoch
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    nz: int = 100
    z_dist: str = "normal"
    ngf: int | None = None
    ndf: int | None = None
    seed: int = 0
    out: str | None = None
    device: str = "auto"
    devices: int = 1                 # data parallel over this many devices (PyTorch: processes)
    precision: str = "fp32"          # fp32, or bf16: bfloat16 arithmetic, float32 state (auto
                                     # is resolved with the device, see start_run)
    resume: str | None = None
    init_weights: str | None = None  # a portable weights file the run starts from
    # Filled in by the run, recorded in config.json for the reader of a run directory.
    framework: str | None = None
    profile: str | None = None
    data_source: str | None = None

    def resolve(self, profile: str) -> "Config":
        """Fill the size flags the user left unset from PROFILES[profile] (and the
        architecture's ARCH_PROFILES)."""
        filled = {k: v for k, v in profile_defaults(self.arch, profile).items() if getattr(self, k) is None}
        if "epochs" in filled and self.max_steps is not None and self.epochs is None:
            filled["epochs"] = None  # --max-steps alone means: train that many steps
        if self.epochs is not None and "max_steps" in filled:
            filled["max_steps"] = None  # --epochs alone means: train that many epochs
        return dataclasses.replace(self, profile=profile, **filled)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """A run's config.json, every value checked as its flag would be."""
        path = Path(path)
        if not path.is_file():
            what = "is not a file" if path.exists() else "not found"
            raise UserError(f"{path} {what}: is this a run directory written by train?")
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:       # ValueError: bad JSON, or bytes not UTF-8
            raise UserError(f"{path} is not a valid config file ({e}); put back the "
                            "run's own config.json, or start a new run with --out") from None
        problem = saved_config_problem(d)
        if problem:
            raise UserError(f"{path} is not a valid config file ({problem}); put back the "
                            "run's own config.json, or start a new run with --out")
        return cls.from_dict(d)


def saved_config_problem(d) -> str | None:
    """What is wrong with a config read back from JSON, or None: each field must have its
    annotated type, and each field that is a flag must pass that flag's own check."""
    if not isinstance(d, dict):
        return f"a JSON {type(d).__name__}, not an object"
    types = {"int": int, "float": (int, float), "str": str}
    for f in dataclasses.fields(Config):
        if f.name not in d:
            continue                              # an older run: the default stands
        v, allowed = d[f.name], f.type.split(" | ")
        if v is None:
            if "None" not in allowed:
                return f"{f.name} is null"
            continue
        if isinstance(v, bool) or not isinstance(v, tuple(types[t] for t in allowed if t in types)):
            return f"{f.name} is {v!r}, not {' or '.join(t for t in allowed if t != 'None')}"
    if d.get("channels") is not None and not 1 <= d["channels"] <= 4:
        return f"channels is {d['channels']}, not from 1 to 4"
    for action in build_parser("config.json")._actions:   # argparse has no public list
        v = d.get(action.dest)
        if v is None or action.dest == "help":
            continue
        if action.choices is not None and v not in action.choices:
            return f"{action.dest} is {v!r}, not one of {', '.join(action.choices)}"
        if action.type is not None:
            try:
                action.type(str(v))
            except argparse.ArgumentTypeError as e:
                return f"{action.dest} {e}"
    return None


# ----------------------------------------------------------------------------------------
# The shared command line.

def _int_in(lo: int, hi: int | None = None):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
        if v < lo or (hi is not None and v > hi):
            rng = f">= {lo}" if hi is None else f"from {lo} to {hi}"
            raise argparse.ArgumentTypeError(f"must be {rng}, got {v}")
        return v
    return parse


def _float_in(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
        bad_lo = v <= lo if lo_open else v < lo
        bad_hi = v >= hi if hi_open else v > hi
        if bad_lo or bad_hi or v != v:
            lb, hb = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {lb}{lo}, {hi}{hb}, got {s}")
        return v
    return parse


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Train the DCGAN. Unset size flags follow the device: 64x64 with "
        "ngf=ndf=64 for 3000 steps on a GPU; 32x32 with ngf=ndf=32 for 4000 steps on a CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,  # so we can tell flags given from defaults
    )
    d = Config()
    p.add_argument("--dataset", choices=DATASETS, help=f"default: {d.dataset}")
    p.add_argument("--data-dir", help=f"where datasets live (default: {d.data_dir}); "
                   "for --dataset folder, the folder of images")
    p.add_argument("--arch", choices=ARCHS, help="the network: dcgan (the PyTorch tutorial's), "
                   "paper (the DCGAN paper's Figure 1), cs231n (28x28, the CS231n assignment's); "
                   "default: dcgan. An arch's own defaults apply to the flags not given")
    p.add_argument("--image-size", type=_int_in(8, 1024),
                   help="a power of two from 16 to 512 (default: 64 on GPU, 32 on CPU)")
    p.add_argument("--epochs", type=_int_in(1), help="passes over the data")
    p.add_argument("--max-steps", type=_int_in(1), help="stop after this many steps")
    p.add_argument("--checkpoint-every", type=_int_in(1), metavar="N",
                   help="also save the checkpoint after every N-th step (one is saved after "
                   "every epoch, and on Ctrl-C or SIGTERM, anyway)")
    p.add_argument("--batch-size", type=_int_in(1, 65536), help=f"default: {d.batch_size}")
    p.add_argument("--lr", type=_float_in(0, 1, lo_open=True), help=f"default: {d.lr}")
    p.add_argument("--beta1", type=_float_in(0, 1, hi_open=True), help=f"default: {d.beta1}")
    p.add_argument("--beta2", type=_float_in(0, 1, hi_open=True), help=f"default: {d.beta2}")
    p.add_argument("--nz", type=_int_in(1, 4096), help=f"length of z (default: {d.nz})")
    p.add_argument("--z-dist", choices=Z_DISTS, help=f"distribution of z (default: {d.z_dist})")
    p.add_argument("--ngf", type=_int_in(1, 4096), help="G width (default: 64 GPU, 32 CPU)")
    p.add_argument("--ndf", type=_int_in(1, 4096), help="D width (default: 64 GPU, 32 CPU)")
    p.add_argument("--seed", type=_int_in(0, 2**31 - 1), help=f"default: {d.seed}")
    p.add_argument("--out", help="run directory (default: runs/<framework>-<dataset>-<time>)")
    p.add_argument("--device", choices=DEVICES, help="default: auto (a GPU if one is seen)")
    p.add_argument("--devices", type=_int_in(1, 4096), metavar="N",
                   help="train data-parallel over N local devices of the --device kind, the "
                   "batch split across them; default: 1. PyTorch runs one process per device: "
                   "start N with torchrun --nproc-per-node N, and N is the default")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="the step's arithmetic: fp32, or bf16 (convolutions and matmuls in "
                   "bfloat16; parameters, Adam, BatchNorm statistics and losses float32). "
                   "Faster only where the hardware has fast bfloat16 (a GPU; a CPU with "
                   "AMX); measure: benchmarks.step_time --precision fp32 bf16. auto: bf16 on "
                   "a GPU of compute capability 8.0 or more or a CPU with AMX-BF16, fp32 "
                   "elsewhere; default: fp32")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR exactly where its checkpoint left off")
    p.add_argument("--init-weights", metavar="FILE",
                   help="start from these portable weights (a weights.npz that any framework's "
                   "train wrote) instead of the seed's random draw; the optimizers start fresh")
    return p


# Flags that may differ from the saved config when resuming: they do not change the network.
# --precision is not one: the checkpoint is float32 either way, but a run resumed in other
# arithmetic is no longer the run its checkpoint promises to continue exactly.
RESUMABLE_OVERRIDES = {"epochs", "max_steps", "device", "devices", "data_dir", "checkpoint_every"}


def parse_config(argv: list[str] | None, prog: str) -> Config:
    """Parse the shared CLI. Range errors exit 2 through argparse; returns an unresolved
    Config (size flags may be None until `resolve` is called with the device)."""
    parser = build_parser(prog)
    given = vars(parser.parse_args(argv))
    if "resume" in given and "init_weights" in given:
        parser.error("--init-weights starts a new run; --resume continues one from its "
                     "checkpoint, weights included: give one of the two")
    if "resume" in given:
        run_dir = Path(given["resume"])
        if not run_dir.is_dir():
            parser.error(f"--resume {run_dir}: " + ("not a directory: give the run directory "
                         "that train wrote" if run_dir.exists() else "no such run directory"))
        if not (run_dir / "config.json").exists() and (run_dir / "run.lock").exists() and \
                not [p for p in run_dir.iterdir() if p.name not in ("run.lock", "samples")
                     and not p.name.startswith("tmp-")]:
            parser.error(f"--resume {run_dir}: the run there was stopped before it wrote its "
                         f"config.json; start it again with its flags and --out {run_dir}")
        saved = Config.load(run_dir / "config.json")
        if given.get("precision") == "auto":      # the run keeps the arithmetic it chose
            del given["precision"]
        clash = {k: (v, getattr(saved, k)) for k, v in given.items()
                 if k not in RESUMABLE_OVERRIDES | {"resume", "out"} and getattr(saved, k) != v}
        if clash:
            what = ", ".join(f"--{k.replace('_', '-')} {a} (run has {b})" for k, (a, b) in clash.items())
            parser.error(f"--resume {run_dir}: the run was made with another config: {what}. "
                         "Resume without those flags, or start a new run with --out.")
        if "out" in given and Path(given["out"]).resolve() != run_dir.resolve():
            parser.error("--resume continues in its own directory; leave out --out")
        overrides = {k: v for k, v in given.items() if k in RESUMABLE_OVERRIDES}
        if "epochs" in overrides and "max_steps" not in overrides:
            overrides["max_steps"] = None
        return dataclasses.replace(saved, resume=str(run_dir), out=str(run_dir), **overrides)
    return Config(**{**ARCH_DEFAULTS[given.get("arch", "dcgan")], **given})


def default_out(cfg: Config, framework: str) -> str:
    import time
    return os.path.join("runs", f"{framework}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def run_main(main, argv=None):
    """Run a command's main(argv); a UserError becomes one line on stderr and exit 2."""
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def parse_model_args(argv: list[str] | None, prog: str) -> Config:
    """The flags of `python -m <fw>_impl.model`: the network's shape only. Defaults are the
    paper's 64x64 RGB network (the PyTorch DCGAN tutorial's)."""
    p = ArgumentParser(prog=prog, description="Print each layer's output shape "
                                "and parameter count, and the totals.")
    p.add_argument("--arch", choices=ARCHS, default="dcgan")
    p.add_argument("--image-size", type=_int_in(8, 1024), help="default: 64 (cs231n: 28)")
    p.add_argument("--channels", type=_int_in(1, 4), help="default: 3 (cs231n: 1)")
    p.add_argument("--nz", type=_int_in(1, 4096), help="default: 100 (cs231n: 96)")
    p.add_argument("--ngf", type=_int_in(1, 4096), help="default: 64")
    p.add_argument("--ndf", type=_int_in(1, 4096), help="default: 64 (cs231n: 32)")
    a = {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}
    shape = dict(image_size=64, channels=1 if a["arch"] == "cs231n" else 3, nz=100, ngf=64, ndf=64)
    arch = {k: v for k, v in ARCH_DEFAULTS[a["arch"]].items() if k in shape}
    return Config(**{**shape, **arch, **a})


def parse_sample_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    """The flags of `python -m <fw>_impl.sample`, shared by the three."""
    p = ArgumentParser(prog=prog, description="Generate images from portable "
                                "weights written by any of the three implementations.")
    p.add_argument("--weights", required=True, help="a weights.npz from a run directory")
    p.add_argument("--n", type=_int_in(1, 100000), help="how many images (default: 64), or "
                   "with --walk how many walks (default: 8)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=_int_in(0, 2**31 - 1), default=0, help="noise seed")
    g.add_argument("--noise", help="a .npy of z, shape (N, nz); overrides --n and --seed "
                   "(with --walk: its rows in pairs, the start and end of each walk)")
    p.add_argument("--walk", type=_int_in(2, 1000), metavar="K",
                   help="latent walks (the DCGAN paper, section 6.1): K images along the way "
                   "between each pair of z drawn from --seed. Spherical interpolation (slerp) "
                   "for z ~ N(0, 1), as the weights file's z_dist says for dcgan and paper: a "
                   "Gaussian z lies near a sphere of radius sqrt(nz), and a straight line "
                   "between two cuts inside it, where G saw almost no z; linear for z ~ "
                   "U(-1, 1) (cs231n): the cube holds the straight line, slerp would leave it. "
                   "--out: .png (one row per walk), .npy (walks, K, H, W, C) or .gif")
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy (float32 "
                   "array (N, H, W, C) in [-1, 1]); with --walk also FILE.gif")
    p.add_argument("--device", choices=DEVICES, default="auto")
    a = p.parse_args(argv)
    if a.n is None:
        a.n = 8 if a.walk else 64
    kinds = (".png", ".npy", ".gif") if a.walk else (".png", ".npy")
    if Path(a.out).suffix == ".gif" and not a.walk:
        p.error(f"--out {a.out}: a .gif is an animation along latent walks: add --walk K, "
                "or write .png or .npy")
    if Path(a.out).suffix not in kinds:
        p.error(f"--out {a.out}: must end in {', '.join(kinds[:-1])} or {kinds[-1]}")
    out = Path(a.out)
    if not out.resolve().parent.is_dir():
        p.error(f"--out {a.out}: {out.parent} is not a directory" if out.resolve().parent.exists()
                else f"--out {a.out}: directory {out.parent} does not exist")
    if out.is_dir():
        p.error(f"--out {a.out}: is a directory; give a file name ending in {' or '.join(kinds)}")
    if not os.access(out.resolve().parent, os.W_OK):
        p.error(f"--out {a.out}: cannot write in {out.parent}; choose another place")
    return a
