"""Image quality metrics, computed as the published DPDD evaluation does.

Inputs are HxWx3 float arrays in [0, 1] (RGB, the whole image, no border crop).

- PSNR = 10 log10(1 / MSE). Identical images (MSE 0) score ``MAX_PSNR`` = 100 dB, the value Restormer's
  evaluation utilities return, so averages stay finite and comparable with published tables.
- SSIM = scikit-image ``structural_similarity(data_range=1, channel_axis=-1)`` with its defaults
  (7x7 uniform window), as Restormer's test script calls it. Identical images give exactly 1.
- MAE = mean absolute error.
- Gain-compensated PSNR (for real pairs whose exposures differ): each output channel is scaled by the
  least-squares gain onto the target, a_c = sum(o_c y_c) / sum(o_c^2), clipped to [0, 1], then PSNR.
"""

from __future__ import annotations

import math

import numpy as np

MAX_PSNR = 100.0
"""PSNR of identical images (MSE 0), as in Restormer's utils.PSNR."""


def _check(output: np.ndarray, target: np.ndarray) -> None:
    if output.shape != target.shape:
        raise ValueError(f"shapes differ: {output.shape} vs {target.shape}")


def mse(output: np.ndarray, target: np.ndarray) -> float:
    _check(output, target)
    diff = output.astype(np.float64) - target.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(output: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio for data in [0, 1]; ``MAX_PSNR`` for identical images."""
    return psnr_from_mse(mse(output, target))


def psnr_from_mse(m: float) -> float:
    return MAX_PSNR if m == 0 else min(MAX_PSNR, 10.0 * math.log10(1.0 / m))


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    _check(output, target)
    return float(
        structural_similarity(output.astype(np.float64), target.astype(np.float64), data_range=1.0, channel_axis=-1)
    )


def mae(output: np.ndarray, target: np.ndarray) -> float:
    _check(output, target)
    return float(np.mean(np.abs(output.astype(np.float64) - target.astype(np.float64))))


def gain_compensate(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    _check(output, target)
    o = output.astype(np.float64)
    y = target.astype(np.float64)
    num = (o * y).sum(axis=(0, 1))
    den = (o * o).sum(axis=(0, 1))
    gain = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    return np.clip(o * gain, 0, 1)


def gain_compensated_psnr(output: np.ndarray, target: np.ndarray) -> float:
    return psnr(gain_compensate(output, target), target)


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else float("nan")
