"""What several test files share: tiny models, images made on the spot, and broken image files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DModel, VQModel
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


def tiny_ldm(folder, safe_serialization=True):
    """A randomly initialised model with the layout and classes of CompVis' ldm-sr Hub repo, saved in ``folder``."""
    unet = UNet2DModel(
        in_channels=6,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        add_attention=False,
    )
    unet.save_pretrained(folder / "unet", safe_serialization=safe_serialization)
    VQModel(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8,),
        latent_channels=3,
        num_vq_embeddings=16,
        norm_num_groups=4,
    ).save_pretrained(folder / "vqvae")
    DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear").save_pretrained(folder / "scheduler")
    return folder


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


def write_dpdd(root, splits=("train", "val", "test"), n=2, size=(40, 48), layout="official"):
    """A DPDD tree of 16-bit PNGs (a blurred centre view, its left and right views, the sharp target) in the
    official layout (``train_c/source``, ``train_l/source``, ...) or Restormer's (``train/DPDD/inputC``, ...)."""
    import cv2

    for split in splits:
        if layout == "official":
            dirs = {k: root / f"{split}_{k.lower()}" / "source" for k in "CLR"} | {"T": root / f"{split}_c" / "target"}
        else:
            base = root / split / "DPDD"
            dirs = {k: base / f"input{k}" for k in "CLR"} | {"T": base / "target"}
        for i in range(n):
            sharp = gradient_image(*size, seed=i, dtype=np.uint16)
            blurry = (sharp.astype(np.float64) * 0.85 + 4000).clip(0, 65535).astype(np.uint16)
            views = {"T": sharp, "C": blurry, "L": np.roll(blurry, 1, axis=1), "R": np.roll(blurry, -1, axis=1)}
            for key, image in views.items():
                dirs[key].mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(dirs[key] / f"scene{i + 1}.png"), image[..., ::-1])
    return root
