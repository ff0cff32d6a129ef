"""Output grid and window planning: pure functions over integers and affine transforms (no I/O, no torch).

Conventions (DESIGN.md): out_w = round(W*s), out_h = round(H*s); the output transform is the input's
scaled by (W/out_w, H/out_h), so the bounds are identical and the effective scale per axis is out/in.
A continuous LR coordinate u has 0 at the left/top edge of the first LR pixel; the centre of HR pixel j
sits at u = (j + 0.5) * W / out_w. All rounding decisions on window edges use exact integer arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
from affine import Affine
from rasterio.windows import Window

from rssr_cli.core.errors import UsageError
from rssr_cli.geo.windows import edges, from_edges, grow

MAX_SCALE = 32.0  # beyond this a "super-resolved" pixel carries no information from the input


def pixel_centres(count: int, step: float, origin: float = 0.0, first: int = 0) -> np.ndarray:
    """Centres of pixels first..first+count-1 of a regular grid, in the coordinates of another grid whose
    pixel edges are integers: origin + (j + 0.5) * step (float64). The one formula for HR pixel centres
    (output grids, window grids, training queries; model.operator.grid_tensors is its torch twin)."""
    return origin + (first + np.arange(count) + 0.5) * step


@dataclass(frozen=True)
class Placement:
    """Where an output grid lies on a source it does not cover exactly (a band stack's common grid seen from a
    coarser band whose grid starts elsewhere): the centre of output pixel j is at source pixel coordinate
    x0 + (j + 0.5) * dx (columns) and y0 + (i + 0.5) * dy (rows); dx, dy are source pixels per output pixel."""

    x0: float
    y0: float
    dx: float
    dy: float


@dataclass(frozen=True)
class OutputGrid:
    """The full-resolution output raster's size and transform, derived from the input grid.

    `placement` None: the output covers the source exactly (same bounds, step src/out per axis; integer maths).
    Otherwise the output is any grid of the same CRS, located on the source by `placement`; output pixels whose
    centres lie beyond the source's edges belong to the edge tiles (the backends extend the border pixels)."""

    src_width: int
    src_height: int
    width: int
    height: int
    transform: Affine
    placement: Optional[Placement] = None

    @property
    def scale_x(self) -> float:
        return 1.0 / self.placement.dx if self.placement is not None else self.width / self.src_width

    @property
    def scale_y(self) -> float:
        return 1.0 / self.placement.dy if self.placement is not None else self.height / self.src_height

    def source_centres_y(self) -> np.ndarray:
        """Output row centres in source pixel coordinates (float64, one per output row)."""
        p = self.placement
        if p is None:
            return pixel_centres(self.height, self.src_height / self.height)
        return pixel_centres(self.height, p.dy, p.y0)

    def source_centres_x(self) -> np.ndarray:
        p = self.placement
        if p is None:
            return pixel_centres(self.width, self.src_width / self.width)
        return pixel_centres(self.width, p.dx, p.x0)

    def footprint(self) -> tuple[int, int, int, int]:
        """(col_start, col_stop, row_start, row_stop): the output pixels whose centres lie on the source (the
        rest, on a placed grid, is beyond its edges: nodata, never its edge pixels extended). Empty ranges when
        the source misses the grid."""
        p = self.placement
        if p is None:
            return 0, self.width, 0, self.height

        def covered(size: int, src_size: int, start: float, step: float) -> tuple[int, int]:
            eps = 1e-6  # a centre exactly on the source's edge is on it, whatever the float rounding
            first = math.ceil((0.0 - start) / step - 0.5 - eps)
            last = math.floor((src_size - start) / step - 0.5 + eps)
            first, stop = max(first, 0), min(last + 1, size)
            return (first, stop) if first < stop else (0, 0)

        cols = covered(self.width, self.src_width, p.x0, p.dx)
        rows = covered(self.height, self.src_height, p.y0, p.dy)
        return (*cols, *rows)


