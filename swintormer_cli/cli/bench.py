"""`swintormer bench`: throughput and peak memory of the tiled pipeline on a synthetic image."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import (
    ModelFlags,
    describe,
    device_option,
    err,
    inference_settings,
    load_bundle,
    make_pipeline,
    memory_budget_option,
    model_option,
    out,
    parse_scale,
    precision_option,
    prior_steps_option,
    shift_option,
    usage_error,
    weights_option,
    window_option,
    workers_option,
)


def bench(
    size: str = typer.Option("1024x1024", help="Image size HxW (or a megapixel count like 12MP)."),
    model: str | None = model_option(),
    weights: str | None = weights_option(),
    preset: str | None = typer.Option(None, help="Time a randomly initialised preset instead of trained weights."),
    window: int | None = window_option(),
    shift: int | None = shift_option(),
    device: str = device_option(),
    precision: str = precision_option(),
    memory_budget: str | None = memory_budget_option(),
    workers: int | None = workers_option(),
    prior_steps: int | None = prior_steps_option(),
    scale: str = typer.Option(
        "1",
        help="Scale to time at: 1 (the default: the network's throughput at the image's size), a number, or auto. "
        "The synthetic image has no blur an estimator could read; benchmarks/scale_speed.py times auto on a photo.",
    ),
    repeats: int = typer.Option(1, help="Runs; the fastest is reported."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the result as JSON."),
) -> None:
    """Throughput (megapixels/s) and peak memory of the tiled pipeline on a synthetic image."""
    from rich.table import Table

    from ..checkpoint import ModelBundle
    from ..evaluation.bench import run_tiled, synthetic_image
    from ..inference.memory import format_size
    from ..models import PRESETS, Swintormer
    from ..models import preset as make_preset

    height, width = _parse_size(size)
    if preset:
        if preset not in PRESETS:
            raise usage_error(f"unknown preset {preset!r}")
        bundle, name, origin = ModelBundle(Swintormer(make_preset(preset)).eval(), None), f"{preset} (random)", "preset"
    else:
        resolved, bundle = load_bundle(ModelFlags(model=model, weights=weights))
        name, origin = resolved.name, resolved.origin
    flags = ModelFlags(device=device, precision=precision, memory_budget=memory_budget)
    settings = inference_settings(
        window=window, shift=shift, prior_steps=prior_steps, workers=workers, scale=parse_scale(scale)
    )
    pipe = make_pipeline(flags, settings, bundle, name)
    err.print(describe(pipe, origin))
    image = synthetic_image(height, width, bundle.model.config.in_views)
    result = run_tiled(pipe, image, repeats)
    result.update(pipe.describe(), height=height, width=width)
    table = Table(title="swintormer bench")
    for column in ("model", "size", "device", "precision", "window/shift", "tiles", "batch", "MP/s", "peak memory"):
        table.add_column(column)
    table.add_row(
        name,
        f"{height}x{width} ({result['megapixels']:.1f} MP)",
        result["device"],
        result["precision"],
        f"{result['window']}/{result['shift']}",
        str(result["tiles"]),
        str(result["batch"]),
        f"{result['megapixels_per_s']:.3f}",
        format_size(result["peak_bytes"]) if result["peak_bytes"] else "n/a",
    )
    out.print(table)
    out.print_json(json.dumps(result))
    if json_path:
        from ..io import atomic_write_bytes

        atomic_write_bytes(json_path, (json.dumps(result, indent=2) + "\n").encode())


def _parse_size(text: str) -> tuple[int, int]:
    t = text.strip().lower()
    try:
        if t.endswith("mp"):
            mp = float(t[:-2]) * 1e6
            height = int(round((mp * 3 / 4) ** 0.5))
            return height, int(round(mp / height))
        h, w = t.split("x")
        return int(h), int(w)
    except ValueError as exc:
        raise usage_error(f"--size must be HxW or NMP (e.g. 3000x4000 or 12MP), got {text!r}") from exc


__all__ = ["bench"]
