"""How far a perfect blur map could take the default on real pairs: oracles over its fixed scales.

    python benchmarks/scale_oracle.py --out benchmarks/results/scale-oracle [--data ../shared/data/eval/dpdd-dev]
        [--scales 1,1.5,2,3,4] [--blocks 64,128]

Each source is restored by the default model at each fixed scale and at ``auto``; every result is gain-compensated
against the target, as ``eval --gain-compensate`` scores it. Then, knowing the target (which no method can):

- per photo: the best scale for each photo;
- per block: the best scale for each block of B x B pixels, as a map that is right everywhere would choose;
  and the same with the input itself among the choices (leave a block as it was where every scale harms it);
- auto without harm: ``auto``, with the blocks where the input scores better put back.

If even the per-block oracle falls short of a target, the map is not what holds it back: the restorer is.
It also tallies, per band of the map's radius (what the tool believes) over 64 px blocks, the gain of ``auto``,
of each fixed scale and of the best scale per block: whether ``auto`` picks the right scale for each band on
average, and how much of the oracle lies in block-to-block choices no band-wise rule can make.
An analysis of the restorer and the map, never a method: it picks by the target. Writes OUT.md and OUT.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.blur_size import DATA, array, load  # noqa: E402
from benchmarks.harness import cpu_name, markdown_table, save_results  # noqa: E402
from swintormer_cli.evaluation.metrics import gain_compensate, psnr  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402
from swintormer_cli.io import list_images  # noqa: E402

RADIUS_BANDS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, float("inf"))
BAND_BLOCK = 64


def blocks_of(values: np.ndarray, block: int) -> np.ndarray:
    """(H, W) -> (rows, cols, block * block): the values of each block x block tile, NaN past the image's edge."""
    h, w = values.shape
    rows, cols = -(-h // block), -(-w // block)
    padded = np.full((rows * block, cols * block), np.nan)
    padded[:h, :w] = values
    return padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(rows, cols, -1)


def block_errors(image: np.ndarray, target: np.ndarray, block: int) -> np.ndarray:
    """Mean squared error of each block x block tile (edge tiles smaller): (rows, cols)."""
    return np.nanmean(blocks_of(((image - target) ** 2).mean(axis=2), block), axis=2)


def compose(labels: list[str], images: dict, errors: dict, block: int) -> np.ndarray:
    """Each block taken from the image (of ``labels``) with the least error there (``errors``: ``block_errors``)."""
    best = np.argmin(np.stack([errors[k] for k in labels]), axis=0)
    h, w = images[labels[0]].shape[:2]
    choice = np.kron(best, np.ones((block, block), dtype=int))[:h, :w]
    return np.take_along_axis(np.stack([images[k] for k in labels]), choice[None, ..., None], axis=0)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA / "dpdd-dev")
    parser.add_argument("--scales", default="1,1.5,2,3,4")
    parser.add_argument("--blocks", default="64,128")
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    blocks = [int(b) for b in args.blocks.split(",")]
    pipes = {"auto": DeblurPipeline.from_pretrained(device="cpu")}
    pipes |= {f"{s:g}": DeblurPipeline.from_pretrained(device="cpu", scale=s) for s in scales}
    fixed = [label for label in pipes if label != "auto"]
    started = time.perf_counter()
    columns = ["input", *pipes, "best"]
    rows, counts = [], np.zeros(len(RADIUS_BANDS) - 1)
    errors = np.zeros((len(RADIUS_BANDS) - 1, len(columns)))  # summed block errors per band and column
    for source, target in zip(list_images(args.data / "source"), list_images(args.data / "target"), strict=True):
        x, y = load(source), array(load(target))
        inp = gain_compensate(array(x), y)
        outs = {label: gain_compensate(array(pipe.restore(x)), y) for label, pipe in pipes.items()}
        row = {"name": source.stem, "input": psnr(inp, y)} | {label: psnr(o, y) for label, o in outs.items()}
        row["per photo"] = max(row[label] for label in outs)
        images = {"input": inp} | outs
        errs = {b: {k: block_errors(o, y, b) for k, o in images.items()} for b in {*blocks, BAND_BLOCK}}
        for b in blocks:
            row[f"per block {b}"] = psnr(compose(fixed, images, errs[b], b), y)
            row[f"per block {b} or input"] = psnr(compose([*fixed, "input"], images, errs[b], b), y)
        row["auto without harm"] = psnr(compose(["auto", "input"], images, errs[BAND_BLOCK], BAND_BLOCK), y)
        rows.append(row)
        radius = np.nanmedian(blocks_of(pipes["auto"].blur_map(x).numpy(), BAND_BLOCK), axis=2)
        err = errs[BAND_BLOCK] | {"best": np.min(np.stack([errs[BAND_BLOCK][k] for k in fixed]), axis=0)}
        band = np.searchsorted(RADIUS_BANDS, radius, side="right") - 1
        for k in range(len(RADIUS_BANDS) - 1):
            sel = band == k
            counts[k] += sel.sum()
            errors[k] += [err[c][sel].sum() for c in columns]
        gains = {k: row[k] - row["input"] for k in ("auto", "per photo", f"per block {blocks[0]}")}
        print(f"{source.stem}: " + ", ".join(f"{k} {v:+.2f}" for k, v in gains.items()), flush=True)
    keys = [k for k in rows[0] if k not in ("name", "input")]
    base = float(np.mean([r["input"] for r in rows]))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    names = {label: f"scale {label}" for label in fixed} | {"auto": "auto (the default)"}
    table = markdown_table(
        ["restored", "gain-compensated PSNR", "gain"],
        [[names.get(k, f"oracle: {k}"), f"{mean[k]:.2f}", f"{mean[k] - base:+.2f}"] for k in keys],
    )
    band_rows = [
        [f"{RADIUS_BANDS[k]:g}-{RADIUS_BANDS[k + 1]:g}", int(counts[k])]
        + [f"{10 * np.log10(errors[k][0] / e):+.2f}" for e in errors[k][1:]]
        for k in range(len(RADIUS_BANDS) - 1)
        if counts[k]
    ]
    band_header = ["map radius (px)", "blocks", *(names[c] for c in pipes), "best scale per block (oracle)"]
    text = (
        f"{args.data.name} ({len(rows)} photos), the default model, gain-compensated; input {base:.2f} dB; "
        f"{cpu_name()}\n\n"
        + table
        + f"\n\nGain (dB) per band of the map's median radius over {BAND_BLOCK} px blocks:\n\n"
        + markdown_table(band_header, band_rows)
        + "\n"
    )
    print(text)
    bands = {"edges": [b if np.isfinite(b) else None for b in RADIUS_BANDS], "blocks": counts.tolist(),
             "columns": columns, "errors": errors.tolist()}  # fmt: skip
    save_results(args.out, text, {"rows": rows, "mean": mean, "input": base, "bands": bands,
                                  "seconds": time.perf_counter() - started})  # fmt: skip


if __name__ == "__main__":
    main()
