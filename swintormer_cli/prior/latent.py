"""This project's own diffusion prior: a small latent diffusion model conditioned on the blurry image.

    blurry --PixelUnshuffle(4)--> condition encoder --> cond features  (cond_channels, 1/scale)
    noise  --DDIM/DDPM, UNet2DModel(cat(z_t, cond), t)--> z_0          (latent_channels, 1/scale)

Training follows DiffIR's two stages: in stage 1 a *target encoder* that sees the sharp and the blurry
image produces z_0 while the Swintormer learns to use it; in stage 2 the diffusion model learns to produce
that z_0 from the blurry image alone (``diffusion_loss``); then both are fine-tuned together, sampling with
gradients through a few DDIM steps (``forward(..., steps=few)`` under autograd).

The latent is bounded, so the schedulers' x_0 clipping at 1 is exact: by default each position's vector is
scaled to unit length (``target_norm="l2"``); the first models used tanh, which the target encoder can
saturate for good (see ``LatentPriorConfig.target_norm``). The schedule: 100 training
steps, linear betas from 1e-3 to 0.2 (DDPM's 1e-4..0.02 scaled by 1000/T so that the last step is pure
noise: alpha_bar_T ~ 5e-5), x_0 prediction, "trailing" timestep spacing so a few-step sampler starts at T.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config_dict import DictConfig
from ..defaults import DEFAULT_PRIOR_STEPS, DEFAULT_SAMPLER
from ..models.padding import pad_to_multiple
from .base import Prior, draw_device

TARGET_NORMS = ("l2", "tanh")


@dataclass
class LatentPriorConfig(DictConfig):
    in_views: int = 1
    latent_channels: int = 4
    scale: int = 16
    """The latent is 1/scale of the input: 4, 8 or 16."""
    cond_channels: int = 32
    encoder_width: int = 32
    encoder_blocks: int = 2
    denoiser_channels: tuple[int, ...] = (32,)
    denoiser_layers: int = 1
    denoiser_mid_block: bool = False
    """A diffusers UNet costs ~0.2 ms per layer on a CPU however small the map: the default denoiser is
    one level without a middle block, so 20 steps stay a small share of the restorer's time."""
    train_timesteps: int = 100
    beta_start: float = 1e-3
    beta_end: float = 0.2
    prediction_type: str = "sample"
    target_norm: str = "l2"
    """How the target encoder bounds its latent to [-1, 1]. ``l2``: group norms inside the encoder, and each
    position's latent vector scaled to unit length; the gradient never vanishes, whatever the size of the
    encoder's output. ``tanh``: the plain encoder and a tanh, what ``tiny-latent`` was trained with. Trained
    from scratch at lr 1e-3 (configs/tiny-channel-latent.yaml) its output grew past 100 within 200 steps:
    every tanh stood at +1 for good, passed no gradient again, and the latent carried nothing. With ``l2``
    the encoder's output stayed near 1 over the same steps."""

    def __post_init__(self):
        self.denoiser_channels = tuple(self.denoiser_channels)
        if self.target_norm not in TARGET_NORMS:
            raise ValueError(f"target_norm must be one of {TARGET_NORMS}, got {self.target_norm!r}")
        if self.scale not in (4, 8, 16):
            raise ValueError(f"latent scale must be 4, 8 or 16, got {self.scale}")


def latent_spread(latent: torch.Tensor) -> float:
    """How much a (B, C, h, w) latent varies over the batch's images and positions: each channel's standard
    deviation, averaged. Near 0 it is one constant for every image and carries nothing (what a saturated tanh
    gave)."""
    return float(latent.detach().float().std(dim=(0, 2, 3)).mean())


def _group_norm(width: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, width), width)


class _ResBlock(nn.Module):
    def __init__(self, width: int, norm: bool = False):
        super().__init__()
        layers = [nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1)]
        self.body = nn.Sequential(*([_group_norm(width)] if norm else []), *layers)

    def forward(self, x):
        return x + self.body(x)


