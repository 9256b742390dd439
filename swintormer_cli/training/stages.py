"""The losses of the training stages and what each one trains (DiffIR style).

encoder   (only when fine-tuning from an inference export, which leaves the target encoder out) a new target
          encoder learns, with everything else frozen, to give the restorer a latent that restores the sharp
          image and that stays near what the trained diffusion model samples, so the next stages can build
          on both;
restorer  the Swintormer learns with a prior computed by the prior's *target encoder* from the sharp and
          blurry images, or with the given maps of a frozen prior (ldm-sr's, cached per image), or with no prior
          at all (the plain network, the ablation baseline);
prior     the diffusion model learns to produce that target latent from the blurry image alone: the
          denoising loss at a random timestep, plus an L1 between a few-step DDIM sample (with gradients)
          and the target;
joint     the Swintormer and the diffusion model are fine-tuned together on the restored image, with the
          sampled prior in the loop and the target latent still anchoring it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..defaults import DEFAULT_SAMPLER
from ..models import Swintormer
from ..prior import Prior
from .config import STAGE_ORDER


def trainable_modules(stage: str, model: Swintormer, prior: Prior | None) -> list[nn.Module]:
    if stage == "restorer":
        return [model] + ([prior.target_encoder] if prior is not None else [])
    if prior is None:
        raise ValueError(f"stage {stage!r} needs a prior")
    if stage == "encoder":
        return [prior.target_encoder]
    if stage == "prior":
        return [prior.cond_encoder, prior.denoiser]
    if stage == "joint":
        return [model, prior.cond_encoder, prior.denoiser]
    raise ValueError(f"unknown stage {stage!r}; choose from {STAGE_ORDER}")


def set_trainable(stage: str, model: Swintormer, prior: Prior | None) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze the stage's modules; returns their parameters."""
    for module in (model, prior):
        if module is not None:
            module.requires_grad_(False)
    params: list[nn.Parameter] = []
    for module in trainable_modules(stage, model, prior):
        module.requires_grad_(True)
        params += list(module.parameters())
    return params


def image_loss(restored: torch.Tensor, sharp: torch.Tensor, frequency_weight: float = 0.0) -> torch.Tensor:
    """L1 on the pixels, plus (``frequency_weight`` > 0) an L1 on the real and imaginary parts of their 2-D
    FFTs, as MIMO-UNet and its successors train: real defocus flattens the high frequencies, which a pixel L1
    alone weighs little (a soft edge costs few pixels)."""
    loss = F.l1_loss(restored, sharp)
    if frequency_weight > 0:
        # In fp32: the spectrum's large DC term would lose the small high-frequency ones in bf16.
        spectrum = torch.fft.rfft2(restored.float() - sharp.float(), norm="backward")
        loss = loss + frequency_weight * torch.view_as_real(spectrum).abs().mean()
    return loss


def restorer_loss(
    model: Swintormer,
    prior: Prior | None,
    blurry: torch.Tensor,
    sharp: torch.Tensor,
    prior_map: torch.Tensor | None = None,
    frequency_weight: float = 0.0,
) -> torch.Tensor:
    if prior_map is not None:
        guide = prior_map
    else:
        guide = prior.target_latent(sharp, blurry) if prior is not None else None
    return image_loss(model(blurry, guide), sharp, frequency_weight)


def encoder_loss(
    model: Swintormer,
    prior: Prior,
    blurry: torch.Tensor,
    sharp: torch.Tensor,
    generator: torch.Generator,
    sample_steps: int = 4,
    latent_weight: float = 1.0,
    frequency_weight: float = 0.0,
) -> torch.Tensor:
    target = prior.target_latent(sharp, blurry)
    loss = image_loss(model(blurry, target), sharp, frequency_weight)
    if latent_weight > 0:
        # The anchor to the trained sampler: without it the new encoder may invent a latent space the
        # diffusion model has never produced, and the prior stage would have to learn it from the start.
        with torch.no_grad():
            sampled = prior(blurry, steps=sample_steps, sampler=DEFAULT_SAMPLER, eta=0.0, generator=generator)
        loss = loss + latent_weight * F.l1_loss(target, sampled)
    return loss


def prior_loss(
    prior: Prior,
    blurry: torch.Tensor,
    sharp: torch.Tensor,
    generator: torch.Generator,
    sample_steps: int = 4,
    latent_weight: float = 1.0,
) -> torch.Tensor:
    with torch.no_grad():
        target = prior.target_latent(sharp, blurry)
    loss = prior.diffusion_loss(blurry, target, generator=generator)
    if sample_steps > 0 and latent_weight > 0:
        sampled = prior(blurry, steps=sample_steps, sampler=DEFAULT_SAMPLER, eta=0.0, generator=generator)
        loss = loss + latent_weight * F.l1_loss(sampled, target)
    return loss


def joint_loss(
    model: Swintormer,
    prior: Prior,
    blurry: torch.Tensor,
    sharp: torch.Tensor,
    generator: torch.Generator,
    sample_steps: int = 4,
    latent_weight: float = 1.0,
    frequency_weight: float = 0.0,
) -> torch.Tensor:
    with torch.no_grad():
        target = prior.target_latent(sharp, blurry)
    sampled = prior(blurry, steps=sample_steps, sampler=DEFAULT_SAMPLER, eta=0.0, generator=generator)
    loss = image_loss(model(blurry, sampled), sharp, frequency_weight)
    if latent_weight > 0:
        loss = loss + latent_weight * F.l1_loss(sampled, target)
    return loss


class StageLoss(nn.Module):
    """One module whose forward is the current stage's loss, so DistributedDataParallel can wrap it."""

    def __init__(
        self,
        model: Swintormer,
        prior: Prior | None,
        sample_steps: int = 4,
        latent_weight: float = 1.0,
        frequency_weight: float = 0.0,
    ):
        super().__init__()
        self.model = model
        self.prior = prior
        self.stage = "restorer"
        self.sample_steps = sample_steps
        self.latent_weight = latent_weight
        self.frequency_weight = frequency_weight

    def forward(
        self,
        blurry: torch.Tensor,
        sharp: torch.Tensor,
        generator: torch.Generator,
        prior_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        fw = self.frequency_weight
        if self.stage == "restorer":
            return restorer_loss(self.model, self.prior, blurry, sharp, prior_map, fw)
        if self.stage == "encoder":
            return encoder_loss(
                self.model, self.prior, blurry, sharp, generator, self.sample_steps, self.latent_weight, fw
            )
        if self.stage == "prior":
            return prior_loss(self.prior, blurry, sharp, generator, self.sample_steps, self.latent_weight)
        return joint_loss(self.model, self.prior, blurry, sharp, generator, self.sample_steps, self.latent_weight, fw)
