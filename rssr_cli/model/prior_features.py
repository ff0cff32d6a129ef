"""Prior feature extraction (Miao et al., JSTARS 2025): a multi-scale pyramid of the operator's HR prior.

The denoiser gets more than a C-band estimate: the operator's HR estimate and its feature map are
turned into one feature map per UNet resolution (full, 1/2, 1/4, ...) by a small stride-2 conv pyramid.
It depends only on the LR window, never on x_t or t, so it runs once per window, not once per step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rssr_cli.model.registry import register


class _ConvBlock(nn.Module):
    """conv-SiLU-conv with a residual: no normalization, so the prior's amplitude reaches the denoiser."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(x)))


@register("prior_pyramid")
class PriorFeatures(nn.Module):
    """[estimate, operator features] at HR -> features at 1, 1/2, ... 1/2^(L-1) of HR (one per UNet level)."""

    def __init__(self, *, in_channels: int, widths: tuple[int, ...] | list[int] = (16, 32, 64)):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, self.widths[0], 3, padding=1), nn.SiLU(), _ConvBlock(self.widths[0])
        )
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w_in, w_out, 3, stride=2, padding=1), nn.SiLU(), _ConvBlock(w_out))
            for w_in, w_out in zip(self.widths[:-1], self.widths[1:])
        )

    def forward(self, estimate: torch.Tensor, features: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(torch.cat([estimate, features], dim=1))
        pyramid = [h]
        for down in self.downs:
            h = down(h)
            pyramid.append(h)
        return pyramid
