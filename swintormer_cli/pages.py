"""Pages a person can look at: before/after comparisons and bar plots in plain HTML, written beside their images.

A page is one HTML file that opens from disk: no network, no framework, one small script of our own (the
before/after sliders and a self-check), CSS inline. Images in it are downscaled previews (``PREVIEW_SIDE``), loaded
lazily, each linking to its full file, so a page of 500 photos opens in a second. Plots are SVG written here: a
bar chart needs no plotting library, and SVG stays sharp at any zoom.

Everything that comes from outside (file names, settings, messages) is escaped as text; links are relative and
percent-encoded, so names with spaces, non-ASCII letters or markup (``<b>.png``) show as they are.

The page's script answers two fragments, for people and for tests: ``#compare=P`` sets every slider to P percent,
and on load ``<body data-images="loaded/total" data-broken="...">`` records which images failed.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

PREVIEW_SIDE = 640
"""The longest side of a preview image, in pixels."""
PREVIEW_QUALITY = 88

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; margin: 0 0 6px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.settings { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; background: #eee;
  padding: 8px; }
.item { background: #fff; border: 1px solid #ddd; padding: 12px; margin: 14px 0; }
.row { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
.side { display: flex; flex-direction: column; gap: 8px; }
.compare { position: relative; display: inline-block; line-height: 0; max-width: 100%; }
.compare img { max-width: 100%; height: auto; display: block; }
.compare .before { position: absolute; top: 0; left: 0; clip-path: inset(0 50% 0 0); }
.compare .divider { position: absolute; top: 0; left: 50%; width: 2px; margin-left: -1px; background: #fff;
  box-shadow: 0 0 3px #000; pointer-events: none; }
.compare input { width: 100%; margin: 6px 0 0; }
.labels { display: flex; justify-content: space-between; font-size: 12px; color: #555; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
figure img { max-width: 240px; height: auto; display: block; }
.failed { color: #b00020; } .bad { color: #b00020; } .good { color: #11703a; }
"""

SCRIPT = """
function setCompare(box, percent) {
  box.querySelector('.before').style.clipPath = 'inset(0 ' + (100 - percent) + '% 0 0)';
  box.querySelector('.divider').style.left = percent + '%';
  box.querySelector('input').value = percent;
}
function fitDivider(box) {
  box.querySelector('.divider').style.height = box.querySelector('.after').offsetHeight + 'px';
}
document.querySelectorAll('.compare').forEach(function (box) {
  box.querySelector('input').addEventListener('input', function (e) { setCompare(box, Number(e.target.value)); });
  box.querySelector('.after').addEventListener('load', function () { fitDivider(box); });
  window.addEventListener('resize', function () { fitDivider(box); });
});
var wanted = /compare=(\\d+)/.exec(location.hash);
if (wanted) {
  document.querySelectorAll('.compare').forEach(function (box) { setCompare(box, Number(wanted[1])); });
}
if (/eager/.test(location.hash)) {
  document.querySelectorAll('img').forEach(function (img) { img.loading = 'eager'; });
}
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.images = loaded.length + '/' + images.length;
  document.body.dataset.broken = images.filter(function (img) { return loaded.indexOf(img) < 0; })
    .map(function (img) { return img.getAttribute('src'); }).join(' ');
});
"""


def text(value) -> str:
    """Anything shown as text: escaped."""
    return html.escape(str(value), quote=True)


def link(target: Path, page_folder: Path) -> str:
    """A relative, percent-encoded URL from a page in ``page_folder`` to ``target``."""
    relative = os.path.relpath(Path(target).resolve(), Path(page_folder).resolve())
    return quote(Path(relative).as_posix(), safe="/")


