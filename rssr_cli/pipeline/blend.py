"""Blending HR patches into the output, the one home of it: the smooth weights of a tile, the bounded weighted
accumulator, nearest-neighbour validity, and the write policy (how blended values and invalid pixels are stored).

The accumulator covers only the output rows that some pending tile can still touch: rows are added
below as tile rows arrive and popped from the top once final, so memory depends on the tile size and
the output width, never on the scene height.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np
from rasterio.windows import Window

from rssr_cli.geo.grid import OutputGrid, Tile, nearest_source_index
from rssr_cli.geo.region import OutputRegion
from rssr_cli.geo.windows import edges
from rssr_cli.io.cog import OutputSpec, write_rows
from rssr_cli.io.radiometry import Radiometry, denormalize, denormalize_spread, keep_clear_of_nodata


@dataclass(frozen=True)
class BlendedBlock:
    """A few finished rows, blended: values [bands, h, width], validity (None: all valid) and, when the run draws
    K samples, their spread (a standard deviation, same shape and units as the values)."""

    row_off: int
    values: np.ndarray
    valid: Optional[np.ndarray]
    spread: Optional[np.ndarray] = None


@dataclass(frozen=True)
class FinishedRows:
    """Full-grid rows [row_off, row_off + height) of the region that no later tile touches: weighted sums,
    weights, validity (the region's columns only), and the weighted sum of the patches' variances when the
    run has a spread layer."""

    row_off: int
    weighted_sum: np.ndarray  # float32 [bands, height, width]
    weight: np.ndarray  # float32 [height, width]
    valid: Optional[np.ndarray]  # bool [bands, height, width], None when every pixel is valid
    weighted_variance: Optional[np.ndarray] = None  # float32 [bands, height, width]

    @property
    def height(self) -> int:
        return self.weight.shape[0]

    def blocks(self, rows: int = 64) -> Iterator[BlendedBlock]:
        """The rows blended, in blocks of `rows`, so the float temporaries of the write path stay a few rows tall
        instead of a whole tile row."""
        for start in range(0, self.height, rows):
            part = slice(start, start + rows)
            weight = self.weight[part]
            valid = None if self.valid is None else self.valid[:, part]
            spread = None
            if self.weighted_variance is not None:
                spread = np.sqrt(np.maximum(_normalized(self.weighted_variance[:, part], weight), 0.0))
            yield BlendedBlock(self.row_off + start, _normalized(self.weighted_sum[:, part], weight), valid, spread)


def _normalized(weighted: np.ndarray, weight: np.ndarray) -> np.ndarray:
    # Weights sum to 1 where any tile ran; 0 only under windows skipped as all-nodata (masked anyway).
    return np.divide(weighted, weight, out=np.zeros_like(weighted), where=weight > 0)


# ------------------------------------------------------------------------------------------- weights


def axis_blend_weights(centers: np.ndarray, core: tuple[int, int], extent: int, overlap: int) -> np.ndarray:
    """Raised-cosine weights along one axis for HR pixel centres (in absolute LR coordinates).

    Across each interior core edge e the weight rises 0 -> 1 over [e - r, e + r], r = overlap/2,
    while the neighbour's falls 1 -> 0 over the same span (sin^2 + cos^2 = 1). The outer half of
    each halo gets weight 0, so a patch's edge pixels (where a model lacks context) never count.
    At the raster's edges there is no neighbour and the weight stays 1.
    """
    w = np.ones_like(centers, dtype=np.float64)
    r = overlap / 2.0
    start, stop = core
    if r <= 0:
        # Without overlap the halo is the core, and the patch already holds exactly the HR pixels whose
        # centres fall in it (exact integer arithmetic in hr_grid_for). Re-testing float centres here
        # would drop a pixel whose centre sits on a core edge (e.g. s = 3.9375): weight 0 in every tile.
        return w
    if start > 0:
        t = np.clip((centers - (start - r)) / (2 * r), 0.0, 1.0)
        w *= np.sin(0.5 * np.pi * t) ** 2
    if stop < extent:
        t = np.clip((centers - (stop - r)) / (2 * r), 0.0, 1.0)
        w *= np.cos(0.5 * np.pi * t) ** 2
    return w


def tile_blend_weights(tile: Tile, grid: OutputGrid, overlap: int) -> np.ndarray:
    """Separable 2-D blend weights (float32, shape of the tile's HR patch)."""
    cy = tile.hr.centers_y() + tile.halo.row_off
    cx = tile.hr.centers_x() + tile.halo.col_off
    e = edges(tile.core)
    core_y, core_x = (e.top, e.bottom), (e.left, e.right)
    wy = axis_blend_weights(cy, core_y, grid.src_height, overlap)
    wx = axis_blend_weights(cx, core_x, grid.src_width, overlap)
    return (wy[:, None] * wx[None, :]).astype(np.float32)


# --------------------------------------------------------------------------------------- accumulation


class RowAccumulator:
    """Weighted sum of HR patches over rows [top, bottom) of a region of the output grid (all of it, or the
    window an AOI needs); finished rows are popped from the top. Coordinates are full-grid pixels; patches
    reaching beyond the region are clipped to it.

    With `spread`, each patch comes with its per-pixel spread (the std of its K draws) and the accumulator also
    blends the variances with the same weights; a finished pixel's spread is the root of that weighted mean.
    Blending variances, not standard deviations: where the weights sum to 1 and every window estimates the same
    posterior variance, their weighted mean estimates it too (a mean of stds would be biased low, by Jensen).
    It is the spread *of the posterior at that pixel*, not the variance of the blended mean Σ w_i x_i (that
    would be Σ w_i² var_i, lower in the seams only because independent windows average there): the layer says
    how uncertain the value is, whatever tiling happened to put a seam through the pixel."""

    def __init__(
        self, bands: int, region: Window, *, track_validity: bool, spread: bool = False, top: Optional[int] = None
    ) -> None:
        self.region = region
        self.top = (
            int(region.row_off) if top is None else max(int(region.row_off), top)
        )  # `top`: a resumed stream's first row
        width = int(region.width)
        self._sum = np.zeros((bands, 0, width), dtype=np.float32)
        self._weight = np.zeros((0, width), dtype=np.float32)
        self._valid = np.zeros((bands, 0, width), dtype=bool) if track_validity else None
        self._variance = np.zeros((bands, 0, width), dtype=np.float32) if spread else None

    @property
    def tracks_spread(self) -> bool:
        return self._variance is not None

    @property
    def tracks_validity(self) -> bool:
        return self._valid is not None

    @property
    def bottom(self) -> int:
        return self.top + self._weight.shape[0]

    def extend_to(self, bottom: int) -> None:
        """Make rows up to `bottom` (exclusive, at most the region's last row) addressable, zero-initialised."""
        extra = min(bottom, edges(self.region).bottom) - self.bottom
        if extra <= 0:
            return
        bands, _, width = self._sum.shape
        self._sum = np.concatenate([self._sum, np.zeros((bands, extra, width), np.float32)], axis=1)
        self._weight = np.concatenate([self._weight, np.zeros((extra, width), np.float32)], axis=0)
        if self._valid is not None:
            self._valid = np.concatenate([self._valid, np.zeros((bands, extra, width), bool)], axis=1)
        if self._variance is not None:
            self._variance = np.concatenate([self._variance, np.zeros((bands, extra, width), np.float32)], axis=1)

    def _slices(self, out: Window) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """Where the part of `out` inside the region lies in the accumulator, and in the patch placed at `out`."""
        region, patch_e = edges(self.region), edges(out)
        r0, c0 = patch_e.top, patch_e.left
        top, left = max(r0, region.top), max(c0, region.left)
        bottom = max(top, min(patch_e.bottom, region.bottom))
        right = max(left, min(patch_e.right, region.right))
        if bottom > top and (top < self.top or bottom > self.bottom):
            raise ValueError(f"window {out} is outside the accumulated rows [{self.top}, {self.bottom})")
        c = region.left
        accumulated = (slice(top - self.top, bottom - self.top), slice(left - c, right - c))
        patch = (slice(top - r0, bottom - r0), slice(left - c0, right - c0))
        return accumulated, patch

    def add(self, out: Window, patch: np.ndarray, weights: np.ndarray, spread: Optional[np.ndarray] = None) -> None:
        """Blend a [bands, h, w] patch placed at output window `out` with [h, w] weights (and its spread, when the
        accumulator tracks one: it must come with every patch then)."""
        if (spread is None) != (self._variance is None):
            raise ValueError("a spread must come with every patch of an accumulator that tracks it, and only then")
        (rows, cols), (p_rows, p_cols) = self._slices(out)
        weights = weights[p_rows, p_cols]
        self._sum[:, rows, cols] += patch[:, p_rows, p_cols] * weights
        self._weight[rows, cols] += weights
        if self._variance is not None and spread is not None:
            self._variance[:, rows, cols] += np.square(spread[:, p_rows, p_cols]) * weights

    def set_validity(self, out: Window, valid: np.ndarray) -> None:
        """Record HR validity; overlapping tiles agree (nearest neighbour of the same LR pixel), so assign."""
        if self._valid is None:
            raise ValueError("this accumulator does not track validity")
        (rows, cols), (p_rows, p_cols) = self._slices(out)
        self._valid[:, rows, cols] = valid[:, p_rows, p_cols]

    def pop_until(self, row: int) -> Optional[FinishedRows]:
        """Hand over rows [top, row) and drop them from the accumulator."""
        n = min(row, self.bottom) - self.top
        if n <= 0:
            return None
        valid = None if self._valid is None else self._valid[:, :n]
        variance = None if self._variance is None else self._variance[:, :n]
        finished = FinishedRows(self.top, self._sum[:, :n], self._weight[:n], valid, variance)
        # Keep only the tail (copies: the views above keep the old buffers alive only until written).
        self._sum, self._weight = self._sum[:, n:].copy(), self._weight[n:].copy()
        if self._valid is not None:
            self._valid = self._valid[:, n:].copy()
        if self._variance is not None:
            self._variance = self._variance[:, n:].copy()
        self.top += n
        return finished


def nearest_lr_index(hr_start: int, hr_stop: int, n_lr: int, n_hr: int) -> np.ndarray:
    """LR pixel containing each HR pixel centre, in exact integers (a centre on an LR edge goes right, as in grid.py)."""
    j = np.arange(hr_start, hr_stop, dtype=np.int64)
    return ((2 * j + 1) * n_lr) // (2 * n_hr)


def hr_validity(valid_lr: np.ndarray, tile: Tile, grid: OutputGrid) -> np.ndarray:
    """The halo's [bands, h, w] validity upsampled by nearest neighbour onto the tile's HR patch."""
    out, halo = tile.out, tile.halo
    r0, r1, c0, c1 = edges(out)
    if grid.placement is not None:
        rows, cols = nearest_source_index(grid, "y", r0, r1), nearest_source_index(grid, "x", c0, c1)
    else:
        rows, cols = (
            nearest_lr_index(r0, r1, grid.src_height, grid.height),
            nearest_lr_index(c0, c1, grid.src_width, grid.width),
        )
    return valid_lr[:, rows - int(halo.row_off)][:, :, cols - int(halo.col_off)]


# -------------------------------------------------------------------------------------- write policy


@dataclass(frozen=True)
class SpreadTarget:
    """Where write_blended also writes the blocks' spread (spread.py): a writer and the side-car's spec."""

    writer: Any
    spec: OutputSpec


def write_blended(
    writer: Any,
    rows: FinishedRows,
    *,
    spec: OutputSpec,
    region: OutputRegion,
    radiometry: Radiometry,
    spread: Optional[SpreadTarget] = None,
) -> None:
    """Back to stored values, invalid pixels marked as the output marks them, then onto disk, a block at a time.
    `writer` is a rasterio dataset opened for writing (or anything with its write/write_mask). With `spread`, the
    blocks' spread goes to its side-car too, NaN wherever the output marks a pixel invalid."""
    window = region.window
    for block in rows.blocks():
        data = denormalize(block.values, radiometry, spec.dtype)
        valid = block.valid
        inside = region.inside(block.row_off, data.shape[1])
        if inside is not None:
            valid = np.broadcast_to(inside, data.shape) if valid is None else valid & inside
        mask = None
        if valid is not None:
            if spec.internal_mask:
                mask = np.asarray(valid.all(axis=0))  # an array: valid is [bands, rows, cols]
                data[:, ~mask] = 0
            else:
                data = keep_clear_of_nodata(data, valid, spec.nodata)
                data[~valid] = spec.nodata
        row = block.row_off - int(window.row_off)
        write_rows(writer, spec, row, data, mask)
        if spread is not None:
            if block.spread is None:
                raise ValueError("a spread side-car needs rows blended with their spread (RowAccumulator(spread=True))")
            marked = np.broadcast_to(mask, data.shape) if mask is not None else valid  # the pixels the output keeps
            write_rows(spread.writer, spread.spec, row, stored_spread(block.spread, marked, radiometry), None)


def stored_spread(spread: np.ndarray, valid: Optional[np.ndarray], radiometry: Radiometry) -> np.ndarray:
    """A block's spread in the output's stored units (radiometry.denormalize_spread), NaN where not `valid`."""
    out = denormalize_spread(spread, radiometry)
    if valid is not None:
        out[~valid] = np.nan
    return out
