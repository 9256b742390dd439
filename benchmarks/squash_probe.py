"""How much dpdd-dev's squash costs the default: its photos restored as shot (3:2), against as stored (1:1).

    python benchmarks/squash_probe.py --out benchmarks/results/squash-probe [--data ../shared/data/eval/dpdd-dev]

The public copy of these DPDD pairs squeezed each 1680x1120 frame to 1024x1024, so every blur disc became an
ellipse (0.61 wide for 0.91 tall), a shape the training kernels never take. Each source is restored twice with
the default model at its defaults: as stored, and stretched to 1536x1024 (round discs again) then squeezed back;
both are scored gain-compensated against the stored target. An analysis of this copy, not a method: it uses
what we know of how the copy was made. Writes OUT.md and OUT.json.
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
from swintormer_cli.evaluation.metrics import gain_compensated_psnr  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402
from swintormer_cli.inference.scales import resize  # noqa: E402
from swintormer_cli.io import list_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA / "dpdd-dev")
    args = parser.parse_args()
    pipe = DeblurPipeline.from_pretrained(device="cpu")
    rows, started = [], time.perf_counter()
    for source, target in zip(list_images(args.data / "source"), list_images(args.data / "target"), strict=True):
        x, y = load(source), array(load(target))
        h, w = x.shape[-2:]
        stored = pipe.restore(x)
        as_shot = resize(pipe.restore(resize(x, h, round(w * 1.5))), h, w)
        base = gain_compensated_psnr(array(x), y)
        rows.append(
            {
                "name": source.stem,
                "input": base,
                "stored": gain_compensated_psnr(array(stored), y) - base,
                "as_shot": gain_compensated_psnr(array(as_shot), y) - base,
            }
        )
        print(f"{source.stem}: {rows[-1]['stored']:+.2f} stored, {rows[-1]['as_shot']:+.2f} as shot", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("input", "stored", "as_shot")}
    text = (
        f"dpdd-dev ({len(rows)} photos), default model at its defaults, gain-compensated; {cpu_name()}\n\n"
        + markdown_table(
            ["restored", "gain"],
            [["as stored (1024x1024, squashed discs)", f"{mean['stored']:+.2f}"],
             ["as shot (1536x1024, round discs), squeezed back", f"{mean['as_shot']:+.2f}"]],
        )
        + f"\ninput {mean['input']:.2f} dB\n"
    )  # fmt: skip
    print(text)
    save_results(args.out, text, {"rows": rows, "mean": mean, "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