class _Encoder(nn.Module):
    """PixelUnshuffle(4), a 3x3 conv, residual blocks, stride-2 convs down to 1/scale, a 1x1 out.

    norm: a group norm opens each residual block and precedes the 1x1 out, so the output's size follows the
    out conv's weights alone rather than the product of every layer's gain."""

    def __init__(self, in_channels: int, width: int, blocks: int, scale: int, out_channels: int, norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.PixelUnshuffle(4), nn.Conv2d(in_channels * 16, width, 3, padding=1)]
        layers += [_ResBlock(width, norm) for _ in range(blocks)]
        factor = 4
        while factor < scale:
            layers += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(), _ResBlock(width, norm)]
            factor *= 2
        if norm:
            layers.append(_group_norm(width))
        layers.append(nn.Conv2d(width, out_channels, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class LatentPrior(Prior):
    kind = "latent"

    def __init__(self, config: LatentPriorConfig | None = None):
        super().__init__()
        self.config = c = config or LatentPriorConfig()
        image_channels = 3 * c.in_views
        self.cond_encoder = _Encoder(image_channels, c.encoder_width, c.encoder_blocks, c.scale, c.cond_channels)
        # Stage 1 only: sees the sharp image too. Kept in the checkpoint so training can resume and
        # fine-tune against it; inference never calls it.
        self.target_encoder = _Encoder(
            image_channels + 3,
            c.encoder_width,
            c.encoder_blocks,
            c.scale,
            c.latent_channels,
            norm=c.target_norm == "l2",
        )
        from diffusers import DDPMScheduler, UNet2DModel  # here, not at import: see prior/base.py

        levels = len(c.denoiser_channels)
        self.denoiser = UNet2DModel(
            in_channels=c.latent_channels + c.cond_channels,
            out_channels=c.latent_channels,
            block_out_channels=c.denoiser_channels,
            down_block_types=("DownBlock2D",) * levels,
            up_block_types=("UpBlock2D",) * levels,
            layers_per_block=c.denoiser_layers,
            norm_num_groups=min(8, c.denoiser_channels[0]),
            add_attention=False,
            mid_block_type="UNetMidBlock2D" if c.denoiser_mid_block else None,
        )
        self.train_scheduler = DDPMScheduler(
            num_train_timesteps=c.train_timesteps,
            beta_schedule="linear",
            beta_start=c.beta_start,
            beta_end=c.beta_end,
            prediction_type=c.prediction_type,
            clip_sample=True,
            clip_sample_range=1.0,
            timestep_spacing="trailing",
        )

    # -- geometry -------------------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return self.config.latent_channels

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to this: the latent scale times the denoiser's own downsampling."""
        return self.config.scale * 2 ** (len(self.config.denoiser_channels) - 1)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        m = self.size_multiple
        s = self.config.scale
        return (self.config.latent_channels, -(-height // m) * m // s, -(-width // m) * m // s)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.size_multiple)

    # -- inference ------------------------------------------------------------------------------------
    def condition(self, blurry: torch.Tensor) -> torch.Tensor:
        return self.cond_encoder(self._pad(blurry))

    def forward(
        self,
        blurry: torch.Tensor,
        steps: int = DEFAULT_PRIOR_STEPS,
        sampler: str = DEFAULT_SAMPLER,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cond = self.condition(blurry)

        def denoise(z, t):
            return self.denoiser(torch.cat([z, cond], dim=1), t).sample

        shape = (self.config.latent_channels, *cond.shape[-2:])
        return self._sample(denoise, shape, cond.shape[0], steps, sampler, eta, generator, noise, cond)

    # -- training -------------------------------------------------------------------------------------
    def target_latent(self, sharp: torch.Tensor, blurry: torch.Tensor) -> torch.Tensor:
        """Stage 1: the latent the diffusion model must learn to produce, from the sharp image."""
        return self.bound_target(self.target_encoding(sharp, blurry))

    def target_encoding(self, sharp: torch.Tensor, blurry: torch.Tensor) -> torch.Tensor:
        """The target encoder's output before its bound (what a tanh saturates on when it grows)."""
        return self.target_encoder(torch.cat([self._pad(sharp), self._pad(blurry)], dim=1))

    def bound_target(self, encoding: torch.Tensor) -> torch.Tensor:
        """``target_encoding``'s output bounded to [-1, 1] as ``config.target_norm`` says."""
        if self.config.target_norm == "tanh":
            return torch.tanh(encoding)
        return F.normalize(encoding, dim=1, eps=1e-6)

    @torch.no_grad()
    def target_spread(self, sharp: torch.Tensor, blurry: torch.Tensor) -> float:
        """``latent_spread`` of the target latent; training logs it so a saturated encoder shows in its first
        lines, not after a day."""
        return latent_spread(self.target_latent(sharp, blurry))

    def diffusion_loss(
        self, blurry: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Stage 2: the denoising loss at a random timestep (MSE against x_0 or the noise)."""
        cond = self.condition(blurry)
        b = target.shape[0]
        device = target.device
        # Drawn where the generator lives (a CUDA run seeds a CUDA generator); the CPU's draws stay as they were.
        drawn_on = draw_device(generator)
        t = torch.randint(0, self.config.train_timesteps, (b,), generator=generator, device=drawn_on).to(device)
        eps = torch.randn(target.shape, generator=generator, device=drawn_on).to(device, target.dtype)
        noisy = self.train_scheduler.add_noise(target, eps, t)
        out = self.denoiser(torch.cat([noisy, cond], dim=1), t).sample
        goal = target if self.config.prediction_type == "sample" else eps
        return F.mse_loss(out, goal)
