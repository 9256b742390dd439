"""What every diffusion prior offers the pipeline and the trainer.

A prior turns a blurry image (B, C, H, W) in [0, 1] into a feature map the Swintormer is fused with.
Sampling is stochastic: the noise it consumes can be handed in (``noise``), which is how the tiled
pipeline keeps a result independent of tile order and batch size: it draws noise once for the whole
image's latent grid and gives each tile its crop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

if TYPE_CHECKING:
    # Imported where used: diffusers takes seconds to import, and a run without a prior never needs it.
    from diffusers import DDIMScheduler, DDPMScheduler

from ..defaults import DEFAULT_PRIOR_STEPS, DEFAULT_SAMPLER, SAMPLERS

Sampler = Literal["ddim", "ddpm"]


def draw_device(generator: torch.Generator | None) -> torch.device | str:
    """Where a generator's draws are made: on its own device (a CUDA generator draws on the GPU), else the CPU."""
    return "cpu" if generator is None else generator.device


def noise_draws(steps: int, sampler: str, eta: float) -> int:
    """How many noise tensors a sampling run consumes: the initial latent, then one per step if the
    sampler is stochastic (DDPM always, DDIM when eta > 0)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    stochastic = sampler == "ddpm" or eta > 0
    return 1 + (steps if stochastic else 0)


def make_sampler(train_scheduler: DDPMScheduler, sampler: str, steps: int) -> DDIMScheduler | DDPMScheduler:
    """A fresh inference scheduler (schedulers are stateful) with the training schedule and ``steps``."""
    from diffusers import DDIMScheduler, DDPMScheduler

    if sampler == "ddim":
        scheduler = DDIMScheduler.from_config(train_scheduler.config)
    elif sampler == "ddpm":
        scheduler = DDPMScheduler.from_config(train_scheduler.config)
    else:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not 1 <= steps <= scheduler.config.num_train_timesteps:
        raise ValueError(f"prior steps must be in [1, {scheduler.config.num_train_timesteps}], got {steps}")
    scheduler.set_timesteps(steps)
    return scheduler


def ddpm_step(
    scheduler: DDPMScheduler, model_output: torch.Tensor, t: int, sample: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """One DDPM ancestral step with the caller's noise.

    ``DDPMScheduler.step`` draws its noise itself, with the shape of the tile, which would tie a tile's
    result to the generator's state rather than to the tile's place in the image. This is the same update
    (posterior mean and its "fixed_small" variance, from the scheduler's own ``alphas_cumprod``, timestep
    spacing, prediction type and clipping) with the noise supplied. tests/test_prior.py checks that it
    equals ``DDPMScheduler.step`` given the same noise.
    """
    prev_t = scheduler.previous_timestep(t)
    alpha_prod_t = scheduler.alphas_cumprod[t]
    alpha_prod_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.one
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_prev = 1 - alpha_prod_prev
    current_alpha = alpha_prod_t / alpha_prod_prev
    current_beta = 1 - current_alpha
    if scheduler.config.prediction_type == "epsilon":
        x0 = (sample - beta_prod_t**0.5 * model_output) / alpha_prod_t**0.5
    elif scheduler.config.prediction_type == "sample":
        x0 = model_output
    else:  # v_prediction
        x0 = alpha_prod_t**0.5 * sample - beta_prod_t**0.5 * model_output
    if scheduler.config.clip_sample:
        x0 = x0.clamp(-scheduler.config.clip_sample_range, scheduler.config.clip_sample_range)
    mean = (alpha_prod_prev**0.5 * current_beta / beta_prod_t) * x0 + (
        current_alpha**0.5 * beta_prod_prev / beta_prod_t
    ) * sample
    if t > 0:
        variance = (beta_prod_prev / beta_prod_t * current_beta).clamp(min=1e-20)
        mean = mean + variance**0.5 * noise
    return mean


class Prior(nn.Module):
    """Interface of a diffusion prior."""

    #: registry name, stored in checkpoints
    kind: str = ""
    #: DDIM eta used when none is given (0: deterministic sampling)
    default_eta: float = 0.0
    #: True: the feature map is sampled once over the whole image (``sample_map``) and each tile takes its
    #: crop, as the paper's prior was made; False: sampled tile by tile from the tile alone.
    whole_image: bool = False

    @property
    def channels(self) -> int:
        """Channels of the feature map this prior produces."""
        raise NotImplementedError

    @property
    def scale(self) -> int:
        """The feature map is 1/scale of the (padded) input size."""
        raise NotImplementedError

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of the noise one sampling step needs for an input of height x width."""
        raise NotImplementedError

    def forward(
        self,
        blurry: torch.Tensor,
        steps: int = DEFAULT_PRIOR_STEPS,
        sampler: str = DEFAULT_SAMPLER,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample the prior feature map for ``blurry``.

        noise: optional (noise_draws(steps, sampler, eta), B, *latent_shape) tensor, or a function of the
        draw's index giving (B, *latent_shape) (called once per index, in order); drawn from ``generator``
        when not given.
        """
        raise NotImplementedError

    def _sample(
        self,
        denoise,
        latent_shape: tuple[int, int, int],
        batch: int,
        steps: int,
        sampler: str,
        eta: float,
        generator: torch.Generator | None,
        noise: torch.Tensor | None,
        like: torch.Tensor,
    ) -> torch.Tensor:
        """The sampling loop shared by every prior: ``denoise(z_t, t)`` is the model's output at step t."""
        shape = (noise_draws(steps, sampler, eta), batch, *latent_shape)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=draw_device(generator))
        if callable(noise):
            # Drawn one step at a time (draw i is called in order): a whole image's noise for every step at
            # once would take many times the memory of the latent itself.
            def draw(i: int) -> torch.Tensor:
                return noise(i).to(device=like.device, dtype=like.dtype)
        else:
            if tuple(noise.shape) != shape:
                raise ValueError(f"prior noise has shape {tuple(noise.shape)}, expected {shape}")
            noise = noise.to(device=like.device, dtype=like.dtype)
            draw = noise.__getitem__
        scheduler = make_sampler(self.train_scheduler, sampler, steps)
        z = draw(0) * scheduler.init_noise_sigma
        for i, t in enumerate(scheduler.timesteps):
            out = denoise(scheduler.scale_model_input(z, t), t)
            step_noise = draw(i + 1) if shape[0] > 1 else None
            if sampler == "ddim":
                z = scheduler.step(out, t, z, eta=eta, variance_noise=step_noise).prev_sample
            else:
                z = ddpm_step(scheduler, out, int(t), z, step_noise)
        return z
