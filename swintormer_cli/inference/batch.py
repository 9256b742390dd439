"""Deblurring many files: finding the inputs, naming the outputs, and running them one by one.

A file that fails, for any reason (unreadable, too large, out of memory, an error in the network, an
unwritable output), becomes one line naming it and the batch goes on; only an interrupt (Ctrl-C) stops a
batch. An existing output is skipped unless asked to overwrite, so an interrupted batch resumes where it stopped.
Under ``torchrun`` each process takes every WORLD_SIZE-th file from the sorted list.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageWriteError,
    one_line,
    output_suffix,
    read_image,
    remove_partial_files,
    to_pixels,
    write_image,
)
from .memory import is_out_of_memory, release_cached


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path


@dataclass
class Problem:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _hidden(path: Path, base: Path) -> bool:
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        parts = path.parts[-1:]
    return any(p.startswith(".") for p in parts)


def _scan(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(p, folder)
    )


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def plan_jobs(
    inputs: Iterable[str | Path],
    output: str | Path | None,
    *,
    recursive: bool = False,
    suffix: str | None = None,
    ext: str = "auto",
) -> Plan:
    """Expand files, folders and globs into (source, output) jobs.

    ``output`` is a file when there is exactly one input file and it has an image suffix; otherwise a
    folder (folder inputs are mirrored under it). Without ``output``, results go beside their sources
    with ``suffix`` (default ``_deblurred``) added to the name.
    """
    if suffix and any(sep and sep in suffix for sep in (os.sep, os.altsep, "\0")):
        raise ValueError(f"--suffix {suffix!r} may not hold a path separator: it is added to file names")
    plan = Plan()
    sources: list[tuple[Path, Path | None]] = []  # (file, the folder it was found under)
    explicit_files = 0
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            found = _scan(path, recursive)
            if not found:
                kind = "image files (recursively)" if recursive else "image files (use --recursive for subfolders)"
                plan.problems.append(Problem(path, f"folder has no {kind}"))
            sources += [(f, path) for f in found]
        elif path.exists():
            sources.append((path, None))
            explicit_files += 1
        elif _is_glob(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=recursive))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS]
            if not files:
                plan.problems.append(Problem(path, "pattern matches no image files"))
            sources += [(f, None) for f in files]
        else:
            plan.problems.append(Problem(path, "no such file or folder"))

    out = Path(output).expanduser() if output else None
    single_file_out = (
        out is not None
        and explicit_files == 1
        and len(sources) == 1
        and out.suffix.lower() in IMAGE_EXTENSIONS
        and not out.is_dir()
    )
    if suffix is None:
        suffix = "" if out is not None else "_deblurred"
    seen: set[Path] = set()
    for src, base in sources:
        if single_file_out:
            target = out
        else:
            rel = src.relative_to(base) if base is not None else Path(src.name)
            folder = (out / rel.parent) if out is not None else src.parent
            target = folder / f"{rel.stem}{suffix}{output_suffix(ext, src)}"
        if target.resolve() == src.resolve():
            plan.problems.append(Problem(src, "the output would overwrite the input; use -o or --suffix"))
            continue
        if target in seen:
            plan.problems.append(Problem(src, f"another input also writes {target}; skipped"))
            continue
        seen.add(target)
        plan.jobs.append(Job(src, target))
    return plan


def shard(jobs: list[Job], rank: int, world: int) -> list[Job]:
    """This process's share of a batch under torchrun / accelerate launch."""
    return jobs[rank::world] if world > 1 else jobs


@dataclass
class Outcome:
    job: Job
    status: str
    """``done``, ``skipped`` or ``failed``."""
    message: str = ""
    seconds: float = 0.0
    megapixels: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: BaseException | None = None
    """What made a ``failed`` file fail (for a traceback with ``--debug``)."""


def deblur_file(
    pipeline,
    job: Job,
    *,
    overwrite: bool = False,
    quality: int = 95,
    strip_metadata: bool = False,
    tile_progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Read, restore and atomically write one image; any error (but an interrupt) becomes a ``failed`` outcome
    whose message is one line naming the file."""
    start = time.perf_counter()
    notes: list[str] = []
    try:
        # Each output is written by one process only, so what lies half-written beside it is a killed run's.
        leftovers = remove_partial_files(job.output)
        if leftovers:
            notes.append(f"removed {leftovers} partial file(s) that an interrupted run left beside {job.output.name}")
        if job.output.exists() and not overwrite:
            return Outcome(job, "skipped", "output exists (use --overwrite)", notes=notes)
        image = read_image(job.source)
        views = pipeline.model.config.in_views
        if views != 1:
            raise ImageReadError(job.source, "this model takes dual-pixel pairs; `deblur` feeds single images")
        restored = pipeline(image.to_float(), progress=tile_progress)
        notes += image.notes
        notes += write_image(
            job.output,
            to_pixels(np.asarray(restored), image.bit_depth),
            like=image,
            quality=quality,
            strip_metadata=strip_metadata,
        )
    except (ImageReadError, ImageWriteError) as exc:
        return Outcome(job, "failed", str(exc), error=exc)
    except Exception as exc:  # noqa: BLE001 - one file's failure, whatever it is, never ends the batch
        if isinstance(exc, MemoryError) or is_out_of_memory(exc):
            device = getattr(pipeline, "device", None)
            if device is not None:
                release_cached(device)
            reason = f"out of memory ({one_line(exc)})"
        else:
            reason = f"{type(exc).__name__}: {one_line(exc)}"
        return Outcome(job, "failed", f"{job.source}: {reason}", error=exc)
    seconds = time.perf_counter() - start
    return Outcome(job, "done", "", seconds, image.width * image.height / 1e6, notes)
