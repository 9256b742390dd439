"""Point spread functions of a defocused lens, rendered in torch, batched.

A PSF is the image of the lens aperture, scaled by the circle of confusion: a disk or a polygon (the
aperture blades), with a soft or hard edge, clipped by a second circle towards the corners of the frame
(cat's-eye vignetting), brighter or darker towards its rim (spherical aberration, whose sign flips between
front and back focus), with a slightly different size per colour channel (longitudinal chromatic
aberration) and a touch of Gaussian blur (lens softness, sensor), optionally squeezed into an ellipse along any
direction (``aspect``: an anamorphic lens, a resized photo, the squeezed copy of DPDD that ``dpdd-dev`` is).
Every kernel sums to one.

Kernels are rendered with ``supersample`` x ``supersample`` coverage samples per pixel (anti-aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PSFShape:
    """Per-kernel shape parameters, each a tensor of shape (N,) (one value per kernel)."""

    blades: torch.Tensor
    """0 for a round aperture, else the number of blades (polygon corners)."""
    rotation: torch.Tensor
    softness: torch.Tensor
    """Width of the soft edge, as a fraction of the radius (apodisation); 0 is a hard edge."""
    ring: torch.Tensor
    """Rim-to-centre brightness change: > 0 a bright ring, < 0 a bright centre. Flips with focus side."""
    cats_eye: torch.Tensor
    """Offset of the clipping circle, as a fraction of the radius (0: no clipping)."""
    cats_eye_angle: torch.Tensor
    gaussian: torch.Tensor
    """Sigma of an extra Gaussian blur, pixels."""
    aspect: torch.Tensor | None = None
    """Width over height of an elliptical kernel (1: round; 0.5: half as wide), the width along ``aspect_angle``;
    None: all round."""
    aspect_angle: torch.Tensor | None = None

    @classmethod
    def disk(cls, n: int, device=None) -> PSFShape:
        z = torch.zeros(n, device=device)
        return cls(z, z, z, z, z, z, z)

    def map(self, fn) -> PSFShape:
        """The same shapes with ``fn`` applied to every per-kernel tensor (indexing, repeating)."""
        return PSFShape(*(None if (v := getattr(self, f)) is None else fn(v) for f in self.__dataclass_fields__))

    def repeat(self, times: int) -> PSFShape:
        return self.map(lambda v: v.repeat_interleave(times))


def kernel_size(max_radius: float, gaussian: float = 0.0) -> int:
    return 2 * int(math.ceil(max_radius + 3 * gaussian + 1)) + 1


def render_psf(radius: torch.Tensor, shape: PSFShape, size: int, supersample: int = 8) -> torch.Tensor:
    """Kernels (N, size, size) for signed radii (N,) in pixels; the sign is the side of focus."""
    device = radius.device
    ss = supersample
    # Coverage sample positions, in pixels from the kernel centre.
    steps = (torch.arange(size * ss, device=device, dtype=torch.float32) + 0.5) / ss - size / 2
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    u, v = u[None], v[None]  # (1, S, S)
    if shape.aspect is not None:
        # An ellipse: the aperture drawn in coordinates stretched by 1 / aspect along the angle's direction.
        angle = shape.aspect_angle[:, None, None]
        along = (u * torch.cos(angle) + v * torch.sin(angle)) / shape.aspect.clamp(min=0.05)[:, None, None]
        across = -u * torch.sin(angle) + v * torch.cos(angle)
        u, v = (
            along * torch.cos(angle) - across * torch.sin(angle),
            along * torch.sin(angle) + across * torch.cos(angle),
        )
    rho = torch.sqrt(u * u + v * v)
    phi = torch.atan2(v, u)
    r = radius.abs().clamp(min=0)[:, None, None]
    side = torch.where(radius < 0, -1.0, 1.0)[:, None, None]

    # Aperture boundary at each angle: a circle, or a regular polygon with the circle as circumcircle.
    blades = shape.blades[:, None, None]
    sector = 2 * math.pi / blades.clamp(min=1)
    local = torch.remainder(phi - shape.rotation[:, None, None], sector) - sector / 2
    polygon = torch.cos(sector / 2) / torch.cos(local)
    boundary = r * torch.where(blades >= 3, polygon, torch.ones_like(polygon))

    # Soft edge: linear ramp of the given width; at least one coverage sample wide (anti-aliasing only).
    width = (shape.softness[:, None, None] * r).clamp(min=1.0 / ss)
    inside = ((boundary - rho) / width + 0.5).clamp(0, 1)

    # Cat's eye: intersect with a circle of the same radius, offset away from the centre.
    offset = shape.cats_eye[:, None, None] * r
    ox = offset * torch.cos(shape.cats_eye_angle)[:, None, None]
    oy = offset * torch.sin(shape.cats_eye_angle)[:, None, None]
    rho2 = torch.sqrt((u - ox) ** 2 + (v - oy) ** 2)
    inside = torch.minimum(inside, ((r - rho2) / width + 0.5).clamp(0, 1))

    # Spherical aberration: brightness varies with the normalised radius, with opposite sign either side
    # of the focal plane.
    t = (rho / r.clamp(min=1e-6)).clamp(max=1.0)
    profile = (1 + shape.ring[:, None, None] * side * (2 * t * t - 1)).clamp(min=0)
    fine = inside * profile
    kernel = F.avg_pool2d(fine[:, None], ss)[:, 0] * (ss * ss)

    # Radius ~0 or fully clipped: a delta.
    total = kernel.sum(dim=(-2, -1), keepdim=True)
    delta = torch.zeros_like(kernel)
    delta[:, size // 2, size // 2] = 1
    kernel = torch.where(total > 1e-8, kernel / total.clamp(min=1e-12), delta)
    kernel = _gaussian_blur(kernel, shape.gaussian)
    return kernel / kernel.sum(dim=(-2, -1), keepdim=True)


def _gaussian_blur(kernels: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    if not bool((sigma > 0).any()):
        return kernels
    n, size, _ = kernels.shape
    half = size // 2
    x = torch.arange(-half, half + 1, device=kernels.device, dtype=kernels.dtype)
    s = sigma.clamp(min=1e-3)[:, None]
    g = torch.exp(-0.5 * (x[None] / s) ** 2)
    g = torch.where(sigma[:, None] > 0, g, (x[None] == 0).to(g.dtype))
    g = g / g.sum(dim=1, keepdim=True)
    # Separable blur of each kernel with its own sigma: a grouped conv over the N kernels.
    k = kernels[None]  # (1, N, S, S)
    k = F.conv2d(F.pad(k, (half, half, 0, 0)), g[:, None, None, :], groups=n)
    k = F.conv2d(F.pad(k, (0, 0, half, half)), g[:, None, :, None], groups=n)
    return k[0]


def _fast_length(n: int) -> int:
    """The smallest m >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def fft_convolve(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve images (N, C, H, W) with kernels (N, K, C, S, S) -> (N, K, C, H, W), reflect-padded.

    A circular convolution over the padded image: with a margin of at least the kernel's half-size, the
    wrap-around only touches the margin, which is cut off.
    """
    n, c, h, w = images.shape
    size = kernels.shape[-1]
    half = size // 2
    fh, fw = _fast_length(h + 2 * half), _fast_length(w + 2 * half)
    mode = "reflect" if half < min(h, w) else "replicate"
    padded = F.pad(images, (half, fw - w - half, half, fh - h - half), mode=mode)
    # Put the kernel's centre at (0, 0) of the FFT grid.
    ker = F.pad(kernels, (0, fw - size, 0, fh - size)).roll(shifts=(-half, -half), dims=(-2, -1))
    out = torch.fft.irfft2(torch.fft.rfft2(padded)[:, None] * torch.fft.rfft2(ker), s=(fh, fw))
    return out[..., half : half + h, half : half + w]
