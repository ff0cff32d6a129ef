"""One call of the guided model on arrays in stored units (standardization by the scene's band statistics)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from rssr_cli.sharpen.bands import GUIDE_RESOLUTION_M
from rssr_cli.sharpen.bounds import bound_to_native
from rssr_cli.sharpen.degrade import pixel_aggregate, resample_for_sharpener
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
    """One step of iterative back-projection (Irani & Peleg 1991) under the pixel's aggregate: the output, averaged
    over each native pixel's footprint (degrade.pixel_aggregate, exact area weights), is compared with the native
    pixel; the residual, resampled (bicubic) onto the output, is added in full. The band's block mean then matches
    what its native pixels measured, whatever blur the sensor added on top of the aggregate.

    Why the box and not the sensor's Gaussian (MTF 0.25 at the native Nyquist, degrade.psf_sigma, the rule before
    issue 20's measurement): the network already returns the conditional mean over the degradation family it was
    trained on (system MTF 0.12-0.45, and the box alone), so projecting it under a blur stronger than most of those
    undoes a blur the band does not have. Measured with bench/bench_backprojection.py (BENCHMARKS.md), chosen on the
    selection cities (hongkong, bercy; B05 B11 B12 B01 B09) by the worst RMSE ratio to bicubic over Wald's psf and
    box cases, among no projection, Gaussians of MTF 0.25-0.85 at gains 0.25-1 (one or two steps), the box at gains
    0.5-1 (one or two steps) and the box after a Gaussian: the box at full gain, one step: worst 0.81 (the former
    Gaussian 1.22, none 0.96, the best Gaussian 0.82, two box steps 0.83), and a ring share on real bands
    below no projection's on every band (B05: 1.9 %; none 3.4 %, the former Gaussian 8.2 %). Full gain and one
    step: no constant to tune. The evaluation cities (nantes, beirut) confirm it: worst 0.87 (former 1.27, none 1.03).

    out [H, W] on the output grid; native [h, w] with validity; ys [H], xs [W]: output pixel centres in native
    pixel coordinates (evenly spaced); `scale` (native / output pixel) is implied by them and kept for callers."""
    dy = float(ys[1] - ys[0]) if len(ys) > 1 else 1.0 / scale
    dx = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0 / scale
    y0, x0 = float(ys[0]) - 0.5 * dy, float(xs[0]) - 0.5 * dx
    at_native = pixel_aggregate(out, (y0, x0), (dy, dx), native.shape)
    seen = native_valid & np.isfinite(at_native)
    residual = np.where(seen, native - np.where(seen, at_native, 0.0), 0.0).astype(np.float32)
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
    bicubic support of the residual (2 native pixels) plus the footprint of the farthest native pixel it reads
    (1 native pixel, a margin over its half), plus 2 for rounding."""
    return int(np.ceil(3 * scale)) + 2
