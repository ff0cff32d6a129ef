"""SR3-style conditional UNet (Saharia et al. 2021) with the prior pyramid injected at every resolution.

Input = concat[x_t, HR estimate, full-resolution prior features]; the noise level enters each residual
block as a scale-shift of its normalized activations (improved DDPM, Nichol & Dhariwal 2021), and the
prior pyramid enters each block at its own resolution as a *spatial* scale-shift (SFT, Wang et al. 2018).

Why spatial scale-shift rather than concatenation at every level: concat widens the input of every
conv at every step, while the SFT maps depend only on the window, so `condition()` computes all of them
once per window and a denoising step pays one multiply-add per block for the whole prior; the maps are
per pixel (unlike a global FiLM vector), so the prior's spatial detail reaches every resolution. The
full-resolution features are also concatenated at the input, as in SR3 / NeurOp-Diff.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, NamedTuple, Sequence, cast

import torch
from torch import nn
from torch.nn import functional as F

from rssr_cli.model.registry import register


class Condition(NamedTuple):
    """What the denoiser needs from one LR window, computed once per window and padded to the UNet's multiple."""

    estimate: torch.Tensor  # [N, C, Hp, Wp] operator HR estimate (standardized units)
    features: torch.Tensor  # [N, P0, Hp, Wp] full-resolution prior features (concatenated to x_t)
    modulations: tuple[torch.Tensor, ...]  # per residual block: [N, 2*ch, h, w] spatial (scale, shift)
    size: tuple[int, int]  # (H, W) before padding


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right to a multiple of `multiple` (reflect where the image is large enough, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of a continuous noise level t in [0, 1), scaled to 0..1000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """GN-SiLU-conv, GN then noise-level scale-shift then prior SFT, SiLU-conv; residual (zero-init last conv)."""

    def __init__(self, c_in: int, c_out: int, *, emb_dim: int, prior_channels: int, level: int, dropout: float = 0.0):
        super().__init__()
        self.level = level
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.prior = nn.Conv2d(prior_channels, 2 * c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(cast(torch.Tensor, self.conv2.bias))  # bias=True: never None
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        t_scale, t_shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        p_scale, p_shift = modulation.chunk(2, dim=1)
        h = self.norm2(h) * (1 + t_scale) + t_shift
        h = h * (1 + p_scale) + p_shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


@register("sr3_unet")
class UNet(nn.Module):
    """Noise-conditioned UNet over [x_t, estimate, prior features]; predicts the parameterization's target."""

    def __init__(
        self,
        *,
        channels: int = 1,
        prior_widths: Sequence[int] = (16, 32, 64),
        base: int = 32,
        mults: Sequence[int] = (1, 2, 4),
        blocks: int = 1,
        mid_blocks: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(prior_widths) != len(mults):
            raise ValueError(f"need one prior width per UNet level: {len(prior_widths)} widths, {len(mults)} levels")
        self.channels = channels
        self.levels = len(mults)
        self.multiple = 2 ** (self.levels - 1)
        widths = [base * m for m in mults]
        emb_dim = 4 * base
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(2 * channels + prior_widths[0], widths[0], 3, padding=1)

        def block(c_in: int, c_out: int, level: int) -> ResBlock:
            return ResBlock(
                c_in, c_out, emb_dim=emb_dim, prior_channels=prior_widths[level], level=level, dropout=dropout
            )

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = widths[0]
        for level, w in enumerate(widths):
            self.down.append(nn.ModuleList(block(c if i == 0 else w, w, level) for i in range(blocks)))
            c = w
            if level < self.levels - 1:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        self.mid = nn.ModuleList(block(c, c, self.levels - 1) for _ in range(mid_blocks))
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(self.levels)):
            w = widths[level]
            self.up.append(nn.ModuleList(block(2 * w if i == 0 else w, w, level) for i in range(blocks)))
            if level > 0:
                self.upsample.append(nn.Conv2d(w, widths[level - 1], 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(widths[0]), widths[0])
        self.conv_out = nn.Conv2d(widths[0], channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(cast(torch.Tensor, self.conv_out.bias))  # bias=True: never None

    def _blocks(self) -> Iterator[ResBlock]:
        """Residual blocks in the order forward() uses them (and their modulations are stored)."""
        for level_blocks in self.down:
            yield from cast(Iterable[ResBlock], level_blocks)
        yield from cast(Iterable[ResBlock], self.mid)
        for level_blocks in self.up:
            yield from cast(Iterable[ResBlock], level_blocks)

    def condition(self, estimate: torch.Tensor, pyramid: Sequence[torch.Tensor], size: tuple[int, int]) -> Condition:
        """Precompute every block's spatial scale-shift from the prior pyramid: once per window."""
        if len(pyramid) != self.levels:
            raise ValueError(f"prior pyramid has {len(pyramid)} levels, the UNet {self.levels}")
        modulations = tuple(blk.prior(pyramid[blk.level]) for blk in self._blocks())
        return Condition(estimate, pyramid[0], modulations, (int(size[0]), int(size[1])))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        """x_t [N,C,H,W] (unpadded), t [N] continuous noise level in [0, 1) -> [N,C,H,W]."""
        h_out, w_out = cond.size
        x = pad_to_multiple(x_t, self.multiple)
        emb = self.time_mlp(timestep_embedding(t, self.base))
        emb = F.silu(emb)
        mods = iter(cond.modulations)
        h = self.conv_in(torch.cat([x, cond.estimate.to(x.dtype), cond.features.to(x.dtype)], dim=1))
        skips = []
        for level, level_blocks in enumerate(self.down):
            for blk in cast(nn.ModuleList, level_blocks):
                h = blk(h, emb, next(mods))
            skips.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)
        for blk in self.mid:
            h = blk(h, emb, next(mods))
        for i, level_blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in cast(nn.ModuleList, level_blocks):
                h = blk(h, emb, next(mods))
            if i < self.levels - 1:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out[..., :h_out, :w_out]
