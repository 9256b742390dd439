"""The settings of a deblur, with their defaults and checks in one place.

``InferenceSettings`` holds what a user chooses (``None``: the default); ``resolve`` fills in the defaults that
depend on the model, the prior and the device, and checks every value. The pipeline, the CLI (which maps its
flags onto these fields by keyword) and the evaluation sweep all go through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from .. import tiling
from ..checkpoint import ModelDefaults
from ..defaults import (
    DEFAULT_MAX_SCALE,
    DEFAULT_PRIOR_STEPS,
    DEFAULT_SAMPLER,
    DEFAULT_SCALE_RADIUS,
    DEFAULT_WINDOW,
    MAX_SCALE,
    SAMPLERS,
    default_shift,
)


class SettingError(ValueError):
    """A setting out of its range; ``name`` is the setting's field (the CLI names its flag after it)."""

    def __init__(self, name: str, detail: str):
        super().__init__(f"{name.replace('_', ' ')} {detail}")
        self.name = name
        self.detail = detail


def check_shift(window: int, shift: int) -> None:
    """``tiling.check_shift`` as a ``SettingError`` naming the setting."""
    try:
        tiling.check_shift(window, shift)
    except ValueError as exc:
        raise SettingError("shift", str(exc)) from None


@dataclass(frozen=True)
class InferenceSettings:
    window: int | None = None
    """Tile size in pixels. Default: the model's (``ModelDefaults``), else ``DEFAULT_WINDOW``."""
    shift: int | None = None
    """Distance between tile origins. Default: the model's, with its window; else 3/4 of the window."""
    blend: str = "average"
    """How overlaps merge: ``average`` (the paper) or ``feather``."""
    prior_steps: int | None = None
    """Prior sampling steps. Default: the model's, else ``DEFAULT_PRIOR_STEPS``."""
    sampler: str = DEFAULT_SAMPLER
    eta: float | None = None
    """DDIM eta. Default: the prior's own (0 for latent, 1 for ldm-sr)."""
    seed: int = 0
    workers: int | None = None
    """Tile batches run at once on a CPU, one thread each. Default: one per torch thread on a CPU, 1 elsewhere."""
    scale: float | None = None
    """Restore at this one scale (1: the photo's own size; 3: shrunk 3x, restored, brought back). Default (None):
    per pixel, from the blur estimator's map (``inference/scales.py``); scale 1 without an estimator."""
    max_scale: float = DEFAULT_MAX_SCALE
    """The largest scale the automatic choice may use."""
    scale_radius: float | None = None
    """The blur radius the restorer is run at (a pixel of radius r at scale r / this). Default: the model's,
    else ``DEFAULT_SCALE_RADIUS``."""

    strength: float = 1.0
    """How much of the restoration to apply, 0 to 1: a strength s leaves a blur of (1 - s) times the estimated
    radius (``inference/strength.py``); 0 returns the input, 1 the full restoration."""
    keep_background_blur: float | None = None
    """Leave regions whose estimated blur exceeds this radius (px) as they were (a chosen background blur), with a
    smooth transition; None restores everywhere. Needs a blur estimator."""

    def resolve(
        self,
        *,
        min_window: int = 1,
        model: ModelDefaults | None = None,
        default_eta: float = 0.0,
        device: torch.device | None = None,
    ) -> InferenceSettings:
        """These settings with every default filled in, checked; a ``SettingError`` names the first bad one.

        ``min_window``: the smallest window the model allows (``SwintormerConfig.min_window``)."""
        model = model or ModelDefaults()
        window = self.window or model.window or DEFAULT_WINDOW
        if window < min_window:
            raise SettingError("window", f"{window} is smaller than this model allows ({min_window} pixels)")
        if self.shift is not None:
            shift = self.shift
        elif model.shift is not None and window == model.window:
            shift = model.shift
        else:
            shift = default_shift(window)
        check_shift(window, shift)
        if self.blend not in tiling.BLENDS:
            raise SettingError("blend", f"must be {' or '.join(tiling.BLENDS)}, got {self.blend!r}")
        if self.sampler not in SAMPLERS:
            raise SettingError("sampler", f"must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        prior_steps = self.prior_steps if self.prior_steps is not None else model.prior_steps or DEFAULT_PRIOR_STEPS
        if prior_steps < 1:
            raise SettingError("prior_steps", f"must be at least 1, got {prior_steps}")
        eta = self.eta if self.eta is not None else default_eta
        if not (math.isfinite(eta) and eta >= 0):
            raise SettingError("eta", f"must be a non-negative number, got {eta}")
        if self.workers is not None and self.workers < 1:
            raise SettingError("workers", f"must be at least 1, got {self.workers}")
        if self.scale is not None and not (math.isfinite(self.scale) and 1 <= self.scale <= MAX_SCALE):
            raise SettingError("scale", f"must be auto or a number from 1 to {MAX_SCALE:g}, got {self.scale}")
        if not (math.isfinite(self.max_scale) and 1 <= self.max_scale <= MAX_SCALE):
            raise SettingError("max_scale", f"must be a number from 1 to {MAX_SCALE:g}, got {self.max_scale}")
        scale_radius = self.scale_radius or model.scale_radius or DEFAULT_SCALE_RADIUS
        if not (math.isfinite(scale_radius) and scale_radius > 0):
            raise SettingError("scale_radius", f"must be a positive number, got {scale_radius}")
        if not (math.isfinite(self.strength) and 0 <= self.strength <= 1):
            raise SettingError("strength", f"must be a number from 0 to 1, got {self.strength}")
        keep = self.keep_background_blur
        if keep is not None and not (math.isfinite(keep) and keep > 0):
            raise SettingError("keep_background_blur", f"must be a positive radius in pixels, got {keep}")
        workers = self.workers or (torch.get_num_threads() if device is not None and device.type == "cpu" else 1)
        return replace(
            self,
            window=window,
            shift=shift,
            prior_steps=prior_steps,
            eta=float(eta),
            workers=workers,
            scale=float(self.scale) if self.scale is not None else None,
            max_scale=float(self.max_scale),
            scale_radius=float(scale_radius),
            strength=float(self.strength),
            keep_background_blur=float(keep) if keep is not None else None,
        )
