"""`swintormer prior cache --config FILE [--set key=value ...]`: the ldm-sr prior's maps, made ahead of training."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import err, failure, set_option, usage_error

app = typer.Typer(help="The diffusion prior: per-image maps of the paper's ldm-sr prior.", no_args_is_help=True)


@app.command("cache")
def cache(
    config: Path = typer.Option(..., "--config", "-c", help="A training config with prior.kind: ldm-sr."),
    set_: list[str] = set_option(),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N. Default: the config's."),
) -> None:
    """Check or make the prior map of every training and validation image of a config (`train` does it first
    too). Under torchrun the processes share the images."""
    import logging

    from ..training.config import load_config
    from ..training.run_data import cache_maps

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_config(config, set_)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise usage_error(str(exc)) from exc
    if cfg.prior.kind != "ldm-sr":
        raise usage_error(f"{config}: prior.kind is {cfg.prior.kind!r}; only ldm-sr has per-image maps to cache")
    try:
        maps = cache_maps(cfg, device)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise failure(str(exc)) from exc
    if maps.report.failed:
        raise failure(f"{len(maps.report.failed)} image(s) could not be read: {', '.join(maps.report.failed[:3])}")
    err.print(
        f"{sum(p is not None for p in maps.train)} training and "
        f"{sum(p is not None for ps in maps.validation.values() for p in ps)} validation maps ready"
    )
