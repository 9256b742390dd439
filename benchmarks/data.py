"""Data pipeline benchmark: training samples per second (crop + on-the-fly defocus), next to a training step.

    python benchmarks/data.py --data ../shared/data/train [--crop 256] [--batch 8] [--json out.json]

Loads and crops from the photo folder (decoded once, cached, as training does), degrades a batch with each
recipe on the CPU (and on CUDA when present), and times one optimisation step of the `tiny` network on the
same batch for comparison.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from swintormer_cli.data.datasets import SharpImages
from swintormer_cli.data.degradation import Degradation, DegradationConfig
from swintormer_cli.models import Swintormer, preset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for recipe, cfg in (("disk (defocus-v1)", DegradationConfig.defocus_v1()), ("lens", DegradationConfig())):
        data = SharpImages([args.data], args.crop, cfg.margin, (0.5, 1.0), seed=0)
        data.preload()  # decode once, as a cached training run does
        start = time.perf_counter()
        batches = [torch.stack([data[b * args.batch + j] for j in range(args.batch)]) for b in range(args.batches)]
        load = (time.perf_counter() - start) / (args.batches * args.batch)
        for device in devices:
            degrade = Degradation(cfg)
            g = torch.Generator(device=device).manual_seed(0)
            degrade(batches[0].to(device), g)
            start = time.perf_counter()
            for b in batches:
                degrade(b.to(device), g)
            if device == "cuda":
                torch.cuda.synchronize()
            deg = (time.perf_counter() - start) / (args.batches * args.batch)
            results.append(
                {
                    "recipe": recipe,
                    "device": device,
                    "crop": args.crop,
                    "load_s_per_sample": load,
                    "degrade_s_per_sample": deg,
                    "samples_per_s": 1 / (deg + (load if device == "cpu" else 0)),
                }
            )
    model = Swintormer(preset("tiny")).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, 3, args.crop, args.crop)

    def step():
        loss = (model(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(2):
        step()
    step_s = (time.perf_counter() - start) / 2
    print("| recipe | device | load ms/sample | degrade ms/sample | samples/s |\n|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['recipe']} | {r['device']} | {r['load_s_per_sample'] * 1000:.1f} | "
            f"{r['degrade_s_per_sample'] * 1000:.1f} | {r['samples_per_s']:.1f} |"
        )
    print(
        f"\ntiny training step (batch {args.batch}, {args.crop}x{args.crop}, CPU): {step_s:.2f} s "
        f"= {args.batch / step_s:.1f} samples/s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": results, "tiny_step_s": step_s}, f, indent=2)


if __name__ == "__main__":
    main()
