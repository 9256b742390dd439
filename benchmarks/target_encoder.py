"""Health of a latent prior's target encoder, checkpoint by checkpoint: is its latent alive, and is it used?

    python benchmarks/target_encoder.py runs/tiny-channel-latent/checkpoints/last/ema.safetensors
    python benchmarks/target_encoder.py run-a/checkpoints/last/ema.safetensors run-b/... --images 4

For each model file from a training run (which keeps the target encoder), on the same crop of the first
``--images`` pairs of a paired set (sharp target, blurry source):
- size: the mean absolute value of the encoder's output before its bound (tanh or unit length); a tanh stops
  passing gradients once this is far above 1;
- spread: each latent channel's standard deviation over the crops and positions, averaged (what training logs
  as ``latent_spread``); 0 is a constant latent;
- used: the restorer's L1 error with each crop's own latent against a neighbour's (the batch rolled by one), in
  percent; 0 means the restorer reads nothing image-specific from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from swintormer_cli.checkpoint import TRAINING_ONLY_PREFIXES, load_model  # noqa: E402
from swintormer_cli.io import pair_images, read_image  # noqa: E402
from swintormer_cli.prior.latent import LatentPrior, latent_spread  # noqa: E402

DEFAULT_SET = REPO.parent / "shared" / "data" / "eval" / "kodak24-defocus"


def crop(path: Path, top: int, left: int, size: int) -> torch.Tensor:
    image = torch.from_numpy(read_image(path).to_float()).permute(2, 0, 1)[None]
    return image[:, :, top : top + size, left : left + size]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model files from training runs (with the target encoder)")
    ap.add_argument("--pairs", type=Path, default=DEFAULT_SET, help="a folder with source/ and target/")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--crop", type=int, nargs=3, default=(200, 300, 128), metavar=("TOP", "LEFT", "SIZE"))
    args = ap.parse_args(argv)
    if args.images < 2:
        ap.error("--images must be at least 2 (the 'used' column swaps latents between images)")
    pairs, _ = pair_images([args.pairs / "source"], args.pairs / "target")
    pairs = pairs[: args.images]
    blurry = torch.cat([crop(source, *args.crop) for (source,), _ in pairs])
    sharp = torch.cat([crop(target, *args.crop) for _, target in pairs])
    print("model | size | spread | used")
    for path in args.models:
        bundle = load_model(path)
        prior, model = bundle.prior, bundle.model
        if not isinstance(prior, LatentPrior):
            print(f"{path} | no latent prior | |")
            continue
        with safe_open(str(path), framework="pt") as f:
            if not any(key.startswith(TRAINING_ONLY_PREFIXES) for key in f.keys()):
                print(f"{path} | no target encoder (an inference export) | |")
                continue
        with torch.no_grad():
            encoding = prior.target_encoding(sharp, blurry)
            latent = prior.bound_target(encoding)
            own = float((model(blurry, latent) - sharp).abs().mean())
            other = float((model(blurry, latent.roll(1, dims=0)) - sharp).abs().mean())
        size, spread = float(encoding.abs().mean()), latent_spread(latent)
        print(f"{path} | {size:.3g} | {spread:.3f} | {(other / own - 1) * 100:+.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
