"""Network definitions: the Swintormer, its config dataclass and presets."""

from .swintormer import PRESETS, REFERENCE_CONFIGS, Swintormer, SwintormerConfig, count_macs, preset

__all__ = ["PRESETS", "REFERENCE_CONFIGS", "Swintormer", "SwintormerConfig", "count_macs", "preset"]
