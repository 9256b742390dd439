"""swintormer: defocus deblurring with the Swintormer and a latent diffusion prior.

from swintormer_cli import DeblurPipeline
pipe = DeblurPipeline.from_pretrained()          # the default registered model, offline
sharp = pipe(blurry)                             # HxWx3 uint8/uint16/float array, any size
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "DeblurPipeline": ("swintormer_cli.inference.pipeline", "DeblurPipeline"),
    "InferenceSettings": ("swintormer_cli.inference.settings", "InferenceSettings"),
    "Swintormer": ("swintormer_cli.models", "Swintormer"),
    "SwintormerConfig": ("swintormer_cli.models", "SwintormerConfig"),
    "PRESETS": ("swintormer_cli.models", "PRESETS"),
    "preset": ("swintormer_cli.models", "preset"),
    "load_model": ("swintormer_cli.checkpoint", "load_model"),
    "save_model": ("swintormer_cli.checkpoint", "save_model"),
    "LatentPrior": ("swintormer_cli.prior", "LatentPrior"),
    "resolve_model": ("swintormer_cli.weights", "resolve_model"),
}


def __getattr__(name: str):
    # Imported on first use: `swintormer --help` should not wait for torch and diffusers.
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'swintormer_cli' has no attribute {name!r}")


__all__ = [*_EXPORTS, "__version__"]
