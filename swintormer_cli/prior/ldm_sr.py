"""The paper's prior: CompVis' latent-diffusion 4x super-resolution model, frozen.

Loaded with diffusers' own classes from the Hub id ``CompVis/ldm-super-resolution-4x-openimages`` (or a
local folder with the same ``unet/``, ``vqvae/``, ``scheduler/`` layout). Sampled as the official
Swintormer script does: DDIM, 20 steps, eta 1, conditioned on the blurry image scaled to [-1, 1]; the
3-channel latent, at the input's own resolution, is the prior (the VQ decoder, which would make a 4x
image, is not run). No weights shipped with this project use this prior yet.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from ..models.padding import pad_to_multiple
from .base import Prior

HUB_ID = "CompVis/ldm-super-resolution-4x-openimages"


class LDMSuperResolutionPrior(Prior):
    kind = "ldm-sr"
    default_source = HUB_ID

    def __init__(self, unet: UNet2DModel, scheduler: DDIMScheduler | DDPMScheduler, source: str = HUB_ID):
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)
        self.train_scheduler = scheduler
        self.source = source
        # The UNet downsamples len(block_out_channels) - 1 times.
        self._multiple = 2 ** (len(unet.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = HUB_ID, revision: str | None = None, **hub_kwargs
    ) -> LDMSuperResolutionPrior:
        """From a Hub id (through the Hugging Face cache) or a local folder."""
        kwargs = dict(revision=revision, **hub_kwargs)
        unet = UNet2DModel.from_pretrained(name_or_path, subfolder="unet", **kwargs)
        scheduler = DDIMScheduler.from_pretrained(name_or_path, subfolder="scheduler", **kwargs)
        return cls(unet, scheduler, source=str(name_or_path))

    @property
    def channels(self) -> int:
        return self.unet.config.out_channels

    @property
    def scale(self) -> int:
        return 1

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        m = self._multiple
        return (self.channels, -(-height // m) * m, -(-width // m) * m)

    @torch.no_grad()
    def forward(
        self,
        blurry: torch.Tensor,
        steps: int = 20,
        sampler: str = "ddim",
        eta: float = 1.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cond = pad_to_multiple(blurry, self._multiple) * 2 - 1

        def denoise(z, t):
            return self.unet(torch.cat([z, cond], dim=1), t).sample

        shape = (self.channels, *cond.shape[-2:])
        return self._sample(denoise, shape, cond.shape[0], steps, sampler, eta, generator, noise, cond)
