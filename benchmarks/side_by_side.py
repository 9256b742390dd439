"""Crops of real-defocus-dev side by side: the input, each model's output, DPDNet's, and the sharp target.

    python benchmarks/side_by_side.py tiny-latent tiny-channel-latent \
        --crop canon_04:420,250,200,140 --crop canon_10:300,180,200,140 --out docs/images/real-side-by-side.png

Each model (a registered name or a model file) deblurs the whole photo at its own defaults, as `swintormer
deblur` would; then each crop (``NAME:X,Y,W,H`` in pixels of the 840x512 frame) is cut from every image and
enlarged ``--zoom`` times with nearest-neighbour, so pixels stay pixels. One row per crop, one column per image,
labelled at the top. What to look at is texture and edges, not scores: `swintormer eval` gives those.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.seams import pipeline  # noqa: E402
from swintormer_cli.io import read_image  # noqa: E402

DEFAULT_SET = REPO.parent / "shared" / "data" / "eval" / "real-defocus-dev"
LABEL_HEIGHT = 18
GAP = 4


def parse_crop(text: str) -> tuple[str, tuple[int, int, int, int]]:
    try:
        name, box = text.split(":")
        x, y, w, h = (int(v) for v in box.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--crop must be NAME:X,Y,W,H, got {text!r}") from exc
    return name, (x, y, w, h)


def rgb8(path: Path) -> np.ndarray:
    pixels = read_image(path, keep_alpha=False).pixels
    return pixels if pixels.dtype == np.uint8 else (pixels >> 8).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="registered names or .safetensors files")
    parser.add_argument("--crop", type=parse_crop, action="append", required=True, help="NAME:X,Y,W,H")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="a folder with source/, target/, dpdnet/")
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()

    columns = ["input", *[Path(m).stem for m in args.models], "DPDNet", "target"]
    pipes = [pipeline(m) for m in args.models]
    photos: dict[str, list[np.ndarray]] = {}  # each photo deblurred once, however many crops it gives
    rows = []
    for name, (x, y, w, h) in args.crop:
        if name not in photos:
            source = rgb8(args.set / "source" / f"{name}.png")
            photos[name] = [source, *(pipe(source) for pipe in pipes)]
            photos[name] += [rgb8(args.set / sub / f"{name}.png") for sub in ("dpdnet", "target")]
        images = photos[name]
        crops = [Image.fromarray(im[y : y + h, x : x + w]) for im in images]
        rows.append([c.resize((w * args.zoom, h * args.zoom), Image.NEAREST) for c in crops])
        print(f"{name}: {len(crops)} crops of {w}x{h} at ({x}, {y})", file=sys.stderr)

    cell_w = max(c.width for row in rows for c in row)
    cell_h = [max(c.height for c in row) for row in rows]
    sheet = Image.new(
        "RGB",
        (len(columns) * (cell_w + GAP) - GAP, LABEL_HEIGHT + sum(cell_h) + GAP * (len(rows) - 1)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(columns):
        draw.text((j * (cell_w + GAP) + 2, 2), label, fill="black")
    top = LABEL_HEIGHT
    for row, height in zip(rows, cell_h, strict=True):
        for j, crop in enumerate(row):
            sheet.paste(crop, (j * (cell_w + GAP), top))
        top += height + GAP
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})", file=sys.stderr)


if __name__ == "__main__":
    main()
