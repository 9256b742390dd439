"""`swintormer estimator train --config FILE [--set key=value ...] [--resume auto]`: the blur estimator."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import err, failure, set_option, usage_error

app = typer.Typer(
    help="The blur estimator that chooses the scales to restore at: train one (export it with `weights export`).",
    no_args_is_help=True,
)


@app.command()
def train(
    config: Path = typer.Option(..., "--config", "-c", help="A YAML config (configs/blur-estimator.yaml)."),
    set_: list[str] = set_option(),
    resume: str | None = typer.Option(None, help="auto (the run's last checkpoint, if any) or a checkpoint folder."),
) -> None:
    """Train a blur estimator on the radius maps of the training degradation."""
    import logging

    from ..training.blur_estimator import load_estimator_config, train_estimator

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_estimator_config(config, set_)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise usage_error(str(exc)) from exc
    try:
        run_dir = train_estimator(cfg, resume=resume, config_file=str(config))
    except (FileNotFoundError, ValueError) as exc:
        raise failure(str(exc)) from exc
    err.print(f"run finished: {run_dir} (export with `swintormer weights export {run_dir} NAME`)")
