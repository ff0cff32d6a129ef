"""Property tests for the output grid and the tiling maths (grid.py), at non-integer scales."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rasterio.windows import bounds as window_bounds

from rssr_cli.core.errors import UsageError
from rssr_cli.evaluation.compare import check_scales
from rssr_cli.geo.grid import (
    HRGrid,
    OutputGrid,
    check_scale,
    iter_tiles,
    parse_resolution,
    plan_output_grid,
    plan_tiles,
    split_axis,
)
from rssr_cli.io.products import StackBand
from rssr_cli.pipeline.blend import tile_blend_weights
from rssr_cli.pipeline.settings import check_target
from rssr_cli.pipeline.stack_plan import plan_common_grid

TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_000_000.0)

sizes = st.integers(min_value=1, max_value=60)
scales = st.floats(min_value=1.01, max_value=6.0, allow_nan=False).filter(lambda s: abs(s - round(s)) > 1e-3)


@st.composite
def tilings(draw):
    tile = draw(st.integers(min_value=8, max_value=40))
    overlap = draw(st.integers(min_value=0, max_value=tile // 2))
    return tile, overlap


def _plan(w, h, s, tile, overlap):
    assume((round(w * s), round(h * s)) != (w, h))  # an effective scale of 1 is refused
    grid = plan_output_grid(w, h, TRANSFORM, scale=s)
    return grid, list(iter_tiles(plan_tiles(grid, tile=tile, overlap=overlap)))


@settings(max_examples=80, deadline=None)
@given(w=sizes, h=sizes, s=scales, tiling=tilings())
def test_cores_cover_the_raster_exactly_once(w, h, s, tiling):
    _, tiles = _plan(w, h, s, *tiling)
    count = np.zeros((h, w), dtype=int)
    for t in tiles:
        count[t.core.row_off : t.core.row_off + t.core.height, t.core.col_off : t.core.col_off + t.core.width] += 1
    assert (count == 1).all()


@settings(max_examples=80, deadline=None)
@given(w=sizes, h=sizes, s=scales, tiling=tilings())
def test_halos_stay_inside_and_extend_cores_by_the_overlap(w, h, s, tiling):
    _, tiles = _plan(w, h, s, *tiling)
    overlap = tiling[1]
    for t in tiles:
        assert 0 <= t.halo.col_off and t.halo.col_off + t.halo.width <= w
        assert 0 <= t.halo.row_off and t.halo.row_off + t.halo.height <= h
        assert t.halo.col_off == max(0, t.core.col_off - overlap)
        assert t.halo.row_off + t.halo.height == min(h, t.core.row_off + t.core.height + overlap)


@settings(max_examples=80, deadline=None)
@given(w=sizes, h=sizes, s=scales, tiling=tilings())
def test_out_window_and_hr_grid_have_the_same_bounds(w, h, s, tiling):
    grid, tiles = _plan(w, h, s, *tiling)
    pixel = abs(TRANSFORM.a)
    for t in tiles:
        # the HR grid's edges, in absolute LR pixel coordinates, through the source transform
        x0 = t.halo.col_off + t.hr.x0
        y0 = t.halo.row_off + t.hr.y0
        left, top = TRANSFORM @ (x0, y0)
        right, bottom = TRANSFORM @ (x0 + t.hr.width * t.hr.dx, y0 + t.hr.height * t.hr.dy)
        w_left, w_bottom, w_right, w_top = window_bounds(t.out, grid.transform)
        assert (t.out.width, t.out.height) == (t.hr.width, t.hr.height)
        for a, b in ((left, w_left), (right, w_right), (top, w_top), (bottom, w_bottom)):
            assert abs(a - b) < 1e-9 * pixel * max(1.0, abs(a) / pixel) ** 0.5 + 1e-6


@settings(max_examples=80, deadline=None)
@given(w=sizes, h=sizes, s=scales, tiling=tilings())
def test_hr_centres_lie_inside_the_halo(w, h, s, tiling):
    _, tiles = _plan(w, h, s, *tiling)
    eps = 1e-9  # a centre exactly on the halo's edge belongs to it (exact arithmetic); floats may say -6e-16
    for t in tiles:
        cy, cx = t.hr.centers_y(), t.hr.centers_x()
        if t.hr.height:
            assert cy.min() >= -eps and cy.max() < t.halo.height
        if t.hr.width:
            assert cx.min() >= -eps and cx.max() < t.halo.width


@settings(max_examples=60, deadline=None)
@given(w=sizes, h=sizes, s=scales, tiling=tilings())
def test_blend_weights_sum_to_one_everywhere(w, h, s, tiling):
    grid, tiles = _plan(w, h, s, *tiling)
    total = np.zeros((grid.height, grid.width), dtype=np.float64)
    for t in tiles:
        o = t.out
        total[o.row_off : o.row_off + o.height, o.col_off : o.col_off + o.width] += tile_blend_weights(
            t, grid, tiling[1]
        )
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), s=st.floats(1.001, 32.0))
def test_output_grid_keeps_bounds_and_scales_pixel_size(w, h, s):
    assume((round(w * s), round(h * s)) != (w, h))
    grid = plan_output_grid(w, h, TRANSFORM, scale=s)
    assert (grid.width, grid.height) == (max(1, round(w * s)), max(1, round(h * s)))
    out_right, out_bottom = grid.transform @ (grid.width, grid.height)
    in_right, in_bottom = TRANSFORM @ (w, h)
    assert abs(out_right - in_right) < 1e-9 * abs(TRANSFORM.a) * max(w, h)
    assert abs(out_bottom - in_bottom) < 1e-9 * abs(TRANSFORM.e) * max(w, h)
    assert math.isclose(grid.transform.a, TRANSFORM.a * w / grid.width, rel_tol=1e-12)
    assert math.isclose(grid.transform.e, TRANSFORM.e * h / grid.height, rel_tol=1e-12)


def test_resolution_gives_the_matching_scale():
    grid = plan_output_grid(100, 80, TRANSFORM, resolution=2.5)
    assert (grid.width, grid.height) == (400, 320)
    assert grid.transform.a == pytest.approx(2.5)


RECTANGULAR = Affine(20.0, 0.0, 500_000.0, 0.0, -10.0, 4_000_000.0)  # 20 m wide, 10 m tall pixels


@pytest.mark.parametrize(
    "resolution,size,pixel",
    [(5.0, (40, 20), (5.0, 5.0)), ((5.0, 2.5), (40, 40), (5.0, 2.5)), ((10.0, 5.0), (20, 20), (10.0, 5.0))],
)
def test_resolution_reaches_the_asked_pixel_size_on_each_axis(resolution, size, pixel):
    grid = plan_output_grid(10, 10, RECTANGULAR, resolution=resolution)
    assert (grid.width, grid.height) == size
    assert (grid.transform.a, -grid.transform.e) == pytest.approx(pixel)


@pytest.mark.parametrize("resolution", [15.0, (5.0, 12.0), 0.0, (5.0, -1.0)])
def test_resolution_coarser_than_an_axis_or_not_positive_is_refused(resolution):
    with pytest.raises(UsageError):
        plan_output_grid(10, 10, RECTANGULAR, resolution=resolution)


@pytest.mark.parametrize(
    "text,parsed", [("10", (10.0, 10.0)), ("10,20", (10.0, 20.0)), ("10 20", (10.0, 20.0)), (" 2.5 , 5 ", (2.5, 5.0))]
)
def test_parse_resolution(text, parsed):
    assert parse_resolution(text) == parsed


@pytest.mark.parametrize("text", ["", "x", "1,2,3", "5,x", ","])
def test_parse_resolution_refuses_anything_else(text):
    with pytest.raises(UsageError, match="X or X,Y"):
        parse_resolution(text)


@pytest.mark.parametrize(
    "width,height,request_",
    [
        (45, 37, {"scale": 1.0000001}),
        (45, 37, {"scale": 1.01}),
        (10, 10, {"resolution": (20.0, 10.0)}),
        (10, 10, {"resolution": (19.9, 9.9)}),
    ],
)
def test_an_effective_scale_of_one_is_refused(width, height, request_):
    transform = RECTANGULAR if "resolution" in request_ else TRANSFORM
    with pytest.raises(UsageError, match="effective scale is 1"):
        plan_output_grid(width, height, transform, **request_)


def test_one_unchanged_axis_is_allowed():
    grid = plan_output_grid(10, 10, RECTANGULAR, resolution=10.0)  # 20 x 10 m -> 10 x 10 m: only x grows
    assert (grid.width, grid.height) == (20, 10)


@pytest.mark.parametrize("scale", [1.0, 0.5, -2.0, math.nan, math.inf, 33.0])
def test_bad_scales_are_refused(scale):
    with pytest.raises(UsageError):
        plan_output_grid(10, 10, TRANSFORM, scale=scale)


def test_scale_and_resolution_are_exclusive():
    with pytest.raises(UsageError):
        plan_output_grid(10, 10, TRANSFORM, scale=2.0, resolution=5.0)
    with pytest.raises(UsageError):
        plan_output_grid(10, 10, TRANSFORM)


@pytest.mark.parametrize("tile,overlap", [(4, 0), (16, 9), (16, -1)])
def test_bad_tilings_are_refused(tile, overlap):
    grid = plan_output_grid(50, 50, TRANSFORM, scale=2.0)
    with pytest.raises(UsageError):
        plan_tiles(grid, tile=tile, overlap=overlap)


def test_split_axis_has_no_sliver():
    spans = split_axis(257, 256)
    assert [b - a for a, b in spans] == [128, 129]


def test_check_scale_is_the_one_scale_rule():
    from rssr_cli.geo.grid import MAX_SCALE, check_scale, check_scale_range

    assert check_scale(4.5) == 4.5 and check_scale(MAX_SCALE) == MAX_SCALE and check_scale(1.0, allow_one=True) == 1.0
    for bad in (1.0, 0.5, -3.0, float("nan"), float("inf"), MAX_SCALE + 1):
        with pytest.raises(UsageError, match="scale"):
            check_scale(bad)
    assert check_scale_range(1.0, 4.0) == (1.0, 4.0)
    with pytest.raises(UsageError, match="bad scale range"):
        check_scale_range(2.0, 2.0)


def test_hr_pixel_centres_numpy_and_torch_agree():
    """grid.pixel_centres (HRGrid, OutputGrid) and model.operator.grid_tensors place HR pixels alike."""
    import torch

    from rssr_cli.geo.grid import pixel_centres
    from rssr_cli.model.operator import grid_tensors

    hr = HRGrid(height=23, width=17, y0=0.25, x0=-0.4, dy=9 / 23, dx=7 / 17)
    ys, xs, cell = grid_tensors(hr.height, hr.width, hr.y0, hr.x0, hr.dy, hr.dx, batch=2)
    np.testing.assert_allclose(ys[1].numpy(), hr.centers_y(), atol=1e-6)
    np.testing.assert_allclose(xs[0].numpy(), hr.centers_x(), atol=1e-6)
    assert torch.allclose(cell[0], torch.tensor([hr.dy, hr.dx], dtype=torch.float32))
    grid = OutputGrid(src_width=7, src_height=9, width=17, height=23, transform=Affine.identity())
    np.testing.assert_array_equal(grid.source_centres_y(), pixel_centres(23, 9 / 23))
    np.testing.assert_array_equal(pixel_centres(3, 0.5, first=2), [1.25, 1.75, 2.25])


def test_one_output_grid_rule_for_rasters_and_band_stacks():
    """plan_common_grid (a band stack's finest band) is plan_output_grid with a copy allowed (issue 22: one rule):
    same size and transform for every target, and the same refusals."""
    transform = Affine(20.0, 0, 500000.0, 0, -10.0, 4200000.0)
    band = StackBand("B05", "b05.tif", 1, 37, 23, transform, None, "uint16", None)  # 20 x 10 m pixels
    for target in ({"scale": 2.5}, {"resolution": 5.0}, {"resolution": (4.0, 10.0)}, {"resolution": 10.0}):
        common = plan_common_grid(band, **{"scale": None, "resolution": None, **target})
        plain = plan_output_grid(37, 23, transform, allow_copy=True, **target)
        assert (common.width, common.height, common.transform) == (plain.width, plain.height, plain.transform)
    with pytest.raises(UsageError, match="--scale 40 means a scale of 40, above the supported maximum of 32"):
        plan_common_grid(band, scale=40.0, resolution=None)
    with pytest.raises(UsageError, match="coarser than band B05's 20 x 10 pixels on an axis; rssr only upsamples"):
        plan_common_grid(band, scale=None, resolution=15.0)


def test_one_scale_check_for_settings_grids_and_evaluate():
    """The same refusal, word for word, whether a scale is checked by the settings, the grid or evaluate."""
    for bad, text in ((0.5, "scale must be > 1 (got 0.5)"), (40.0, "--scale 40 means a scale of 40")):
        messages = set()
        for check in (
            lambda: check_target(bad, None),
            lambda: check_scale(bad),
            lambda: check_scales([bad]),
            lambda: plan_output_grid(10, 10, Affine.identity(), scale=bad),
        ):
            with pytest.raises(UsageError) as caught:
                check()
            messages.add(str(caught.value))
        assert len(messages) == 1 and text in messages.pop()
