"""The synthetic degradation shared by training and evaluation: anti-aliased bicubic down-sampling (+ optional blur, noise)."""

from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F

from rssr_cli.degradation.sensor_degradation import gaussian_blur  # the one PSF (Gaussian, replicate border)


def downsample(hr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Anti-aliased bicubic resize of hr [B,C,H,W] to size (h, w), as PIL/MATLAB imresize do for SR benchmarks."""
    return F.interpolate(hr, size=size, mode="bicubic", antialias=True, align_corners=False)


def degrade(
    hr: torch.Tensor,
    size: tuple[int, int],
    *,
    blur_sigma: float = 0.0,
    noise_std: float = 0.0,
    quantize_levels: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """HR -> LR: optional PSF blur (sensor_degradation's Gaussian), anti-aliased bicubic resize, additive Gaussian
    noise, quantization."""
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
