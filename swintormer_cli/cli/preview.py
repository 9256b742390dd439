"""`swintormer preview`: a contact sheet of the training degradation, to look at before training."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import failure, out, set_option, usage_error


def preview(
    config: Path = typer.Option(..., "--config", "-c", help="A training config; its data roots and degradation."),
    output: Path = typer.Option(
        Path("degradation-preview.png"), "-o", "--output", help="The sheet to write (PNG, or JPEG/WebP/TIFF by suffix)."
    ),
    set_: list[str] = set_option(),
    count: int = typer.Option(8, min=1, max=64, help="Rows (crops)."),
    crop: int = typer.Option(192, min=32, help="Crop size in pixels."),
    seed: int = typer.Option(0, help="Seed for crops and degradations."),
) -> None:
    """Write sharp and degraded crops, their blur-radius maps and PSFs as one image."""
    from ..data.degradation import DegradationConfig
    from ..data.preview import contact_sheet
    from ..io import ImageWriteError, write_image
    from ..training.config import load_config

    try:
        cfg = load_config(config, set_)
        degradation = DegradationConfig.from_dict(cfg.degradation)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise usage_error(str(exc)) from exc
    try:
        sheet = contact_sheet(cfg.data.roots, degradation, count, crop, seed)
    except FileNotFoundError as exc:
        raise failure(str(exc)) from exc
    import numpy as np

    try:
        write_image(output, np.asarray(sheet))
    except ImageWriteError as exc:
        raise failure(str(exc)) from exc
    out.print(f"wrote {output}")
