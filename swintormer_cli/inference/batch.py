"""Deblurring many files: finding the inputs, naming the outputs, and running them one by one.

A file that fails, for any reason (unreadable, too large, out of memory, an error in the network, an
unwritable output), becomes one line naming it and the batch goes on; only an interrupt (Ctrl-C) stops a
batch. An existing output is skipped unless asked to overwrite, so an interrupted batch resumes where it stopped.
Under ``torchrun`` each process takes every WORLD_SIZE-th file from the sorted list.
"""

from __future__ import annotations

import glob
import mimetypes
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..blur_maps import write_blur_map
from ..io import (
    ImageReadError,
    ImageWriteError,
    is_image_name,
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


# What a folder scan or a pattern leaves out on purpose: counted in the summary, (singular, plural).
IGNORED = {
    "hidden": ("hidden", "hidden"),
    "not image": ("not an image", "not images"),
    "subfolder": ("subfolder (use --recursive)", "subfolders (use --recursive)"),
    "linked folder": ("linked folder (not followed)", "linked folders (not followed)"),
}


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)
    """How many entries of each ``IGNORED`` kind the folders and patterns held."""

    def ignored_summary(self) -> str:
        """'3 ignored (1 hidden, 2 not images)', or '' when nothing was."""
        counts = [(n, IGNORED[kind][n != 1]) for kind in IGNORED if (n := self.ignored[kind])]
        if not counts:
            return ""
        return f"{sum(n for n, _ in counts)} ignored ({', '.join(f'{n} {label}' for n, label in counts)})"


def _broken_link(path: Path) -> Problem:
    return Problem(path, f"broken symbolic link (nothing at {os.readlink(path)})")


def _classify(path: Path, plan: Plan) -> Path | None:
    """A file found in a folder or by a pattern: the image to deblur, or None after naming it (a broken link,
    an image format this tool does not read) or counting it (not an image)."""
    if path.is_symlink() and not path.exists():
        plan.problems.append(_broken_link(path))
    elif not path.is_file():
        plan.ignored["not image"] += 1  # a FIFO, a socket, a device
    elif is_image_name(path):
        return path
    elif (kind := mimetypes.guess_type(path.name)[0] or "").startswith("image/"):
        plan.problems.append(
            Problem(path, f"an image format this tool does not read ({kind}); convert it to PNG, JPEG, TIFF or WebP")
        )
    else:
        plan.ignored["not image"] += 1
    return None


def _scan(folder: Path, recursive: bool, plan: Plan) -> list[Path]:
    """The images in a folder (and its subfolders, recursively), sorted; hidden entries, subfolders not
    entered and other files are counted in ``plan.ignored``, broken links and unreadable formats named."""
    found: list[Path] = []

    def unreadable(error: OSError) -> None:
        plan.problems.append(Problem(Path(error.filename), f"cannot read this folder ({error.strerror or error})"))

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=False):
        here = Path(root)
        for name in sorted(dirs):
            if name.startswith("."):
                plan.ignored["hidden"] += 1
            elif not recursive:
                plan.ignored["subfolder"] += 1
            elif (here / name).is_symlink():
                plan.ignored["linked folder"] += 1
        dirs[:] = sorted(d for d in dirs if recursive and not d.startswith(".") and not (here / d).is_symlink())
        for name in files:
            if name.startswith("."):
                plan.ignored["hidden"] += 1
            elif (image := _classify(here / name, plan)) is not None:
                found.append(image)
    return sorted(found)


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
    with ``suffix`` (default ``_deblurred``) added to the name. A ``suffix`` holding a path separator is a
    ``ValueError``. What cannot be deblurred is in ``problems`` (one line each), what is left out on purpose
    counted in ``ignored``.
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
            found = _scan(path, recursive, plan)
            if not found:
                kind = "image files (recursively)" if recursive else "image files (use --recursive for subfolders)"
                plan.problems.append(Problem(path, f"folder has no {kind}"))
            sources += [(f, path) for f in found]
        elif path.exists():
            sources.append((path, None))
            explicit_files += 1
        elif path.is_symlink():
            plan.problems.append(_broken_link(path))
        elif _is_glob(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=recursive))
            files = []
            for match in matches:
                if match.is_dir():
                    if not recursive:  # with --recursive, ** walks into it
                        plan.ignored["subfolder"] += 1
                elif (image := _classify(match, plan)) is not None:
                    files.append(image)
            if not files:
                plan.problems.append(Problem(path, "pattern matches no image files"))
            sources += [(f, None) for f in files]
        else:
            plan.problems.append(Problem(path, "no such file or folder"))

    out = Path(output).expanduser() if output else None
    single_file_out = (
        out is not None and explicit_files == 1 and len(sources) == 1 and is_image_name(out) and not out.is_dir()
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


def _right_view(left: Path, right: Path | None, image) -> np.ndarray:
    """The right view of a dual-pixel pair, as float, checked against the left one."""
    if right is None:
        raise ImageReadError(left, "this model takes dual-pixel pairs: give the right views with --right")
    path = right / left.name if right.is_dir() else right
    view = read_image(path, keep_alpha=False)
    if view.pixels.shape != image.pixels.shape:
        raise ImageReadError(
            path, f"the right view is {view.width}x{view.height}, its left {image.width}x{image.height}"
        )
    return view.to_float()


def deblur_file(
    pipeline,
    job: Job,
    *,
    overwrite: bool = False,
    quality: int = 95,
    strip_metadata: bool = False,
    tile_progress: Callable[[int, int], None] | None = None,
    right: Path | None = None,
    save_blur_map: bool = False,
    on_written: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> Outcome:
    """Read, restore and atomically write one image; any error (but an interrupt) becomes a ``failed`` outcome
    whose message is one line naming the file.

    ``right``: for a dual-pixel model, the right view's file, or a folder holding it under the input's name (the
    input is the left view); the output takes the left view's depth and metadata. ``save_blur_map``: also write the
    pipeline's blur map of the input beside the output (``blur_maps.write_blur_map``), before it, so an output
    that exists always has its map. ``on_written(input, output)``: called with both images' pixels (HxWx3, uint8 or
    uint16, as read and as written) once the output is written, e.g. to make previews without reading the files
    back; its errors are its own."""
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
        pixels = image.to_float()
        if pipeline.model.config.in_views != 1:
            pixels = np.concatenate([pixels, _right_view(job.source, right, image)], axis=2)
        radius = None
        if save_blur_map:
            radius = pipeline.blur_map(pixels)
            write_blur_map(job.output, radius.numpy())
        restored = pipeline(pixels, progress=tile_progress, radius=radius)
        notes += image.notes
        written = to_pixels(np.asarray(restored), image.bit_depth)
        notes += write_image(
            job.output,
            written,
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
    if on_written is not None:
        on_written(image.pixels, written)
    return Outcome(job, "done", "", seconds, image.width * image.height / 1e6, notes)
