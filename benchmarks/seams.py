"""Do tile borders show? The step between neighbouring pixels on tile borders against everywhere else.

    python benchmarks/seams.py tiny-latent tiny-channel-latent --out benchmarks/results/seams

Each model (a registered name or a model file) deblurs every photo of the set at its own defaults (window,
shift, blend). With an average merge, a seam would sit where a tile begins or ends: there the output switches
from one set of tiles to another. Each photo is also deblurred in one whole-image pass by the same model (the
window set to the photo's size), which has no borders. For the neighbouring columns (rows) that straddle a
border, the mean absolute step of the tiled output over that of the whole-image output, divided by the same
ratio over all other neighbouring columns (rows): the content's own edges cancel out, and the ratio is about 1
when the borders do not show, above 1 when they do. Also the mean and largest difference from the whole-image
pass, in 8-bit levels: what tiling changes. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import save_results  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402
from swintormer_cli.io import list_images, read_image, to_unit  # noqa: E402

DEFAULT_SET = REPO.parent / "shared" / "data" / "eval" / "real-defocus-dev" / "source"


def pipeline(model: str, **overrides) -> DeblurPipeline:
    """A registered model's name, or a model file's path (``from_pretrained`` takes a file only as ``weights``)."""
    if model.endswith(".safetensors"):
        return DeblurPipeline.from_pretrained(weights=model, **overrides)
    return DeblurPipeline.from_pretrained(model, **overrides)


def borders(length: int, starts: list[int], size: int) -> set[int]:
    """Indices i where pixels i-1 and i lie on two sides of a tile's first or last pixel."""
    edges = set(starts) | {s + size for s in starts}
    return {e for e in edges if 0 < e < length}


def seam_ratio(tiled: np.ndarray, whole: np.ndarray, axis: int, edges: set[int]) -> float:
    """(tiled / whole mean |step| across the borders) / (the same elsewhere), along ``axis`` (0 rows, 1 columns)
    of HxWxC images."""

    def steps(image: np.ndarray) -> np.ndarray:
        return np.abs(np.diff(image, axis=axis)).mean(axis=(1 - axis, 2))  # the step from i-1 to i, at i-1

    t, w = steps(tiled), steps(whole)
    on = np.zeros(t.shape[0], bool)
    on[[e - 1 for e in edges]] = True
    return float((t[on].mean() / w[on].mean()) / (t[~on].mean() / w[~on].mean()))


def measure(model: str, paths: list[Path]) -> dict:
    tiled = pipeline(model)
    wholes: dict[int, DeblurPipeline] = {}  # one whole-image pipeline per photo size, not one per photo
    records = []
    for path in paths:
        image = to_unit(read_image(path, keep_alpha=False).pixels)
        out = tiled(image)
        h, w = image.shape[:2]
        grid = tiled.grid(h, w)
        tiles = grid.tiles
        xs = borders(w, sorted({t.x for t in tiles}), grid.tile_width)
        ys = borders(h, sorted({t.y for t in tiles}), grid.tile_height)
        side = max(h, w)
        if side not in wholes:
            wholes[side] = pipeline(model, window=side)
        whole = wholes[side](image)
        col_ratio, row_ratio = seam_ratio(out, whole, 1, xs), seam_ratio(out, whole, 0, ys)
        diff = np.abs(out - whole) * 255
        records.append(
            {
                "image": path.name,
                "tiles": len(tiles),
                "column_seam_ratio": col_ratio,
                "row_seam_ratio": row_ratio,
                "vs_whole_mean": float(diff.mean()),
                "vs_whole_max": float(diff.max()),
            }
        )
        print(f"{model} {path.name}: columns {col_ratio:.3f}, rows {row_ratio:.3f}", file=sys.stderr)
    settings = tiled.describe()
    return {"model": Path(model).stem, "window": settings["window"], "shift": settings["shift"], "images": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="registered names or .safetensors files")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="a folder of photos (default: real-defocus-dev)")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md are written")
    args = parser.parse_args()

    paths = list_images(args.set)
    results = [measure(m, paths) for m in args.models]
    lines = [
        f"Photos: {args.set} ({len(paths)}). Seam ratio: the tiled output's step across tile borders over the "
        "whole-image pass's, relative to the same ratio elsewhere (1: borders do not show). Differences from the "
        "whole-image pass in 8-bit levels.",
        "",
        "| model | window / shift | column seam ratio (mean, max) | row seam ratio (mean, max) | "
        "vs whole image: mean / max |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        col = [i["column_seam_ratio"] for i in r["images"]]
        row = [i["row_seam_ratio"] for i in r["images"]]
        lines.append(
            f"| {r['model']} | {r['window']} / {r['shift']} | {np.mean(col):.3f}, {max(col):.3f} "
            f"| {np.mean(row):.3f}, {max(row):.3f} | {np.mean([i['vs_whole_mean'] for i in r['images']]):.2f} / "
            f"{max(i['vs_whole_max'] for i in r['images']):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    save_results(args.out, text, {"results": results})
    print(text)


if __name__ == "__main__":
    main()
