"""How much of the restoration each pixel gets: a strength below 1, and blur kept where it is larger than asked.

**Strength.** Fading the output into the input (``input + s * (output - input)``) is not "less deblurring": a sharp
edge at partial contrast over the wide halo of the blurred one reads as a double image, most visibly where the
blur was large. Instead a strength ``s`` keeps a blur of ``(1 - s)`` times the estimated radius: the detail the
network added (``output - input``) is low-passed with a Gaussian of that size (sigma = half the radius, the
Gaussian that matches a disk's spread), so the frequencies a smaller blur would keep come back and the finer
ones stay as blurred as in the input. The radius is the blur map's where the pipeline has one; without a blur
estimator, a uniform ``scale * scale_radius`` (the blur the pass is meant for). ``s = 1`` is the output, ``s = 0``
the input, both exactly.

**Kept background blur.** ``keep_above = R`` restores where the map says the blur is under R px and leaves the
input where it says more, with a transition half an octave wide in radius (R / 2^0.25 to R * 2^0.25); the map is
smooth in space (the estimator answers at 1/4 resolution), so the two regions meet without a seam. The pipeline
skips the tiles that only touch kept pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.blur_estimator import gaussian_blur

KEEP_TRANSITION = 0.5
"""Width, in octaves of radius, of the transition from restored (below R) to kept (above R)."""
SIGMAS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""The low-pass sizes a strength blends between, pixel by pixel (linear below 0.5 px, by octaves above)."""
DIRECT_SIGMA = 3.0
"""Up to this sigma a low-pass is a direct convolution; above, it runs on a shrunk copy (same result within a few
percent of its width, at a fraction of the cost on a large photo)."""


def restore_weight(radius: torch.Tensor, keep_above: float) -> torch.Tensor:
    """(H, W) radius map -> (H, W) weight of the restoration: 1 well under ``keep_above`` px, 0 well over it."""
    octaves = torch.log2(radius.clamp(min=1e-3) / keep_above)
    t = (octaves / KEEP_TRANSITION + 0.5).clamp(0, 1)
    return 1 - t * t * (3 - 2 * t)  # smoothstep


def low_pass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian low-pass of (C, H, W) with this sigma in pixels (edges replicated)."""
    if sigma <= 0:
        return x
    if sigma <= DIRECT_SIGMA:
        return gaussian_blur(x[None], sigma)[0]
    # Shrink by f = sigma / DIRECT_SIGMA (area average), blur there, bring back bilinearly: the averaging and the
    # interpolation add a spread of about f / 2 in all, taken off the blur at the small size.
    _, h, w = x.shape
    f = sigma / DIRECT_SIGMA
    size = (max(1, round(h / f)), max(1, round(w / f)))
    small = F.interpolate(x[None], size=size, mode="area")
    inner = math.sqrt(max(sigma * sigma - 0.25 * f * f, 0.25)) / f
    small = gaussian_blur(small, inner)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]


def _sigma_position(sigma: torch.Tensor) -> torch.Tensor:
    """Where each sigma falls on ``SIGMAS``, as a fractional index."""
    octave = 1 + torch.log2(sigma.clamp(min=SIGMAS[1]) / SIGMAS[1])
    return torch.where(sigma < SIGMAS[1], sigma / SIGMAS[1], octave).clamp(0, len(SIGMAS) - 1)


def varying_low_pass(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(C, H, W) low-passed with a per-pixel sigma (H, W): each pixel blends the two ``SIGMAS`` around its own."""
    position = _sigma_position(sigma)
    out = torch.zeros_like(x)
    for k, level_sigma in enumerate(SIGMAS):
        weight = (1 - (position - k).abs()).clamp(min=0)
        if float(weight.max()) <= 0:
            continue
        out += low_pass(x, level_sigma) * weight
    return out


def apply_strength(
    source: torch.Tensor,
    restored: torch.Tensor,
    radius: torch.Tensor,
    strength: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The (3, H, W) result at ``strength`` in [0, 1], restored only where ``weight`` (H, W) says (None: everywhere).

    ``radius``: the blur radius of each pixel (H, W), or one number for all."""
    if strength <= 0:
        return source.clone()
    if strength >= 1 and weight is None:
        return restored
    detail = restored - source
    if strength < 1:
        radius = torch.as_tensor(radius, dtype=torch.float32).expand(source.shape[-2:])
        detail = varying_low_pass(detail, (1 - strength) * radius / 2)
    if weight is not None:
        detail = detail * weight
    return (source + detail).clamp_(0, 1)
