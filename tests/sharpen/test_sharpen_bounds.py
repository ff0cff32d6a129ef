"""Never a ring, never an invented extreme (issue 20 item 4): the guided output is bounded by its native neighbourhood.

Tested where rings appear: a bright point target (a roof) and a dark shore, on the constraint alone, through the
guided step Wald's protocol and the product share (consistent_and_bounded), and through `rssr upscale` on a product."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from test_sharpen import l1c, tiny_model_path, tiny_sharpener  # noqa: F401  (module fixtures)

from rssr_cli.sharpen import apply as sharpen_apply
from rssr_cli.sharpen.bounds import (
    BOUND_MARGIN,
    RING_MARGIN,
    WIDENING_PER_RATIO,
    band_range,
    bound_to_native,
    neighbourhood_range,
    ring_share,
)
from rssr_cli.sharpen.degrade import sample_at
from rssr_cli.sharpen.predict import consistent_and_bounded

import s2_products as sp
from cli_helpers import run

SCALE = 4


def _grid(h: int, w: int, scale: int = SCALE):
    ys = (np.arange(h * scale) + 0.5) / scale
    xs = (np.arange(w * scale) + 0.5) / scale
    return ys, xs, np.floor(ys).astype(int), np.floor(xs).astype(int)


def _ringing(native: np.ndarray, scale: int = SCALE, gain: float = 3.0) -> np.ndarray:
    """Native pixels upsampled (bicubic, a = -0.75) then over-sharpened: the overshoot an over-eager network makes."""
    h, w = native.shape
    ys, xs, _, _ = _grid(h, w, scale)
    up = sample_at(
        torch.from_numpy(native.astype(np.float32))[None, None],
        torch.from_numpy(ys).float()[None],
        torch.from_numpy(xs).float()[None],
    )[0, 0].numpy()
    smooth = sample_at(
        torch.from_numpy(up)[None, None],
        torch.from_numpy((np.arange(h * scale) + 0.5) * 1.0).float()[None],
        torch.from_numpy((np.arange(w * scale) + 0.5) * 1.0).float()[None],
    )[0, 0].numpy()
    blurred = 0.25 * (np.roll(up, 1, 0) + np.roll(up, -1, 0) + np.roll(up, 1, 1) + np.roll(up, -1, 1))
    return smooth + gain * (up - blurred) * scale


def _point_target() -> np.ndarray:
    native = np.full((16, 16), 1500.0)
    native[8, 8] = 9000.0  # a bright roof in one native pixel
    return native


def _shore() -> np.ndarray:
    native = np.full((16, 16), 2200.0)
    native[:, :8] = 60.0  # dark water
    return native


@pytest.mark.parametrize("scene", [_point_target, _shore])
def test_the_bound_cuts_gross_overshoots_and_keeps_the_rest(scene):
    """A gross ring (several times the scene's range, as seen around a bright roof) is cut to the widened native
    range; values inside the native neighbourhood's own range are left as they were."""
    native = scene()
    valid = np.ones(native.shape, bool)
    ys, xs, rows, cols = _grid(*native.shape)
    ringing = _ringing(native, gain=30.0)
    margin = BOUND_MARGIN * band_range(native, valid)
    measure = RING_MARGIN * max(band_range(native, valid), 1.0)
    bounded = bound_to_native(ringing, native, valid, rows, cols, margin, SCALE)
    lo, hi = neighbourhood_range(native, valid)
    lo, hi = lo[np.ix_(rows, cols)], hi[np.ix_(rows, cols)]
    widen = WIDENING_PER_RATIO * SCALE * (hi - lo) + margin
    assert ringing.max() > (hi + widen).max() or ringing.min() < (lo - widen).min()  # the case does overshoot grossly
    assert np.all(bounded <= hi + widen + 1e-6) and np.all(bounded >= lo - np.minimum(widen, 0.5 * lo) - 1e-6)
    assert ring_share(bounded, native, valid, rows, cols, measure) < ring_share(
        ringing, native, valid, rows, cols, measure
    )
    inside = (ringing >= lo) & (ringing <= hi)
    assert np.array_equal(bounded[inside], ringing[inside])  # flat land and flat water: untouched


def test_the_bright_target_stays_within_a_few_times_the_scene_maximum():
    native = _point_target()
    valid = np.ones(native.shape, bool)
    ys, xs, rows, cols = _grid(*native.shape)
    out = consistent_and_bounded(
        _ringing(native, gain=30.0), native, valid, ys, xs, SCALE, BOUND_MARGIN * band_range(native, valid)
    )
    # the roof's 3x3 neighbourhood spans 1500..9000: at most 9000 + 2 x 7500 (+ margin) at x4, never 30x ringing
    assert out.max() <= 9000 + WIDENING_PER_RATIO * SCALE * 7500 + BOUND_MARGIN * band_range(native, valid) + 1e-3
    assert out.min() >= 750.0  # half the darkest neighbour at most below it


def test_the_dark_shore_never_drops_to_1_dn():
    native = _shore()
    valid = np.ones(native.shape, bool)
    ys, xs, rows, cols = _grid(*native.shape)
    out = consistent_and_bounded(
        _ringing(native, gain=30.0), native, valid, ys, xs, SCALE, BOUND_MARGIN * band_range(native, valid)
    )
    assert out.min() >= 30.0  # at most half the darkest neighbour below it


def test_invalid_native_pixels_do_not_widen_the_range():
    native = np.full((6, 6), 100.0)
    native[2, 2] = 65535.0  # a saturated / nodata value that is not valid
    valid = native < 60000
    lo, hi = neighbourhood_range(native, valid)
    assert hi.max() == 100.0 and lo.min() == 100.0


def test_guided_bands_of_a_product_stay_in_their_native_range(
    l1c,
    tmp_path,
    tiny_sharpener,
    tiny_model_path,
    monkeypatch,
):
    """A random (wild) sharpener on the fixture product at 5 m: every guided band within its native neighbourhood's
    range widened as the bound allows at x4 (no pixel beyond it)."""
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(tiny_sharpener))
    out = tmp_path / "out.tif"
    result = run(
        "upscale", l1c, "-o", out, "--resolution", "5", "--bands", "B04,B8A,B11", "--model", tiny_model_path, "-q"
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        for i, name in enumerate(dst.descriptions, start=1):
            if name not in ("B8A", "B11"):
                continue
            with rasterio.open(sp.band_path(name)) as src:
                native, native_transform = src.read(1).astype(np.float64), src.transform
            sharpened = dst.read(i).astype(np.float64)
            valid = native != 0
            # the native pixel under each output pixel centre (the 20 m grid starts 10 m west of the 10 m one)
            x = dst.transform.c + (np.arange(sharpened.shape[1]) + 0.5) * dst.transform.a
            y = dst.transform.f + (np.arange(sharpened.shape[0]) + 0.5) * dst.transform.e
            cols = np.clip(np.floor((x - native_transform.c) / native_transform.a).astype(int), 0, native.shape[1] - 1)
            rows = np.clip(np.floor((y - native_transform.f) / native_transform.e).astype(int), 0, native.shape[0] - 1)
            lo, hi = neighbourhood_range(native, valid)
            lo, hi = lo[np.ix_(rows, cols)], hi[np.ix_(rows, cols)]
            widen = WIDENING_PER_RATIO * 4 * (hi - lo) + 0.25 * band_range(
                native, valid
            )  # (decimated-sample range: slack)
            inside = valid[np.ix_(rows, cols)] & (sharpened != 0)
            assert np.all(sharpened[inside] <= (hi + widen)[inside]) and np.all(
                sharpened[inside] >= (lo - widen)[inside]
            )
