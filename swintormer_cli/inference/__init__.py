"""Tiled inference: the tile grid and merge weights, memory budgets, devices, and DeblurPipeline."""

from .device import PRECISIONS, resolve_device, resolve_precision
from .memory import PeakMeter, default_budget, format_size, parse_size
from .pipeline import DeblurPipeline, InferenceSettings
from .tiling import BLENDS, Accumulator, Tile, TileGrid, merge_weights

__all__ = [
    "BLENDS",
    "PRECISIONS",
    "Accumulator",
    "DeblurPipeline",
    "InferenceSettings",
    "PeakMeter",
    "Tile",
    "TileGrid",
    "default_budget",
    "format_size",
    "merge_weights",
    "parse_size",
    "resolve_device",
    "resolve_precision",
]
