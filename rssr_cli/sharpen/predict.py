"""One call of the guided model on arrays in stored units (standardization by the scene's band statistics)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from rssr_cli.sharpen.bands import GUIDE_RESOLUTION_M
from rssr_cli.sharpen.bounds import bound_to_native
from rssr_cli.sharpen.degrade import psf_sigma, resample_for_sharpener, seen_by_native_pixels
from rssr_cli.sharpen.model import GuidedSharpener, band_index


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
            z,
            torch.from_numpy(g)[None].to(device),
            torch.tensor([band_index(name)], device=device),
            torch.tensor([scale], device=device),
            torch.tensor([guide_ratio], device=device),
        )
    return out[0, 0].float().cpu().numpy() * std + mean


def guide_ratio_for(output_pixel: float) -> float:
    """Guide information / output pixel: the 10 m guides carry 10 m detail (copied, or super-resolved from 10 m)."""
    return max(GUIDE_RESOLUTION_M, output_pixel) / output_pixel


def back_project(
    out: np.ndarray, native: np.ndarray, native_valid: np.ndarray, ys: np.ndarray, xs: np.ndarray, scale: float
) -> np.ndarray:
    """One step of iterative back-projection (Irani & Peleg 1991) under the sensor's PSF: the output, blurred by
    the MTF-matched Gaussian of its scale and sampled at the native pixel centres, is compared with the native
    pixels; the residual, resampled (bicubic) onto the output, is added. This makes the band consistent with what
    its native pixels measured (a Gaussian footprint, not a box), which also lowers its error (Wald, BENCHMARKS.md).

    out [H, W] on the output grid; native [h, w] with validity; ys [H], xs [W]: output pixel centres in native
    pixel coordinates (evenly spaced)."""
    dy = float(ys[1] - ys[0]) if len(ys) > 1 else 1.0 / scale
    dx = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0 / scale
    y0, x0 = float(ys[0]) - 0.5 * dy, float(xs[0]) - 0.5 * dx
    at_native = seen_by_native_pixels(out, scale, (y0, x0), (dy, dx), native.shape)
    residual = np.where(native_valid, native - at_native, 0.0).astype(np.float32)
    correction = resample_for_sharpener(
        torch.from_numpy(residual)[None, None], torch.from_numpy(ys).float()[None], torch.from_numpy(xs).float()[None]
    )
    return out + correction[0, 0].numpy()


def consistent_and_bounded(
    out: np.ndarray,
    native: np.ndarray,
    native_valid: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    scale: float,
    margin: float,
    guides: np.ndarray,
    guide_std: np.ndarray,
    guide_valid: Optional[np.ndarray] = None,
) -> np.ndarray:
    """The guided output's last two steps, in the product and in Wald's protocol alike: back-projection onto the native
    pixels, then each pixel bounded by its native neighbourhood, widened where the guides [G, H, W] (on the output
    grid, valid where guide_valid: all by default; guide_std [G]: their std over the scene) go beyond theirs
    (bounds.py; margin in stored units)."""
    out = back_project(out, native, native_valid, ys, xs, scale)
    rows = np.clip(np.floor(ys).astype(int), 0, native.shape[0] - 1)
    cols = np.clip(np.floor(xs).astype(int), 0, native.shape[1] - 1)
    if guide_valid is None:
        guide_valid = np.ones(out.shape, bool)
    return bound_to_native(out, native, native_valid, rows, cols, margin, guides, guide_valid, guide_std)


def back_projection_halo(scale: float) -> int:
    """Output pixels a tile needs around its core so that back_project's result there is the whole scene's: the
    PSF's reach (3 sigma) twice plus the bicubic support (2 native pixels)."""
    return int(np.ceil(2 * 3 * psf_sigma(scale) + 2 * scale)) + 2
