"""Tiled inference: the tile grid and merge weights, memory budgets, devices, and DeblurPipeline."""

from ..tiling import BLENDS, Accumulator, Tile, TileGrid, merge_weights
from .device import PRECISIONS, resolve_device, resolve_precision
from .memory import PeakMeter, default_budget, format_size, parse_size
from .pipeline import DeblurPipeline
from .settings import DEFAULT_WINDOW, InferenceSettings, ModelDefaults, SettingError

__all__ = [
    "BLENDS",
    "DEFAULT_WINDOW",
    "PRECISIONS",
    "Accumulator",
    "DeblurPipeline",
    "InferenceSettings",
    "ModelDefaults",
    "PeakMeter",
    "SettingError",
    "Tile",
    "TileGrid",
    "default_budget",
    "format_size",
    "merge_weights",
    "parse_size",
    "resolve_device",
    "resolve_precision",
]
