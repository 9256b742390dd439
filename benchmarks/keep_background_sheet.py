"""The picture of `--keep-background-blur`: input, full deblur, deblur with the background kept, and the blur map.

    python benchmarks/keep_background_sheet.py ../shared/data/eval/dpdd-dev/source/1P0A1604.webp --keep 4 \
        --out docs/images/keep-background.jpg [--crop X,Y,W,H] [--width 400]

The default model at its defaults restores the photo twice (with and without ``keep_background_blur``); the four
panels are downscaled to ``--width`` each, in a 2 x 2 grid with their labels. Prints how much of the photo was
kept, how far its pixels moved, and the time of each run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import save_sheet  # noqa: E402
from swintormer_cli.blur_maps import preview  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402
from swintormer_cli.inference.strength import restore_weight  # noqa: E402
from swintormer_cli.io import read_image, to_unit  # noqa: E402


def panel(pixels: np.ndarray, width: int, label: str) -> np.ndarray:
    im = Image.fromarray(pixels)
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=max(12, width // 22))
    box = draw.textbbox((6, 4), label, font=font)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((6, 4), label, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("--keep", type=float, required=True, help="the --keep-background-blur radius (px)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--crop", help="X,Y,W,H of the photo to show (default: all)")
    parser.add_argument("--width", type=int, default=400)
    args = parser.parse_args()

    pixels = read_image(args.photo, keep_alpha=False).pixels
    if args.crop:
        x, y, w, h = (int(v) for v in args.crop.split(","))
        pixels = pixels[y : y + h, x : x + w]
    image = torch.from_numpy(to_unit(pixels)).permute(2, 0, 1).float()
    full = DeblurPipeline.from_pretrained(device="cpu")
    kept = DeblurPipeline.from_pretrained(device="cpu", keep_background_blur=args.keep)
    radius = full.blur_map(image)
    outputs = {}
    for name, pipe in (("full", full), ("kept", kept)):
        start = time.perf_counter()
        outputs[name] = pipe.restore(image, radius=radius)
        print(f"{name}: {time.perf_counter() - start:.1f} s")
    weight = restore_weight(radius, args.keep)
    moved = (outputs["kept"] - image).abs().amax(0) * 255
    print(
        f"kept (weight 0): {100 * float((weight == 0).float().mean()):.0f} % of the pixels, which moved by at most "
        f"{float(moved[weight == 0].max()) if bool((weight == 0).any()) else 0:.2f} levels; restored fully: "
        f"{100 * float((weight == 1).float().mean()):.0f} %"
    )

    def to8(x: torch.Tensor) -> np.ndarray:
        return np.round(x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)

    map_view = preview(radius.numpy())
    panels = [
        panel(pixels if pixels.dtype == np.uint8 else to8(image), args.width, "input"),
        panel(to8(outputs["full"]), args.width, "deblurred"),
        panel(to8(outputs["kept"]), args.width, f"--keep-background-blur {args.keep:g}"),
        panel(map_view[: radius.shape[0]], args.width, "--save-blur-map (preview)"),
    ]
    gap = 6
    h, w = panels[0].shape[:2]
    sheet = np.full((2 * h + gap, 2 * w + gap, 3), 255, dtype=np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, 2)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = p[:h, :w]
    save_sheet(args.out, sheet)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
