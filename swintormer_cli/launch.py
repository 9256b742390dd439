"""How this process was launched (torchrun or accelerate launch): rank, world size and its device.

Read by inference (`deblur` shards its files by rank) and by training alike; the process group itself is
training's (`training/distributed.py`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def _env_int(name: str, default: int, minimum: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={text!r} must be at least {minimum}")
    return value


def launch_info() -> DistInfo:
    """Read the variables torchrun and accelerate set; a single process when they are absent.
    Malformed values are a ``ValueError`` naming the variable."""
    world = _env_int("WORLD_SIZE", 1, 1)
    rank = _env_int("RANK", 0, 0)
    if rank >= world:
        raise ValueError(f"RANK={rank} must be below WORLD_SIZE={world}")
    local = _env_int("LOCAL_RANK", rank, 0)
    return DistInfo(rank, world, local)


def local_world_size() -> int:
    """How many processes of this launch run on this machine (torchrun's LOCAL_WORLD_SIZE; 1 without it)."""
    return _env_int("LOCAL_WORLD_SIZE", 1, 1)


def rank_device(spec: str, info: DistInfo) -> str:
    """One device per process: with several CUDA processes each takes cuda:LOCAL_RANK."""
    if info.enabled and spec in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    return spec
