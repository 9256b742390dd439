"""Inference benchmark: megapixels/s and peak memory, tiled at a fixed memory budget vs a whole-image forward.

    python benchmarks/inference.py                      # tiny and small, 1/4/12 MP, CPU (random weights)
    python benchmarks/inference.py --presets tiny --sizes 1 --json out.json

Each case runs in its own process so its peak resident memory (the kernel's high-water mark) is its own; a
whole-image forward that does not fit under --limit is reported as out of memory. Random weights: the time
does not depend on them. Also prints the official-size comparison: GMACs per 256x256 of `paper` and of
Restormer's published configuration, counted with the same counter.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

SIZES = {1: (866, 1155), 4: (1732, 2309), 12: (3000, 4000)}


def child(args) -> None:
    limit = int(args.limit * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(args.threads)
    from swintormer_cli.evaluation.bench import synthetic_image
    from swintormer_cli.inference import DeblurPipeline
    from swintormer_cli.inference.memory import is_out_of_memory
    from swintormer_cli.models import Swintormer, preset

    torch.manual_seed(0)
    model = Swintormer(preset(args.preset)).eval()
    h, w = SIZES[args.mp]
    image = synthetic_image(h, w)
    result = {"preset": args.preset, "megapixels": args.mp, "mode": args.mode, "size": f"{h}x{w}"}
    try:
        if args.mode == "tiled":
            pipe = DeblurPipeline(
                model, window=args.window, shift=args.shift, device="cpu", memory_budget=int(args.budget * 2**30)
            )
            import time

            start = time.perf_counter()
            pipe.restore(image)
            seconds = time.perf_counter() - start
            result.update(batch=pipe.tile_batch, tiles=len(pipe.grid(h, w)))
        else:
            import time

            with torch.no_grad():
                start = time.perf_counter()
                model(image[None])
                seconds = time.perf_counter() - start
        result.update(seconds=seconds, megapixels_per_s=h * w / 1e6 / seconds)
    except (RuntimeError, MemoryError) as exc:
        if not (isinstance(exc, MemoryError) or is_out_of_memory(exc)):
            raise
        result.update(error=f"out of memory (limit {args.limit:g} GiB)")
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
    result["peak_rss_bytes"] = peak
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--sizes", default="1,4,12", help="megapixels: 1, 4, 12")
    p.add_argument("--modes", default="tiled,whole")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--shift", type=int, default=192)
    p.add_argument("--budget", type=float, default=1.0, help="tile memory budget, GiB")
    p.add_argument("--limit", type=float, default=18.0, help="address-space limit per case, GiB")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    p.add_argument("--mp", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    results = []
    for preset in args.presets.split(","):
        for mp in map(int, args.sizes.split(",")):
            for mode in args.modes.split(","):
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    "--preset",
                    preset,
                    "--mp",
                    str(mp),
                    "--mode",
                    mode,
                    "--window",
                    str(args.window),
                    "--shift",
                    str(args.shift),
                    "--budget",
                    str(args.budget),
                    "--limit",
                    str(args.limit),
                    "--threads",
                    str(args.threads),
                ]
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
                    result = {"preset": preset, "megapixels": mp, "mode": mode, "error": f"crashed: {tail[:200]}"}
                else:
                    result = json.loads(line[len("RESULT ") :])
                results.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)

    from swintormer_cli.models import Swintormer, count_macs
    from swintormer_cli.models import preset as make

    macs = {name: count_macs(Swintormer(make(name)).eval(), 256) / 1e9 for name in ("paper", "restormer")}
    print("\n| preset | mode | image | MP/s | peak RSS | tiles x batch |\n|---|---|---|---|---|---|")
    for r in results:
        speed = f"{r['megapixels_per_s']:.3f}" if "megapixels_per_s" in r else r.get("error", "")
        peak = f"{r['peak_rss_bytes'] / 2**30:.2f} GiB" if "peak_rss_bytes" in r else "-"
        tiles = f"{r['tiles']} x {r['batch']}" if "tiles" in r else "-"
        print(f"| {r['preset']} | {r['mode']} | {r['megapixels']} MP | {speed} | {peak} | {tiles} |")
    for preset in args.presets.split(","):
        tiled = {r["megapixels"]: r for r in results if r["preset"] == preset and r["mode"] == "tiled"}
        if 1 in tiled and 12 in tiled and "megapixels_per_s" in tiled[12]:
            memory = tiled[12]["peak_rss_bytes"] / tiled[1]["peak_rss_bytes"]
            speed = tiled[12]["megapixels_per_s"] / tiled[1]["megapixels_per_s"]
            print(f"\n{preset}: tiled 12 MP / 1 MP: peak memory x{memory:.2f}, speed x{speed:.2f}")
    print(
        f"\nGMACs per 256x256: paper {macs['paper']:.2f}, Restormer {macs['restormer']:.2f} "
        f"(Restormer / paper = {macs['restormer'] / macs['paper']:.2f}x)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": results, "gmacs_256": macs}, f, indent=2)


if __name__ == "__main__":
    main()
