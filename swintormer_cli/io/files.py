"""Files written so that they are never half there, and what identifies them.

Writing is atomic: a temporary file (``.NAME.RANDOM.part``) in the destination folder, synced, renamed over the
destination, then the folder synced, so a crash, Ctrl-C or power cut leaves either the old file or the new one,
never half of one. Only a SIGKILL (or a power cut) mid-write can leave the temporary file;
``remove_partial_files`` removes those of one destination, which the next ``deblur`` of it does. Images, model
files, registries, checkpoints, reports and pages are all written this way; a failure is a ``FileWriteError``
whose text is one line naming the file (``images.write_image`` raises its ``ImageWriteError`` kind).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path


class FileWriteError(Exception):
    """A file that cannot be written: one line naming it and the reason."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (decoders' messages sometimes span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def new_file_mode() -> int:
    """The mode an ordinary new file gets here (0o666 less the umask); temporary files are created 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _partial_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_partial_files(path: str | Path) -> int:
    """Remove the temporary files that writes of ``path`` left when they were killed (SIGKILL, power cut);
    returns how many. Only ``.NAME.RANDOM.part`` files are touched, RANDOM without dots: never another
    destination's (whose name, ending in its own suffix, would put a dot there)."""
    path = Path(path)
    pattern = re.compile(re.escape(_partial_prefix(path)) + r"[A-Za-z0-9_]+\.part")
    removed = 0
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return 0
    for leftover in candidates:
        try:
            leftover.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, synced, renamed into place, the folder synced."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(path), suffix=".part", dir=path.parent)
    except OSError as exc:
        raise FileWriteError(path, f"cannot write here ({exc.strerror or exc})") from exc
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise FileWriteError(path, f"cannot write ({exc.strerror or exc})") from exc
        raise
