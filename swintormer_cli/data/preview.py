"""A contact sheet of what a model is trained on: sharp crops, their degraded versions, and the PSFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .datasets import SharpImages
from .degradation import Degradation, DegradationConfig


def _psf_tile(psf: torch.Tensor, size: int) -> np.ndarray:
    """(3, S, S) kernel -> size x size RGB image, each channel scaled to its own peak (shape, not energy)."""
    k = psf / psf.amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12)
    k = torch.nn.functional.interpolate(k[None], size=(size, size), mode="nearest")[0]
    return (k.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)


def contact_sheet(
    roots: list[str | Path], config: DegradationConfig, count: int = 8, crop: int = 192, seed: int = 0
) -> Image.Image:
    """Rows of (sharp crop | degraded crop | |radius| map | PSF at the largest radius)."""
    from .psf import kernel_size

    margin = kernel_size(config.max_radius[1] * (1 + config.chromatic[1]), config.gaussian[1]) // 2
    data = SharpImages(roots, crop, margin, (0.5, 1.0), seed=seed)
    sharp = torch.stack([data[i] for i in range(count)])
    out = Degradation(config)(sharp, torch.Generator().manual_seed(seed))
    cut = (slice(None), slice(None), slice(margin, margin + crop), slice(margin, margin + crop))
    blurry, target, radius = out.blurry[cut], out.sharp[cut], out.radius[cut].abs()
    scale = float(radius.max().clamp(min=1e-6))
    sheet = Image.new("RGB", (crop * 4 + 30, count * (crop + 6) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(("sharp", "degraded", f"|radius| (white = {scale:.1f} px)", "PSF (largest radius)")):
        draw.text((col * (crop + 10) + 2, 4), title, fill="black")
    for i in range(count):
        y = 20 + i * (crop + 6)
        tiles = [
            (target[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8),
            (blurry[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8),
            np.repeat((radius[i, 0].numpy() / scale * 255).astype(np.uint8)[..., None], 3, axis=2),
            _psf_tile(out.psfs[i], crop),
        ]
        for col, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (col * (crop + 10), y))
    return sheet
