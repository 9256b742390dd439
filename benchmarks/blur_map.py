"""How well the blur estimator measures blur: its map against the true radius, per radius and kernel.

    python benchmarks/blur_map.py --out benchmarks/results/blur-map [--estimator PATH]

kodak24's sharp images blurred over the whole image at one radius (0 to 32 px; disk and lens kernels, as in
benchmarks/blur_size.py), the estimator's pyramid map (``inference/scales.blur_map``) against that radius: the
median answer, the mean absolute error in px, and the share of pixels within 25 % (or 1 px) of the truth.
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.blur_size import DATA, KERNELS, blur, load  # noqa: E402
from benchmarks.harness import cpu_name, save_results  # noqa: E402
from swintormer_cli.inference.scales import blur_map  # noqa: E402
from swintormer_cli.io import list_images  # noqa: E402
from swintormer_cli.models.blur_estimator import load_estimator  # noqa: E402
from swintormer_cli.weights import resolve_estimator  # noqa: E402

RADII = (0, 1, 2, 4, 8, 12, 16, 24, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--estimator", type=Path, help="an estimator file (default: the registered one)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--radii", default=",".join(map(str, RADII)))
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--first-level", type=int, default=1)
    args = parser.parse_args()
    estimator = load_estimator(args.estimator) if args.estimator else resolve_estimator()
    paths = list_images(args.data / "kodak24-defocus" / "target")[: args.limit]
    rows, started = [], time.perf_counter()
    for kind in [k for k in args.kernels.split(",") if k]:
        for radius in [float(r) for r in args.radii.split(",")]:
            answers, errors, within = [], [], []
            for i, path in enumerate(paths):
                sharp = load(path)
                blurry = blur(sharp, kind, radius, seed=i) if radius > 0 else torch.round(sharp * 255) / 255
                est = blur_map(estimator, blurry, first_level=args.first_level).numpy()
                answers.append(np.median(est))
                errors.append(np.abs(est - radius).mean())
                within.append((np.abs(est - radius) <= max(1.0, 0.25 * radius)).mean())
            row = {
                "kernel": kind,
                "radius": radius,
                "median": float(np.median(answers)),
                "mae": float(np.mean(errors)),
                "within": float(np.mean(within)),
            }
            rows.append(row)
            print(f"{kind:5s} r={radius:5.1f} median {row['median']:6.2f}  MAE {row['mae']:6.2f}  "
                  f"within {100 * row['within']:5.1f}%", flush=True)  # fmt: skip
    lines = [
        "| kernel | true radius | median estimate | mean abs. error (px) | within 25 % or 1 px |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['kernel']} | {r['radius']:g} | {r['median']:.2f} | {r['mae']:.2f} | {100 * r['within']:.0f} % |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    record = {
        "command": "python benchmarks/blur_map.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_name(),
        "estimator": str(args.estimator or "registered"),
        "estimator_record": estimator.record,
        "images": len(paths),
        "first_level": args.first_level,
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    save_results(args.out, text, record)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