def check_scale(scale: float, *, allow_one: bool = False, asked: Optional[str] = None) -> float:
    """A scale factor rssr accepts (the one check for every command and input): finite, > 1 (>= 1 where a copy is
    allowed, as for a band stack's finest band), at most MAX_SCALE; UsageError otherwise. `asked`: the option as the
    user wrote it (e.g. "--resolution 2"), when the scale was derived from it."""
    low_ok = scale >= 1.0 - 1e-9 if allow_one else scale > 1.0
    if not (math.isfinite(scale) and low_ok):
        raise UsageError(f"scale must be {'>= 1' if allow_one else '> 1'} (got {scale:g}); rssr only upsamples")
    if scale > MAX_SCALE:
        asked = asked or f"--scale {scale:.10g}"
        raise UsageError(f"{asked} means a scale of {scale:g}, above the supported maximum of {MAX_SCALE:g}")
    return float(scale)


def check_scale_range(scale_min: float, scale_max: float) -> tuple[float, float]:
    """A training scale range [scale_min, scale_max]: 1 <= min < max."""
    if not (math.isfinite(scale_min) and math.isfinite(scale_max)) or scale_min < 1.0 or scale_max <= scale_min:
        raise UsageError(f"bad scale range ({scale_min}, {scale_max}]")
    return float(scale_min), float(scale_max)


def check_resolution(resolution: float | tuple[float, float]) -> tuple[float, float]:
    """A target pixel size (square, or (x, y)) as (x, y): positive and finite; UsageError otherwise."""
    res_x, res_y = resolution_xy(resolution)
    if not all(r > 0 and math.isfinite(r) for r in (res_x, res_y)):
        raise UsageError(f"--resolution must be a positive number, got {format_resolution(resolution)}")
    return res_x, res_y


def parse_resolution(text: str) -> tuple[float, float]:
    """'10' -> (10, 10); '10,20' (or '10 20') -> (10, 20): x then y pixel size, like gdalwarp -tr X Y."""
    parts = text.replace(",", " ").split()
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 2):
        raise UsageError(f"--resolution takes a pixel size X or X,Y in CRS units (e.g. 10 or 10,20), got {text!r}")
    return (values[0], values[-1])


def resolution_xy(resolution: float | tuple[float, float]) -> tuple[float, float]:
    """A square pixel size as (x, y); an (x, y) pair as it is."""
    if isinstance(resolution, (tuple, list)):
        x, y = resolution
        return float(x), float(y)
    return float(resolution), float(resolution)


def format_resolution(resolution: float | tuple[float, float]) -> str:
    """'5' for a square pixel size, '5,10' otherwise (the form --resolution takes)."""
    x, y = resolution_xy(resolution)
    return f"{x:g}" if x == y or (math.isnan(x) and math.isnan(y)) else f"{x:g},{y:g}"


def target_scales(
    pixel: tuple[float, float],
    *,
    scale: Optional[float],
    resolution: Optional[float | tuple[float, float]],
    allow_one: bool = False,
    of: str = "the input's",
) -> tuple[float, float, str]:
    """(scale_x, scale_y, the option as asked) for a scale factor, or for a target pixel size in CRS units (like
    gdalwarp -tr) on pixels of size `pixel` (x, y): the one rule of every output grid (plan_output_grid). A resolution
    sets each axis on its own: a square `resolution` on 20x10 m pixels gives scales 4 and 2. allow_one: an axis may
    keep its size (a band stack's finest band is copied)."""
    if (scale is None) == (resolution is None):
        raise UsageError("give exactly one of --scale or --resolution")
    if resolution is None:
        assert scale is not None
        asked = f"--scale {scale:.10g}"
        scale_x = scale_y = check_scale(scale, allow_one=allow_one, asked=asked)
        return scale_x, scale_y, asked
    res_x, res_y = check_resolution(resolution)
    scale_x, scale_y = pixel[0] / res_x, pixel[1] / res_y
    asked = f"--resolution {format_resolution(resolution)}"
    if min(scale_x, scale_y) < 1.0 - (1e-9 if allow_one else 0.0):
        raise UsageError(
            f"{asked} is coarser than {of} {pixel[0]:g} x {pixel[1]:g} pixels on an axis; rssr only upsamples"
        )
    check_scale(max(scale_x, scale_y), allow_one=True, asked=asked)
    return scale_x, scale_y, asked


