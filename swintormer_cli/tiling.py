"""Overlapping windows over an image, and the weights their outputs are merged with.

Windows are ``window`` pixels wide with origins ``shift`` apart; the last row and column snap to the
image edge so no window hangs over it. An image smaller than a window in some direction gets one window
of the image's own extent in that direction (the network pads it inside, exactly as a plain forward would).

One home for both users: the deblur pipeline's tiles of the image (``inference/pipeline.py``) and the
``ldm-sr`` prior's patches of its latent (``prior/ldm_sr.py``), which sits below inference and so cannot import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BLENDS: tuple[str, ...] = ("average", "feather")


def check_shift(window: int, shift: int) -> None:
    """A shift must be positive and not exceed the window (a larger one would skip pixels): ValueError if not."""
    if shift < 1:
        raise ValueError(f"must be at least 1, got {shift}")
    if shift > window:
        raise ValueError(f"{shift} must not exceed the window ({window}): pixels would be skipped")


def _origins(length: int, window: int, shift: int) -> list[int]:
    if window >= length:
        return [0]
    origins = list(range(0, length - window, shift))
    origins.append(length - window)
    return origins


@dataclass(frozen=True)
class Tile:
    y: int
    x: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    window: int
    shift: int

    def __post_init__(self):
        check_shift(self.window, self.shift)

    @property
    def tile_height(self) -> int:
        return min(self.window, self.height)

    @property
    def tile_width(self) -> int:
        return min(self.window, self.width)

    @property
    def tiles(self) -> list[Tile]:
        ys = _origins(self.height, self.window, self.shift)
        xs = _origins(self.width, self.window, self.shift)
        return [Tile(y, x, self.tile_height, self.tile_width) for y in ys for x in xs]

    def __len__(self) -> int:
        return len(_origins(self.height, self.window, self.shift)) * len(_origins(self.width, self.window, self.shift))


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """1 in the middle, rising linearly over ``overlap`` pixels at both ends, never 0 (a pixel covered
    by one window only must keep a weight; merged values are normalised by the summed weights)."""
    w = torch.ones(length)
    n = min(overlap, length // 2)
    if n > 0:
        ramp = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        w[:n] = ramp
        w[length - n :] = ramp.flip(0)
    return w


def merge_weights(height: int, width: int, blend: str, overlap: int) -> torch.Tensor:
    """(height, width) weights of one window's output: all ones for ``average`` (the paper), a separable
    linear feather over the overlap for ``feather``."""
    if blend == "average":
        return torch.ones(height, width)
    if blend == "feather":
        return _ramp(height, overlap)[:, None] * _ramp(width, overlap)[None, :]
    raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")


class Accumulator:
    """Weighted sum of window outputs and of their weights for the whole image: (channels, H, W) on the CPU by
    default; ``batch`` adds a leading batch dimension, ``device`` and ``dtype`` place it (the prior's latents)."""

    def __init__(
        self,
        channels: int,
        grid: TileGrid,
        blend: str,
        *,
        batch: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        lead = (batch,) if batch is not None else ()
        self.sum = torch.zeros(*lead, channels, grid.height, grid.width, device=device, dtype=dtype)
        self.weight = torch.zeros(*(1 for _ in lead), 1, grid.height, grid.width, device=device, dtype=dtype)
        weight = merge_weights(grid.tile_height, grid.tile_width, blend, grid.window - grid.shift)
        self.tile_weight = weight.to(device=device, dtype=dtype or weight.dtype)

    def add(self, tile: Tile, output: torch.Tensor) -> None:
        ys, xs = tile.slices
        self.sum[..., ys, xs] += output * self.tile_weight
        self.weight[..., ys, xs] += self.tile_weight

    def result(self) -> torch.Tensor:
        # Pixels no tile covered (a pass that skipped tiles) come back 0, not 0/0.
        return self.sum / self.weight.clamp(min=1e-12)
