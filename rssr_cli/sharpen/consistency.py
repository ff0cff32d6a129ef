"""Degrade-back consistency of a band written on a finer grid: the output averaged over each native pixel's
footprint, compared with the native pixel (the issue's rule: no band less consistent with its input than bicubic)."""

from __future__ import annotations

import numpy as np

from ..grid import Placement


def average_onto_native(output: np.ndarray, placement: Placement, native_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
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


def consistency_error(output: np.ndarray, native: np.ndarray, placement: Placement, valid: np.ndarray | None = None) -> float:
    """Mean |average of the output over a native pixel - the native pixel|, over native pixels fully covered
    (as many output pixels as the interior ones) and valid; in stored units."""
    mean, counts = average_onto_native(output, placement, native.shape)
    full = counts == counts.max()
    if valid is not None:
        full &= valid
    return float(np.abs(mean[full] - native[full]).mean())
