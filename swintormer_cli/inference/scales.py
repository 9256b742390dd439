"""Blur of any size: how large the blur is, pixel by pixel, and at which scales to restore the image.

A restorer trained on crops with radii up to ~8 px removes blur of that size well and leaves larger blur as it
was (measured: docs/results.md, "Blur size"). Defocus in a photograph is often 10-50 px. Shrunk by a factor s,
a blur of radius r becomes one of r/s, so the restorer works on a copy at the scale where the blur falls in its
range, and the result is brought back to full size.

Which scale: the blur estimator (``models/blur_estimator.py``) measures the radius for every pixel. It answers up
to ``max_radius`` of the image it sees, so it is run over a pyramid (1/2, 1/4, 1/8, ... of the image); where a
level's answer nears the top of its range, the next coarser level's answer (twice as large a radius per pixel
of its own) takes over, blended. The result is a full-size map of radii in the photo's own pixels.

Each pixel then wants the scale ``radius / scale_radius`` (at least 1): the radius the restorer handles best,
measured per model. The image is restored at the few scales of ``SCALE_LADDER`` that the map asks for, and each
pixel blends the two rungs around its wish (linear in log-scale), so the map's regions meet without seams.
In-focus regions keep the full-size result; a coarse pass costs 1/s^2 of a full one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.blur_estimator import BlurEstimator

SCALE_LADDER: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
"""The scales a photo is restored at: each rung costs 1/s^2 of the full-size pass, all of them 1.9x in all."""
SMALLEST_PASS = 64
"""No pass shrinks a photo's shorter side below this many pixels (a network needs some context, and its
deepest level some pixels): a smaller photo is restored at a smaller scale than its blur asks for."""
SMALLEST_LEVEL = 32
"""The pyramid stops before a level whose shorter side would be below this many pixels."""
HANDOVER = (0.4, 0.6)
"""Where a pyramid level hands over to the next coarser one, as fractions of the estimator's ``max_radius``."""
BAND = 512
"""Rows of a pyramid level the estimator sees at once (its memory stays bounded on any photo)."""
BAND_CONTEXT = 96
"""Rows of context above and below a band (the estimator's receptive field reaches ~290 px of its input,
but little weight lies past 90; measured on three 1024 px dpdd-dev photos at full size: bands of 512 rows change
the map by under 0.001 px on average, 0.15 px at most)."""


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, H, W) -> (C, height, width): antialiased bicubic down, bicubic up, clipped to [0, 1]."""
    if tuple(image.shape[-2:]) == (height, width):
        return image
    shrink = height < image.shape[-2] or width < image.shape[-1]
    out = F.interpolate(image[None], size=(height, width), mode="bicubic", antialias=shrink, align_corners=False)
    return out[0].clamp_(0, 1)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, round(height / scale)), max(1, round(width / scale))


@torch.no_grad()
def _estimate_level(estimator: BlurEstimator, level: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(3, h, w) -> (h, w) radius in the level's pixels, band by band."""
    _, h, w = level.shape
    out = torch.empty(h, w)
    step = BAND
    for top in range(0, h, step):
        lo = max(0, top - BAND_CONTEXT)
        hi = min(h, top + step + BAND_CONTEXT)
        x = level[None, :, lo:hi].to(device)
        r = estimator.radius(x)[0, 0].float().cpu()
        out[top : min(h, top + step)] = r[top - lo : top - lo + min(step, h - top)]
    return out


@torch.no_grad()
def blur_map(
    estimator: BlurEstimator, image: torch.Tensor, *, first_level: int = 1, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The defocus radius of every pixel of a (3, H, W) image in [0, 1], in its own pixels: (H, W) float32.

    ``first_level``: the finest pyramid level asked (0: the full image; 1, the default: half size, enough to
    choose scales, at a quarter of the cost; radii under ~2 px then read as small, not exactly)."""
    device = torch.device(device)
    estimator = estimator.to(device).eval()
    image = image.detach().to("cpu", torch.float32)[:3]
    _, height, width = image.shape
    top = estimator.config.max_radius
    lo, hi = HANDOVER[0] * top, HANDOVER[1] * top
    levels = []
    k = first_level
    while k == first_level or min(height, width) / 2**k >= SMALLEST_LEVEL:
        h, w = scaled_size(height, width, 2**k)
        level = resize(image, h, w)
        levels.append((2**k, _estimate_level(estimator, level, device)))
        k += 1
    # From the coarsest level down: each finer level keeps its own answer where it is inside its range.
    estimate = None
    for factor, own in reversed(levels):
        full = F.interpolate(own[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        radius = full * factor
        if estimate is None:
            estimate = radius
            continue
        handover = ((full - lo) / (hi - lo)).clamp_(0, 1)
        estimate = torch.lerp(radius, estimate, handover)
    return estimate


def scale_weights(radius: torch.Tensor, scale_radius: float, max_scale: float) -> list[tuple[float, torch.Tensor]]:
    """(scale, per-pixel weight) for each rung of ``SCALE_LADDER`` the map needs; the weights sum to 1.

    A pixel of radius r wants scale ``clamp(r / scale_radius, 1, max_scale)`` and blends the two rungs around
    it, linearly in log-scale."""
    ladder = [s for s in SCALE_LADDER if s <= max_scale + 1e-9]
    if ladder[-1] < max_scale:
        ladder.append(float(max_scale))
    wish = (radius / scale_radius).clamp(min=1.0, max=ladder[-1])
    out = []
    logs = [math.log(s) for s in ladder]
    lw = wish.log()
    for i, s in enumerate(ladder):
        weight = torch.zeros_like(wish)
        if i > 0:  # rising from the rung below
            t = (lw - logs[i - 1]) / (logs[i] - logs[i - 1])
            weight = torch.where((lw > logs[i - 1]) & (lw <= logs[i]), t, weight)
        if i + 1 < len(ladder):  # falling towards the rung above
            t = (logs[i + 1] - lw) / (logs[i + 1] - logs[i])
            weight = torch.where((lw > logs[i]) & (lw < logs[i + 1]), t, weight)
        if i == 0:
            weight = torch.where(lw <= logs[0], torch.ones_like(weight), weight)
        if i + 1 == len(ladder):
            weight = torch.where(lw >= logs[i], torch.ones_like(weight), weight)
        if float(weight.max()) > 1e-3:
            out.append((s, weight))
    total = sum(w for _, w in out)
    return [(s, w / total) for s, w in out]


def needed_pixels(weight: torch.Tensor | None, height: int, width: int) -> torch.Tensor | None:
    """The pixels of a (height, width) pass whose output reaches a full-size pixel of non-zero ``weight``: the
    weight map's blocks, widened by the 2 px the bicubic upscale reaches. None (all) without a weight map."""
    if weight is None:
        return None
    blocks = F.adaptive_max_pool2d(weight[None, None], (height, width)) > 0
    return F.max_pool2d(blocks.float(), 5, stride=1, padding=2)[0, 0] > 0


def largest_scale(height: int, width: int, wanted: float) -> float:
    """``wanted``, or less where it would shrink the shorter side below ``SMALLEST_PASS`` (at least 1)."""
    return max(1.0, min(wanted, min(height, width) / SMALLEST_PASS))
