"""`swintormer train --config FILE [--set key=value ...] [--resume auto|PATH]`."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import err, failure, set_option, usage_error


def train(
    config: Path = typer.Option(..., "--config", "-c", help="A YAML config (see configs/)."),
    set_: list[str] = set_option(),
    resume: str | None = typer.Option(None, help="auto (the run's last checkpoint, if any) or a checkpoint folder."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."
    ),
) -> None:
    """Train a model (single process, or under torchrun / accelerate launch for several)."""
    import logging

    from ..training.config import load_config
    from ..training.trainer import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_config(config, set_)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise usage_error(str(exc)) from exc
    try:
        run_dir = run_training(cfg, resume=resume, progress=progress)
    except (FileNotFoundError, ValueError, FloatingPointError) as exc:
        raise failure(str(exc)) from exc
    err.print(f"run finished: {run_dir} (export with `swintormer weights export {run_dir} NAME`)")
