"""Wald's protocol inputs for one coarse band on one window of its native grid: the band degraded by r, the guide
bands degraded by r and brought onto the band's grid, and the truth (the band itself). Training crops and the
evaluation use this one function, so the model is judged on exactly what it was trained for.

The degradation is either the matched Gaussian protocol (member None: the PSF of MTF 0.25 at the coarse Nyquist,
sampled at the coarse pixel centres; `rssr evaluate --wald --degradation psf`) or one member of the sensor family
(sensor_degradation.SensorDraw: Gaussian + the pixel's box aggregate on a grid of side exactly r at the member's
sub-pixel phase, noise, 12-bit quantization). Training draws one member per crop and applies it to the band and to
its guides alike (one sensor: the same optics and the same grid phase on the ground); `--degradation box` is the box
member alone (a plain block mean at integer r)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from rssr_cli.degradation import sensor_degradation as sensor
from rssr_cli.degradation.sensor_degradation import SensorDraw
from rssr_cli.sharpen.degrade import centres, degrade, gaussian_blur, psf_sigma, resample_for_sharpener, sample_at
from rssr_cli.sharpen.scene import BandArray

MARGIN = 16  # output px computed around a window and cut away: the window's values do not see the crop's edge
DN_PER_REFLECTANCE = (
    10000.0  # Sentinel-2 L1C/L2A digital numbers: the sensor family's noise and 12 bits are in reflectance
)
BOX = SensorDraw(gaussian_mtf=1.0)  # the box member alone, exact grid, no noise: a plain block mean at integer ratios


@dataclass(frozen=True)
class WaldInputs:
    lr: np.ndarray  # [h, w] the band degraded by r (on an r-times coarser grid over the region)
    band_up: np.ndarray  # [H, W] lr resampled onto the window as the sharpener was trained (SHARPENER_CUBIC_A)
    guides: np.ndarray  # [G, H, W] the guides degraded by r, resampled (likewise) onto the window
    truth: np.ndarray  # [H, W]
    valid: np.ndarray  # [H, W]
    ratio: float  # nominal r
    lr_window: tuple[float, float, float, float]  # (y0, x0, dy, dx): the window's pixel centres in lr coordinates

    @property
    def bicubic(self) -> np.ndarray:
        """[H, W] lr resampled onto the window by `rssr upscale -m bicubic`'s kernel (kernels.KEYS_A): Wald's
        `bicubic` row is the baseline a user gets, not the sharpener's input kernel."""
        y0, x0, dy, dx = self.lr_window
        height, width = self.truth.shape
        return sample_at(_t(self.lr), centres(y0, dy, height), centres(x0, dx, width))[0, 0].numpy()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]


def wald_inputs(
    band: BandArray,
    guides: Sequence[BandArray],
    ratio: float,
    window: tuple[int, int, int, int],
    *,
    margin: int = MARGIN,
    member: Optional[SensorDraw] = None,
    generator: Optional[torch.Generator] = None,
) -> WaldInputs:
    """window = (row, col, height, width) on the band's native grid; member: the sensor family's member (None: the
    matched Gaussian protocol); generator: the member's noise."""
    lr, band_up, lr_window = degraded_band(band, ratio, window, margin=margin, member=member, generator=generator)
    on_window = guides_on_window(guides, band, ratio, window, margin=margin, member=member, generator=generator)
    return WaldInputs(lr, band_up, on_window, *truth_of(band, window), ratio, lr_window)


