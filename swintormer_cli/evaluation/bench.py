"""Throughput and peak memory of the tiled pipeline on one image size."""

from __future__ import annotations

import time

import torch

from ..inference.memory import PeakMeter


def synthetic_image(height: int, width: int, views: int = 1, seed: int = 0) -> torch.Tensor:
    """A smooth random image (timing does not depend on content; NaN/inf-free)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3 * views, max(2, height // 64), max(2, width // 64), generator=g)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def run_tiled(pipeline, image: torch.Tensor, repeats: int = 1) -> dict:
    """Megapixels per second and the peak memory the restore added (process RSS on CPU, allocator on CUDA)."""
    meter = PeakMeter(pipeline.device)
    seconds = []
    with meter.measure():
        for _ in range(repeats):
            start = time.perf_counter()
            pipeline.restore(image)
            if pipeline.device.type == "cuda":
                torch.cuda.synchronize(pipeline.device)
            seconds.append(time.perf_counter() - start)
    mp = image.shape[-2] * image.shape[-1] / 1e6
    best = min(seconds)
    return {
        "megapixels": mp,
        "seconds": best,
        "megapixels_per_s": mp / best,
        "peak_bytes": meter.peak,
        "tiles": len(pipeline.grid(image.shape[-2], image.shape[-1])),
        "batch": pipeline.tile_batch,
    }
