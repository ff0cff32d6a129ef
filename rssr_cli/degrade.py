"""The synthetic degradation shared by training and evaluation: anti-aliased bicubic down-sampling (+ optional blur, noise)."""

from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F


def downsample(hr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Anti-aliased bicubic resize of hr [B,C,H,W] to size (h, w), as PIL/MATLAB imresize do for SR benchmarks."""
    return F.interpolate(hr, size=size, mode="bicubic", antialias=True, align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (a sensor-PSF stand-in) with replicate padding."""
    if sigma <= 0:
        return x
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def degrade(
    hr: torch.Tensor,
    size: tuple[int, int],
    *,
    blur_sigma: float = 0.0,
    noise_std: float = 0.0,
    quantize_levels: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """HR -> LR: optional PSF blur, anti-aliased bicubic resize, additive Gaussian noise, quantization."""
    lr = downsample(gaussian_blur(hr, blur_sigma), size)
    if noise_std > 0:
        lr = lr + noise_std * torch.randn(lr.shape, generator=generator, dtype=lr.dtype, device=lr.device)
    if quantize_levels:
        lr = quantize(lr, quantize_levels)
    return lr


def quantize(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Normalized values clipped to [0, 1] and rounded to `levels` steps: a uint8 file (levels 255) stored and
    read back. radiometry.quantize is the numpy twin (tests pin that they agree)."""
    return torch.round(x.clamp(0, 1) * levels) / levels