def truth_of(band: BandArray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    row, col, height, width = window
    return band.values[row : row + height, col : col + width], band.valid[row : row + height, col : col + width]


def _region(shape: tuple[int, int], window: tuple[int, int, int, int], margin: int) -> tuple[int, int, int, int]:
    """(top, left, height, width): the window grown by `margin`, clipped to the array."""
    row, col, height, width = window
    top, left = max(0, row - margin), max(0, col - margin)
    return top, left, min(shape[0], row + height + margin) - top, min(shape[1], col + width + margin) - left


def sensor_degrade(
    patch: torch.Tensor,
    ratio: float,
    lr_shape: tuple[int, int],
    member: SensorDraw,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """sensor_degradation.degrade on stored units (Sentinel-2 digital numbers): noise and 12 bits act in reflectance."""
    return sensor.degrade(patch / DN_PER_REFLECTANCE, ratio, lr_shape, member, generator=generator) * DN_PER_REFLECTANCE


def degraded_band(
    band: BandArray,
    ratio: float,
    window: tuple[int, int, int, int],
    *,
    margin: int = MARGIN,
    member: Optional[SensorDraw] = None,
    generator: Optional[torch.Generator] = None,
):
    """(lr, band_up, lr_window): the band over the window's region degraded by `ratio`, and resampled back."""
    row, col, height, width = window
    top, left, rh, rw = _region(band.values.shape, window, margin)
    patch = _t(band.values[top : top + rh, left : left + rw])
    if member is None:
        ny, nx = max(1, round(rh / ratio)), max(1, round(rw / ratio))
        ry, rx = rh / ny, rw / nx  # the LR grid tiles the region exactly
        oy = ox = 0.0
        lr = sample_at(
            gaussian_blur(patch, psf_sigma(ratio)), centres(0.0, ry, ny), centres(0.0, rx, nx), mode="bilinear"
        )
    else:  # pixels of side exactly r from the member's phase; the last row/column may reach past the region's edge
        oy, ox = member.origin
        ny, nx = max(1, math.ceil((rh - oy) / ratio)), max(1, math.ceil((rw - ox) / ratio))
        ry = rx = ratio
        lr = sensor_degrade(patch, ratio, (ny, nx), member, generator)
    ys, xs = centres((row - top - oy) / ry, 1.0 / ry, height), centres((col - left - ox) / rx, 1.0 / rx, width)
    band_up = resample_for_sharpener(lr, ys, xs)[0, 0].numpy()
    return lr[0, 0].numpy(), band_up, ((row - top - oy) / ry, (col - left - ox) / rx, 1 / ry, 1 / rx)


def guides_on_window(
    guides: Sequence[BandArray],
    band: BandArray,
    ratio: float,
    window: tuple[int, int, int, int],
    *,
    margin: int = MARGIN,
    member: Optional[SensorDraw] = None,
    generator: Optional[torch.Generator] = None,
) -> np.ndarray:
    """[G, H, W]: every guide degraded by `ratio` and resampled onto the window of the band's grid."""
    region = _region(band.values.shape, window, margin)
    grids: dict[tuple, list[int]] = {}  # guides on one grid (the four 10 m bands) are degraded together
    for i, g in enumerate(guides):
        grids.setdefault((g.transform, g.values.shape), []).append(i)
    out: list[np.ndarray] = [np.empty(0)] * len(guides)
    for members in grids.values():
        stacked = _guides_on_window([guides[i] for i in members], band, ratio, region, window, member, generator)
        for i, values in zip(members, stacked):
            out[i] = values
    return np.stack(out)


def _guides_on_window(
    same_grid: Sequence[BandArray],
    band: BandArray,
    ratio: float,
    region: tuple[int, int, int, int],
    window: tuple[int, int, int, int],
    member: Optional[SensorDraw],
    generator: Optional[torch.Generator],
) -> np.ndarray:
    """[G, H, W]: guides on one grid degraded by `ratio` on a grid anchored at the region's corner (shifted by the
    member's phase, the same ground offset as the band's grid), resampled onto the window."""
    guide = same_grid[0]
    top, left, rh, rw = region
    row, col, height, width = window
    step = band.resolution / guide.resolution  # guide px per band px (2 for 20 m bands, 6 for 60 m)
    oy, ox = (0.0, 0.0) if member is None else member.origin  # band px
    # the (shifted) region's top-left corner in the guide's pixel coordinates
    gx0, gy0 = ~guide.transform @ (band.transform @ (left + ox, top + oy))
    sigma = psf_sigma(ratio) if member is None else sensor.gaussian_sigma(ratio, member.gaussian_mtf)
    pad = sensor.gaussian_radius(sigma) + int(math.ceil(ratio)) + 2
    g_top, g_left = max(0, int(math.floor(gy0)) - pad), max(0, int(math.floor(gx0)) - pad)
    g_bottom = min(guide.values.shape[0], int(math.ceil(gy0 + rh * step)) + pad)
    g_right = min(guide.values.shape[1], int(math.ceil(gx0 + rw * step)) + pad)
    patch = torch.from_numpy(
        np.stack([g.values[g_top:g_bottom, g_left:g_right] for g in same_grid]).astype(np.float32)
    )[None]
    ny, nx = max(1, math.ceil(rh * step / ratio)), max(1, math.ceil(rw * step / ratio))
    origin = (gy0 - g_top, gx0 - g_left)
    if member is None:
        low = degrade(patch, ratio, (ny, nx), origin=origin)
    else:
        low = sensor_degrade(
            patch, ratio, (ny, nx), SensorDraw(member.gaussian_mtf, origin, member.noise_std, member.levels), generator
        )
    ys = centres((row - top - oy) * step / ratio, step / ratio, height)
    xs = centres((col - left - ox) * step / ratio, step / ratio, width)
    return resample_for_sharpener(low, ys, xs)[0].numpy()
