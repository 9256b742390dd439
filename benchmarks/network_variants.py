"""Speed of `tiny` network variants at inference: GMACs per tile, parameters and milliseconds per tile.

    python benchmarks/network_variants.py --json benchmarks/results/network-variants-epyc.json

Each variant is the `tiny` preset with overrides and the latent prior's 4 channels, run on a batch of eight
256 px tiles in bf16 autocast (fp32 with --fp32), channels-last, on this machine's torch threads. Two warm-up
passes each, then five rounds in which every variant runs once (interleaved, so a slow spell of the machine
hits all alike); the best and the median of the five are reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swintormer_cli.inference.device import prepare_device  # noqa: E402
from swintormer_cli.models.swintormer import Swintormer, count_macs, preset  # noqa: E402

VARIANTS: dict[str, dict] = {
    "tiny": {},
    "no refinement block": dict(refinement_blocks=0),
    "channel attention only": dict(attention="channel"),
    "channel attention only, no refinement block": dict(attention="channel", refinement_blocks=0),
    "window attention only": dict(attention="window"),
    "dim 20": dict(dim=20),
    "encoder 1-1-2, latent 3, decoder 2-1-1, no refinement": dict(
        encoder_blocks=(1, 1, 2), latent_blocks=3, decoder_blocks=(2, 1, 1), refinement_blocks=0
    ),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fp32", action="store_true", help="fp32 instead of bf16 autocast")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    fmt = prepare_device(torch.device("cpu"))
    x = torch.rand(args.batch, 3, args.tile, args.tile).contiguous(memory_format=fmt)
    prior = torch.rand(args.batch, 4, args.tile // 16, args.tile // 16)
    models = {
        name: Swintormer(preset("tiny", prior_channels=4, **overrides)).eval().to(memory_format=fmt)
        for name, overrides in VARIANTS.items()
    }
    times: dict[str, list[float]] = {name: [] for name in models}
    dtype = torch.float32 if args.fp32 else torch.bfloat16
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=not args.fp32):
        for model in models.values():
            for _ in range(2):
                model(x, prior)
        for _ in range(args.rounds):
            for name, model in models.items():
                started = time.perf_counter()
                model(x, prior)
                times[name].append((time.perf_counter() - started) / args.batch)
    rows = []
    for name, model in models.items():
        ordered = sorted(times[name])
        rows.append(
            {
                "variant": name,
                "overrides": VARIANTS[name],
                "gmac_per_tile": count_macs(model, args.tile) / 1e9,
                "parameters": sum(p.numel() for p in model.parameters()),
                "best_ms_per_tile": ordered[0] * 1000,
                "median_ms_per_tile": ordered[len(ordered) // 2] * 1000,
            }
        )
    print("| variant | GMAC per tile | parameters | best ms per tile | median |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['gmac_per_tile']:.2f} | {r['parameters'] / 1e6:.2f} M | "
            f"{r['best_ms_per_tile']:.1f} | {r['median_ms_per_tile']:.1f} |"
        )
    if args.json:
        info = {
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "precision": "fp32" if args.fp32 else "bf16",
            "tile": args.tile,
            "batch": args.batch,
        }
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
