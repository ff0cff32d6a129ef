"""Wald's protocol inputs for one coarse band on one window of its native grid: the band degraded by r, the guide
bands degraded by r and brought onto the band's grid, and the truth (the band itself). Training crops and the
evaluation use this one function, so the model is judged on exactly what it was trained for."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .degrade import centres, degrade, gaussian_blur, psf_sigma, sample_at
from .scene import BandArray

MARGIN = 16  # output px computed around a window and cut away: the window's values do not see the crop's edge


@dataclass(frozen=True)
class WaldInputs:
    lr: np.ndarray  # [h, w] the band degraded by r (on an r-times coarser grid over the region)
    band_up: np.ndarray  # [H, W] lr resampled (bicubic) onto the window
    guides: np.ndarray  # [G, H, W] the guides degraded by r, resampled (bicubic) onto the window
    truth: np.ndarray  # [H, W]
    valid: np.ndarray  # [H, W]
    ratio: float  # nominal r
    lr_window: tuple[float, float, float, float]  # (y0, x0, dy, dx): the window's pixel centres in lr coordinates


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]


def wald_inputs(
    band: BandArray, guides: Sequence[BandArray], ratio: float, window: tuple[int, int, int, int], *, margin: int = MARGIN
) -> WaldInputs:
    """window = (row, col, height, width) on the band's native grid."""
    lr, band_up, lr_window = degraded_band(band, ratio, window, margin=margin)
    return WaldInputs(lr, band_up, guides_on_window(guides, band, ratio, window, margin=margin), *truth_of(band, window), ratio, lr_window)


def truth_of(band: BandArray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    row, col, height, width = window
    return band.values[row : row + height, col : col + width], band.valid[row : row + height, col : col + width]


def _region(shape: tuple[int, int], window: tuple[int, int, int, int], margin: int) -> tuple[int, int, int, int]:
    """(top, left, height, width): the window grown by `margin`, clipped to the array."""
    row, col, height, width = window
    top, left = max(0, row - margin), max(0, col - margin)
    return top, left, min(shape[0], row + height + margin) - top, min(shape[1], col + width + margin) - left


def degraded_band(band: BandArray, ratio: float, window: tuple[int, int, int, int], *, margin: int = MARGIN):
    """(lr, band_up, lr_window): the band over the window's region degraded by `ratio`, and resampled back."""
    row, col, height, width = window
    top, left, rh, rw = _region(band.values.shape, window, margin)
    ny, nx = max(1, round(rh / ratio)), max(1, round(rw / ratio))
    ry, rx = rh / ny, rw / nx  # the LR grid tiles the region exactly
    lr = gaussian_blur(_t(band.values[top : top + rh, left : left + rw]), psf_sigma(ratio))
    lr = sample_at(lr, centres(0.0, ry, ny), centres(0.0, rx, nx), mode="bilinear")
    ys, xs = centres((row - top) / ry, 1.0 / ry, height), centres((col - left) / rx, 1.0 / rx, width)
    band_up = sample_at(lr, ys, xs)[0, 0].numpy()
    return lr[0, 0].numpy(), band_up, ((row - top) / ry, (col - left) / rx, 1 / ry, 1 / rx)


def guides_on_window(guides: Sequence[BandArray], band: BandArray, ratio: float, window: tuple[int, int, int, int],
                     *, margin: int = MARGIN) -> np.ndarray:  # fmt: skip
    """[G, H, W]: every guide degraded by `ratio` and resampled onto the window of the band's grid."""
    region = _region(band.values.shape, window, margin)
    return np.stack([_guide_on_window(g, band, ratio, region, window) for g in guides])


def _guide_on_window(guide: BandArray, band: BandArray, ratio: float, region: tuple[int, int, int, int],
                     window: tuple[int, int, int, int]) -> np.ndarray:  # fmt: skip
    """The guide degraded by `ratio` on a grid anchored at the region's corner, resampled onto the window."""
    top, left, rh, rw = region
    row, col, height, width = window
    step = band.resolution / guide.resolution  # guide px per band px (2 for 20 m bands, 6 for 60 m)
    # the region's top-left corner in the guide's pixel coordinates
    gx0, gy0 = ~guide.transform @ (band.transform @ (left, top))
    pad = int(math.ceil(3 * psf_sigma(ratio))) + 2
    g_top, g_left = max(0, int(math.floor(gy0)) - pad), max(0, int(math.floor(gx0)) - pad)
    g_bottom = min(guide.values.shape[0], int(math.ceil(gy0 + rh * step)) + pad)
    g_right = min(guide.values.shape[1], int(math.ceil(gx0 + rw * step)) + pad)
    patch = _t(guide.values[g_top:g_bottom, g_left:g_right])
    ny, nx = max(1, math.ceil(rh * step / ratio)), max(1, math.ceil(rw * step / ratio))
    low = degrade(patch, ratio, (ny, nx), origin=(gy0 - g_top, gx0 - g_left))
    ys = centres((row - top) * step / ratio, step / ratio, height)
    xs = centres((col - left) * step / ratio, step / ratio, width)
    return sample_at(low, ys, xs)[0, 0].numpy()
