"""Which part of the full output grid a run writes, which tiles it needs, and which pixels are wanted (pure maths).

Without an AOI the region is the whole grid. With one, it is the AOI's bounds snapped outward to the
full grid's pixels: a sub-window of the full output grid (same pixel size and alignment), so the
output lines up with a full-scene run pixel for pixel. The AOI is kept in the full grid's pixel
coordinates, where windows, tile footprints and pixel centres are all compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import shapely
from affine import Affine
from rasterio.features import geometry_mask
from rasterio.transform import array_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry.base import BaseGeometry

from rssr_cli.core.errors import UsageError
from rssr_cli.geo.grid import OutputGrid, Tile
from rssr_cli.geo.windows import edges, from_edges, overlaps

SNAP_TOLERANCE_PX = 1e-6  # an AOI edge this close to a pixel edge is on it (float noise must not add a pixel)


@dataclass(frozen=True)
class OutputRegion:
    """The written sub-window of the full output grid, and the AOI that selects its pixels (None: all of them)."""

    window: Window  # in full-grid pixels, integer offsets and size
    aoi: Optional[BaseGeometry] = None  # the AOI clipped to the raster, in the raster CRS
    aoi_pixels: Optional[BaseGeometry] = None  # the same polygon in full-grid pixel coordinates (col, row)

    def transform(self, grid: OutputGrid) -> Affine:
        """The output's transform: the full grid's, moved by the window offset (same pixel size and alignment)."""
        return window_transform(self.window, grid.transform)

    def inside(self, row_off: int, height: int) -> Optional[np.ndarray]:
        """bool [height, window width]: pixels whose centre lies in the AOI, for full-grid rows
        [row_off, row_off + height); None when there is no AOI. Rasterized a block at a time, never whole."""
        if self.aoi_pixels is None:
            return None
        origin = Affine.translation(int(self.window.col_off), row_off)
        shape = (height, int(self.window.width))
        return geometry_mask([self.aoi_pixels], out_shape=shape, transform=origin, invert=True, all_touched=False)


def whole_grid(grid: OutputGrid) -> OutputRegion:
    return OutputRegion(Window(0, 0, grid.width, grid.height))


def aoi_region(grid: OutputGrid, aoi: BaseGeometry) -> OutputRegion:
    """The region for an AOI given in the raster CRS: its part inside the raster, bounds snapped outward."""
    footprint = shapely.box(*array_bounds(grid.height, grid.width, grid.transform))
    clipped = aoi.intersection(footprint)
    if clipped.is_empty or not clipped.area > 0:
        raise UsageError("the AOI does not intersect the raster")
    inverse = ~grid.transform
    to_pixels = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.c, inverse.f]  # shapely's matrix order
    pixels = shapely.affinity.affine_transform(clipped, to_pixels)
    col0, row0, col1, row1 = pixels.bounds
    cols = (max(0, _snap_floor(col0)), min(grid.width, _snap_ceil(col1)))
    rows = (max(0, _snap_floor(row0)), min(grid.height, _snap_ceil(row1)))
    if cols[1] <= cols[0] or rows[1] <= rows[0]:
        raise UsageError("the AOI does not intersect the raster")
    region = OutputRegion(from_edges(rows[0], rows[1], cols[0], cols[1]), clipped, pixels)
    if not _covers_a_pixel_centre(region):
        # A sliver between pixel centres selects no pixel: the output would be entirely nodata.
        raise UsageError(
            "the AOI covers no pixel centre of the output grid (it falls between them); nothing would be written"
        )
    return region


def _covers_a_pixel_centre(region: OutputRegion, rows: int = 256) -> bool:
    """Whether any pixel of the region has its centre in the AOI; rasterized a block of rows at a time."""
    top, height = int(region.window.row_off), int(region.window.height)
    for start in range(top, top + height, rows):
        inside = region.inside(start, min(rows, top + height - start))
        if inside is not None and inside.any():
            return True
    return False


def _snap_floor(v: float) -> int:
    return math.floor(v + SNAP_TOLERANCE_PX)


def _snap_ceil(v: float) -> int:
    return math.ceil(v - SNAP_TOLERANCE_PX)


def row_band(region: OutputRegion, rows: tuple[int, int]) -> OutputRegion:
    """The part of a region in full-grid rows [start, stop): one worker's share of a scene split by rows.
    Same columns, same AOI; tiles_for_region then keeps only the tiles whose patch reaches these rows."""
    e = edges(region.window)
    start, stop = max(e.top, rows[0]), min(e.bottom, rows[1])
    if stop <= start:
        raise UsageError(f"rows {rows[0]}..{rows[1]} are outside the output rows {e.top}..{e.bottom}")
    window = from_edges(start, stop, e.left, e.right)
    return OutputRegion(window, region.aoi, region.aoi_pixels)


def split_rows(region: OutputRegion, parts: int) -> list[tuple[int, int]]:
    """[start, stop) full-grid rows of `parts` near-equal bands covering the region."""
    top, height = int(region.window.row_off), int(region.window.height)
    parts = max(1, min(parts, height))
    edges = [top + round(i * height / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts)]


def tiles_for_region(region: OutputRegion, tiles: list[list[Tile]]) -> tuple[list[list[Tile]], int]:
    """The tile rows with only the tiles whose HR patch reaches into the region (and its AOI, if any), and
    how many were left out.

    Selection is by the whole patch footprint, not the core: a patch adds into every pixel it covers
    (its outer halo with a vanishing but non-zero blend weight), so only by running every such tile do
    the pixels inside the AOI get exactly the values of a full-scene run. The tiles keep their
    full-grid positions, hence their seeds and blend weights.
    """
    if region.aoi_pixels is None:
        kept = [[t for t in row if overlaps(t.out, region.window)] for row in tiles]
        kept = [row for row in kept if row]
        return kept, sum(len(row) for row in tiles) - sum(len(row) for row in kept)
    shapely.prepare(region.aoi_pixels)
    kept = []
    for row in tiles:
        patches = [edges(t.out) for t in row]
        footprints = shapely.box(
            [e.left for e in patches], [e.top for e in patches], [e.right for e in patches], [e.bottom for e in patches]
        )
        # sharing only an edge with the AOI is not enough: no pixel centre of the patch is then inside it
        touching = shapely.intersects(footprints, region.aoi_pixels) & ~shapely.touches(footprints, region.aoi_pixels)
        if touching.any():
            kept.append([t for t, keep in zip(row, touching) if keep])
    left_out = sum(len(row) for row in tiles) - sum(len(row) for row in kept)
    return kept, left_out
