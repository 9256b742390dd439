"""What several commands share: the error console, flag checks, and building a pipeline from flags."""

from __future__ import annotations

import math
import sys
import traceback
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class State:
    debug: bool = False
    """``--debug``: show the traceback behind each error (for bug reports)."""


state = State()


def usage_error(message: str) -> typer.Exit:
    """Print a one-line usage error and return the exit (code 2) to raise."""
    err.print(f"[bold red]error:[/] {escape(str(message))}")
    return typer.Exit(EXIT_USAGE)


def failure(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(str(message))}")
    return typer.Exit(EXIT_FAILED)


def show_traceback(exc: BaseException | None) -> None:
    """With ``--debug``, the traceback of ``exc``; nothing otherwise."""
    if state.debug and exc is not None:
        err.print(escape("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()))


def check_environment() -> None:
    """The variables this tool reads, checked before any work: a malformed one is a usage error (exit 2)."""
    from ..io import max_pixels
    from ..launch import launch_info, local_world_size

    try:
        max_pixels()
        launch_info()
        local_world_size()
    except ValueError as exc:
        raise usage_error(str(exc)) from exc


def interactive() -> bool:
    return sys.stderr.isatty()


def parse_list(text: str | None, cast=str) -> list:
    if text is None:
        return []
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError as exc:
        raise usage_error(f"cannot read {text!r} as a list of {cast.__name__} values") from exc


@dataclass
class PipelineFlags:
    model: str | None = None
    weights: str | None = None
    window: int | None = None
    shift: int | None = None
    blend: str = "average"
    memory_budget: str | None = None
    device: str = "auto"
    precision: str = "auto"
    prior_steps: int = 20
    sampler: str = "ddim"
    eta: float | None = None
    """None: the prior's own default (0 for latent, 1 for ldm-sr)."""
    seed: int = 0
    workers: int | None = None


def load_bundle(flags: PipelineFlags):
    """Resolve and load the model named by --model/--weights; one-line errors exit 1 (usage: 2)."""
    from ..weights import WeightsError, resolve_model

    if flags.model and flags.weights:
        raise usage_error("give --model or --weights, not both")
    try:
        resolved = resolve_model(flags.model, flags.weights)
        return resolved, resolved.load()
    except WeightsError as exc:
        raise failure(str(exc)) from exc


def make_pipeline(flags: PipelineFlags, bundle, name: str):
    """A DeblurPipeline from flags, checking them first (bad values exit 2)."""
    from ..inference import DeblurPipeline
    from ..inference.memory import parse_size
    from ..prior import SAMPLERS

    cfg = bundle.model.config
    minimum = max(32, 2 * cfg.size_multiple)
    window = flags.window or bundle.trained_window or 256
    if window < minimum:
        raise usage_error(f"--window {window} is smaller than this model allows ({minimum} pixels)")
    shift = flags.shift if flags.shift is not None else max(1, window * 3 // 4)
    if shift < 1 or shift > window:
        raise usage_error(f"--shift {shift} must be between 1 and the window ({window}): larger leaves gaps")
    if flags.blend not in ("average", "feather"):
        raise usage_error(f"--blend must be average or feather, got {flags.blend!r}")
    if flags.sampler not in SAMPLERS:
        raise usage_error(f"--sampler must be one of {', '.join(SAMPLERS)}, got {flags.sampler!r}")
    if flags.prior_steps < 1:
        raise usage_error("--prior-steps must be at least 1")
    if flags.eta is not None and not (math.isfinite(flags.eta) and flags.eta >= 0):
        raise usage_error(f"--eta must be a non-negative number, got {flags.eta}")
    if flags.workers is not None and flags.workers < 1:
        raise usage_error(f"--workers must be at least 1, got {flags.workers}")
    budget = None
    if flags.memory_budget:
        try:
            budget = parse_size(flags.memory_budget)
        except ValueError as exc:
            raise usage_error(str(exc)) from exc
    try:
        return DeblurPipeline.from_bundle(
            bundle,
            window=window,
            shift=shift,
            blend=flags.blend,
            device=flags.device,
            precision=flags.precision,
            memory_budget=budget,
            prior_steps=flags.prior_steps,
            sampler=flags.sampler,
            eta=flags.eta,
            seed=flags.seed,
            name=name,
            workers=flags.workers,
        )
    except ValueError as exc:
        raise usage_error(str(exc)) from exc


def describe(pipe, origin: str) -> str:
    from ..inference import format_size

    d = pipe.describe()
    precision = d["precision"] + (f" ({d['precision_note']})" if d.get("precision_note") else "")
    text = (
        f"model {d['model']} ({origin}) | device {d['device']} | precision {precision} | "
        f"window {d['window']} shift {d['shift']} {d['blend']} | budget {format_size(d['memory_budget'])}"
        + (f" | {d['workers']} workers" if d.get("workers", 1) > 1 else "")
    )
    if d["prior"] != "none":
        text += f" | prior {d['prior']}: {d['sampler']} {d['prior_steps']} steps eta {d['eta']} seed {d['seed']}"
    return text
