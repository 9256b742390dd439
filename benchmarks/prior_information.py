"""How much the latent prior carries: output change when its map is replaced, and what the oracle latent gives.

For a model file from a training run (which keeps the prior's target encoder), on the first images of a
paired set, whole-image forwards:
- sampled: the prior as shipped (DDIM, 20 steps, seed 0);
- steps / seed spread: how far maps from 5 vs 50 steps, and from two seeds, are apart (mean |a - b| / std a);
- zeroed: the prior map set to zero (what the restorer does with no information from the prior);
- oracle: the target encoder's latent from the sharp image (what training stage 1 fed the restorer), an
  upper bound on what a perfect diffusion prior could add;
- misplaced: that latent rolled by half the image's height and width (each place gets another's), so the gap to
  oracle is what the restorer takes from the latent's place-by-place content rather than from its overall values;
- oracle spread: the oracle's standard deviation (0: a constant latent that carries nothing, as a saturated
  tanh gives; the distances to it are then left out).

    python benchmarks/prior_information.py runs/tiny-cpu-continue/checkpoints/last/ema.safetensors \
        ../shared/data/eval/kodak24-defocus --images 6 --json benchmarks/results/prior-information.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from swintormer_cli.checkpoint import load_model
from swintormer_cli.evaluation.metrics import psnr
from swintormer_cli.io import pair_images, read_image


def _tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_image(path).to_float()).permute(2, 0, 1)[None]


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 1)[0].permute(1, 2, 0).numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("pairs", type=Path, help="a folder with source/ and target/")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    bundle = load_model(args.model)
    if bundle.prior is None or not hasattr(bundle.prior, "target_latent"):
        print(f"{args.model}: no latent prior", file=sys.stderr)
        return 2
    model, prior = bundle.model, bundle.prior
    rows = []
    pairs, _ = pair_images([args.pairs / "source"], args.pairs / "target")
    for (source_path,), target_path in pairs[: args.images]:
        sharp, blurry = _tensor(target_path), _tensor(source_path)
        with torch.no_grad():
            maps = {
                (steps, seed): prior(blurry, steps=steps, generator=torch.Generator().manual_seed(seed))
                for steps, seed in ((20, 0), (20, 1), (5, 0), (50, 0))
            }
            sampled = maps[(20, 0)]
            oracle = prior.target_latent(sharp, blurry)
            misplaced = oracle.roll((oracle.shape[-2] // 2, oracle.shape[-1] // 2), dims=(-2, -1))
            spread = float(sampled.std())
            oracle_spread = float(oracle.std())
            row = {
                "image": target_path.name,
                "input": psnr(_hwc(blurry), _hwc(sharp)),
                "sampled": psnr(_hwc(model(blurry, sampled)), _hwc(sharp)),
                "zeroed": psnr(_hwc(model(blurry, torch.zeros_like(sampled))), _hwc(sharp)),
                "oracle": psnr(_hwc(model(blurry, oracle)), _hwc(sharp)),
                "misplaced": psnr(_hwc(model(blurry, misplaced)), _hwc(sharp)),
                "seed_spread": float((maps[(20, 1)] - sampled).abs().mean()) / spread,
                "steps_spread": float((maps[(50, 0)] - maps[(5, 0)]).abs().mean()) / spread,
                "oracle_spread": oracle_spread,
                "oracle_distance": float((oracle - sampled).abs().mean()) / oracle_spread if oracle_spread else None,
            }
        rows.append(row)
        print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    mean = {
        k: float(np.mean(values)) if (values := [r[k] for r in rows if r[k] is not None]) else None
        for k in rows[0]
        if k != "image"
    }
    print("mean " + " ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in mean.items()))
    if args.json:
        args.json.write_text(
            json.dumps({"model": str(args.model), "set": str(args.pairs), "rows": rows, "mean": mean}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
