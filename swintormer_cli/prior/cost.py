"""What a prior costs: multiply-accumulates of one sampling run, counted by torch's FLOP counter."""

from __future__ import annotations

import torch

from ..defaults import DEFAULT_PRIOR_STEPS, DEFAULT_SAMPLER
from .base import Prior


def prior_macs(
    prior: Prior, size: int = 256, steps: int = DEFAULT_PRIOR_STEPS, sampler: str = DEFAULT_SAMPLER
) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    views = getattr(getattr(prior, "config", None), "in_views", 1)
    x = torch.zeros(1, 3 * views, size, size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        prior(x, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(0))
    return counter.get_total_flops() / 2