def write_preview(pixels: np.ndarray, path: Path) -> Path:
    """A downscaled JPEG of HxWx3 (uint8, uint16 or float in [0, 1]) pixels, written atomically."""
    from PIL import Image

    from .io import atomic_write_bytes, to_pixels

    array = np.asarray(pixels)
    if array.dtype == np.uint16:
        array = (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = to_pixels(array, 8)
    im = Image.fromarray(np.ascontiguousarray(array[..., :3]))
    im.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.LANCZOS)
    import io as _io

    buffer = _io.BytesIO()
    im.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    atomic_write_bytes(path, buffer.getvalue())
    return path


@dataclass
class Picture:
    """An image on a page: its preview and the full file the preview links to."""

    preview: Path
    full: Path | None = None
    label: str = ""


def _img(picture: Picture, folder: Path, css: str = "") -> str:
    """An <img> of a preview with its size given, so a long page lays out before its pictures load."""
    from PIL import Image

    with Image.open(picture.preview) as im:
        width, height = im.size
    cls = f' class="{css}"' if css else ""
    return (
        f'<img{cls} src="{link(picture.preview, folder)}" alt="{text(picture.label)}" width="{width}" '
        f'height="{height}" loading="lazy">'
    )


def figure(picture: Picture, folder: Path) -> str:
    img = _img(picture, folder)
    if picture.full is not None:
        img = f'<a href="{link(picture.full, folder)}">{img}</a>'
    return f"<figure>{img}<figcaption>{text(picture.label)}</figcaption></figure>"


def compare(before: Picture, after: Picture, folder: Path) -> str:
    """A before/after slider: ``after`` underneath, ``before`` clipped from the left to the slider's position."""
    full_links = " · ".join(
        f'<a href="{link(p.full, folder)}">{text(p.label)} (full size)</a>' for p in (before, after) if p.full
    )
    return (
        '<div><div class="compare">'
        + _img(after, folder, "after")
        + _img(before, folder, "before")
        + '<div class="divider"></div>'
        '<input type="range" min="0" max="100" value="50" aria-label="before / after">'
        f'<div class="labels"><span>&larr; {text(before.label)}</span><span>{text(after.label)} &rarr;</span></div>'
        f"</div><div>{full_links}</div></div>"
    )


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, unit: str = "dB") -> str:
    """A horizontal SVG bar chart (one bar per label, negative values to the left of zero, in red)."""
    values = [float(v) for v in values]
    if not values:
        return ""
    row, left, width = 18, 220, 420
    lo, hi = min(0.0, min(values)), max(0.0, max(values))
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return left + (v - lo) / span * width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" height="{row * len(values) + 40}" '
        f'role="img" aria-label="{text(title)}" font-size="11" font-family="sans-serif">',
        f'<text x="0" y="14" font-size="13">{text(title)}</text>',
        f'<line x1="{x(0):.1f}" y1="22" x2="{x(0):.1f}" y2="{row * len(values) + 26}" stroke="#888"/>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 26 + i * row
        a, b = sorted((x(0), x(value)))
        colour = "#11703a" if value >= 0 else "#b00020"
        short = label if len(label) <= 34 else label[:31] + "..."
        parts += [
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{text(short)}</text>',
            f'<rect x="{a:.1f}" y="{y + 2}" width="{max(b - a, 0.5):.1f}" height="{row - 5}" fill="{colour}"/>',
            f'<text x="{max(a, b) + 4:.1f}" y="{y + 12}">{value:+.2f} {text(unit)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class Page:
    title: str
    sections: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.sections.append(fragment)

    def write(self, path: Path) -> Path:
        from .io import atomic_write_bytes

        body = "\n".join(self.sections)
        document = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{text(self.title)}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style></head>\n<body>\n<h1>{text(self.title)}</h1>\n{body}\n"
            f"<script>{SCRIPT}</script>\n</body></html>\n"
        )
        atomic_write_bytes(path, document.encode("utf-8"))
        return path


def table(header: Sequence[str], rows: Sequence[Sequence], classes: Sequence[str] | None = None) -> str:
    """An HTML table of text cells (each escaped); ``classes`` gives each row a CSS class."""
    head = "".join(f"<th>{text(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{text(classes[i])}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{text(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def number(value, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
