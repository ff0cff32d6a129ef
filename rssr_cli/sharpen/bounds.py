"""What the data supports: a sharpened band goes beyond its native neighbourhood's range only where the guides do.

A native pixel is the mean of what its footprint saw, so a finer pixel inside it can be brighter than the native
pixel itself, but only where something finer is there to see: a value outside the [min, max] of the native 3 x 3
neighbourhood around it is either real sub-pixel structure (a bright roof in a 20 m pixel) or an overshoot of the
network or of back-projection (a ring around that roof, a dark lake shore dropping to 1 DN, a worm-like texture in a
flat field). The 10 m guides tell the two apart: the same test run on each guide (its mean over the band's native
pixel footprints, the 3 x 3 [min, max] of that on the native grid, the guide's own excursion beyond it at the output
pixel) says how far the scene goes beyond its native range there. That excursion, in the band's units by the local
least-squares slope of the band on the guide at the native grid (SLOPE_WINDOW native pixels a side; a guide brighter
where the band is darker lends its excursion the other way), the most over guides, times GUIDE_EXCURSION_GAIN, plus
BOUND_MARGIN of the band's 1-99 % range, is what each output pixel may go beyond [min, max]. A flat field (no guide
excursion) gets no invented texture; a roof the guides show keeps its peak; a roof no guide shows is clipped to the
band's native range. Below, never more than half the darkest neighbour's value (reflectance is not negative).

GUIDE_EXCURSION_GAIN = 3 (measured, BENCHMARKS.md "Rings on real native bands"): the guide's excursion is taken over
box footprints, while the band's native pixel sees a wider PSF, under which the same structure stands further out
of the native range. On nantes and beirut, against the r/2-of-the-range widening this replaces: gain 1 cuts the ring
share at x2 2.7x but costs up to 0.04 of bicubic's RMSE in Wald's protocol under the matched PSF; gain 3 cuts it by
30-42 % (x6: 10-14 %) for at most +0.021 under the PSF, and gains 0.05-0.08 under the box degradation. The
truth itself, against its own PSF-degraded version, is outside its native range on 3-17 % of the pixels at x2: the
measure (the native range widened by RING_MARGIN, issue 20) cannot reach zero for a faithful output. One definition
of the neighbourhood serves the bound and the measure.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BOUND_MARGIN = 0.05  # the constraint's widening, of the band's 1-99 % range
GUIDE_EXCURSION_GAIN = 3.0  # the band's allowed excursion, per unit of the guides' own (in band units)
SLOPE_WINDOW = 5  # native pixels a side of the window the band-on-guide slope is fitted over
GUIDE_FLOOR = 0.1  # of a guide's std over the scene: a guide flatter than this in the slope's window lends no slope
DARK_FLOOR = 0.5  # below the neighbourhood's minimum, at most this share of it
RING_MARGIN = 0.10  # the measure's widening (issue 20's ring share)


def neighbourhood_range(native: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[h, w] min and max over each native pixel's 3 x 3 neighbourhood, valid pixels only (a pixel with no valid
    neighbour: its own value)."""
    lo_src = np.where(valid, native, np.inf).astype(np.float64)
    hi_src = np.where(valid, native, -np.inf).astype(np.float64)
    lo = sliding_window_view(np.pad(lo_src, 1, mode="edge"), (3, 3)).min(axis=(-2, -1))
    hi = sliding_window_view(np.pad(hi_src, 1, mode="edge"), (3, 3)).max(axis=(-2, -1))
    none = ~np.isfinite(lo)
    lo[none], hi[none] = native[none], native[none]
    return lo, hi


def band_range(values: np.ndarray, valid: np.ndarray) -> float:
    """The band's 1-99 % range (valid pixels): the unit of the margins."""
    v = values[valid]
    if v.size == 0:
        return 0.0
    p1, p99 = np.percentile(v, [1, 99])
    return float(p99 - p1)


