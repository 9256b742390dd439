"""JPEG compression simulated in torch (so it runs batched, on the GPU too), per-image quality.

Baseline JPEG as libjpeg does it: JFIF YCbCr, 4:2:0 chroma subsampling, 8x8 DCT, the standard (Annex K)
quantisation tables scaled by the IJG quality formula, rounding, and back. Entropy coding is lossless and
is skipped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
]  # fmt: skip


def _dct_matrix(device, dtype) -> torch.Tensor:
    k = torch.arange(8, device=device, dtype=dtype)
    m = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16)
    m[0] *= 1 / math.sqrt(2)
    return m * 0.5


def _tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = quality.clamp(1, 100).float()
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None]
    luma = torch.tensor(_LUMA, device=q.device, dtype=torch.float32)[None]
    chroma = torch.tensor(_CHROMA, device=q.device, dtype=torch.float32)[None]
    luma = ((luma * scale + 50) / 100).floor().clamp(1, 255)
    chroma = ((chroma * scale + 50) / 100).floor().clamp(1, 255)
    return luma.reshape(-1, 1, 8, 8), chroma.reshape(-1, 1, 8, 8)


def _blocks_roundtrip(plane: torch.Tensor, table: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """plane (N, H, W) in 0..255 with H, W multiples of 8 -> quantised and restored."""
    n, h, w = plane.shape
    blocks = (plane - 128).reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # (N, bh, bw, 8, 8)
    coef = dct @ blocks @ dct.T
    q = table[:, :, None]  # (N, 1, 1, 8, 8)
    coef = torch.round(coef / q) * q
    blocks = dct.T @ coef @ dct
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, h, w) + 128


def jpeg(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """images (N, 3, H, W) in [0, 1], quality (N,) in 1..100 -> JPEG-compressed images, same shape."""
    n, _, h, w = images.shape
    x = images.clamp(0, 1) * 255
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    cb = F.avg_pool2d(cb[:, None], 2)[:, 0]
    cr = F.avg_pool2d(cr[:, None], 2)[:, 0]
    dct = _dct_matrix(x.device, x.dtype)
    luma_t, chroma_t = _tables(quality.to(x.device))
    y = _blocks_roundtrip(y, luma_t, dct)
    # Padding to 16 makes the half-size chroma planes whole 8x8 blocks too.
    cb = _blocks_roundtrip(cb, chroma_t, dct)
    cr = _blocks_roundtrip(cr, chroma_t, dct)
    cb = F.interpolate(cb[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0] - 128
    cr = F.interpolate(cr[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0] - 128
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    out = torch.stack([r, g, b], dim=1)[..., :h, :w]
    return (torch.round(out).clamp(0, 255)) / 255