def plan_output_grid(
    src_width: int,
    src_height: int,
    src_transform: Affine,
    *,
    scale: Optional[float] = None,
    resolution: Optional[float | tuple[float, float]] = None,
    allow_copy: bool = False,
    of: str = "the input's",
) -> OutputGrid:
    """Output grid for a scale factor or a target pixel size (target_scales): same bounds, round(W*sx) x round(H*sy)
    px, transform = src_transform * Affine.scale(W/out_w, H/out_h). Refuses an output of the input's own size
    (nothing to do) unless allow_copy (a band stack's finest band: the coarser bands still need the grid)."""
    pixel = (abs(src_transform.a), abs(src_transform.e))
    scale_x, scale_y, asked = target_scales(pixel, scale=scale, resolution=resolution, allow_one=allow_copy, of=of)
    width = max(1, round(src_width * scale_x))
    height = max(1, round(src_height * scale_y))
    if (width, height) == (src_width, src_height) and not allow_copy:
        raise UsageError(
            f"{asked} leaves the size unchanged ({src_width} x {src_height} px): "
            "the effective scale is 1, there is nothing to super-resolve"
        )
    transform = src_transform @ Affine.scale(src_width / width, src_height / height)
    return OutputGrid(src_width, src_height, width, height, transform)


@dataclass(frozen=True)
class HRGrid:
    """Where a window's HR pixels sit, in the LR window's own continuous pixel coordinates.

    HR pixel (i, j) covers rows [y0 + i*dy, y0 + (i+1)*dy) of the LR window; dy = 1/scale_y.
    The SR backends sample at these exact positions, so a window's HR patch is a sub-grid of
    the global output grid even at non-integer scales.
    """

    height: int
    width: int
    y0: float
    x0: float
    dy: float
    dx: float

    def centers_y(self) -> np.ndarray:
        return pixel_centres(self.height, self.dy, self.y0)

    def centers_x(self) -> np.ndarray:
        return pixel_centres(self.width, self.dx, self.x0)


def hr_grid_for(lr_window: Window, grid: OutputGrid) -> tuple[Window, HRGrid]:
    """The HR pixels whose centres fall inside an LR window, and their geometry relative to it."""
    if grid.placement is not None:
        return _placed_hr_grid(lr_window, grid)
    e = edges(lr_window)
    rows = _hr_span(e.top, e.bottom, grid.src_height, grid.height)
    cols = _hr_span(e.left, e.right, grid.src_width, grid.width)
    out_window = from_edges(rows[0], rows[1], cols[0], cols[1])
    dy = grid.src_height / grid.height
    dx = grid.src_width / grid.width
    hr = HRGrid(
        height=rows[1] - rows[0],
        width=cols[1] - cols[0],
        y0=rows[0] * dy - lr_window.row_off,
        x0=cols[0] * dx - lr_window.col_off,
        dy=dy,
        dx=dx,
    )
    return out_window, hr


def _placed_hr_grid(lr_window: Window, grid: OutputGrid) -> tuple[Window, HRGrid]:
    """hr_grid_for on a placed grid: the same rule (centre inside the window), decided on the one array of
    centres so neighbouring windows never disagree; a window on the source's edge also takes the pixels beyond it."""
    p = grid.placement
    assert p is not None
    e = edges(lr_window)
    r0, c0 = e.top, e.left
    rows = _placed_span(grid.source_centres_y(), r0, e.bottom, grid.src_height)
    cols = _placed_span(grid.source_centres_x(), c0, e.right, grid.src_width)
    out_window = from_edges(rows[0], rows[1], cols[0], cols[1])
    hr = HRGrid(
        height=rows[1] - rows[0],
        width=cols[1] - cols[0],
        y0=p.y0 + rows[0] * p.dy - r0,
        x0=p.x0 + cols[0] * p.dx - c0,
        dy=p.dy,
        dx=p.dx,
    )
    return out_window, hr


