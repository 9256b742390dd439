"""`--strength` against a plain fade: PSNR at each strength, and a picture to judge them by eye.

    python benchmarks/strength.py --out benchmarks/results/strength --image docs/images/strength.png

kodak24's sharp images (the first ``--limit``) blurred by a uniform disk of one radius over the whole image (4 and
12 px; ``benchmarks/blur_size.py``'s recipe), restored once with the default model at its defaults; then for each
strength s: ours (``inference/strength.apply_strength`` with the image's blur map: a blur of (1 - s) r kept) and a
fade (``input + s * (output - input)``). The picture: a crop at r = 12 px shown at 2x, input | fade 0.5 |
strength 0.5 | full. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.blur_size import DATA, blur, load  # noqa: E402
from benchmarks.harness import cpu_name, save_results  # noqa: E402
from swintormer_cli.evaluation.metrics import psnr  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402
from swintormer_cli.inference.strength import apply_strength  # noqa: E402
from swintormer_cli.io import list_images  # noqa: E402

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
RADII = (4, 12)


def array(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--image", type=Path, help="write the comparison picture here")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=6)
    args = parser.parse_args()

    pipe = DeblurPipeline.from_pretrained(device="cpu")
    paths = list_images(args.data / "kodak24-defocus" / "target")[: args.limit]
    scores = {r: {"ours": {s: [] for s in STRENGTHS}, "fade": {s: [] for s in STRENGTHS}} for r in RADII}
    crop = None
    started = time.perf_counter()
    for i, path in enumerate(paths):
        sharp = load(path)
        for r in RADII:
            blurry = blur(sharp, "disk", r, seed=i)
            radius = pipe.blur_map(blurry)
            full = pipe.restore(blurry, radius=radius)
            for s in STRENGTHS:
                ours = apply_strength(blurry, full, radius, s)
                fade = (blurry + s * (full - blurry)).clamp(0, 1)
                scores[r]["ours"][s].append(psnr(array(ours), array(sharp)))
                scores[r]["fade"][s].append(psnr(array(fade), array(sharp)))
            if crop is None and r == 12:
                h, w = blurry.shape[-2:]
                box = (slice(None), slice(h // 2 - 56, h // 2 + 56), slice(w // 2 - 80, w // 2 + 80))
                half_fade = blurry + 0.5 * (full - blurry)
                panels = [blurry, half_fade, apply_strength(blurry, full, radius, 0.5), full]
                # At 2x (each pixel a 2x2 block): the edges' profiles are what to compare.
                crop = [
                    np.round(array(p[box].clamp(0, 1)) * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1) for p in panels
                ]
    seconds = time.perf_counter() - started
    table = {
        r: {kind: {f"{s:g}": float(np.mean(v)) for s, v in per.items()} for kind, per in scores[r].items()}
        for r in RADII
    }
    lines = [
        f"`--strength` against a fade, mean PSNR (dB) of {len(paths)} kodak24 images; {cpu_name()}, {seconds:.0f} s",
        "",
        "| disk radius | method | " + " | ".join(f"s = {s:g}" for s in STRENGTHS) + " |",
        "|---|---|" + "---|" * len(STRENGTHS),
    ]
    for r in RADII:
        for kind, label in (("ours", "strength (blur kept)"), ("fade", "fade")):
            lines.append(
                f"| {r} | {label} | " + " | ".join(f"{table[r][kind][f'{s:g}']:.2f}" for s in STRENGTHS) + " |"
            )
    text = "\n".join(lines) + "\n"
    print(text)

    record = {"images": [p.name for p in paths], "cpu": cpu_name(), "seconds": seconds, "psnr": table}
    save_results(args.out, text, record)
    if args.image and crop is not None:
        gap = np.full((crop[0].shape[0], 6, 3), 255, dtype=np.uint8)
        row = np.concatenate([x for panel in crop for x in (panel, gap)][:-1], axis=1)
        args.image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(row).save(args.image, optimize=True)
        print(f"wrote {args.image}: input | fade 0.5 | strength 0.5 | full (r = 12 px)")


if __name__ == "__main__":
    main()
