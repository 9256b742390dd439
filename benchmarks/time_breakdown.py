"""Where the time of a `deblur` goes: the stages of one photo, the network's parts, and its costliest operators.

    python benchmarks/time_breakdown.py --json benchmarks/results/profile-epyc.json
    python benchmarks/time_breakdown.py --precision fp32 --json benchmarks/results/profile-epyc-fp32.json

Three tables, for the default model at its default settings on a 1 MP photo (examples/citrus-blurry.png resized
to 1152x864), one worker (so that the clocks below add up; `deblur` runs one per thread):

1. the run's stages: importing the package and its libraries, loading the model, decoding the photo, the
   prior, the network, cutting tiles and merging them, encoding the result;
2. the network's time by part (attention with its q/k/v convolutions, feed-forward, layer norms, the rest:
   stem, head, down/up-sampling, skip reductions, prior modulation), from forward hooks;
3. torch.profiler's per-operator table for one batch of tiles (self CPU time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

started = time.perf_counter()
import torch  # noqa: E402

torch_seconds = time.perf_counter() - started
started = time.perf_counter()
from benchmarks.harness import cpu_name  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402  (imports diffusers through the prior)
from swintormer_cli.io import encode_image, read_image  # noqa: E402
from swintormer_cli.models.attention import GatedFeedForward, LayerNorm2d, MixedAttention  # noqa: E402

package_seconds = time.perf_counter() - started


class PartClock:
    """Wall time inside modules of some types, by type, from forward pre/post hooks (one thread)."""

    def __init__(self, model: torch.nn.Module, parts: dict[str, tuple[type, ...]]):
        self.seconds: dict[str, float] = defaultdict(float)
        self._open: dict[int, float] = {}
        self.handles = []
        for module in model.modules():
            for name, kinds in parts.items():
                if isinstance(module, kinds):
                    self.handles.append(module.register_forward_pre_hook(self._enter))
                    self.handles.append(module.register_forward_hook(self._leave(name)))

    def _enter(self, module, args):
        self._open[id(module)] = time.perf_counter()

    def _leave(self, name):
        def hook(module, args, output):
            self.seconds[name] += time.perf_counter() - self._open.pop(id(module))

        return hook

    def close(self):
        for handle in self.handles:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--size", default="1152x864", help="WIDTHxHEIGHT of the photo")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    stages: dict[str, float] = {"import torch": torch_seconds, "import swintormer_cli (+ diffusers)": package_seconds}
    t = time.perf_counter()
    pipe = DeblurPipeline.from_pretrained(precision=args.precision, workers=1)
    stages["load the model"] = time.perf_counter() - t

    from PIL import Image

    source = Image.open(ROOT / "examples" / "citrus-blurry.png").convert("RGB").resize((width, height), Image.BICUBIC)
    photo = ROOT / "scratch" / f"profile-{width}x{height}.png"
    photo.parent.mkdir(exist_ok=True)
    source.save(photo)
    t = time.perf_counter()
    image = read_image(photo, keep_alpha=False).to_float()
    stages["decode the photo"] = time.perf_counter() - t

    # The prior and the network timed apart by wrapping them; cutting and merging is what is left.
    clocks = {"prior": 0.0, "network": 0.0}

    def timed(name, fn):
        def call(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            clocks[name] += time.perf_counter() - t0
            return out

        return call

    pipe.prior.forward = timed("prior", pipe.prior.forward)
    parts = PartClock(
        pipe.model,
        {
            "attention (incl. q/k/v convs)": (MixedAttention,),
            "feed-forward": (GatedFeedForward,),
            "layer norm": (LayerNorm2d,),
        },
    )
    network_call = pipe.model.forward
    pipe.model.forward = timed("network", network_call)
    pipe(image)  # a first run, discarded: it sizes the batches and warms the kernels
    for key in clocks:
        clocks[key] = 0.0
    parts.seconds.clear()
    t = time.perf_counter()
    result = pipe(image)
    restore_seconds = time.perf_counter() - t
    parts.close()
    stages["diffusion prior"] = clocks["prior"]
    stages["network"] = clocks["network"]
    stages["cut tiles, merge"] = restore_seconds - clocks["prior"] - clocks["network"]
    pixels = (result.clip(0, 1) * 255 + 0.5).astype("uint8")
    t = time.perf_counter()
    encode_image(pixels, ".png")
    stages["encode the result (PNG)"] = time.perf_counter() - t

    network_parts = dict(parts.seconds)
    network_parts["rest (stem, head, down/up, skips, prior modulation)"] = clocks["network"] - sum(
        parts.seconds.values()
    )

    # One batch of tiles under the profiler, network only.
    tile = pipe.settings.window
    x = torch.rand(4, 3, tile, tile).contiguous(memory_format=pipe.memory_format)
    with torch.no_grad():
        guide = pipe.prior(x, steps=pipe.settings.prior_steps)
        autocast = dict(device_type="cpu", dtype=pipe.dtype, enabled=pipe.dtype != torch.float32)
        with torch.autocast(**autocast):
            network_call(x, guide)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                network_call(x, guide)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    operators = [
        {"op": e.key, "calls": e.count, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total}
        for e in events[:15]
    ]

    machine = f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, precision {pipe.precision}"
    print(f"# {width}x{height}, default model, {machine}\n")
    print("| stage | seconds | share |\n|---|---|---|")
    whole = sum(stages.values())
    for name, seconds in stages.items():
        print(f"| {name} | {seconds:.2f} | {seconds / whole:.0%} |")
    print("\n| network part | seconds | share |\n|---|---|---|")
    for name, seconds in network_parts.items():
        print(f"| {name} | {seconds:.2f} | {seconds / clocks['network']:.0%} |")
    print(f"\n| operator (batch of 4 {tile}px tiles) | calls | self ms | share |\n|---|---|---|---|")
    for row in operators:
        print(f"| `{row['op']}` | {row['calls']} | {row['self_ms']:.1f} | {row['share']:.0%} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "machine": machine,
            "image": [width, height],
            "stages_s": stages,
            "network_parts_s": network_parts,
            "operators": operators,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
