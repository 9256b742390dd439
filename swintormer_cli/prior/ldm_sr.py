"""The paper's prior: CompVis' latent-diffusion 4x super-resolution model, frozen.

Loaded with diffusers' own classes from the Hub id ``CompVis/ldm-super-resolution-4x-openimages`` (or a
local folder with the same ``unet/``, ``scheduler/`` layout). Only the UNet's safetensors weights are
read (never a pickled ``.bin``), and from the Hub only the three files needed, at one commit: the commit
is recorded (``revision``), and a model file saved with the prior names it, so loading that file fetches
exactly those weights again. Sampled as the official Swintormer script does: DDIM, 20 steps, eta 1
(``default_eta``), conditioned on the blurry image scaled to [-1, 1]; the 3-channel latent, at the input's
own resolution, is the prior (the VQ decoder, which would make a 4x image, is not run). No weights shipped
with this project use this prior yet.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from ..models.padding import pad_to_multiple
from .base import Prior

HUB_ID = "CompVis/ldm-super-resolution-4x-openimages"
# What is read of a Hub repo or a folder: the UNet (config and safetensors weights) and the scheduler.
FILES = ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json")


class LDMSuperResolutionPrior(Prior):
    kind = "ldm-sr"
    default_source = HUB_ID
    default_eta = 1.0

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: DDIMScheduler | DDPMScheduler,
        source: str = HUB_ID,
        revision: str | None = None,
    ):
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)
        self.train_scheduler = scheduler
        self.source = source
        self.revision = revision
        """The Hub commit the weights came from (None for a local folder)."""
        # The UNet downsamples len(block_out_channels) - 1 times.
        self._multiple = 2 ** (len(unet.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = HUB_ID, revision: str | None = None, **hub_kwargs
    ) -> LDMSuperResolutionPrior:
        """From a local folder, or a Hub repo id at ``revision`` (a commit, branch or tag; default main)
        through the Hugging Face cache. The commit fetched is recorded in ``revision``."""
        folder = Path(name_or_path).expanduser()
        if folder.is_dir():
            revision = None
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
        return cls(unet, scheduler, source=str(name_or_path), revision=revision)

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
