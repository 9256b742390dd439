"""Finding images in folders, in a natural order, and pairing sources with targets by name."""

from __future__ import annotations

import re
from pathlib import Path

from .images import is_image_name


def natural_key(path: Path) -> list:
    """Sort key putting ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(root: str | Path, recursive: bool = True, key=None) -> list[Path]:
    """The image files in a folder (and its subfolders), hidden files left out, sorted (by ``key``); a file
    is a list of itself."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    pattern = "**/*" if recursive else "*"
    return sorted(
        (p for p in root.glob(pattern) if p.is_file() and is_image_name(p) and not p.name.startswith(".")), key=key
    )


def pair_images(
    source_dirs: list[Path], target_dir: Path, key=None
) -> tuple[list[tuple[list[Path], Path]], list[tuple[Path, Path]]]:
    """Each target image with its source(s) of the same name, one from each source folder: (pairs, and the
    (target, missing source) of each target left out)."""
    pairs, missing = [], []
    for target in list_images(target_dir, recursive=False, key=key):
        sources = [Path(d) / target.name for d in source_dirs]
        absent = [s for s in sources if not s.is_file()]
        if absent:
            missing.append((target, absent[0]))
        else:
            pairs.append((sources, target))
    return pairs, missing
