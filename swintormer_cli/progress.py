"""The one progress-bar style of the long commands (``deblur``'s files and tiles, ``train``'s steps)."""

from __future__ import annotations


def progress_bar(label: str, stats: str | None = None, console=None):
    """A started Rich bar: ``label``, the bar, done/total, ``stats`` (a column template of task fields),
    time left. Stop it with ``.stop()``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if stats:
        columns.append(TextColumn(stats))
    bar = Progress(*columns, TimeRemainingColumn(), console=console, transient=False)
    bar.start()
    return bar
