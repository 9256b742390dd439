"""Diffusion priors: the interface, this project's ``latent`` prior, the paper's ``ldm-sr`` prior, ``none``."""

from __future__ import annotations

from .base import SAMPLERS, Prior, make_sampler, noise_draws
from .latent import LatentPrior, LatentPriorConfig
from .ldm_sr import LDMSuperResolutionPrior

PRIOR_KINDS: tuple[str, ...] = ("latent", "ldm-sr", "none")


def build_prior(
    kind: str,
    config: dict | None = None,
    in_views: int = 1,
    source: str | None = None,
    revision: str | None = None,
) -> Prior | None:
    """A prior from its registry name. ``latent`` is built fresh from ``config`` (its weights come from
    the checkpoint); ``ldm-sr`` is loaded, frozen, from ``source`` (a Hub id at ``revision``, or a folder);
    ``none`` is None."""
    if kind == "none":
        return None
    if kind == "latent":
        cfg = LatentPriorConfig.from_dict({**(config or {}), "in_views": in_views})
        return LatentPrior(cfg)
    if kind == "ldm-sr":
        return LDMSuperResolutionPrior.from_pretrained(source or LDMSuperResolutionPrior.default_source, revision)
    raise ValueError(f"unknown prior {kind!r}; choose from {PRIOR_KINDS}")


__all__ = [
    "PRIOR_KINDS",
    "SAMPLERS",
    "LDMSuperResolutionPrior",
    "LatentPrior",
    "LatentPriorConfig",
    "Prior",
    "build_prior",
    "make_sampler",
    "noise_draws",
]
