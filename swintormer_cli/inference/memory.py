"""Memory budgets: parsing them, a safe default, measuring a batch's peak, recognising out-of-memory."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager

import torch

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "m": 1e6,
    "mb": 1e6,
    "g": 1e9,
    "gb": 1e9,
    "t": 1e12,
    "tb": 1e12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """'4GiB', '512MB', '1.5g', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a memory size (examples: 4GiB, 512MB, 2g)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value < 1:
        raise ValueError(f"a memory budget must be at least one byte, got {text!r}")
    return int(value)


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def available_memory(device: torch.device) -> int | None:
    """Free memory on the device now, or None where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget(device: torch.device) -> int:
    """A safe share of what is free: half on the CPU (the image and the rest of the system need the
    other half), 70% on a GPU; 2 GiB where free memory cannot be read. Under torchrun the share is split
    among the processes that draw on the same memory: all of this machine's (LOCAL_WORLD_SIZE) on the CPU,
    those that share one GPU on a GPU."""
    from ..launch import local_world_size

    free = available_memory(device)
    share = 2 * 2**30 if free is None else int(free * (0.7 if device.type == "cuda" else 0.5))
    processes = local_world_size()
    if device.type == "cuda":
        processes = -(-processes // max(1, torch.cuda.device_count()))
    return share // max(1, processes)


def _read_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_cpu_peak() -> bool:
    # Writing 5 to clear_refs resets the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMeter:
    """Peak memory a block of work added on a device, in bytes (``peak``), or None where unmeasurable.

    CUDA: the caching allocator's own peak counter. CPU (Linux): the kernel's peak resident set size,
    reset before the block. Elsewhere: not measured.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak: int | None = None

    @contextmanager
    def measure(self):
        dev = self.device
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            yield self
            torch.cuda.synchronize(dev)
            self.peak = max(0, torch.cuda.max_memory_allocated(dev) - base)
        elif dev.type == "cpu" and _reset_cpu_peak():
            base = _read_status("VmRSS") or 0
            yield self
            hwm = _read_status("VmHWM")
            self.peak = None if hwm is None else max(0, hwm - base)
        else:
            yield self
            self.peak = None


_ALLOCATOR_TUNED = False


def keep_freed_memory(mmap_threshold: int = 256 * 2**20, trim_threshold: int = 1 * 2**30) -> bool:
    """Ask glibc's malloc to reuse freed tensor buffers instead of returning them to the system.

    By default glibc serves every large allocation with a fresh mmap and unmaps it on free, so each tile
    batch page-faults its activations in again (a 12 MP run spent as much CPU in the kernel as in the
    network). Raising the mmap and trim thresholds keeps those buffers in the heap for the next batch; the
    peak is unchanged, what changes is that the memory is reused rather than re-faulted. Process-wide and
    idempotent; a no-op (False) where the C library is not glibc."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, int(mmap_threshold)) == 1
        ok = libc.mallopt(m_trim_threshold, int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_cached(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
