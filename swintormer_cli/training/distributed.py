"""Several training processes (torchrun or accelerate launch): the process group. Rank, world size and
device come from ``swintormer_cli.launch``."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..launch import DistInfo, launch_info, local_world_size, rank_device

__all__ = ["DistInfo", "barrier", "init", "launch_info", "local_world_size", "rank_device", "shutdown"]


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
