"""Co-registration of two rasters in one CRS by their georeferencing (north-up grids): the geo layer
under pair evaluation (evaluation.pairs) and pair training (training.pairs). No torch, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.transform import array_bounds
from rasterio.windows import Window, bounds, from_bounds

from rssr_cli.core.errors import InputError
from rssr_cli.geo.grid import HRGrid
from rssr_cli.geo.windows import as_tuple, clip, from_edges

EDGE_EPS = 1e-6  # float noise on edges that coincide with pixel edges


@dataclass(frozen=True)
class PairGeometry:
    """The common area of an LR and an HR raster: integer windows into each and the SR grid on the LR window."""

    lr_window: Window
    hr_window: Window
    grid: HRGrid

    @property
    def lr_tuple(self) -> tuple[int, int, int, int]:
        """lr_window as (col_off, row_off, width, height), for JSON."""
        return as_tuple(self.lr_window)

    @property
    def hr_tuple(self) -> tuple[int, int, int, int]:
        return as_tuple(self.hr_window)


def inner_window(area: tuple[float, float, float, float], transform: Affine) -> Window:
    """Pixels of `transform`'s grid lying entirely inside area (west, south, east, north)."""
    win = from_bounds(*area, transform=transform)
    top, left = math.ceil(win.row_off - EDGE_EPS), math.ceil(win.col_off - EDGE_EPS)
    bottom = math.floor(win.row_off + win.height + EDGE_EPS)
    right = math.floor(win.col_off + win.width + EDGE_EPS)
    return from_edges(top, bottom, left, right)


def plan_pair(
    lr_transform: Affine, lr_shape: tuple[int, int], hr_transform: Affine, hr_shape: tuple[int, int]
) -> PairGeometry:
    """Co-register an LR and an HR raster in one CRS by their georeferencing (north-up grids).

    LR window: LR pixels entirely inside both rasters. HR window: HR pixels entirely inside the LR
    window. The SR grid is the HR window's grid expressed in the LR window's pixel coordinates, so the
    SR lands exactly on the HR raster's pixels even when the two grids are not aligned.
    """
    for t in (lr_transform, hr_transform):
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise InputError("pair evaluation needs north-up rasters (no rotation, no flip)")
    lw, ls, le, ln = array_bounds(*lr_shape, lr_transform)
    hw, hs, he, hn = array_bounds(*hr_shape, hr_transform)
    common = (max(lw, hw), max(ls, hs), min(le, he), min(ln, hn))
    lr_win = clip(inner_window(common, lr_transform), *lr_shape)
    if lr_win.width < 2 or lr_win.height < 2:
        raise InputError("the LR and HR rasters share less than 2x2 LR pixels")
    hr_win = clip(inner_window(bounds(lr_win, lr_transform), hr_transform), *hr_shape)
    lr_t = lr_transform @ Affine.translation(lr_win.col_off, lr_win.row_off)
    hr_t = hr_transform @ Affine.translation(hr_win.col_off, hr_win.row_off)
    x0, y0 = ~lr_t @ (hr_t.c, hr_t.f)
    grid = HRGrid(
        height=int(hr_win.height),
        width=int(hr_win.width),
        y0=float(y0),
        x0=float(x0),
        dy=hr_t.e / lr_t.e,
        dx=hr_t.a / lr_t.a,
    )
    return PairGeometry(lr_win, hr_win, grid)
