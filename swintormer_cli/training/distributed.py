"""Several processes (torchrun or accelerate launch): rank, world size, device and process group."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


def launch_info() -> DistInfo:
    """Read the variables torchrun and accelerate set; a single process when they are absent."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank, world, local)


def rank_device(spec: str, info: DistInfo) -> str:
    """One device per process: with several CUDA processes each takes cuda:LOCAL_RANK."""
    if info.enabled and spec in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    return spec


def init(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world)


def shutdown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
