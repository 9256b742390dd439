"""A contact sheet of blur maps on real photographs: each input beside the colour preview of its estimated map.

    python benchmarks/blur_map_sheet.py ../shared/data/eval/dpdd-dev/source --out docs/images/dpdd-dev-blur-maps.jpg \
        --names 1P0A0933,1P0A0972,1P0A1591,1P0A1604,1P0A1651,1P0A1723,1P0A2206,1P0A2417 --width 240 --columns 2

Each pair is the input, downscaled to ``--width``, and the preview ``swintormer deblur --save-blur-map`` writes (the
map made at the photo's full size, then downscaled). Prints each photo's map percentiles (px).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import save_sheet  # noqa: E402
from swintormer_cli.blur_maps import colourise  # noqa: E402
from swintormer_cli.inference.scales import blur_map  # noqa: E402
from swintormer_cli.io import list_images, read_image, to_unit  # noqa: E402
from swintormer_cli.models.blur_estimator import load_estimator  # noqa: E402
from swintormer_cli.weights import resolve_estimator  # noqa: E402


def thumbnail(pixels: np.ndarray, width: int) -> Image.Image:
    im = Image.fromarray(pixels)
    return im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--names", help="comma-separated file stems (default: all)")
    parser.add_argument("--estimator", type=Path, help="an estimator file (default: the registered one)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--columns", type=int, default=1, help="pairs side by side")
    args = parser.parse_args()

    estimator = load_estimator(args.estimator) if args.estimator else resolve_estimator()
    paths = list_images(args.folder)
    if args.names:
        wanted = args.names.split(",")
        paths = [p for name in wanted for p in paths if p.stem == name]
    rows = []
    for path in paths:
        pixels = read_image(path, keep_alpha=False).pixels
        image = torch.from_numpy(to_unit(pixels)).permute(2, 0, 1).float()
        radius = blur_map(estimator, image).numpy()
        q = np.percentile(radius, [10, 50, 90])
        print(f"{path.stem}: radius p10 {q[0]:.1f}  median {q[1]:.1f}  p90 {q[2]:.1f} px")
        small = thumbnail(pixels, args.width)
        shrunk = np.asarray(Image.fromarray(radius).resize(small.size, Image.BILINEAR))
        rows.append(np.concatenate([np.asarray(small), colourise(shrunk)], axis=1))
    gap = np.full((rows[0].shape[0], 6, 3), 255, dtype=np.uint8)
    while len(rows) % args.columns:
        rows.append(np.full_like(rows[0], 255))
    lines = [rows[i : i + args.columns] for i in range(0, len(rows), args.columns)]
    sheet = np.concatenate([np.concatenate([x for r in line for x in (r, gap)][:-1], axis=1) for line in lines], axis=0)
    save_sheet(args.out, sheet)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
