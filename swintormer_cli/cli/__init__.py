"""The `swintormer` command line: a thin layer over the library, one module per command group."""

from __future__ import annotations

import typer

from .deblur import deblur
from .evaluate import bench, evaluate
from .info import info
from .preview import preview
from .train import train
from .weights import app as weights_app

app = typer.Typer(
    name="swintormer",
    help="Remove defocus blur from photographs with the Swintormer and its diffusion prior.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(deblur)
app.command("eval")(evaluate)
app.command()(train)
app.add_typer(weights_app, name="weights")
app.command()(info)
app.command()(bench)
app.command()(preview)


def main() -> None:
    app()
