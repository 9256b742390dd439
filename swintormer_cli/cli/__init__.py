"""The `swintormer` command line: a thin layer over the library, one module per command group."""

from __future__ import annotations

import sys

import typer

from .bench import bench
from .common import EXIT_FAILED, check_environment, err, escape, state
from .deblur import deblur
from .estimator import app as estimator_app
from .evaluate import evaluate
from .info import info
from .preview import preview
from .prior import app as prior_app
from .train import train
from .weights import app as weights_app

app = typer.Typer(
    name="swintormer",
    help="Remove defocus blur from photographs with the Swintormer and its diffusion prior.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of any error (for bug reports)."),
) -> None:
    state.debug = debug
    check_environment()


app.command()(deblur)
app.command("eval")(evaluate)
app.command()(train)
app.add_typer(weights_app, name="weights")
app.add_typer(prior_app, name="prior")
app.add_typer(estimator_app, name="estimator")
app.command()(info)
app.command()(bench)
app.command()(preview)


def main() -> None:
    """The `swintormer` command: an error no command foresaw is one line (its traceback with --debug);
    Ctrl-C exits 130 (Typer's own handling)."""
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        if state.debug:
            raise
        from ..io import one_line

        err.print(
            f"[bold red]error:[/] {escape(type(exc).__name__)}: {escape(one_line(exc))} "
            "(run again with --debug for the traceback, and please report it)"
        )
        sys.exit(EXIT_FAILED)
