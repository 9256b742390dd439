"""What the automatic scales cost: a 12 MP photo at scale 1 (the tool before them) and at scale auto, one run.

    python benchmarks/scale_speed.py --out benchmarks/results/scale-speed [--model NAME] [--repeats 2]

The photo: a mosaic of kodak24's sharp images, 4032x3024 (12.2 MP), defocused like a photo with a subject in
focus and a background going out of focus: the blur radius grows from 0 on the left third to 40 px on the right
edge, in linear light, with read noise. Both settings restore it in this process, taking turns, ``--repeats``
rounds; the best time of each is kept. Reported: seconds, megapixels per second, the ratio to scale 1, the
process's peak memory added (``PeakMeter``), the scales the map asked for and what each pass cost, and the
time of the blur map alone. Writes OUT.json and OUT.md.
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

from benchmarks.blur_size import DATA, blur, load  # noqa: E402
from benchmarks.harness import cpu_name, save_results  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402
from swintormer_cli.inference.memory import PeakMeter  # noqa: E402
from swintormer_cli.io import list_images  # noqa: E402

WIDTH, HEIGHT = 4032, 3024
RADII = (0.0, 3.0, 6.0, 10.0, 16.0, 25.0, 40.0)


def photo(data: Path) -> torch.Tensor:
    """The 12 MP test photo, made the same way on every run."""
    tiles = [load(p) for p in list_images(data / "kodak24-defocus" / "target")]
    rows, cols = -(-HEIGHT // 512), -(-WIDTH // 768)
    sharp = torch.zeros(3, rows * 512, cols * 768)
    for i in range(rows):
        for j in range(cols):
            tile = tiles[(i * cols + j) % len(tiles)]
            if tile.shape[1] > tile.shape[2]:
                tile = tile.transpose(1, 2)
            sharp[:, i * 512 : (i + 1) * 512, j * 768 : (j + 1) * 768] = tile[:, :512, :768]
    sharp = sharp[:, :HEIGHT, :WIDTH]
    # Radius ramps from 0 at a third of the width to 40 px at the right edge; each pixel blends the two
    # nearest of the levels in RADII (as the training degradation blends its levels).
    x = torch.linspace(0, 1, WIDTH)
    wanted = ((x - 1 / 3) / (2 / 3)).clamp(min=0) * RADII[-1]
    out = torch.zeros_like(sharp)
    for k, r in enumerate(RADII):
        lo = RADII[k - 1] if k else r
        hi = RADII[k + 1] if k + 1 < len(RADII) else r
        rise = ((wanted - lo) / max(r - lo, 1e-6)).clamp(0, 1) if k else (wanted <= r).float()
        fall = ((hi - wanted) / max(hi - r, 1e-6)).clamp(0, 1) if k + 1 < len(RADII) else (wanted >= r).float()
        weight = torch.where(wanted <= r, rise, fall)
        if float(weight.max()) == 0:
            continue
        level = blur(sharp, "disk", r, seed=k) if r > 0 else torch.round(sharp * 255) / 255
        out += level * weight
    return out.clamp(0, 1)


def timed(pipe: DeblurPipeline, image: torch.Tensor) -> tuple[float, int | None]:
    meter = PeakMeter(pipe.device)
    with meter.measure():
        start = time.perf_counter()
        pipe.restore(image)
        seconds = time.perf_counter() - start
    return seconds, meter.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None, help="a registered model (default: the default model)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    image = photo(args.data)
    mp = image.shape[1] * image.shape[2] / 1e6
    pipes = {
        "scale 1": DeblurPipeline.from_pretrained(args.model, scale=1),
        "scale auto": DeblurPipeline.from_pretrained(args.model),
    }
    auto = pipes["scale auto"]
    start = time.perf_counter()
    radius = auto.blur_map(image)
    map_seconds = time.perf_counter() - start
    plan = auto.scales_for(image, radius)
    share = {f"{s:g}": float(w.mean()) if w is not None else 1.0 for s, w in plan}
    runs = {label: [] for label in pipes}
    for _ in range(args.repeats):
        for label, pipe in pipes.items():
            runs[label].append(timed(pipe, image))
    rows = []
    base = min(s for s, _ in runs["scale 1"])
    for label, results in runs.items():
        seconds = min(s for s, _ in results)
        peaks = [p for _, p in results if p is not None]
        rows.append(
            {"setting": label, "seconds": seconds, "megapixels_per_s": mp / seconds, "ratio": seconds / base,
             "peak_bytes": max(peaks) if peaks else None}
        )  # fmt: skip
    lines = ["| setting | seconds | MP/s | time vs scale 1 | peak memory added |", "|---|---|---|---|---|"]
    for r in rows:
        peak = f"{r['peak_bytes'] / 2**20:.0f} MiB" if r["peak_bytes"] is not None else "-"
        lines.append(
            f"| {r['setting']} | {r['seconds']:.1f} | {r['megapixels_per_s']:.2f} | {r['ratio']:.2f}x | {peak} |"
        )
    passes = ", ".join(f"{s} ({100 * w:.0f} % of the pixels' weight)" for s, w in share.items())
    lines.append(f"\nScales the map asked for: {passes}; the blur map alone took {map_seconds:.1f} s.")
    record = {
        "command": "python benchmarks/scale_speed.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "megapixels": mp,
        "settings": {label: pipe.describe() for label, pipe in pipes.items()},
        "blur_map_seconds": map_seconds,
        "blur_map_median_px": float(np.median(radius.numpy())),
        "scales": share,
        "rows": rows,
        "runs": {label: [s for s, _ in results] for label, results in runs.items()},
    }
    save_results(args.out, "\n".join(lines) + "\n", record)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
