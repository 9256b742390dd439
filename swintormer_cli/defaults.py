"""The defaults of what a user chooses for a deblur, in one module that imports nothing heavy.

The command line quotes them in its help (which must not load torch to print), ``InferenceSettings`` applies
them and checks every value (``inference/settings.py``), and the priors sample with them. A model file may name
its own window, shift, prior steps and scale radius (``checkpoint.ModelDefaults``); each of these applies only
where neither the user nor the model gives one.
"""

from __future__ import annotations

DEFAULT_WINDOW = 256
"""The window when neither the user nor the model (its training window) gives one."""
SHIFT_RULE = "3/4 of the window"


def default_shift(window: int) -> int:
    """3/4 of the window: each pixel away from the edges is covered by a window at least twice per axis."""
    return max(1, window * 3 // 4)


SAMPLERS: tuple[str, ...] = ("ddim", "ddpm")
DEFAULT_SAMPLER = "ddim"
"""The sampler of every prior unless asked otherwise (inference, training's sampled maps, costs, caches)."""
DEFAULT_PRIOR_STEPS = 20
"""Prior sampling steps when neither the user nor the model (the steps of the maps it trained on) gives them."""
DEFAULT_SCALE_RADIUS = 5.0
"""The blur radius (px) the restorer is run at when neither the user nor the model names one: a pixel blurred by
r is restored at scale r / 5 (measured for the tiny networks: at r = 8 the gain peaks at scale 1.5, at 16 at
scale 3, at 32 at scale 6; past ~9 px at its own scale a 128-px-trained network gains nothing)."""
MAX_SCALE = 16.0
"""The largest scale a photo may be shrunk by (blur up to ~80 px of radius at ``DEFAULT_SCALE_RADIUS``)."""
DEFAULT_MAX_SCALE = 8.0
"""The largest scale the automatic choice uses unless asked otherwise (blur up to ~40 px of radius)."""