def _placed_span(centres: np.ndarray, lr_start: int, lr_stop: int, n_lr: int) -> tuple[int, int]:
    first = 0 if lr_start <= 0 else int(np.searchsorted(centres, lr_start, side="left"))
    stop = len(centres) if lr_stop >= n_lr else int(np.searchsorted(centres, lr_stop, side="left"))
    return first, max(first, stop)


def nearest_source_index(grid: OutputGrid, axis: str, start: int, stop: int) -> np.ndarray:
    """Source pixel holding each output pixel centre in [start, stop) along axis 'y' or 'x' (clamped at the
    edges) on a placed grid: the same floor rule as _placed_hr_grid."""
    centres = grid.source_centres_y() if axis == "y" else grid.source_centres_x()
    n = grid.src_height if axis == "y" else grid.src_width
    return np.clip(np.floor(centres[start:stop]), 0, n - 1).astype(np.int64)


def _hr_span(lr_start: int, lr_stop: int, n_lr: int, n_hr: int) -> tuple[int, int]:
    """[first, stop) of HR indices j with centre (2j+1)*n_lr/(2*n_hr) in [lr_start, lr_stop)."""
    return _first_center_at_or_after(lr_start, n_lr, n_hr), _first_center_at_or_after(lr_stop, n_lr, n_hr)


def _first_center_at_or_after(u: int, n_lr: int, n_hr: int) -> int:
    # (2j+1)*n_lr >= 2*u*n_hr  <=>  j >= (2*u*n_hr - n_lr) / (2*n_lr); integer ceil keeps it exact.
    j = -((n_lr - 2 * u * n_hr) // (2 * n_lr))
    return min(max(j, 0), n_hr)


@dataclass(frozen=True)
class Tile:
    """One unit of work: its core (the LR pixels it owns), its halo window (what is read) and its HR patch."""

    index: int
    row: int
    col: int
    core: Window
    halo: Window
    out: Window
    hr: HRGrid


def split_axis(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into ceil(length/tile) cores of near-equal size (no sliver at the end)."""
    n = max(1, math.ceil(length / tile))
    edges = [round(i * length / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def plan_tiles(grid: OutputGrid, *, tile: int, overlap: int) -> list[list[Tile]]:
    """Tiles in rows (top to bottom): cores partition the LR raster, halos extend each core by `overlap`."""
    if tile < 8:
        raise UsageError(f"--tile must be at least 8 px, got {tile}")
    if overlap < 0 or 2 * overlap > tile:
        raise UsageError(f"--overlap must be between 0 and half the tile ({tile // 2}), got {overlap}")
    row_spans = split_axis(grid.src_height, tile)
    col_spans = split_axis(grid.src_width, tile)
    rows: list[list[Tile]] = []
    index = 0
    for r, (y0, y1) in enumerate(row_spans):
        row: list[Tile] = []
        for c, (x0, x1) in enumerate(col_spans):
            core = from_edges(y0, y1, x0, x1)
            halo = grow(core, overlap, grid.src_height, grid.src_width)
            out, hr = hr_grid_for(halo, grid)
            row.append(Tile(index, r, c, core, halo, out, hr))
            index += 1
        rows.append(row)
    return rows


def iter_tiles(rows: list[list[Tile]]) -> Iterator[Tile]:
    for row in rows:
        yield from row


def tile_seed(seed: int, tile: Tile) -> int:
    """A per-tile seed from the run seed and the tile's LR core origin: independent of processing order."""
    return (seed * 1_000_003 + int(tile.core.row_off) * 65_537 + int(tile.core.col_off)) % (2**63 - 1)


def placed_grid(src_width: int, src_height: int, src_transform: Affine, common: OutputGrid) -> OutputGrid:
    """`common` placed on another raster's own grid (a band stack's band): exact offsets and steps in its pixels."""
    t, b = common.transform, src_transform
    placement = Placement(x0=(t.c - b.c) / b.a, y0=(t.f - b.f) / b.e, dx=t.a / b.a, dy=t.e / b.e)
    return OutputGrid(src_width, src_height, common.width, common.height, t, placement)
