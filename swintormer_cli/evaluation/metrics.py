"""Image quality metrics, computed as the published DPDD evaluation does.

Inputs are HxWx3 float arrays in [0, 1] (RGB, the whole image, no border crop).

- PSNR = 10 log10(1 / MSE). Identical images (MSE 0) score ``MAX_PSNR`` = 100 dB, the value Restormer's
  evaluation utilities return, so averages stay finite and comparable with published tables.
- SSIM = scikit-image ``structural_similarity(data_range=1, channel_axis=-1)`` with its defaults
  (7x7 uniform window), as Restormer's test script calls it. Identical images give exactly 1.
- MAE = mean absolute error.
- Gain-compensated PSNR (for real pairs whose exposures differ): each output channel is scaled by the
  least-squares gain onto the target, a_c = sum(o_c y_c) / sum(o_c^2), clipped to [0, 1], then PSNR.

Each takes an optional ``mask`` (HxW bool): the score of those pixels alone (SSIM: its map averaged over them, the
windows still reading their neighbours; gain compensation: the gains fitted on them). An empty mask scores NaN.
"""

from __future__ import annotations

import math

import numpy as np

MAX_PSNR = 100.0
"""PSNR of identical images (MSE 0), as in Restormer's utils.PSNR."""


def _check(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
    if output.shape != target.shape:
        raise ValueError(f"shapes differ: {output.shape} vs {target.shape}")
    if mask is not None and mask.shape != output.shape[:2]:
        raise ValueError(f"mask is {mask.shape}, the images {output.shape[:2]}")


def _pixels(a: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The float64 values of the masked pixels (N x C), or of the whole image."""
    a = a.astype(np.float64)
    return a if mask is None else a[mask]


def mse(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    _check(output, target, mask)
    diff = _pixels(output, mask) - _pixels(target, mask)
    return float(np.mean(diff * diff)) if diff.size else float("nan")


def psnr(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio for data in [0, 1]; ``MAX_PSNR`` for identical images."""
    return psnr_from_mse(mse(output, target, mask))


def psnr_from_mse(m: float) -> float:
    if math.isnan(m):
        return m
    return MAX_PSNR if m == 0 else min(MAX_PSNR, 10.0 * math.log10(1.0 / m))


def ssim(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    from skimage.metrics import structural_similarity

    _check(output, target, mask)
    o, y = output.astype(np.float64), target.astype(np.float64)
    if mask is None:
        return float(structural_similarity(o, y, data_range=1.0, channel_axis=-1))
    if not mask.any():
        return float("nan")
    _, full = structural_similarity(o, y, data_range=1.0, channel_axis=-1, full=True)
    return float(full[mask].mean())


def mae(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    _check(output, target, mask)
    diff = _pixels(output, mask) - _pixels(target, mask)
    return float(np.mean(np.abs(diff))) if diff.size else float("nan")


def gain_compensate(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    _check(output, target, mask)
    o, y = _pixels(output, mask), _pixels(target, mask)
    axes = tuple(range(o.ndim - 1))
    num = (o * y).sum(axis=axes)
    den = (o * o).sum(axis=axes)
    gain = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    return np.clip(output.astype(np.float64) * gain, 0, 1)


def gain_compensated_psnr(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    return psnr(gain_compensate(output, target, mask), target, mask)


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else float("nan")
