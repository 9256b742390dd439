"""Training checkpoints on disk: written as a whole and published atomically, found again to resume.

checkpoints/NAME/   model.safetensors (raw weights), ema.safetensors (EMA weights), state.pt (optimizer,
                    step, stage, RNG); ``NAME`` is a link to a hidden folder, swapped in one rename.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from ..checkpoint import save_model


def write_checkpoint(folder: Path, raw: tuple, ema: tuple, record: dict, state: dict) -> None:
    """Write ``raw`` and ``ema`` ((model, prior or None) each), with the training ``record``, and the trainer's
    ``state`` into a staging folder, then publish it as ``folder``."""
    with staged(folder) as staging:
        save_model(staging / "model.safetensors", raw[0], raw[1], record)
        save_model(staging / "ema.safetensors", ema[0], ema[1], record)
        torch.save(state, staging / "state.pt")


@contextmanager
def staged(folder: Path):
    """A fresh staging folder to write a checkpoint's files into; published as ``folder`` when the block ends
    without an error (a failed write leaves the old checkpoint in place)."""
    staging = folder.with_name(f".{folder.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    publish(staging, folder)


def checkpoint_folder(run_dir: Path, spec: str) -> Path:
    """The folder ``--resume`` names: ``auto`` (the run's ``checkpoints/last``), a folder, or a file in one;
    a folder a kill left between the two renames of ``publish`` is found under its ``.previous`` name."""
    folder = Path(run_dir) / "checkpoints" / "last" if spec == "auto" else Path(spec)
    if folder.is_file():
        folder = folder.parent
    previous = folder.with_name(f".{folder.name}.previous")
    if not folder.exists() and previous.is_dir():
        folder = previous
    return folder


def publish(staging: Path, folder: Path) -> None:
    """Make ``staging`` the checkpoint ``folder`` in one atomic step: a kill at any instant leaves the old
    checkpoint or the new one, complete.

    ``folder`` (``checkpoints/last``) is a symbolic link to a hidden folder of its own (``.last.<id>``): the
    new folder gets such a name, a new link to it is made beside, and renamed over the old link (a rename is
    atomic); then the old folder and any leftovers of killed saves are removed. A real folder at ``folder``
    (from an older version) is first moved to ``.NAME.previous``, which ``checkpoint_folder`` falls back on."""
    from ..io import fsync_folder

    parent = folder.parent
    for path in staging.iterdir():  # durable before they are published (torch.save does not sync)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    target = parent / f".{folder.name}.{time.time_ns():x}-{os.getpid()}"
    os.replace(staging, target)
    link = parent / f".{folder.name}.link"
    if link.is_symlink() or link.exists():
        os.unlink(link)
    os.symlink(target.name, link)
    if folder.is_dir() and not folder.is_symlink():  # a real folder, written by an older version
        previous = folder.with_name(f".{folder.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)  # that version's leftover: ``folder`` is complete
        os.replace(folder, previous)
    os.replace(link, folder)
    fsync_folder(parent)
    for stale in parent.glob(f".{folder.name}.*"):
        if stale != target:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the records of steps up to ``step`` (and no line a kill cut short), rewritten atomically."""
    from ..io import atomic_write_bytes

    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    atomic_write_bytes(path, "".join(kept).encode())
