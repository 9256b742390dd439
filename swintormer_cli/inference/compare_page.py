"""`deblur --compare PAGE.html`: one page for a batch, each input beside its output with a before/after slider.

The previews go to ``PAGE_files/`` beside the page (``in/N.jpg``, ``out/N.jpg``, N the file's place in the
batch, so two inputs of the same name in different folders do not collide); each links to the full input and
output; with ``--save-blur-map``, each map's preview is shown beside its output. A file deblurred in this run gets
its previews from the images in memory once its output is written (``write_previews``: no file is read back);
a skipped one's (its output existed) are read from its files when the page is written. Files that failed are
listed with their reason instead of a broken picture.
Built with ``swintormer_cli/pages.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import pages
from ..io import read_image


@dataclass
class CompareEntry:
    source: Path
    output: Path
    status: str
    """``done``, ``skipped`` or ``failed`` (as ``batch.Outcome``)."""
    message: str = ""
    seconds: float = 0.0
    previews: tuple[Path, Path] | None = None
    """Its input's and output's previews, when already written (``write_previews``)."""


def files_folder(page: Path) -> Path:
    """Where a page's previews go: ``NAME_files`` beside ``NAME.html``."""
    return page.with_name(page.stem + "_files")


def preview_paths(page: Path, index: int) -> tuple[Path, Path]:
    """Where the batch's ``index``-th file's input and output previews go."""
    files = files_folder(Path(page))
    return files / "in" / f"{index}.jpg", files / "out" / f"{index}.jpg"


def write_previews(page: str | Path, index: int, source: np.ndarray, output: np.ndarray) -> tuple[Path, Path]:
    """The previews of the batch's ``index``-th file from its pixels (HxWx3), for ``CompareEntry.previews``."""
    before, after = preview_paths(Path(page), index)
    return pages.write_preview(source, before), pages.write_preview(output, after)


def write_compare_page(page: str | Path, entries: list[CompareEntry], settings: str) -> Path:
    """Write the page for a batch's ``entries``; ``settings`` is the run's set-up line."""
    page = Path(page)
    folder, files = page.parent, files_folder(page)
    failed = [e for e in entries if e.status == "failed"]
    view = pages.Page(f"swintormer deblur: {len(entries)} file{'s' if len(entries) != 1 else ''}")
    seconds = sum(e.seconds for e in entries if e.status == "done")
    summary = (
        f"{sum(e.status == 'done' for e in entries)} deblurred, {sum(e.status == 'skipped' for e in entries)} "
        f"skipped, {len(failed)} failed, {seconds:.1f} s"
    )
    view.add(f'<div class="settings">{pages.text(settings)}\n{pages.text(summary)}</div>')
    unshown = []
    for index, entry in enumerate(entries):
        if entry.status == "failed":
            continue
        try:
            before, after = entry.previews or write_previews(
                page,
                index,
                read_image(entry.source, keep_alpha=False).pixels,
                read_image(entry.output, keep_alpha=False).pixels,
            )
        except Exception as exc:  # noqa: BLE001 - a file that cannot be shown is listed, the page goes on
            unshown.append(f"{entry.source}: cannot show ({type(exc).__name__}: {exc})")
            continue
        when = f"{entry.seconds:.1f} s" if entry.status == "done" else "skipped: its output existed"
        slider = pages.compare(
            pages.Picture(before, entry.source, "input"), pages.Picture(after, entry.output, "output"), folder
        )
        blur_map = _blur_map_figure(entry, files / "map" / f"{index}.jpg", folder)
        view.add(
            f'<div class="item"><h3>{pages.text(entry.source)} &rarr; {pages.text(entry.output)}</h3>'
            f'<p>{pages.text(when)}</p><div class="row">{slider}{blur_map}</div></div>'
        )
    problems = [f"{e.message or e.source}" for e in failed] + unshown
    if problems:
        listed = "".join(f'<li class="failed">{pages.text(p)}</li>' for p in problems)
        view.add(f"<h2>Failed</h2><ul>{listed}</ul>")
    return view.write(page)


def _blur_map_figure(entry: CompareEntry, preview_path: Path, folder: Path) -> str:
    """The blur map's preview written beside the output (``--save-blur-map``), as a figure; '' when there is none."""
    from ..blur_maps import map_paths

    levels, coloured = map_paths(entry.output)
    if not coloured.is_file():
        return ""
    try:
        preview = pages.write_preview(read_image(coloured, keep_alpha=False).pixels, preview_path)
    except Exception:  # noqa: BLE001 - a map that cannot be shown is left out; the comparison stays
        return ""
    return pages.figure(pages.Picture(preview, levels if levels.is_file() else coloured, "blur map"), folder)
