"""What several test files share: tiny models, images made on the spot, and broken image files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import torch
from PIL import Image

from swintormer_cli.models import Swintormer, SwintormerConfig
from swintormer_cli.prior import LatentPrior, LatentPriorConfig


def tiny_config(**overrides) -> SwintormerConfig:
    base = dict(
        dim=8,
        encoder_blocks=(1, 1, 1),
        latent_blocks=1,
        decoder_blocks=(1, 1, 1),
        refinement_blocks=1,
        heads=(1, 1, 2, 2),
        window_size=4,
    )
    base.update(overrides)
    return SwintormerConfig(**base)


def tiny_prior(in_views: int = 1, **overrides) -> LatentPrior:
    base = dict(in_views=in_views, cond_channels=8, encoder_width=8, encoder_blocks=1, denoiser_channels=(8,))
    base.update(overrides)
    return LatentPrior(LatentPriorConfig(**base))


def tiny_model(prior: bool = False, seed: int = 0, **overrides) -> tuple[Swintormer, LatentPrior | None]:
    torch.manual_seed(seed)
    p = tiny_prior(overrides.get("in_views", 1)) if prior else None
    if p is not None:
        overrides.update(prior_channels=p.channels, prior_scale=p.scale)
    model = Swintormer(tiny_config(**overrides))
    # Random but non-trivial: the prior modulations start at zero; give them weight so the prior matters.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("prior_") and param.dim() == 4:
                param.normal_(0, 0.05)
    return model.eval(), (p.eval() if p is not None else None)


def gradient_image(h: int, w: int, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    """A smooth colourful image with some edges, HxWx3."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), 0.5 + 0.5 * np.sin((x + y) / 5.0)], axis=2)
    img[(x // 8 + y // 8) % 2 == 0] *= 0.7
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    peak = 65535 if dtype == np.uint16 else 255
    return np.round(img * peak).astype(dtype)


def write_photos(folder, n=3, size=(80, 100)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(gradient_image(*size, seed=i)).save(folder / f"{i}.png")
    return folder


def png_header(width: int, height: int) -> bytes:
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gradient_image(64, 64)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def truncated_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gradient_image(64, 64)).save(buf, format="PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]
