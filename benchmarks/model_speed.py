"""Deblurring speed of several models at their own default settings, measured in one run on one machine.

    python benchmarks/model_speed.py tiny-latent weights/tiny-channel-latent.safetensors --repeats 2 \
        --out benchmarks/results/model-speed-epyc

Each model is a registered name or a model file. For each, ``swintormer bench --size SIZE`` runs in a fresh
process with the model's own defaults (window, shift and prior steps recorded in its file, precision auto,
memory budget and workers as a user gets them) on the same synthetic photo; the models take turns, ``--repeats``
rounds, and the best time of each is kept, so slow drift of the machine falls on all of them alike. The first
model is the baseline of the ratio column (its seconds over the model's: above 1 is faster).

Writes OUT.json (every run's ``bench`` JSON, the CPU, torch) and OUT.md (the table), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import cpu_name, save_results  # noqa: E402


def model_flags(model: str) -> list[str]:
    return ["--weights", model] if model.endswith(".safetensors") else ["-m", model]


def bench_once(model: str, size: str, scratch: Path, index: int) -> dict:
    out = scratch / f"{index}.json"
    cmd = [sys.executable, "-m", "swintormer_cli", "bench", "--size", size, *model_flags(model), "--json", str(out)]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return json.loads(out.read_text())


def gmac_per_tile(model: str, window: int) -> float:
    from swintormer_cli.models import count_macs
    from swintormer_cli.weights import resolve_model

    resolved = resolve_model(weights=model) if model.endswith(".safetensors") else resolve_model(model)
    return count_macs(resolved.load().model.eval(), window) / 1e9


def table(rows: list[dict]) -> str:
    base = rows[0]["seconds"]
    lines = [
        "| model | window / shift | prior steps | precision | tiles | GMAC per tile | seconds | MP/s | peak memory | "
        "speed vs first |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['window']} / {r['shift']} | {r.get('prior_steps') or '-'} | {r['precision']} "
            f"| {r['tiles']} | {r['gmac_per_tile']:.2f} | {r['seconds']:.1f} | {r['megapixels_per_s']:.3f} "
            f"| {r['peak_bytes'] / 2**30:.2f} GiB | {base / r['seconds']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="registered names or .safetensors files; the first is the baseline")
    parser.add_argument("--size", default="12MP", help="photo size, as `swintormer bench --size` (default 12MP)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all models; the best of each is kept")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md are written")
    args = parser.parse_args()

    best: dict[str, dict] = {}
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for i, model in enumerate(args.models):
                result = bench_once(model, args.size, Path(tmp), round_ * len(args.models) + i)
                result["input"] = model
                runs.append(result)
                if model not in best or result["seconds"] < best[model]["seconds"]:
                    best[model] = result
                print(f"round {round_ + 1}: {model}: {result['seconds']:.1f} s", file=sys.stderr)
    rows = []
    for model in args.models:
        row = dict(best[model])
        row["gmac_per_tile"] = gmac_per_tile(model, row["window"])
        rows.append(row)
    import torch

    machine = {"cpu": cpu_name(), "machine": platform.machine(), "torch": torch.__version__}
    text = (
        f"Machine: {machine['cpu']}, {machine['machine']}, torch {machine['torch']}. `swintormer bench --size "
        f"{args.size}`, each model at its own defaults, best of {args.repeats} interleaved rounds.\n\n"
        + table(rows)
        + "\n"
    )
    save_results(args.out, text, {**machine, "size": args.size, "best": rows, "runs": runs})
    print(text)


if __name__ == "__main__":
    main()
