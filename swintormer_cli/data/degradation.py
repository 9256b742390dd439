"""Synthetic defocus made on the fly, in torch, batched, on any device, seeded.

Two recipes:

``disk``  the ``defocus-v1`` recipe the Kodak benchmark was made with (../shared/data/README.md): a smooth
          random depth map (blob field or tilted plane, randomly inverted), radius linear in depth, six
          blur levels of anti-aliased uniform disks (8x supersampled) blended per pixel, Gaussian read
          noise in linear light, 8-bit sRGB.

``lens``  a lens-and-sensor model meant to transfer to real photographs:
          - depth: blob fields, tilted planes, and layered scenes with an occluding foreground whose edge
            is rendered with the layered (matting) model, so a sharp object stays sharp over a blurred
            background and a blurred object bleeds over a sharp one;
          - blur radius from depth through the thin-lens circle of confusion, signed by the side of focus;
          - PSFs from data/psf.py: soft or hard disks, polygonal apertures, cat's-eye clipping, spherical
            aberration rings that flip with the focus side, per-channel radii, Gaussian softness;
          - sensor and camera: linear light, exposure/colour differences between the pair, shot and read
            noise, optional Bayer mosaic and bilinear demosaic, a tone curve shared by input and target,
            8-bit quantisation, JPEG at a random quality.

Every part is ranged from the config; a probability of 0 or an empty range switches it off.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..config_dict import DictConfig
from .jpeg import jpeg
from .psf import PSFShape, fft_convolve, kernel_size, render_psf

Range = tuple[float, float]
RECIPES: tuple[str, ...] = ("disk", "lens")


@dataclass
class DegradationConfig(DictConfig):
    recipe: str = "lens"
    # -- depth ---------------------------------------------------------------------------------------
    depth_weights: dict[str, float] = field(default_factory=lambda: {"blobs": 0.35, "plane": 0.35, "layered": 0.3})
    blob_cells: Range = (2.0, 10.0)
    """Blob fields are noise on a grid of this many cells across the image, smoothly upsampled."""
    # -- blur size -----------------------------------------------------------------------------------
    max_radius: Range = (0.5, 12.0)
    """Largest circle-of-confusion radius in an image, pixels (``disk``: r_max)."""
    min_radius_fraction: Range = (0.0, 0.4)
    """``disk`` only: r_min as a fraction of r_max."""
    focus: Range = (-0.3, 1.3)
    """``lens``: focal plane position in normalised depth; outside [0, 1] leaves the whole image defocused."""
    far_distance: Range = (2.0, 30.0)
    """``lens``: distance of the farthest depth, in units of the nearest."""
    levels: int = 8
    # -- PSF shape (``lens``) ------------------------------------------------------------------------
    polygon_probability: float = 0.3
    blades: tuple[int, int] = (5, 9)
    softness: Range = (0.0, 0.5)
    ring: Range = (-0.5, 0.5)
    cats_eye_probability: float = 0.3
    cats_eye: Range = (0.0, 0.5)
    chromatic: Range = (0.0, 0.06)
    gaussian: Range = (0.0, 0.8)
    aspect_probability: float = 0.0
    """Share of ``lens`` kernels squeezed into an ellipse along a random direction (0: all round, as before)."""
    aspect: Range = (0.5, 1.0)
    """Width over height of those ellipses."""
    supersample: int = 4
    # -- resampled photos -----------------------------------------------------------------------------
    resample_probability: float = 0.0
    """Share of images shrunk and enlarged again (bicubic) by a factor in ``resample`` before the blur, target and
    input alike (0: none, as before): an enlarged photo's softness is then part of what the restorer must keep,
    and only the defocus on top of it is removed."""
    resample: Range = (1.5, 3.0)
    """The factors of those images."""
    # -- sensor and camera ---------------------------------------------------------------------------
    read_noise: Range = (0.0005, 0.008)
    shot_noise: Range = (0.0, 0.004)
    bayer_probability: float = 0.0
    tone_gamma: Range = (1.0, 1.0)
    """Extra gamma on linear light before the sRGB curve, shared by input and target (contrast variety)."""
    exposure_jitter: float = 0.0
    """Per-channel gain difference of the blurry image, +-fraction (real pairs differ by a few %)."""
    jpeg_probability: float = 0.0
    jpeg_quality: Range = (60.0, 95.0)
    # -- mixing --------------------------------------------------------------------------------------
    disk_fraction: float = 0.0
    """``lens`` only: this share of each batch is made with the ``defocus-v1`` disk recipe instead."""

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"degradation recipe must be one of {RECIPES}, got {self.recipe!r}")
        for name in (
            "blob_cells",
            "max_radius",
            "min_radius_fraction",
            "focus",
            "far_distance",
            "softness",
            "ring",
            "cats_eye",
            "chromatic",
            "gaussian",
            "aspect",
            "resample",
            "read_noise",
            "shot_noise",
            "tone_gamma",
            "jpeg_quality",
        ):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"degradation {name}: low end {lo} above high end {hi}")
            setattr(self, name, (float(lo), float(hi)))
        self.blades = (int(self.blades[0]), int(self.blades[1]))
        unknown = set(self.depth_weights) - {"blobs", "plane", "layered"}
        if unknown or sum(self.depth_weights.values()) <= 0:
            raise ValueError(
                f"depth_weights needs positive weights over blobs, plane, layered; got {self.depth_weights}"
            )
        if self.levels < 2:
            raise ValueError("levels must be at least 2")
        if not 0.0 < self.aspect[0] <= self.aspect[1] <= 1.0 or not 0.0 <= self.aspect_probability <= 1.0:
            raise ValueError(f"aspect must lie in (0, 1] and its probability in [0, 1], got {self.aspect}")
        if self.resample[0] < 1.0 or not 0.0 <= self.resample_probability <= 1.0:
            raise ValueError(
                f"resample factors must be at least 1 and their probability in [0, 1], got {self.resample}"
            )
        if not 0.0 <= self.disk_fraction <= 1.0:
            raise ValueError(f"disk_fraction must be in [0, 1], got {self.disk_fraction}")

    @property
    def margin(self) -> int:
        """Pixels a crop needs around it so the widest blur of this recipe spreads in real content (the
        trainer cuts it off after degrading)."""
        return kernel_size(self.max_radius[1] * (1 + self.chromatic[1]), self.gaussian[1]) // 2

    @classmethod
    def defocus_v1(cls) -> DegradationConfig:
        """The exact recipe of the kodak24-defocus benchmark."""
        return cls(
            recipe="disk",
            depth_weights={"blobs": 0.5, "plane": 0.5, "layered": 0.0},
            max_radius=(2.0, 8.0),
            levels=6,
            supersample=8,
            read_noise=(0.0005, 0.006),
            shot_noise=(0.0, 0.0),
        )


# -- colour ---------------------------------------------------------------------------------------------
def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


# -- random helpers -------------------------------------------------------------------------------------
def _uniform(n: int, bounds: Range, g: torch.Generator) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=g, device=g.device)


def _bernoulli(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, device=g.device) < p


def _normalise(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo).clamp(min=1e-6)


# -- depth ----------------------------------------------------------------------------------------------
def blob_field(n: int, h: int, w: int, cells: Range, g: torch.Generator) -> torch.Tensor:
    """(n, 1, h, w) smooth random fields in [0, 1]: noise on a coarse grid, bicubically upsampled."""
    out = []
    counts = _uniform(n, cells, g)
    for i in range(n):
        cy = max(2, int(round(float(counts[i]) * h / max(h, w))) + 1)
        cx = max(2, int(round(float(counts[i]) * w / max(h, w))) + 1)
        grid = torch.randn(1, 1, cy, cx, generator=g, device=g.device)
        out.append(F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True))
    return _normalise(torch.cat(out))


def tilted_plane(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    angle = _uniform(n, (0.0, 2 * math.pi), g)[:, None, None, None]
    ys = torch.linspace(-1, 1, h, device=g.device)[None, None, :, None]
    xs = torch.linspace(-1, 1, w, device=g.device)[None, None, None, :]
    return _normalise(torch.cos(angle) * xs + torch.sin(angle) * ys)


def depth_maps(kinds: list[str], h: int, w: int, cfg: DegradationConfig, g: torch.Generator) -> torch.Tensor:
    """(n, 1, h, w) background depth in [0, 1], randomly inverted; layered scenes use a blob field."""
    n = len(kinds)
    blobs = blob_field(n, h, w, cfg.blob_cells, g)
    plane = tilted_plane(n, h, w, g)
    is_plane = torch.tensor([k == "plane" for k in kinds], device=g.device)[:, None, None, None]
    depth = torch.where(is_plane, plane, blobs)
    invert = _bernoulli(n, 0.5, g)[:, None, None, None]
    return torch.where(invert, 1 - depth, depth)


def foreground_mask(n: int, h: int, w: int, cfg: DegradationConfig, g: torch.Generator) -> torch.Tensor:
    """(n, 1, h, w) hard-edged occluder masks covering roughly 20-70% of the image."""
    field_ = blob_field(n, h, w, (1.5, 4.0), g)
    cover = _uniform(n, (0.2, 0.7), g)
    thresholds = torch.stack([torch.quantile(f.flatten(), 1 - c) for f, c in zip(field_, cover, strict=True)])
    return (field_ >= thresholds[:, None, None, None]).float()


# -- the degradation -----------------------------------------------------------------------------------
@dataclass
class DegradedImages:
    """What the degradation makes of a batch of sharp images: the blurred inputs, their targets, and the truth
    behind them (radius maps, PSFs, the occluding layer)."""

    blurry: torch.Tensor
    sharp: torch.Tensor
    radius: torch.Tensor
    """(N, 1, H, W) signed blur radius per pixel (the background's, for layered scenes)."""
    psfs: torch.Tensor
    """(N, C, S, S) the PSF at the largest radius of each image, for previews."""
    foreground: torch.Tensor | None = None
    """(N, 1, H, W) the occluding layer of layered scenes (zeros elsewhere)."""
    foreground_radius: torch.Tensor | None = None
    """(N,) signed blur radius of that layer (0 for other scenes)."""


class Degradation:
    """Call with sharp sRGB images (N, 3, H, W) in [0, 1] and a generator on the same device."""

    def __init__(self, config: DegradationConfig | None = None):
        self.config = config or DegradationConfig()

    def __call__(self, sharp: torch.Tensor, generator: torch.Generator) -> DegradedImages:
        cfg = self.config
        g = generator
        # A generator made for a bare "cuda" reports no index: it draws on the current GPU.
        if sharp.device.type != g.device.type or g.device.index not in (None, sharp.device.index):
            raise ValueError(f"images on {sharp.device} but the generator on {g.device}")
        if cfg.resample_probability > 0:  # drawn only then, so that every recipe without it keeps its batches
            sharp = self._resampled(sharp, g)
        if cfg.recipe == "lens" and cfg.disk_fraction > 0:
            return self._mixed(sharp, g)
        return self._degrade(sharp, g)

    def _resampled(self, sharp: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``sharp`` with a ``resample_probability`` share of its images shrunk by a factor in ``resample`` and
        enlarged back to their size: the softness and ringing of an enlarged photo."""
        n, _, h, w = sharp.shape
        chosen = _bernoulli(n, self.config.resample_probability, g)
        factors = _uniform(n, self.config.resample, g)
        out = sharp.float().clone()
        for i in chosen.nonzero().flatten().tolist():
            k = float(factors[i])
            small = F.interpolate(
                out[i : i + 1], size=(max(1, round(h / k)), max(1, round(w / k))), mode="bicubic", antialias=True
            )
            out[i] = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)
        return out

    def _mixed(self, sharp: torch.Tensor, g: torch.Generator) -> DegradedImages:
        """Part of the batch with the disk recipe, the rest with the lens recipe, in their original order."""
        disk = _bernoulli(sharp.shape[0], self.config.disk_fraction, g)
        parts = {}
        for use_disk, cfg in (
            (True, DegradationConfig.defocus_v1()),
            (False, dataclasses.replace(self.config, disk_fraction=0.0)),
        ):
            idx = (disk == use_disk).nonzero().flatten()
            if len(idx):
                parts[use_disk] = (idx, Degradation(cfg)._degrade(sharp[idx], g))
        first = next(iter(parts.values()))[1]
        n = sharp.shape[0]
        size = max(p.psfs.shape[-1] for _, p in parts.values())
        merged = DegradedImages(
            torch.empty(n, *first.blurry.shape[1:], device=sharp.device),
            torch.empty(n, *first.sharp.shape[1:], device=sharp.device),
            torch.empty(n, *first.radius.shape[1:], device=sharp.device),
            torch.zeros(n, 3, size, size, device=sharp.device),
            torch.zeros(n, 1, *first.radius.shape[-2:], device=sharp.device),
            torch.zeros(n, device=sharp.device),
        )
        for idx, part in parts.values():
            merged.blurry[idx] = part.blurry
            merged.sharp[idx] = part.sharp
            merged.radius[idx] = part.radius
            pad = (size - part.psfs.shape[-1]) // 2
            merged.psfs[idx] = torch.nn.functional.pad(part.psfs, (pad, pad, pad, pad))
            merged.foreground[idx] = part.foreground
            merged.foreground_radius[idx] = part.foreground_radius
        return merged

    def _degrade(self, sharp: torch.Tensor, g: torch.Generator) -> DegradedImages:
        cfg = self.config
        sharp = sharp.float().clamp(0, 1)
        n, _, h, w = sharp.shape
        linear = srgb_to_linear(sharp)

        names = list(cfg.depth_weights)
        weights = torch.tensor([cfg.depth_weights[k] for k in names], device=g.device)
        kinds = [names[i] for i in torch.multinomial(weights, n, replacement=True, generator=g).tolist()]
        depth = depth_maps(kinds, h, w, cfg, g)
        shape = self._psf_shape(n, g)

        foreground = torch.zeros(n, 1, h, w, device=g.device)
        fg_radius = torch.zeros(n, device=g.device)
        if cfg.recipe == "disk":
            r_max = _uniform(n, cfg.max_radius, g)[:, None, None, None]
            r_min = _uniform(n, cfg.min_radius_fraction, g)[:, None, None, None] * r_max
            radius = r_min + (r_max - r_min) * depth
            blurred, psfs = self._blur(linear, radius, shape, torch.zeros(n, device=g.device))
        else:
            blurred, radius, psfs = self._lens(linear, depth, kinds, shape, g, foreground, fg_radius)

        gamma = _uniform(n, cfg.tone_gamma, g)[:, None, None, None]
        if cfg.exposure_jitter > 0:
            gain = 1 + (torch.rand(n, 3, 1, 1, generator=g, device=g.device) * 2 - 1) * cfg.exposure_jitter
            blurred = blurred * gain
        read = _uniform(n, cfg.read_noise, g)[:, None, None, None]
        shot = _uniform(n, cfg.shot_noise, g)[:, None, None, None]
        sigma = torch.sqrt(shot * blurred.clamp(min=0) + read**2)
        noisy = blurred + sigma * torch.randn(blurred.shape, generator=g, device=g.device)
        bayer = _bernoulli(n, cfg.bayer_probability, g)
        if bool(bayer.any()):
            demosaiced = demosaic_bilinear(mosaic(noisy[bayer]))
            noisy = noisy.clone()
            noisy[bayer] = demosaiced
        blurry = linear_to_srgb(noisy.clamp(0, 1) ** gamma)
        target = sharp if cfg.tone_gamma == (1.0, 1.0) else linear_to_srgb(linear**gamma)
        blurry = torch.round(blurry * 255) / 255
        use_jpeg = _bernoulli(n, cfg.jpeg_probability, g)
        if bool(use_jpeg.any()):
            quality = _uniform(n, cfg.jpeg_quality, g).round()
            blurry = blurry.clone()
            blurry[use_jpeg] = jpeg(blurry[use_jpeg], quality[use_jpeg])
        return DegradedImages(blurry, target, radius, psfs, foreground, fg_radius)

    # -- parts ----------------------------------------------------------------------------------------
    def _psf_shape(self, n: int, g: torch.Generator) -> PSFShape:
        cfg = self.config
        if cfg.recipe == "disk":
            return PSFShape.disk(n, device=g.device)
        lo, hi = cfg.blades
        blades = torch.randint(lo, hi + 1, (n,), generator=g, device=g.device).float()
        blades = torch.where(_bernoulli(n, cfg.polygon_probability, g), blades, torch.zeros_like(blades))
        cats = torch.where(_bernoulli(n, cfg.cats_eye_probability, g), _uniform(n, cfg.cats_eye, g), 0.0)
        shape = PSFShape(
            blades=blades,
            rotation=_uniform(n, (0.0, 2 * math.pi), g),
            softness=_uniform(n, cfg.softness, g),
            ring=_uniform(n, cfg.ring, g),
            cats_eye=cats,
            cats_eye_angle=_uniform(n, (0.0, 2 * math.pi), g),
            gaussian=_uniform(n, cfg.gaussian, g),
        )
        if cfg.aspect_probability > 0:  # drawn only when asked, so every other recipe keeps its exact batches
            aspect = _uniform(n, cfg.aspect, g)
            shape.aspect = torch.where(_bernoulli(n, cfg.aspect_probability, g), aspect, torch.ones_like(aspect))
            shape.aspect_angle = _uniform(n, (0.0, math.pi), g)
        return shape

    def _lens(self, linear, depth, kinds, shape, g, foreground, fg_radius_out):
        cfg = self.config
        n, _, h, w = linear.shape
        far = _uniform(n, cfg.far_distance, g)[:, None, None, None]
        focus = _uniform(n, cfg.focus, g)[:, None, None, None]
        r_max = _uniform(n, cfg.max_radius, g)[:, None, None, None]

        def inverse_distance(d):
            # Normalised depth 0..1 -> 1/distance from 1 (nearest) to 1/far; the thin-lens circle of
            # confusion is proportional to the difference of inverse distances from the focal plane.
            return 1 + (1 / far - 1) * d

        layered = torch.tensor([k == "layered" for k in kinds], device=g.device)
        fg_depth = _uniform(n, (0.0, 1.0), g)[:, None, None, None]
        # In a layered scene focus on the foreground or on the background, each half of the time.
        on_fg = _bernoulli(n, 0.5, g)[:, None, None, None]
        bg_mean = depth.mean(dim=(-2, -1), keepdim=True)
        focus = torch.where(layered[:, None, None, None], torch.where(on_fg, fg_depth, bg_mean), focus)
        coc = inverse_distance(depth) - inverse_distance(focus)
        fg_coc = inverse_distance(fg_depth) - inverse_distance(focus)
        extent = torch.maximum(coc.abs().amax(dim=(-2, -1), keepdim=True), fg_coc.abs() * layered[:, None, None, None])
        k = r_max / extent.clamp(min=1e-6)
        radius = coc * k
        chroma = _uniform(n, cfg.chromatic, g) * torch.where(_bernoulli(n, 0.5, g), 1.0, -1.0)
        background, psfs = self._blur(linear, radius, shape, chroma)
        if not bool(layered.any()):
            return background, radius, psfs
        idx = layered.nonzero().flatten()
        mask = foreground_mask(len(idx), h, w, cfg, g)
        fg_radius = (fg_coc * k)[idx].flatten()
        sub = shape.map(lambda v: v[idx])
        kernels = self._kernels(fg_radius[:, None], sub, chroma[idx])  # (m, 1, C, S, S)
        fg = fft_convolve(linear[idx] * mask, kernels)[:, 0]
        alpha = fft_convolve(mask.expand(-1, 3, -1, -1), kernels)[:, 0]
        out = background.clone()
        out[idx] = fg + (1 - alpha) * background[idx]
        foreground[idx] = mask
        fg_radius_out[idx] = fg_radius
        return out, radius, psfs

    def _kernels(self, radii: torch.Tensor, shape: PSFShape, chroma: torch.Tensor) -> torch.Tensor:
        """radii (N, K) signed -> kernels (N, K, 3, S, S); channel radii scaled by (1+c, 1, 1-c)."""
        n, k = radii.shape
        scale = torch.stack([1 + chroma, torch.ones_like(chroma), 1 - chroma], dim=1)  # (N, 3)
        per_channel = radii[:, :, None] * scale[:, None, :]  # (N, K, 3)
        size = kernel_size(float(per_channel.abs().max()), float(shape.gaussian.max()) if len(shape.gaussian) else 0)
        if not bool(chroma.any()):
            # No chromatic aberration: one kernel serves all three channels.
            flat = render_psf(radii.reshape(-1), shape.repeat(k), size, self.config.supersample)
            return flat.reshape(n, k, 1, size, size).expand(n, k, 3, size, size)
        flat = render_psf(per_channel.reshape(-1), shape.repeat(k * 3), size, self.config.supersample)
        return flat.reshape(n, k, 3, size, size)

    def _blur(self, linear, radius, shape, chroma):
        """Spatially varying blur: ``levels`` blurred copies, each pixel interpolating its two nearest."""
        cfg = self.config
        lo = radius.amin(dim=(-2, -1)).flatten()
        hi = radius.amax(dim=(-2, -1)).flatten()
        steps = torch.linspace(0, 1, cfg.levels, device=radius.device)
        levels = lo[:, None] + (hi - lo)[:, None] * steps[None]  # (N, K)
        kernels = self._kernels(levels, shape, chroma)
        stack = fft_convolve(linear, kernels)  # (N, K, 3, H, W)
        pos = (radius - lo[:, None, None, None]) / (hi - lo).clamp(min=1e-6)[:, None, None, None] * (cfg.levels - 1)
        weights = (1 - (pos - torch.arange(cfg.levels, device=radius.device)[None, :, None, None]).abs()).clamp(min=0)
        out = (stack * weights[:, :, None]).sum(dim=1)
        # The PSF at each image's largest radius, for previews.
        largest = kernels[torch.arange(len(kernels)), levels.abs().argmax(dim=1)]
        return out, largest


# -- Bayer ---------------------------------------------------------------------------------------------
def mosaic(rgb: torch.Tensor) -> torch.Tensor:
    """RGGB mosaic: (N, 3, H, W) -> (N, 3, H, W) with each pixel keeping only its own colour."""
    mask = torch.zeros_like(rgb)
    mask[:, 0, 0::2, 0::2] = 1
    mask[:, 1, 0::2, 1::2] = 1
    mask[:, 1, 1::2, 0::2] = 1
    mask[:, 2, 1::2, 1::2] = 1
    return rgb * mask


def demosaic_bilinear(raw: torch.Tensor) -> torch.Tensor:
    """Bilinear demosaic of an RGGB mosaic (as ``mosaic`` produces)."""
    k_rb = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], device=raw.device)
    k_g = torch.tensor([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]], device=raw.device)
    kernels = torch.stack([k_rb, k_g, k_rb])[:, None]
    return F.conv2d(F.pad(raw, (1, 1, 1, 1), mode="reflect"), kernels, groups=3)
