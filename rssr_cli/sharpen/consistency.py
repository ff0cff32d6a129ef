"""Degrade-back consistency of a band written on a finer grid: the output averaged over each native pixel's
footprint, compared with the native pixel (the issue's rule: no band less consistent with its input than bicubic)."""

from __future__ import annotations

import numpy as np

from rssr_cli.geo.grid import Placement
from rssr_cli.sharpen.degrade import psf_sigma, seen_by_native_pixels


def average_onto_native(
    output: np.ndarray, placement: Placement, native_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(mean of the output pixels whose centres fall in each native pixel, count of them) on the native grid."""
    rows = np.floor(placement.y0 + (np.arange(output.shape[0]) + 0.5) * placement.dy).astype(int)
    cols = np.floor(placement.x0 + (np.arange(output.shape[1]) + 0.5) * placement.dx).astype(int)
    keep_r = (rows >= 0) & (rows < native_shape[0])
    keep_c = (cols >= 0) & (cols < native_shape[1])
    sums = np.zeros(native_shape, np.float64)
    counts = np.zeros(native_shape, np.int64)
    rr, cc = np.meshgrid(rows[keep_r], cols[keep_c], indexing="ij")
    np.add.at(sums, (rr, cc), output[np.ix_(keep_r, keep_c)].astype(np.float64))
    np.add.at(counts, (rr, cc), 1)
    return sums / np.maximum(counts, 1), counts


def consistency_error(
    output: np.ndarray, native: np.ndarray, placement: Placement, valid: np.ndarray | None = None
) -> float:
    """Mean |average of the output over a native pixel - the native pixel|, over native pixels fully covered
    (as many output pixels as the interior ones) and valid; in stored units."""
    mean, counts = average_onto_native(output, placement, native.shape)
    full = counts == counts.max()
    if valid is not None:
        full &= valid
    return float(np.abs(mean[full] - native[full]).mean())


def psf_consistency_error(
    output: np.ndarray, native: np.ndarray, placement: Placement, valid: np.ndarray | None = None, *, border: int = 2
) -> float:
    """Mean |output seen through the sensor's PSF at a native pixel - the native pixel| (stored units): the output
    blurred by the MTF-matched Gaussian of its scale, sampled at the native pixel centres. A native pixel measures
    a Gaussian footprint, not a box: under Wald's protocol the true image is less box-consistent than bicubic
    (BENCHMARKS.md), while this measure rates it best. `border` native pixels on each side are left out."""
    scale = 1.0 / max(abs(placement.dy), abs(placement.dx))
    seen = seen_by_native_pixels(
        output, scale, (placement.y0, placement.x0), (placement.dy, placement.dx), native.shape
    )
    keep = np.zeros(native.shape, bool)
    keep[border:-border, border:-border] = True
    # native pixels whose footprint (3 sigma of the PSF, in output pixels) lies inside the output
    reach = 3 * psf_sigma(scale)
    ys = (np.arange(native.shape[0]) + 0.5 - placement.y0) / placement.dy
    xs = (np.arange(native.shape[1]) + 0.5 - placement.x0) / placement.dx
    rows = (ys >= reach) & (ys <= output.shape[0] - reach)
    cols = (xs >= reach) & (xs <= output.shape[1] - reach)
    keep &= rows[:, None] & cols[None, :]
    if valid is not None:
        keep &= valid
    return float(np.abs(seen[keep] - native[keep]).mean())
