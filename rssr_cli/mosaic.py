"""Assembling HR patches into output rows: a bounded weighted accumulator and nearest-neighbour validity (numpy only).

The accumulator covers only the output rows that some pending tile can still touch: rows are added
below as tile rows arrive and popped from the top once final, so memory depends on the tile size and
the output width, never on the scene height.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
from rasterio.windows import Window

from .grid import OutputGrid, Tile


@dataclass(frozen=True)
class FinishedRows:
    """Output rows [row_off, row_off + height) that no later tile touches: weighted sums, weights, validity."""

    row_off: int
    weighted_sum: np.ndarray  # float32 [bands, height, width]
    weight: np.ndarray  # float32 [height, width]
    valid: Optional[np.ndarray]  # bool [bands, height, width], None when every pixel is valid

    @property
    def height(self) -> int:
        return self.weight.shape[0]

    def blocks(self, rows: int = 64) -> Iterator[tuple[int, np.ndarray, Optional[np.ndarray]]]:
        """(row_off, blended values [bands, h, width], validity) in blocks of `rows`, so the float temporaries
        of the write path stay a few rows tall instead of a whole tile row."""
        for start in range(0, self.height, rows):
            part = slice(start, start + rows)
            weight = self.weight[part]
            # Weights sum to 1 where any tile ran; 0 only under windows skipped as all-nodata (masked anyway).
            values = np.divide(
                self.weighted_sum[:, part], weight, out=np.zeros_like(self.weighted_sum[:, part]), where=weight > 0
            )
            yield self.row_off + start, values, None if self.valid is None else self.valid[:, part]


class RowAccumulator:
    """Weighted sum of HR patches over output rows [top, bottom); finished rows are popped from the top."""

    def __init__(self, bands: int, width: int, *, track_validity: bool) -> None:
        self.top = 0
        self._sum = np.zeros((bands, 0, width), dtype=np.float32)
        self._weight = np.zeros((0, width), dtype=np.float32)
        self._valid = np.zeros((bands, 0, width), dtype=bool) if track_validity else None

    @property
    def tracks_validity(self) -> bool:
        return self._valid is not None

    @property
    def bottom(self) -> int:
        return self.top + self._weight.shape[0]

    def extend_to(self, bottom: int) -> None:
        """Make rows up to `bottom` (exclusive) addressable, zero-initialised."""
        extra = bottom - self.bottom
        if extra <= 0:
            return
        bands, _, width = self._sum.shape
        self._sum = np.concatenate([self._sum, np.zeros((bands, extra, width), np.float32)], axis=1)
        self._weight = np.concatenate([self._weight, np.zeros((extra, width), np.float32)], axis=0)
        if self._valid is not None:
            self._valid = np.concatenate([self._valid, np.zeros((bands, extra, width), bool)], axis=1)

    def _slices(self, out: Window) -> tuple[slice, slice]:
        r0 = int(out.row_off) - self.top
        c0 = int(out.col_off)
        if r0 < 0 or r0 + int(out.height) > self._weight.shape[0]:
            raise ValueError(f"window {out} is outside the accumulated rows [{self.top}, {self.bottom})")
        return slice(r0, r0 + int(out.height)), slice(c0, c0 + int(out.width))

    def add(self, out: Window, patch: np.ndarray, weights: np.ndarray) -> None:
        """Blend a [bands, h, w] patch placed at output window `out` with [h, w] weights."""
        rows, cols = self._slices(out)
        self._sum[:, rows, cols] += patch * weights
        self._weight[rows, cols] += weights

    def set_validity(self, out: Window, valid: np.ndarray) -> None:
        """Record HR validity; overlapping tiles agree (nearest neighbour of the same LR pixel), so assign."""
        if self._valid is None:
            raise ValueError("this accumulator does not track validity")
        rows, cols = self._slices(out)
        self._valid[:, rows, cols] = valid

    def pop_until(self, row: int) -> Optional[FinishedRows]:
        """Hand over rows [top, row) and drop them from the accumulator."""
        n = min(row, self.bottom) - self.top
        if n <= 0:
            return None
        valid = None if self._valid is None else self._valid[:, :n]
        finished = FinishedRows(self.top, self._sum[:, :n], self._weight[:n], valid)
        # Keep only the tail (copies: the views above keep the old buffers alive only until written).
        self._sum, self._weight = self._sum[:, n:].copy(), self._weight[n:].copy()
        if self._valid is not None:
            self._valid = self._valid[:, n:].copy()
        self.top += n
        return finished


def nearest_lr_index(hr_start: int, hr_stop: int, n_lr: int, n_hr: int) -> np.ndarray:
    """LR pixel containing each HR pixel centre, in exact integers (a centre on an LR edge goes right, as in grid.py)."""
    j = np.arange(hr_start, hr_stop, dtype=np.int64)
    return ((2 * j + 1) * n_lr) // (2 * n_hr)


def hr_validity(valid_lr: np.ndarray, tile: Tile, grid: OutputGrid) -> np.ndarray:
    """The halo's [bands, h, w] validity upsampled by nearest neighbour onto the tile's HR patch."""
    out, halo = tile.out, tile.halo
    rows = nearest_lr_index(int(out.row_off), int(out.row_off + out.height), grid.src_height, grid.height)
    cols = nearest_lr_index(int(out.col_off), int(out.col_off + out.width), grid.src_width, grid.width)
    return valid_lr[:, rows - int(halo.row_off)][:, :, cols - int(halo.col_off)]
