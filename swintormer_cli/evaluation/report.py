"""Evaluation reports: a Rich table on screen, JSON and CSV files with per-image rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..io import atomic_write_bytes
from .runner import METRICS, EvalReport


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def tables(report: EvalReport) -> list:
    from rich.table import Table

    gc = report.run.get("gain_compensate")
    title = f"{report.dataset['name']} ({report.dataset['images']} images)"
    table = Table(title=title)
    columns = (
        ["", "PSNR", "SSIM", "MAE", "LPIPS"]
        + (["GC-PSNR"] if gc else [])
        + ["gain PSNR"]
        + (["gain GC-PSNR"] if gc else [])
        + ["s/image"]
    )
    for c in columns:
        table.add_column(c, justify="left" if not c else "right")
    for row in report.rows:
        a = row.averages["all"]
        cells = [row.label, _fmt(a["psnr"], 2), _fmt(a["ssim"], 4), _fmt(a["mae"], 4), _fmt(a["lpips"], 4)]
        if gc:
            cells.append(_fmt(a["gc_psnr"], 2))
        cells.append(f"{row.gain['psnr']:+.2f}" if "psnr" in row.gain else "")
        if gc:
            cells.append(f"{row.gain['gc_psnr']:+.2f}" if "gc_psnr" in row.gain else "")
        cells.append(f"{row.seconds / max(1, len(row.images)):.2f}" if row.kind == "model" else "")
        table.add_row(*cells)
    out = [table]
    groups = [g for g in report.dataset.get("scene_groups", []) if g != "all"]
    if groups:
        by_scene = Table(title="By scene (PSNR / SSIM)")
        by_scene.add_column("")
        for g in [*groups, "all"]:
            by_scene.add_column("combined" if g == "all" else g, justify="right")
        for row in report.rows:
            by_scene.add_row(
                row.label,
                *[f"{_fmt(row.averages[g]['psnr'], 2)} / {_fmt(row.averages[g]['ssim'], 4)}" for g in [*groups, "all"]],
            )
        out.append(by_scene)
    return out


def write_json(report: EvalReport, path: str | Path) -> None:
    atomic_write_bytes(path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())


def write_csv(report: EvalReport, path: str | Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["row", "kind", "window", "shift", "blend", "prior_steps", "image", *METRICS])
    for row in report.rows:
        s = row.setting or {}
        prefix = [
            row.label,
            row.kind,
            s.get("window", ""),
            s.get("shift", ""),
            s.get("blend", ""),
            s.get("prior_steps", "") if s.get("prior_steps") is not None else "",
        ]
        for image in row.images:
            writer.writerow(prefix + [image["name"]] + ["" if image.get(m) is None else image[m] for m in METRICS])
        for group, avg in row.averages.items():
            writer.writerow(prefix + [f"mean:{group}"] + ["" if avg.get(m) is None else avg[m] for m in METRICS])
    atomic_write_bytes(path, buf.getvalue().encode())
