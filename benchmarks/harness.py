"""What every benchmark shares: the machine it ran on, its results as Markdown and JSON, the docs' picture sheets.

A benchmark prints its Markdown table and writes ``OUT.md`` (the table) and ``OUT.json`` (everything measured,
with the CPU and the date) with ``save_results``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), which every figure names."""
    path = Path("/proc/cpuinfo")
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table of the cells as given (format numbers before)."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_results(out: Path, markdown: str, record: dict) -> None:
    """``out``.md holds ``markdown``, ``out``.json the ``record`` (its ``cpu`` and ``date`` filled in if absent)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}
    out.with_suffix(".md").write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")


def save_sheet(path: Path, sheet) -> None:
    """A picture for the docs (HxWx3 uint8) with the blur maps' scale bar under it; JPEG (quality 88) or PNG by
    the suffix."""
    import numpy as np
    from PIL import Image

    from swintormer_cli.blur_maps import preview

    bar = preview(np.zeros((1, sheet.shape[1]), dtype=np.float32))[1:]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = Image.fromarray(np.concatenate([sheet, bar], axis=0))
    out.save(path, **({"quality": 88} if path.suffix.lower() in (".jpg", ".jpeg") else {"optimize": True}))
