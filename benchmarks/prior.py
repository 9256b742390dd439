"""The latent prior's share of inference time, per preset and tile size, at 5, 20 and 50 DDIM steps.

    python benchmarks/prior.py [--presets tiny,small] [--windows 256,512] [--json out.json]

For one tile (batch 1, the worst case: the denoiser is small and per-call overhead dominates), times the
Swintormer forward and the prior's sampling separately (median of --repeats) and reports
prior / (prior + network) as the share of a tile's time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from swintormer_cli.models import Swintormer, preset
from swintormer_cli.prior import LatentPrior


def _time(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--windows", default="256,512")
    p.add_argument("--steps", default="5,20,50")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    prior = LatentPrior().eval()
    rows = []
    print("| preset | tile | network | prior 5 / 20 / 50 steps | prior share of a tile (5 / 20 / 50) |")
    print("|---|---|---|---|---|")
    for name in args.presets.split(","):
        model = Swintormer(preset(name, prior_channels=prior.channels, prior_scale=prior.scale)).eval()
        for window in map(int, args.windows.split(",")):
            x = torch.rand(1, 3, window, window)
            guide = prior(x, steps=1)
            net = _time(lambda m=model, x=x, g=guide: m(x, g), args.repeats)
            row = {"preset": name, "window": window, "network_s": net, "prior_s": {}, "share": {}}
            for steps in map(int, args.steps.split(",")):
                t = _time(
                    lambda s=steps, x=x: prior(x, steps=s, generator=torch.Generator().manual_seed(0)), args.repeats
                )
                row["prior_s"][steps] = t
                row["share"][steps] = t / (t + net)
            rows.append(row)
            times = " / ".join(f"{row['prior_s'][s] * 1000:.0f}" for s in row["prior_s"])
            shares = " / ".join(f"{100 * row['share'][s]:.0f}%" for s in row["share"])
            print(f"| {name} | {window} | {net * 1000:.0f} ms | {times} ms | {shares} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
