"""Tiled inference: the tile grid and merge weights, memory budgets, devices, and DeblurPipeline."""

from .device import PRECISIONS, resolve_device, resolve_precision
from .memory import PeakMeter, default_budget, format_size, parse_size
from .pipeline import DeblurPipeline
from .settings import BLENDS, DEFAULT_WINDOW, InferenceSettings, ModelDefaults, SettingError
from .tiling import Accumulator, Tile, TileGrid, merge_weights

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
