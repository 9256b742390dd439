"""The paper's prior: CompVis' latent-diffusion 4x super-resolution model, frozen.

Loaded with diffusers' own classes from the Hub id ``CompVis/ldm-super-resolution-4x-openimages`` (or a
local folder with the same ``unet/``, ``scheduler/`` layout). Only the UNet's safetensors weights are
read (never a pickled ``.bin``), and from the Hub only the three files needed, at one commit: the commit
is recorded (``revision``) with a sha256 of the three files (``digest``), and a model file saved with the
prior names both, so loading that file fetches exactly those weights again and checks them. Sampled as the
official Swintormer script (``generate_feature.py``) does: DDIM, 20 steps, eta 1 (``default_eta``),
conditioned on the blurry image scaled to [-1, 1], over the *whole image* (``whole_image``), with the UNet
run on overlapping 128x128 patches of the latent, 64 apart, merged at every step (the script does this
through LDM's ``split_input_params``): the map of one image does not depend on how it is tiled later, and
the UNet's memory stays that of one patch batch. The 3-channel latent, at the input's own resolution, is
the prior (the VQ decoder, which would make a 4x image, is not run). A dual-pixel input is conditioned on
the mean of its two views (the model takes one RGB image; the mean is the centre view, in effect).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..defaults import DEFAULT_PRIOR_STEPS, DEFAULT_SAMPLER
from ..io import sha256_of
from ..models.padding import pad_to_multiple
from ..tiling import Accumulator, TileGrid
from .base import Prior

if TYPE_CHECKING:
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

HUB_ID = "CompVis/ldm-super-resolution-4x-openimages"
# What is read of a Hub repo or a folder: the UNet (config and safetensors weights) and the scheduler.
FILES = ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json")
# The official feature script's split_input_params: the UNet sees 128x128 latent patches, 64 apart.
PATCH, PATCH_STRIDE = 128, 64
CHANNELS = 3
"""Channels of the LDM-SR latent (the UNet's ``out_channels``): what a network trained with it is built for."""


def files_digest(folder: Path) -> str:
    """sha256 over the files the prior is read from (each one's name and content): what its map depends on."""
    total = hashlib.sha256()
    for name in FILES:
        total.update(f"{name}\0{sha256_of(folder / name)}\n".encode())
    return total.hexdigest()


class LDMSuperResolutionPrior(Prior):
    kind = "ldm-sr"
    default_source = HUB_ID
    default_eta = 1.0
    whole_image = True

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: DDIMScheduler | DDPMScheduler,
        source: str = HUB_ID,
        revision: str | None = None,
        digest: str | None = None,
        patch: int = PATCH,
        patch_stride: int = PATCH_STRIDE,
        patch_batch: int = 4,
    ):
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)
        self.train_scheduler = scheduler
        self.source = source
        self.revision = revision
        """The Hub commit the weights came from (None for a local folder)."""
        self.digest = digest
        """sha256 over the files read (``files_digest``); None for a prior built in memory."""
        # The UNet downsamples len(block_out_channels) - 1 times.
        self._multiple = 2 ** (len(unet.config.block_out_channels) - 1)
        if patch % self._multiple or not 0 < patch_stride <= patch:
            raise ValueError(
                f"ldm-sr patch {patch} must be a multiple of {self._multiple} and its stride in [1, {patch}], "
                f"got {patch_stride}"
            )
        self.patch, self.patch_stride, self.patch_batch = patch, patch_stride, patch_batch

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = HUB_ID, revision: str | None = None, **hub_kwargs
    ) -> LDMSuperResolutionPrior:
        """From a local folder, or a Hub repo id at ``revision`` (a commit, branch or tag; default main)
        through the Hugging Face cache. The commit fetched is recorded in ``revision``."""
        from diffusers import DDIMScheduler, UNet2DModel  # here, not at import: see prior/base.py

        folder = Path(name_or_path).expanduser()
        if folder.is_dir():
            # Recorded in model files: absolute, so that they load from any working directory.
            name_or_path, revision = folder.absolute(), None
        else:
            from huggingface_hub import hf_hub_download

            # The files land in the cache's snapshots/<commit>/ folder: that is the commit fetched.
            paths = [Path(hf_hub_download(str(name_or_path), f, revision=revision, **hub_kwargs)) for f in FILES]
            folder = paths[0].parents[1]
            revision = folder.name
        try:
            unet = UNet2DModel.from_pretrained(folder, subfolder="unet", use_safetensors=True)
        except OSError as exc:
            raise OSError(
                f"{name_or_path}: no safetensors weights for the ldm-sr UNet ({FILES[1]}); pickled .bin weights "
                "are never loaded, as they can run code"
            ) from exc
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
        return cls(unet, scheduler, source=str(name_or_path), revision=revision, digest=files_digest(folder))

    @property
    def identity(self) -> dict:
        """What names these weights: the Hub commit (None for a folder) and the files' sha256."""
        return {"revision": self.revision, "sha256": self.digest}

    @property
    def channels(self) -> int:
        return self.unet.config.out_channels

    @property
    def scale(self) -> int:
        return 1

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        m = self._multiple
        return (self.channels, -(-height // m) * m, -(-width // m) * m)

    def condition(self, blurry: torch.Tensor) -> torch.Tensor:
        """The RGB image the model is conditioned on: the input, or the mean of a dual-pixel pair's views."""
        if blurry.shape[1] == 3:
            return blurry
        if blurry.shape[1] == 6:
            return (blurry[:, :3] + blurry[:, 3:]) / 2
        raise ValueError(f"the ldm-sr prior takes 3 (RGB) or 6 (dual-pixel) channels, got {blurry.shape[1]}")

    def _denoise(self, z: torch.Tensor, cond: torch.Tensor, t) -> torch.Tensor:
        """The UNet's output for the whole latent: one call when it fits in a patch, else overlapping patches
        (in batches of ``patch_batch``) merged with weights that fall off over the overlap."""
        height, width = z.shape[-2:]
        if height <= self.patch and width <= self.patch:
            return self.unet(torch.cat([z, cond], dim=1), t).sample
        grid = TileGrid(height, width, self.patch, self.patch_stride)
        merged = Accumulator(z.shape[1], grid, "feather", batch=z.shape[0], device=z.device, dtype=z.dtype)
        both = torch.cat([z, cond], dim=1)
        tiles = grid.tiles
        for i in range(0, len(tiles), self.patch_batch):
            group = tiles[i : i + self.patch_batch]
            inputs = torch.cat([both[(..., *tile.slices)] for tile in group])
            outs = self.unet(inputs, t).sample.split(z.shape[0])
            for tile, out in zip(group, outs, strict=True):
                merged.add(tile, out)
        return merged.result()

    @torch.no_grad()
    def forward(
        self,
        blurry: torch.Tensor,
        steps: int = DEFAULT_PRIOR_STEPS,
        sampler: str = DEFAULT_SAMPLER,
        eta: float = 1.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cond = pad_to_multiple(self.condition(blurry), self._multiple) * 2 - 1

        def denoise(z, t):
            return self._denoise(z, cond, t)

        shape = (self.channels, *cond.shape[-2:])
        return self._sample(denoise, shape, cond.shape[0], steps, sampler, eta, generator, noise, cond)

    def sample_map(
        self,
        image: torch.Tensor,
        steps: int = DEFAULT_PRIOR_STEPS,
        sampler: str = DEFAULT_SAMPLER,
        eta: float = 1.0,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The prior map of a whole (C, H, W) image in [0, 1]: (3, H, W) float32 on the CPU.

        The noise comes from ``seed`` alone, drawn on the CPU one step at a time for the whole latent grid, so
        the map is the same on any device and whatever tiles it is cut into later."""
        height, width = image.shape[-2:]
        x = image[None].to(device or "cpu", torch.float32)
        latent = self.latent_shape(height, width)
        generator = torch.Generator().manual_seed(seed)

        def draw(_: int) -> torch.Tensor:  # called once per draw, in order
            return torch.randn((1, *latent), generator=generator)

        z = self(x, steps=steps, sampler=sampler, eta=eta, noise=draw)
        return z[0, :, :height, :width].float().cpu()
