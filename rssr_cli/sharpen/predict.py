"""One call of the guided model on arrays in stored units (standardization by the scene's band statistics)."""

from __future__ import annotations

import numpy as np
import torch

from .model import GUIDE_RESOLUTION_M, GuidedSharpener, band_index


def sharpen_array(
    model: GuidedSharpener,
    name: str,
    band_up: np.ndarray,
    guides: np.ndarray,
    *,
    scale: float,
    guide_ratio: float,
    band_stats: tuple[float, float],
    guide_stats: np.ndarray,
) -> np.ndarray:
    """band_up [H, W] and guides [G, H, W] on the output grid -> the sharpened band [H, W], stored units.

    guide_stats: [G, 2] (mean, std); scale: band native / output pixel; guide_ratio: guide information / output pixel."""
    mean, std = band_stats
    device = next(model.parameters()).device
    z = torch.from_numpy(((band_up - mean) / std).astype(np.float32))[None, None].to(device)
    g = ((guides - guide_stats[:, 0, None, None]) / guide_stats[:, 1, None, None]).astype(np.float32)
    with torch.inference_mode():
        out = model(
            z, torch.from_numpy(g)[None].to(device), torch.tensor([band_index(name)], device=device),
            torch.tensor([scale], device=device), torch.tensor([guide_ratio], device=device),
        )  # fmt: skip
    return out[0, 0].float().cpu().numpy() * std + mean


def guide_ratio_for(output_pixel: float) -> float:
    """Guide information / output pixel: the 10 m guides carry 10 m detail (copied, or super-resolved from 10 m)."""
    return max(GUIDE_RESOLUTION_M, output_pixel) / output_pixel
