"""Padding an NCHW tensor up to a multiple of a size, the same way everywhere it is needed."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` so that H and W are multiples of ``multiple``.

    Reflection keeps image statistics at the border; inputs too small to reflect fall back to replication.
    The network, the priors and the tiler all pad through here, so a tile the tiler padded is exactly
    what the network would have made of the same image on its own.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)
