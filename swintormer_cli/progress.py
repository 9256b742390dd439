"""The one progress display of the long commands: ``deblur``'s files and tiles, ``eval``'s images, ``train``'s steps.

``Bars`` is a Rich live display on a terminal and nothing otherwise: each method is a no-op when it is off, so a
caller never branches on it (``print`` goes to the console either way).
"""

from __future__ import annotations


class Bars:
    """Progress bars with ``label`` (a column template: ``{task.description}``, ``{task.fields[x]}``), the bar,
    done/total, ``stats`` (another template, optional) and the time left."""

    def __init__(self, label: str, stats: str | None = None, *, console=None, enabled: bool = True, transient=False):
        self.enabled = enabled
        self.console = console
        self.live = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
        if stats:
            columns.append(TextColumn(stats))
        self.live = Progress(*columns, TimeRemainingColumn(), console=console, transient=transient)
        self.live.start()

    def add(self, description: str, total: float | None = None, **fields):
        """A new bar; its id (None when off)."""
        return self.live.add_task(description, total=total, **fields) if self.live else None

    def update(self, task, **changes) -> None:
        if self.live and task is not None:
            self.live.update(task, **changes)

    def advance(self, task, steps: float = 1) -> None:
        if self.live and task is not None:
            self.live.advance(task, steps)

    def remove(self, task) -> None:
        if self.live and task is not None:
            self.live.remove_task(task)

    def print(self, text: str) -> None:
        """A line above the bars (or on the console when they are off)."""
        if self.live:
            self.live.console.print(text)
        elif self.console is not None:
            self.console.print(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.live:
            self.live.stop()
            self.live = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
