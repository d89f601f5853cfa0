"""Generate images with JAX from portable weights written by any implementation.

    python -m jax_impl.sample --weights runs/x/weights.npz --n 64 --out grid.png
    python -m jax_impl.sample --weights runs/x/weights.npz --noise z.npy --out x.npy
    python -m jax_impl.sample --weights runs/x/weights.npz --walk 10 --out walks.png
"""
from common import sampling, weights
from common.config import parse_sample_args, run_main
from jax_impl.model import build, load_portable
from jax_impl.parallel import pick_device
from jax_impl.step import generate


def sample(weights_path, z, device="auto"):
    """G(z) in inference mode as float32 (N, H, W, C) in [-1, 1]."""
    cfg, arrays, _ = weights.load(weights_path)
    generator, discriminator = build(cfg)
    load_portable(generator, discriminator, arrays)
    return generate(generator, z, pick_device(device))


def main(argv=None):
    args = parse_sample_args(argv, "python -m jax_impl.sample")
    cfg, _, header = weights.load(args.weights)
    z = sampling.noise(args, cfg.nz, header.get("z_dist", "normal"))   # (N, nz) or (walks, K, nz)
    images = sample(args.weights, z.reshape(-1, cfg.nz), args.device)
    what = sampling.save(images.reshape(z.shape[:-1] + images.shape[1:]), args.out)
    print(f"wrote {what} to {args.out} "
          f"(weights written by {header.get('framework', '?')} at step {header.get('step', '?')})")


if __name__ == "__main__":
    run_main(main)
