"""What several commands share: the error console, flag checks, and building a pipeline from flags."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.markup import escape

from ..defaults import (
    DEFAULT_MAX_SCALE,
    DEFAULT_PRIOR_STEPS,
    DEFAULT_SAMPLER,
    DEFAULT_WINDOW,
    MAX_SCALE,
    SAMPLERS,
    SHIFT_RULE,
)

PIPED_WIDTH = 10_000
"""The width tables are laid out for when the output is not a terminal: whole values, never cut to 80 columns
(``swintormer weights list | grep tiny``)."""
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPED_WIDTH)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class State:
    debug: bool = False
    """``--debug``: show the traceback behind each error (for bug reports)."""


state = State()


# -- the flags several commands share: one definition each, so they read and behave the same everywhere ------
def model_option():
    return typer.Option(
        None, "--model", "-m", help="Registered model name (see `weights list`). Default: the registry's default."
    )


def weights_option():
    return typer.Option(None, help="A .safetensors model file or a folder holding one.")


def device_option():
    return typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps.")


def precision_option():
    return typer.Option(
        "auto", help="auto (CPU: bf16 where it is native, else fp32; GPU: bf16/fp16), fp32, fp16 or bf16."
    )


def memory_budget_option():
    return typer.Option(None, help="Memory for tiles, e.g. 4GiB. Default: half of free memory (GPU: 70%).")


# What each tiling and sampling flag defaults to, said once from the one owner (``defaults.py``): the model's
# recorded setting where it names one, else the package's.
WINDOW_DEFAULT = f"Default: the model's training window, else {DEFAULT_WINDOW}."
SHIFT_DEFAULT = f"Default: the model's recorded shift with its own window, else {SHIFT_RULE}."
STEPS_DEFAULT = f"Default: the model's recorded steps (of its training maps or validation), else {DEFAULT_PRIOR_STEPS}."


def window_option():
    return typer.Option(None, help=f"Tile size in pixels. {WINDOW_DEFAULT}")


def shift_option():
    return typer.Option(None, help=f"Distance between tile origins (at most the window). {SHIFT_DEFAULT}")


def prior_steps_option():
    return typer.Option(None, help=f"Diffusion prior sampling steps (models with a prior). {STEPS_DEFAULT}")


def sampler_option():
    return typer.Option(None, help=f"Prior sampler: {' or '.join(SAMPLERS)}. Default: {DEFAULT_SAMPLER}.")


def eta_option():
    return typer.Option(
        None, help="DDIM eta (0: deterministic). Default: the prior's (latent 0, ldm-sr 1 as the paper's script)."
    )


def seed_option():
    return typer.Option(None, help="Seed of the prior's noise: the same seed gives the same image. Default: 0.")


def workers_option():
    return typer.Option(
        None, help="CPU: tile batches run at once, one thread each. Default: one per thread torch uses."
    )


def scale_option():
    return typer.Option(
        None,
        help="auto (the default): each region restored at the scale its estimated blur needs; or a number: the "
        "whole image shrunk that many times, restored and brought back (1: its own size only).",
    )


def max_scale_option():
    return typer.Option(
        None, help=f"The largest scale --scale auto may use (1 to {MAX_SCALE:g}). Default: {DEFAULT_MAX_SCALE:g}."
    )


def parse_scale(text: str | None) -> float | None:
    """--scale: auto (None) or a number; anything else is a usage error (the range is the settings' to check)."""
    if text is None or text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise usage_error(f"--scale must be auto or a number from 1 to {MAX_SCALE:g}, got {text!r}") from None


def strength_option():
    return typer.Option(
        None,
        help="How much blur to remove, 0 to 1: S leaves (1 - S) of each region's estimated blur, so 0.5 halves it; "
        "0 returns the input, 1 (the default) the full restoration.",
    )


def keep_background_blur_option():
    return typer.Option(
        None,
        metavar="RADIUS",
        help="Leave regions whose estimated blur radius exceeds RADIUS px as they were (a portrait's background "
        "blur), with a smooth transition; the rest is restored. --save-blur-map shows the radii to choose from.",
    )


def parse_number(flag: str, text: str | None, what: str) -> float | None:
    """A number flag read here rather than by Typer, so "not a number" is a one-line usage error like a bad value
    (``what`` says what it should be; the range is the settings' to check)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise usage_error(f"{flag} must be {what}, got {text!r}") from None


def scale_and_strength(scale: str | None, max_scale: float | None, strength: str | None, keep: str | None) -> dict:
    """The ``InferenceSettings`` fields of ``--scale``, ``--max-scale``, ``--strength`` and ``--keep-background-blur``
    (``deblur`` and ``eval`` share them), each read or a one-line usage error."""
    return dict(
        scale=parse_scale(scale),
        max_scale=max_scale,
        strength=parse_number("--strength", strength, "a number from 0 to 1"),
        keep_background_blur=parse_number("--keep-background-blur", keep, "a radius in pixels"),
    )


def set_option():
    """``--set key=value`` over a training config (``train``, ``preview``)."""
    return typer.Option([], "--set", help="Override a setting: --set optim.lr=1e-4 (repeatable).")


def quiet_option(help: str):
    """``-q/--quiet``, the same flag in every command that reports progress."""
    return typer.Option(False, "--quiet", "-q", help=help)


def debug_option():
    """``-v/--debug`` on a command, as ``swintormer --debug`` before it."""
    return typer.Option(False, "--debug", "-v", help="Show the traceback behind each failure (bug reports).")


def json_option():
    return typer.Option(False, "--json", help="Print JSON (for scripts) instead of the table.")


def print_json(data) -> None:
    """``data`` as indented JSON on standard output, nothing else (no markup, no wrapping)."""
    import json

    out.print(json.dumps(data, indent=2), markup=False, highlight=False, soft_wrap=True)


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
class ModelFlags:
    """The flags that choose the model and where and how it runs; the tiling and sampling flags go into an
    ``InferenceSettings`` (which owns their defaults and checks), by keyword."""

    model: str | None = None
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    memory_budget: str | None = None


def inference_settings(**flags):
    """``InferenceSettings`` from the settings flags given; a flag left out (None) keeps the settings' default."""
    from ..inference import InferenceSettings

    return InferenceSettings(**{name: value for name, value in flags.items() if value is not None})


def load_bundle(flags: ModelFlags):
    """Resolve and load the model named by --model/--weights; one-line errors exit 1 (usage: 2)."""
    from ..weights import WeightsError, resolve_model

    if flags.model and flags.weights:
        raise usage_error("give --model or --weights, not both")
    try:
        resolved = resolve_model(flags.model, flags.weights)
        return resolved, resolved.load()
    except WeightsError as exc:
        raise failure(str(exc)) from exc


def setting_error(exc: ValueError) -> typer.Exit:
    """A usage error (exit 2) for a bad setting, naming its flag (``prior_steps`` -> ``--prior-steps``)."""
    from ..inference import SettingError

    if isinstance(exc, SettingError):
        return usage_error(f"--{exc.name.replace('_', '-')} {exc.detail}")
    return usage_error(str(exc))


def make_pipeline(flags: ModelFlags, settings, bundle, name: str):
    """A DeblurPipeline from the model flags and the ``InferenceSettings``; bad values exit 2."""
    from ..inference import DeblurPipeline

    try:
        return DeblurPipeline.from_bundle(
            bundle,
            settings,
            device=flags.device,
            precision=flags.precision,
            memory_budget=flags.memory_budget,
            name=name,
        )
    except ValueError as exc:
        raise setting_error(exc) from exc


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
    if d["scale"] == "auto":
        text += f" | scale auto (up to {d['max_scale']:g}, {d['scale_radius']:g} px)"
    else:
        text += f" | scale {d['scale']}"
    if d.get("strength", 1.0) < 1:
        text += f" | strength {d['strength']:g}"
    if d.get("keep_background_blur") is not None:
        text += f" | background blur over {d['keep_background_blur']:g} px kept"
    return text
