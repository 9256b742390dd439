"""Evaluation sets: DPDD test trees (both layouts, single or dual view) and any paired folder.

DPDD is read as Restormer's published test script reads it: files in natural order, single-view inputs and
targets as 8-bit (a 16-bit file is reduced the way OpenCV's default read does, by dropping the low byte),
dual-pixel views and targets as 16-bit; ``indoor_labels.npy`` / ``outdoor_labels.npy`` hold 1-based
indices into that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.datasets import dpdd_dirs
from ..io import load_pixels, natural_key, pair_images


@dataclass
class EvalItem:
    name: str
    sources: list[Path]
    target: Path


@dataclass
class EvalSet:
    name: str
    root: Path
    items: list[EvalItem]
    bits: int = 8
    """Bit depth images are read at (8: single view, 16: dual-pixel)."""
    scenes: dict[str, list[int]] | None = None
    """Scene groups (e.g. indoor, outdoor) as 0-based item indices, when labels exist."""
    references: dict[str, Path] = field(default_factory=dict)
    """Other methods' outputs to score alongside (e.g. dpdnet/), folder per method, same file names."""
    note: str = ""

    @property
    def views(self) -> int:
        return len(self.items[0].sources) if self.items else 1


def _pair_items(source_dirs: list[Path], target_dir: Path) -> tuple[list[EvalItem], list[str]]:
    pairs, missing = pair_images(source_dirs, target_dir, key=natural_key)
    items = [EvalItem(target.stem, sources, target) for sources, target in pairs]
    return items, [f"{absent}: missing (its target {target} has no source)" for target, absent in missing]


def pairs_set(root: str | Path) -> EvalSet:
    """A folder with source/ and target/ (same file names); other subfolders with the same names are
    treated as reference outputs of other methods."""
    root = Path(root)
    if not (root / "source").is_dir() or not (root / "target").is_dir():
        raise FileNotFoundError(f"{root}: expected source/ and target/ folders")
    items, missing = _pair_items([root / "source"], root / "target")
    if not items:
        raise FileNotFoundError(f"{root}: no source/target pairs with matching names")
    refs = {}
    for folder in sorted(
        p for p in root.iterdir() if p.is_dir() and p.name not in ("source", "target") and not p.name.startswith(".")
    ):
        if all((folder / i.target.name).is_file() for i in items):
            refs[folder.name] = folder
    note = "; ".join(missing)
    return EvalSet(root.name, root, items, 8, None, refs, note)


def dpdd_set(root: str | Path, views: str = "single", split: str = "test") -> EvalSet:
    """A DPDD split (``test``; training validates on ``val``) in either layout, read as the protocol reads it."""
    root = Path(root)
    sources, target = dpdd_dirs(root, split, views)
    for folder in sources + [target]:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: missing folder of the DPDD {split} tree")
    items, missing = _pair_items(sources, target)
    if not items:
        raise FileNotFoundError(f"{target}: no DPDD {split} images")
    scenes = None
    note = "; ".join(missing)
    # The scene labels index the test split only.
    for base in (target.parent, target.parent.parent, root) if split == "test" else ():
        indoor, outdoor = base / "indoor_labels.npy", base / "outdoor_labels.npy"
        if indoor.is_file() and outdoor.is_file():
            scenes = {}
            for name, path in (("indoor", indoor), ("outdoor", outdoor)):
                labels = np.load(path, allow_pickle=False).astype(int).ravel()
                bad = [int(v) for v in labels if not 1 <= v <= len(items)]
                if bad:
                    raise ValueError(f"{path}: labels {bad[:3]} are outside 1..{len(items)} (images found)")
                scenes[name] = [int(v) - 1 for v in labels]
            break
    if scenes is None and split == "test":
        extra = "no indoor_labels.npy / outdoor_labels.npy found: only the combined average is reported"
        note = f"{note}; {extra}" if note else extra
    return EvalSet(f"dpdd-{views}", root, items, 8 if views == "single" else 16, scenes, {}, note)


__all__ = ["EvalItem", "EvalSet", "dpdd_set", "load_pixels", "pairs_set"]
