"""rssr_cli.geo.coregister: two rasters in one CRS co-registered by their georeferencing."""

from __future__ import annotations

import pytest
from affine import Affine

from rssr_cli.geo.coregister import plan_pair


def test_plan_pair_aligned_grids():
    hr_t, lr_t = Affine(1, 0, 1000, 0, -1, 2000), Affine(3, 0, 1006, 0, -3, 1994)
    geo = plan_pair(lr_t, (40, 40), hr_t, (96, 96))
    assert geo.lr_tuple == (0, 0, 30, 30) and geo.hr_tuple == (6, 6, 90, 90)
    assert (geo.grid.y0, geo.grid.x0) == (0.0, 0.0)
    assert geo.grid.dy == pytest.approx(1 / 3) and geo.grid.dx == pytest.approx(1 / 3)


def test_plan_pair_misaligned_grids_keep_hr_pixels_inside_the_lr_window():
    hr_t, lr_t = Affine(1, 0, 1000, 0, -1, 2000), Affine(3, 0, 1006.5, 0, -3, 1994)
    geo = plan_pair(lr_t, (40, 40), hr_t, (96, 96))
    assert geo.lr_tuple == (0, 0, 29, 30) and geo.hr_tuple == (7, 6, 86, 90)
    assert geo.grid.x0 == pytest.approx(0.5 / 3) and geo.grid.y0 == pytest.approx(0.0)
    assert geo.grid.x0 + geo.grid.width * geo.grid.dx <= 29 + 1e-9
