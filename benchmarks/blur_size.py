"""Gain against blur size: how much each model restores at radii from 2 to 32 px, and on denser sensors.

    python benchmarks/blur_size.py "tiny-channel-latent@scale=1" tiny-channel-latent --out benchmarks/results/blur-size

Part 1, synthetic: kodak24's sharp images (``kodak24-defocus/target``) blurred at one fixed radius over the whole
image, for radii 2, 4, 8, 12, 16, 24, 32 px, with two kernels: a uniform disk (the ``defocus-v1`` kernel), and
the lens PSF of the training degradation (``data/psf.py``) with one fixed shape: a soft edge, a bright rim, a
touch of Gaussian softness and of chromatic aberration. In linear light, read noise sigma 0.002, 8-bit sRGB.
Part 2, "same scene, denser sensor": ``real-defocus-dev`` (source and target) upscaled 2x and 3x with Lanczos,
scored with gain-compensated PSNR.

Each MODEL is a registered name or a model file, optionally with settings after ``@`` (``NAME@scale=1``,
``NAME@scale=auto,max_scale=4``): the same weights at scale 1 are the tool before automatic scales. Every
model runs in the same process on the same blurred images. Writes OUT.json, OUT.md and OUT.png (the curves;
needs matplotlib: ``pip install matplotlib``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import cpu_name, save_results  # noqa: E402
from swintormer_cli.data.degradation import linear_to_srgb, srgb_to_linear  # noqa: E402
from swintormer_cli.data.psf import PSFShape, fft_convolve, kernel_size, render_psf  # noqa: E402
from swintormer_cli.evaluation.metrics import gain_compensated_psnr, psnr  # noqa: E402
from swintormer_cli.inference import DeblurPipeline  # noqa: E402
from swintormer_cli.io import list_images, read_image, to_unit  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "eval"
RADII = (2, 4, 8, 12, 16, 24, 32)
KERNELS = ("disk", "lens")
UPSCALES = (2, 3)
READ_NOISE = 0.002


def kernel(kind: str, radius: float) -> torch.Tensor:
    """(1, 1, 3, S, S): the same kernel for the three channels (disk), or per channel (lens)."""
    if kind == "disk":
        shape = PSFShape.disk(3)
        radii = torch.full((3,), float(radius))
    else:
        one = torch.ones(3)
        shape = PSFShape(
            blades=0 * one, rotation=0 * one, softness=0.2 * one, ring=0.3 * one,
            cats_eye=0 * one, cats_eye_angle=0 * one, gaussian=0.5 * one,
        )  # fmt: skip
        radii = float(radius) * torch.tensor([1.03, 1.0, 0.97])
    size = kernel_size(float(radii.max()) + 1, 0.5)
    return render_psf(radii, shape, size, supersample=8)[None, None]


def blur(sharp: torch.Tensor, kind: str, radius: float, seed: int) -> torch.Tensor:
    """(3, H, W) sharp sRGB -> blurred, noisy, 8-bit sRGB."""
    linear = fft_convolve(srgb_to_linear(sharp[None]), kernel(kind, radius))[0, 0]
    g = torch.Generator().manual_seed(seed)
    noisy = linear + READ_NOISE * torch.randn(linear.shape, generator=g)
    return torch.round(linear_to_srgb(noisy) * 255) / 255


def load(path: Path) -> torch.Tensor:
    return torch.from_numpy(to_unit(read_image(path, keep_alpha=False).pixels)).permute(2, 0, 1).float()


def parse_model(spec: str) -> tuple[str, str, dict]:
    """``NAME@key=value,...`` -> (label, name, settings)."""
    name, _, rest = spec.partition("@")
    settings = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        settings[key] = None if value == "auto" else float(value)
    return spec, name, settings


def make_pipeline(name: str, settings: dict) -> DeblurPipeline:
    if name.endswith(".safetensors"):
        return DeblurPipeline.from_pretrained(weights=name, **settings)
    return DeblurPipeline.from_pretrained(name, **settings)


def array(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy().astype(np.float64)


def synthetic(pipes: dict, paths: list[Path], radii, kernels) -> list[dict]:
    rows = []
    for kind in kernels:
        for radius in radii:
            scores = {"input": []} | {label: [] for label in pipes}
            seconds = {label: 0.0 for label in pipes}
            for i, path in enumerate(paths):
                sharp = load(path)
                blurry = blur(sharp, kind, radius, seed=i)
                target = array(sharp)
                scores["input"].append(psnr(array(blurry), target))
                for label, pipe in pipes.items():
                    t0 = time.perf_counter()
                    out = pipe.restore(blurry)
                    seconds[label] += time.perf_counter() - t0
                    scores[label].append(psnr(array(out), target))
            base = float(np.mean(scores["input"]))
            for label in pipes:
                mean = float(np.mean(scores[label]))
                rows.append(
                    {"set": f"kodak24 {kind}", "radius": radius, "model": label, "input": base, "psnr": mean,
                     "gain": mean - base, "seconds": seconds[label]}
                )  # fmt: skip
                line = f"{kind:5s} r={radius:3d} {label:40s} input {base:.2f}  {mean:.2f}  {mean - base:+.2f}"
                print(line, flush=True)
    return rows


def upscaled(pipes: dict, root: Path, factors) -> list[dict]:
    rows = []
    names = [p.name for p in list_images(root / "source")]
    for factor in factors:
        scores = {"input": []} | {label: [] for label in pipes}
        for name in names:
            pair = []
            for side in ("source", "target"):
                image = Image.open(root / side / name).convert("RGB")
                big = image.resize((image.width * factor, image.height * factor), Image.LANCZOS)
                pair.append(np.asarray(big, dtype=np.float64) / 255)
            source, target = pair
            scores["input"].append(gain_compensated_psnr(source, target))
            x = torch.from_numpy(source).permute(2, 0, 1).float()
            for label, pipe in pipes.items():
                scores[label].append(gain_compensated_psnr(array(pipe.restore(x)), target))
        base = float(np.mean(scores["input"]))
        for label in pipes:
            mean = float(np.mean(scores[label]))
            rows.append(
                {"set": f"real-defocus-dev x{factor}", "radius": None, "model": label, "input": base, "psnr": mean,
                 "gain": mean - base, "metric": "gain-compensated PSNR"}
            )  # fmt: skip
            print(f"real x{factor} {label:40s} input {base:.2f}  {mean:.2f}  {mean - base:+.2f}", flush=True)
    return rows


def markdown(rows: list[dict], labels: list[str]) -> str:
    lines = ["| set | radius | input PSNR | " + " | ".join(f"{m} gain" for m in labels) + " |"]
    lines.append("|---" * (3 + len(labels)) + "|")
    keys = []
    for r in rows:
        if (r["set"], r["radius"]) not in keys:
            keys.append((r["set"], r["radius"]))
    for key in keys:
        these = {r["model"]: r for r in rows if (r["set"], r["radius"]) == key}
        first = next(iter(these.values()))
        radius = "-" if key[1] is None else str(key[1])
        gains = " | ".join(f"{these[m]['gain']:+.2f}" for m in labels)
        lines.append(f"| {key[0]} | {radius} | {first['input']:.2f} | {gains} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in KERNELS if any(r["set"] == f"kodak24 {k}" for r in rows)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for label in labels:
            these = sorted(
                (r["radius"], r["gain"]) for r in rows if r["set"] == f"kodak24 {kind}" and r["model"] == label
            )
            ax.plot([t[0] for t in these], [t[1] for t in these], marker="o", label=label)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(RADII, [str(r) for r in RADII])
        ax.set_xlabel("blur radius (px)")
        ax.set_ylabel("PSNR gain over the input (dB)")
        ax.set_title(f"kodak24, {kind} blur")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="NAME or NAME@key=value,... (settings of DeblurPipeline)")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json, OUT.md and OUT.png are written")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=24, help="kodak24 images used (the first N)")
    parser.add_argument("--radii", default=",".join(map(str, RADII)))
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--upscales", default=",".join(map(str, UPSCALES)), help="'' to leave out part 2")
    args = parser.parse_args()

    specs = [parse_model(m) for m in args.models]
    pipes = {label: make_pipeline(name, settings) for label, name, settings in specs}
    paths = list_images(args.data / "kodak24-defocus" / "target")[: args.limit]
    radii = [int(r) for r in args.radii.split(",") if r]
    kernels = [k for k in args.kernels.split(",") if k]
    started = time.perf_counter()
    rows = synthetic(pipes, paths, radii, kernels)
    rows += upscaled(pipes, args.data / "real-defocus-dev", [int(f) for f in args.upscales.split(",") if f])
    labels = list(pipes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python benchmarks/blur_size.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "images": len(paths),
        "models": {label: pipes[label].describe() for label in labels},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    save_results(args.out, markdown(rows, labels), record)
    if any(r["radius"] is not None for r in rows):
        plot(rows, labels, args.out.with_suffix(".png"))
    print(markdown(rows, labels))


if __name__ == "__main__":
    main()
