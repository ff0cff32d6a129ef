"""Aligning a real LR/HR pair on the LR grid (pure numpy): the HR area-averaged onto the LR pixels, local
misregistration per block, the pair's shift, local means for the radiometric fit. Steps 2-3 of
training.pairs.load_pair."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rssr_cli.geo.grid import HRGrid
from rssr_cli.scoring.metrics import area_overlaps, measure_shift

FIT_BOX = 5  # LR px: the radiometric fit compares local means
SHIFT_BLOCK = 64  # LR px: misregistration is measured per block; the pair's shift is their median
MAX_LOCAL_MISREGISTRATION = 0.3  # LR px from the pair's shift: the block is excluded from training
GEOREF_AGREEMENT = 0.15  # share of blocks aligned by georeferencing alone for it to be trusted


def area_to_lr(
    hr: np.ndarray, hr_valid: np.ndarray, grid: HRGrid, lr_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Area average of HR [C, H, W] over each LR pixel ([C, h, w]) with the exact overlap of every HR pixel
    (grids need not be aligned), and where it is valid: the LR pixel fully covered, no invalid HR pixel in it."""
    h, w = lr_shape
    ry, ky, wy = area_overlaps(h, grid.dy, grid.y0, count=grid.height)
    rx, kx, wx = area_overlaps(w, grid.dx, grid.x0, count=grid.width)
    bad = (~hr_valid).astype(np.float64)[None]
    x = np.concatenate([np.where(hr_valid, hr, 0.0).astype(np.float64), bad, np.ones_like(bad)])
    rows = np.zeros((len(x), h, x.shape[-1]))
    # numpy's stubs type ufunc.at's indices as an integer array only; a tuple of slices and arrays is valid (as in x[...])
    np.add.at(rows, (slice(None), ry), wy[None, :, None] * x[:, ky])  # type: ignore[arg-type]
    out = np.zeros((len(x), h, w))
    np.add.at(out, (slice(None), slice(None), rx), wx[None, None, :] * rows[:, :, kx])  # type: ignore[arg-type]  # as above
    values, bad_share, coverage = out[:-2], out[-2], out[-1]
    valid = (np.abs(coverage - 1.0) < 1e-6) & (bad_share < 1e-9)
    return np.where(valid, values, 0.0), valid


def box_mean(x: np.ndarray, valid: np.ndarray, size: int = FIT_BOX) -> tuple[np.ndarray, np.ndarray]:
    """size x size moving means of [C, h, w] ('valid' placement: (h-size+1, w-size+1)) and where the whole box is valid."""

    def box(a: np.ndarray) -> np.ndarray:
        c = np.pad(np.cumsum(np.cumsum(a, axis=-2), axis=-1), [(0, 0)] * (a.ndim - 2) + [(1, 0), (1, 0)])
        return (c[..., size:, size:] - c[..., :-size, size:] - c[..., size:, :-size] + c[..., :-size, :-size]) / size**2

    return box(np.where(valid, x, 0.0)), box(valid.astype(np.float64)) > 1 - 1e-9


def _standardized(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    for b in range(len(x)):
        v = x[b][valid]
        mean, std = (v.mean(), max(v.std(), 1e-12)) if v.size else (0.0, 1.0)
        out[b] = np.where(valid, (x[b] - mean) / std, 0.0)  # invalid pixels at the mean
    return out


def block_shifts(low: np.ndarray, lr: np.ndarray, valid: np.ndarray, size: int = SHIFT_BLOCK):
    """[((rows, cols), (dy, dx))] for every entirely valid, textured size x size block: the HR (on the LR grid)
    vs LR shift measured locally (metrics.measure_shift on standardized values)."""
    out = []
    h, w = valid.shape
    for r in range(0, h - size + 1, size):
        for c in range(0, w - size + 1, size):
            rows, cols = slice(r, r + size), slice(c, c + size)
            a, b = low[:, rows, cols], lr[:, rows, cols]
            if not valid[rows, cols].all() or min(a.std(), b.std()) <= 1e-6:
                continue
            ok = np.ones((size, size), dtype=bool)
            out.append(((rows, cols), measure_shift(_standardized(a, ok), _standardized(b, ok))))
    if not out and valid.any():  # a pair smaller than a block: one measurement over all of it
        everything = (slice(0, h), slice(0, w))
        out.append((everything, measure_shift(_standardized(low, valid), _standardized(lr, valid))))
    return out


def pair_shift(block_shifts: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The shift to correct: none when at least GEOREF_AGREEMENT of the blocks agree with the georeferencing
    (within MAX_LOCAL_MISREGISTRATION of zero: a same-sensor pair whose clouds moved between bands keeps its
    ground aligned), else the median block shift (two sensors, one misregistered against the other)."""
    if not block_shifts:
        return 0.0, 0.0
    d = np.asarray(block_shifts, dtype=np.float64)
    if np.mean(np.hypot(d[:, 0], d[:, 1]) <= MAX_LOCAL_MISREGISTRATION) >= GEOREF_AGREEMENT:
        return 0.0, 0.0
    return float(np.median(d[:, 0])), float(np.median(d[:, 1]))