def _box_sum(a: np.ndarray, size: int) -> np.ndarray:
    """Sum over the size x size window centred on each pixel (zeros beyond the edge)."""
    return sliding_window_view(np.pad(a, size // 2), (size, size)).sum(axis=(-2, -1))


def guides_on_native(
    guides: np.ndarray, guide_valid: np.ndarray, rows: np.ndarray, cols: np.ndarray, native_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """([G, h, w] each guide's mean over the output pixels (valid ones) whose nearest native pixel is that one,
    [h, w] whether any is)."""
    h, w = native_shape
    index = (rows[:, None] * w + cols[None, :])[guide_valid]
    counts = np.bincount(index, minlength=h * w).reshape(h, w)
    sums = [np.bincount(index, weights=g[guide_valid].astype(np.float64), minlength=h * w) for g in guides]
    return np.stack(sums).reshape(len(guides), h, w) / np.maximum(counts, 1), counts > 0


def local_slopes(band: np.ndarray, guides: np.ndarray, valid: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """[G, h, w] least-squares slope of the band on each guide over the SLOPE_WINDOW window of native pixels (valid
    ones), the guide's variance floored by floors[g]^2 (a flat window lends no slope)."""
    weight = valid.astype(np.float64)
    n = np.maximum(_box_sum(weight, SLOPE_WINDOW), 1.0)
    if not valid.any():
        return np.zeros(guides.shape)
    # centred on the scene's means first: the window's moments are then differences of small numbers, not of squares
    b = np.where(valid, band - band[valid].mean(), 0.0).astype(np.float64)
    mb = _box_sum(b, SLOPE_WINDOW) / n
    slopes = []
    for g, floor in zip(guides, floors):
        g = np.where(valid, g - g[valid].mean(), 0.0)
        mg = _box_sum(g, SLOPE_WINDOW) / n
        cov = _box_sum(b * g, SLOPE_WINDOW) / n - mb * mg
        var = np.maximum(_box_sum(g * g, SLOPE_WINDOW) / n - mg * mg, 0.0)
        slopes.append(cov / (var + floor**2 + 1e-12))
    return np.stack(slopes)


def guide_supported_excursion(
    guides: np.ndarray,
    guide_valid: np.ndarray,
    guide_std: np.ndarray,
    native: np.ndarray,
    valid: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """([H, W] above, [H, W] below): how far the guides [G, H, W] themselves go beyond their own native
    neighbourhood range at each output pixel, in the band's units (the local slope of the band on each guide; the
    most over guides). guide_std [G]: each guide's std over the scene (the slope's floor: the same in every tile);
    rows [H], cols [W]: the native pixel under each output pixel."""
    on_native, covered = guides_on_native(guides, guide_valid, rows, cols, native.shape)
    both = covered & valid
    slopes = local_slopes(native, on_native, both, GUIDE_FLOOR * np.asarray(guide_std, np.float64))
    grid = np.ix_(rows, cols)
    above = np.zeros(guides.shape[1:], np.float64)
    below = np.zeros(guides.shape[1:], np.float64)
    for g, g_native, slope in zip(guides, on_native, slopes):
        lo, hi = neighbourhood_range(g_native, both)
        lo, hi, slope = lo[grid], hi[grid], slope[grid]
        up = np.where(guide_valid, np.maximum(g - hi, 0.0), 0.0)
        down = np.where(guide_valid, np.maximum(lo - g, 0.0), 0.0)
        rising, falling = np.maximum(slope, 0.0), np.maximum(-slope, 0.0)
        above = np.maximum(above, rising * up + falling * down)
        below = np.maximum(below, rising * down + falling * up)
    return above, below


def bound_to_native(
    out: np.ndarray,
    native: np.ndarray,
    valid: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    margin: float,
    guides: np.ndarray,
    guide_valid: np.ndarray,
    guide_std: np.ndarray,
) -> np.ndarray:
    """out [H, W] clipped to the native neighbourhood range of its nearest native pixel (rows [H], cols [W] index
    native) widened by GUIDE_EXCURSION_GAIN x what the guides [G, H, W] (valid where guide_valid [H, W]; std over
    the scene guide_std [G]) show beyond their own native range there, plus `margin` (stored units); never below
    half the darkest neighbour."""
    lo, hi = neighbourhood_range(native, valid)
    grid = np.ix_(rows, cols)
    lo, hi = lo[grid], hi[grid]
    above, below = guide_supported_excursion(guides, guide_valid, guide_std, native, valid, rows, cols)
    low = lo - np.minimum(GUIDE_EXCURSION_GAIN * below + margin, DARK_FLOOR * np.maximum(lo, 0.0))
    return np.clip(out, low, hi + GUIDE_EXCURSION_GAIN * above + margin).astype(out.dtype, copy=False)


def ring_share(
    out: np.ndarray, native: np.ndarray, valid: np.ndarray, rows: np.ndarray, cols: np.ndarray, margin: float
) -> float:
    """Share of output pixels (over valid native neighbours) outside their native neighbourhood range widened by
    `margin` (stored units; issue 20 uses RING_MARGIN x band_range)."""
    lo, hi = neighbourhood_range(native, valid)
    grid = np.ix_(rows, cols)
    inside_valid = valid[grid]
    outside = ((out < lo[grid] - margin) | (out > hi[grid] + margin)) & inside_valid
    return float(outside.sum()) / max(1, int(inside_valid.sum()))
