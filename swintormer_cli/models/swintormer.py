"""The Swintormer: a 4-level U-Net of transformer blocks mixing window and channel attention.

Shape of the network (``paper`` preset, the numbers of the official code):

    input (3 or 6 ch) -> PixelUnshuffle(2) -> 3x3 conv -> dim            level 1, H/2
    encoder levels 1..3 (pixel-unshuffle down), latent level 4 (H/16)
    decoder levels 3..1 (pixel-shuffle up, skip concatenation, 1x1 reduction at levels 3 and 2)
    refinement blocks -> 3x3 conv -> 12 ch -> PixelShuffle(2) -> + input  (residual)

A diffusion prior (a feature map at 1/``prior_scale`` of the input, ``prior_channels`` deep) can be fed to
``forward``; it modulates the features at the stem and at the encoder and decoder levels that run at the
prior's resolution (spatial feature transforms, zero-initialised so training starts from the plain
network). With ``prior_channels = 0`` none of those modules exist.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config_dict import DictConfig
from .attention import ATTENTION_MODES, TransformerBlock
from .padding import pad_to_multiple


@dataclass
class SwintormerConfig(DictConfig):
    in_views: int = 1
    """1: a single RGB image; 2: a dual-pixel pair (left and right views, 6 channels)."""
    dim: int = 48
    encoder_blocks: tuple[int, int, int] = (2, 4, 6)
    latent_blocks: int = 8
    decoder_blocks: tuple[int, int, int] = (6, 4, 2)
    refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion: float = 2.66
    bias: bool = False
    attention: str = "mixed"
    window_size: int = 16
    stem_unshuffle: bool = True
    """Run level 1 at half resolution (Swintormer). False gives Restormer's full-resolution level 1."""
    prior_channels: int = 0
    prior_scale: int = 16
    """The prior map is 1/prior_scale of the input size (2, 4, 8 or 16)."""
    prior_hidden: int = 32

    def __post_init__(self):
        self.encoder_blocks = tuple(self.encoder_blocks)
        self.decoder_blocks = tuple(self.decoder_blocks)
        self.heads = tuple(self.heads)
        if self.in_views not in (1, 2):
            raise ValueError(f"in_views must be 1 or 2, got {self.in_views}")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")
        if self.prior_channels and self.prior_scale not in self.level_scales:
            raise ValueError(f"prior_scale must be one of {self.level_scales}, got {self.prior_scale}")

    @property
    def level_scales(self) -> tuple[int, ...]:
        first = 2 if self.stem_unshuffle else 1
        return tuple(first * 2**i for i in range(4))

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this (the deepest level's scale)."""
        return self.level_scales[-1]

    @property
    def min_window(self) -> int:
        """The smallest inference window this network is used with: two of its padding multiples (a window
        of one would be mostly padding at the deepest level), and never under 32 pixels."""
        return max(32, 2 * self.size_multiple)


_TINY = SwintormerConfig(
    dim=24,
    encoder_blocks=(1, 2, 2),
    latent_blocks=2,
    decoder_blocks=(2, 2, 1),
    refinement_blocks=1,
    heads=(1, 2, 4, 4),
    # 8x8 windows: a third faster than 16x16 on a CPU at this width.
    window_size=8,
)

PRESETS: dict[str, SwintormerConfig] = {
    # The official code's network: 25.2 M parameters.
    "paper": SwintormerConfig(),
    # A GPU-sized network for a few hours of training.
    "small": SwintormerConfig(
        dim=32, encoder_blocks=(1, 2, 3), latent_blocks=4, decoder_blocks=(3, 2, 1), refinement_blocks=2
    ),
    # What a 2-core CPU trains in a couple of hours and runs at a usable speed.
    "tiny": _TINY,
    # `tiny` with channel attention only and no refinement block: 1.43x faster per tile on a 2-core CPU
    # (benchmarks/network_variants.py). At equal training budget channel attention alone scored above the
    # mix (docs/results.md, recipe ablations), the refinement block a little below its cost.
    "tiny-channel": dataclasses.replace(_TINY, attention="channel", refinement_blocks=0),
}

# Not a Swintormer: Restormer's published configuration, built from the same blocks (channel attention,
# full-resolution level 1), so that `swintormer info` can count both with one counter.
REFERENCE_CONFIGS: dict[str, SwintormerConfig] = {
    "restormer": SwintormerConfig(
        attention="channel",
        stem_unshuffle=False,
        encoder_blocks=(4, 6, 6),
        latent_blocks=8,
        decoder_blocks=(6, 6, 4),
        refinement_blocks=4,
    ),
}


def preset(name: str, **overrides) -> SwintormerConfig:
    """A copy of a preset, with fields overridden (e.g. ``preset("tiny", prior_channels=4)``)."""
    table = {**PRESETS, **REFERENCE_CONFIGS}
    if name not in table:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return dataclasses.replace(table[name], **overrides)


class PriorModulation(nn.Module):
    """Spatial feature transform: features * (1 + gamma(prior)) + beta(prior), zero-initialised."""

    def __init__(self, prior_channels: int, hidden: int, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(prior_channels, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, channels * 2, 1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        if prior.shape[-2:] != x.shape[-2:]:
            prior = F.interpolate(prior, size=x.shape[-2:], mode="bilinear", align_corners=False)
        gamma, beta = self.body(prior.to(x.dtype)).chunk(2, dim=1)
        return x * (1 + gamma) + beta


class Downsample(nn.Module):
    def __init__(self, dim: int, bias: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=bias), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, dim: int, bias: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=bias), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


class Swintormer(nn.Module):
    def __init__(self, config: SwintormerConfig | None = None):
        super().__init__()
        config = config or SwintormerConfig()
        self.config = c = config
        dims = [c.dim, c.dim * 2, c.dim * 4, c.dim * 8]
        in_ch = 3 * c.in_views

        def stage(level: int, n: int, dim: int | None = None) -> nn.Sequential:
            width = dim or dims[level]
            return nn.Sequential(
                *[
                    TransformerBlock(
                        width,
                        c.heads[level],
                        c.attention,
                        c.window_size,
                        # Every other block shifts its windows by half a window (Swin).
                        (c.window_size // 2) if i % 2 else 0,
                        c.ffn_expansion,
                        c.bias,
                    )
                    for i in range(n)
                ]
            )

        if c.stem_unshuffle:
            self.stem = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(in_ch * 4, c.dim, 3, padding=1, bias=c.bias))
        else:
            self.stem = nn.Conv2d(in_ch, c.dim, 3, padding=1, bias=c.bias)
        self.encoders = nn.ModuleList([stage(i, n) for i, n in enumerate(c.encoder_blocks)])
        self.downs = nn.ModuleList([Downsample(dims[i], c.bias) for i in range(3)])
        self.latent = stage(3, c.latent_blocks)
        self.ups = nn.ModuleList([Upsample(dims[i + 1], c.bias) for i in range(3)])  # index = target level
        # Levels 3 and 2 reduce the concatenated skip back to their width; level 1 keeps 2*dim (Restormer).
        self.reduces = nn.ModuleList(
            [nn.Identity()] + [nn.Conv2d(dims[i] * 2, dims[i], 1, bias=c.bias) for i in (1, 2)]
        )
        self.decoders = nn.ModuleList(
            [stage(0, c.decoder_blocks[2], dims[0] * 2), stage(1, c.decoder_blocks[1]), stage(2, c.decoder_blocks[0])]
        )
        self.refinement = stage(0, c.refinement_blocks, dims[0] * 2)
        if c.stem_unshuffle:
            self.head = nn.Sequential(nn.Conv2d(dims[0] * 2, 3 * 4, 3, padding=1, bias=c.bias), nn.PixelShuffle(2))
        else:
            self.head = nn.Conv2d(dims[0] * 2, 3, 3, padding=1, bias=c.bias)

        if c.prior_channels:
            level = c.level_scales.index(c.prior_scale)
            self.prior_level = level
            self.prior_stem = PriorModulation(c.prior_channels, c.prior_hidden, c.dim)
            self.prior_encoder = PriorModulation(c.prior_channels, c.prior_hidden, dims[level])
            decoder_width = dims[0] * 2 if level == 0 else dims[level]
            self.prior_decoder = PriorModulation(c.prior_channels, c.prior_hidden, decoder_width)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, 3*in_views, H, W) in [0, 1], any H and W. prior: (B, prior_channels, h, w) or None."""
        c = self.config
        if x.shape[1] != 3 * c.in_views:
            raise ValueError(f"expected {3 * c.in_views} input channels (in_views={c.in_views}), got {x.shape[1]}")
        if c.prior_channels and prior is None:
            raise ValueError("this network was built with a prior (prior_channels > 0) and needs one")
        if not c.prior_channels and prior is not None:
            raise ValueError("this network was built without a prior (prior_channels = 0)")
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x, c.size_multiple)
        if prior is not None and prior.shape[-2:] == (h, w) and inp.shape[-2:] != (h, w):
            # A map at the input's own resolution (ldm-sr's) is padded as the input is, to stay aligned with it.
            prior = pad_to_multiple(prior, c.size_multiple)

        feat = self.stem(inp)
        if prior is not None:
            feat = self.prior_stem(feat, prior)
        skips = []
        for level in range(3):
            if prior is not None and level == self.prior_level:
                feat = self.prior_encoder(feat, prior)
            feat = self.encoders[level](feat)
            skips.append(feat)
            feat = self.downs[level](feat)
        if prior is not None and self.prior_level == 3:
            feat = self.prior_encoder(feat, prior)
        feat = self.latent(feat)
        if prior is not None and self.prior_level == 3:
            feat = self.prior_decoder(feat, prior)
        for level in (2, 1, 0):
            feat = self.ups[level](feat)
            feat = self.reduces[level](torch.cat([feat, skips[level]], dim=1))
            if prior is not None and level == self.prior_level:
                feat = self.prior_decoder(feat, prior)
            feat = self.decoders[level](feat)
        feat = self.refinement(feat)
        residual = inp if c.in_views == 1 else (inp[:, :3] + inp[:, 3:]) / 2
        out = self.head(feat) + residual
        return out[..., :h, :w]


def count_macs(model: nn.Module, size: int = 256, prior: torch.Tensor | None = None) -> float:
    """Multiply-accumulates of one forward pass on a size x size input, from torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    x = torch.zeros(1, 3 * cfg.in_views, size, size)
    if cfg.prior_channels and prior is None:
        s = math.ceil(size / cfg.prior_scale)
        prior = torch.zeros(1, cfg.prior_channels, s, s)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, prior)
    return counter.get_total_flops() / 2


__all__ = [
    "PRESETS",
    "REFERENCE_CONFIGS",
    "Swintormer",
    "SwintormerConfig",
    "count_macs",
    "preset",
]
