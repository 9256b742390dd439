"""Attention layers of the Swintormer: shifted-window attention, channel attention, and their mix.

Everything works on NCHW feature maps of any height and width. Window attention pads the map up to a
multiple of the window internally and masks the padded positions out of every softmax, so the result for
the real pixels does not depend on how much padding a given size needed.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttentionMode = Literal["mixed", "channel", "window"]
ATTENTION_MODES: tuple[str, ...] = ("mixed", "channel", "window")

# Added to the logits of key positions a query may not see. Finite (not -inf) so that a padded query whose
# whole window is padding still gets a defined (ignored) row instead of NaN, and small enough for fp16.
_MASKED = -1.0e4


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of an NCHW map (Restormer's "WithBias" variant)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelAttention(nn.Module):
    """Restormer's MDTA core: attention across channels ("transposed"), global over the map.

    q and k are L2-normalised over space, so the logits are cosine similarities scaled by a learnable
    per-head temperature. Cost is linear in the number of pixels.
    """

    def __init__(self, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, c, h, w = q.shape
        # (B, heads, d, HW) as views of the pixel-major (channels-last) layout: no copy of the map is made
        # before the products, and the result is written back pixel-major.
        q, k, v = (
            t.permute(0, 2, 3, 1).reshape(b, h * w, self.heads, c // self.heads).permute(0, 2, 3, 1) for t in (q, k, v)
        )
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        out = v.transpose(-2, -1) @ attn.transpose(-2, -1)  # (B, heads, HW, d)
        return out.permute(0, 2, 1, 3).reshape(b, h, w, c).permute(0, 3, 1, 2)


def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def _partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, Hp, Wp) -> (B, nWh*nWw, C, window*window)."""
    b, c, hp, wp = x.shape
    x = x.reshape(b, c, hp // window, window, wp // window, window)
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (hp // window) * (wp // window), c, window * window)


class WindowAttention(nn.Module):
    """Swin-style multi-head self-attention inside non-overlapping windows, optionally cyclically shifted.

    Uses a learned relative position bias. With a shift, the map is rolled by ``shift`` pixels and a mask
    keeps pixels that the roll brought together from opposite borders from attending to each other.
    Positions added by padding to a multiple of the window are masked out as keys.
    """

    def __init__(self, heads: int, window: int, shift: int = 0):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift must be in [0, window), got {shift} for window {window}")
        self.heads = heads
        self.window = window
        self.shift = shift
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        self._bias_cache: dict[tuple, torch.Tensor] = {}

    def _visibility_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        """Additive mask (nW, L, L) for an h x w map, or None when every query may see its whole window."""
        win, shift = self.window, self.shift
        hp, wp = -(-h // win) * win, -(-w // win) * win
        if shift == 0 and (hp, wp) == (h, w):
            return None
        key = (h, w, device)
        cached = self._mask_cache.get(key)
        if cached is not None:
            return cached
        # Label each pixel by the region it came from; padding gets its own label and is never visible.
        region = torch.zeros(1, 1, hp, wp, device=device)
        if shift:
            label = 1
            for hs in (slice(0, hp - win), slice(hp - win, hp - shift), slice(hp - shift, hp)):
                for ws in (slice(0, wp - win), slice(wp - win, wp - shift), slice(wp - shift, wp)):
                    region[..., hs, ws] = label
                    label += 1
            # The roll moves pixels; labels describe where the rolled pixels are now, which is what the
            # partition sees, so label the rolled grid directly (the standard Swin construction).
        padded = torch.zeros(1, 1, hp, wp, dtype=torch.bool, device=device)
        padded[..., h:, :] = True
        padded[..., :, w:] = True
        if shift:
            padded = torch.roll(padded, shifts=(-shift, -shift), dims=(2, 3))
        region_w = _partition(region, win)[0, :, 0]  # (nW, L)
        padded_w = _partition(padded.float(), win)[0, :, 0] > 0.5
        blocked = (region_w[:, :, None] != region_w[:, None, :]) | padded_w[:, None, :]
        mask = torch.zeros(blocked.shape, device=device).masked_fill(blocked, _MASKED)
        if len(self._mask_cache) > 16:
            self._mask_cache.clear()
        self._mask_cache[key] = mask
        return mask

    def _attention_bias(self, h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The relative position bias plus the visibility mask, (nW or 1, heads, L, L), in ``dtype``.

        At inference it is built once per map size: it depends on the weights only through the bias table,
        whose version counter is part of the key, so loading new weights cannot reuse a stale one."""
        table = self.relative_position_bias
        cacheable = not (torch.is_grad_enabled() and table.requires_grad)
        key = (h, w, dtype, device, table._version, table.data_ptr())
        if cacheable and key in self._bias_cache:
            return self._bias_cache[key]
        L = self.window * self.window
        bias = table[self.relative_position_index.reshape(-1)].reshape(L, L, self.heads).permute(2, 0, 1)
        mask = self._visibility_mask(h, w, device)
        combined = (bias[None] if mask is None else bias[None] + mask[:, None]).to(dtype)
        if cacheable:
            if len(self._bias_cache) > 16:
                self._bias_cache.clear()
            self._bias_cache[key] = combined
        return combined

    def _windows(self, t: torch.Tensor, hp: int, wp: int) -> torch.Tensor:
        """(B, C, H, W) -> (B, nW, heads, L, d): padded, rolled, and cut into windows with one copy."""
        b, c, h, w = t.shape
        win, shift = self.window, self.shift
        if (hp, wp) != (h, w):
            t = F.pad(t, (0, wp - w, 0, hp - h))
        if shift:
            t = torch.roll(t, shifts=(-shift, -shift), dims=(2, 3))
        t = t.reshape(b, self.heads, c // self.heads, hp // win, win, wp // win, win)
        t = t.permute(0, 3, 5, 1, 4, 6, 2)  # (B, nWh, nWw, heads, win, win, d)
        return t.reshape(b, (hp // win) * (wp // win), self.heads, win * win, c // self.heads)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, c, h, w = q.shape
        win, shift = self.window, self.shift
        hp, wp = -(-h // win) * win, -(-w // win) * win
        d = c // self.heads
        q, k, v = (self._windows(t, hp, wp) for t in (q, k, v))
        # Written out rather than through scaled_dot_product_attention: with a mask, its CPU path scans
        # every row for full masking (all/where/isneginf), a tenth of the network's time at this size.
        attn = (q * d**-0.5) @ k.transpose(-2, -1) + self._attention_bias(h, w, q.dtype, q.device)
        out = attn.softmax(dim=-1) @ v  # (B, nW, heads, L, d)
        # Back to the map, pixel-major (channels-last), the layout the convolutions around run fastest in.
        out = out.reshape(b, hp // win, wp // win, self.heads, win, win, d).permute(0, 1, 4, 2, 5, 3, 6)
        out = out.reshape(b, hp, wp, c).permute(0, 3, 1, 2)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(2, 3))
        return out[..., :h, :w]


class MixedAttention(nn.Module):
    """The Swintormer attention: q, k, v from a 1x1 conv and a 3x3 depth-wise conv over the whole map,
    then (mode ``mixed``) half the channels through window attention and half through channel attention,
    concatenated and projected by a 1x1 conv. ``window`` and ``channel`` modes give all channels to one
    branch (the ablations)."""

    def __init__(self, dim: int, heads: int, mode: AttentionMode, window: int, shift: int, bias: bool):
        super().__init__()
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
        self.window_dim = {"mixed": dim // 2, "window": dim, "channel": 0}[mode]
        self.channel_dim = dim - self.window_dim
        for part in (self.window_dim, self.channel_dim):
            if part % heads:
                raise ValueError(f"{part} attention channels do not split into {heads} heads (dim={dim})")
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dw = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.window_attn = WindowAttention(heads, window, shift) if self.window_dim else None
        self.channel_attn = ChannelAttention(heads) if self.channel_dim else None
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        split = (self.window_dim, self.channel_dim)
        parts = []
        if self.window_attn is not None and self.channel_attn is not None:
            (qw, qc), (kw, kc), (vw, vc) = (t.split(split, dim=1) for t in (q, k, v))
            parts = [self.window_attn(qw, kw, vw), self.channel_attn(qc, kc, vc)]
        elif self.window_attn is not None:
            parts = [self.window_attn(q, k, v)]
        else:
            parts = [self.channel_attn(q, k, v)]
        return self.project_out(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])


def _part(bias: torch.Tensor | None, part: slice) -> torch.Tensor | None:
    return None if bias is None else bias[part]


class GatedFeedForward(nn.Module):
    """Restormer's GDFN: 1x1 expand, 3x3 depth-wise, GELU gate, 1x1 project."""

    def __init__(self, dim: int, expansion: float, bias: bool):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The gate and the value half each through their own half of the weights: the same numbers as one
        # convolution chunked in two, but each half comes out contiguous, and GELU on a strided chunk of a
        # channels-last map runs about 3x slower than on a contiguous one.
        hidden = self.project_out.in_channels
        halves = []
        for part in (slice(0, hidden), slice(hidden, 2 * hidden)):
            y = F.conv2d(x, self.project_in.weight[part], _part(self.project_in.bias, part))
            dw_weight, dw_bias = self.dwconv.weight[part], _part(self.dwconv.bias, part)
            halves.append(F.conv2d(y, dw_weight, dw_bias, padding=1, groups=hidden))
        gate, value = halves
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    """x + Attn(LN(x)); x + FFN(LN(x))."""

    def __init__(
        self, dim: int, heads: int, mode: AttentionMode, window: int, shift: int, expansion: float, bias: bool
    ):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = MixedAttention(dim, heads, mode, window, shift, bias)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GatedFeedForward(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))
