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
from rssr_cli.sharpen.bands import GUIDE_BANDS
from rssr_cli.sharpen.bounds import (
    BOUND_MARGIN,
    GUIDE_EXCURSION_GAIN,
    RING_MARGIN,
    band_range,
    bound_to_native,
    guide_supported_excursion,
    neighbourhood_range,
    ring_share,
)
from rssr_cli.sharpen.degrade import sample_at
from rssr_cli.sharpen.predict import consistent_and_bounded

import s2_products as sp
from cli_helpers import run

SCALE = 4
GUIDE_STD = np.full(4, 500.0)  # the guides' std over the scene (the unit of the slope's floor)


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


def _flat_guides(shape: tuple[int, int], level: float = 950.0) -> np.ndarray:
    """Four guides that show nothing finer than the native grid (constant inside every native pixel)."""
    return np.full((4, *shape), level)


def _roof_scene(scale: int = SCALE):
    """A bright roof: 2 x 2 output pixels at 31,500 in one native pixel of an x4 grid over a 1,500 field (the native
    pixel's mean: 9,000), and guides that show it (a brighter-is-brighter guide, 0.5 x band + 200) or not (flat)."""
    h = w = 16
    fine = np.full((h * scale, w * scale), 1500.0)
    fine[8 * scale + 1 : 8 * scale + 3, 8 * scale + 1 : 8 * scale + 3] = 31500.0
    native = fine.reshape(h, scale, w, scale).mean(axis=(1, 3))
    showing = np.stack([0.5 * fine + 200.0, 0.3 * fine + 100.0, np.full(fine.shape, 800.0), 0.5 * fine + 200.0])
    return fine, native, showing


@pytest.mark.parametrize("scene", [_point_target, _shore])
def test_the_bound_cuts_gross_overshoots_and_keeps_the_rest(scene):
    """A gross ring (several times the scene's range, as seen around a bright roof) is cut to the native range plus
    the margin where no guide shows anything finer; values inside the native neighbourhood's own range are left as
    they were."""
    native = scene()
    valid = np.ones(native.shape, bool)
    ys, xs, rows, cols = _grid(*native.shape)
    ringing = _ringing(native, gain=30.0)
    guides = _flat_guides(ringing.shape)
    margin = BOUND_MARGIN * band_range(native, valid)
    measure = RING_MARGIN * max(band_range(native, valid), 1.0)
    bounded = bound_to_native(
        ringing, native, valid, rows, cols, margin, guides, np.ones(ringing.shape, bool), GUIDE_STD
    )
    lo, hi = neighbourhood_range(native, valid)
    lo, hi = lo[np.ix_(rows, cols)], hi[np.ix_(rows, cols)]
    assert ringing.max() > (hi + margin).max() or ringing.min() < (lo - margin).min()  # the case does overshoot
    assert np.all(bounded <= hi + margin + 1e-6) and np.all(bounded >= lo - np.minimum(margin, 0.5 * lo) - 1e-6)
    assert ring_share(bounded, native, valid, rows, cols, measure) == 0.0
    assert ring_share(ringing, native, valid, rows, cols, measure) > 0.05
    inside = (ringing >= lo) & (ringing <= hi)
    assert np.array_equal(bounded[inside], ringing[inside])  # flat land and flat water: untouched


def test_a_bright_roof_the_guides_show_keeps_its_peak_and_nothing_else_rings():
    """The roof's 2 x 2 peak (3.5x its native pixel) is kept where the guides show it; the ring an over-eager
    network puts around it (in the pixels the guides show flat) is cut to the native range plus the margin."""
    fine, native, guides = _roof_scene()
    valid = np.ones(native.shape, bool)
    _, _, rows, cols = _grid(*native.shape)
    margin = BOUND_MARGIN * band_range(native, valid)
    ring = np.zeros(fine.shape)
    ring[8 * SCALE - 3 : 8 * SCALE + 7, 8 * SCALE - 3 : 8 * SCALE + 7] = 40000.0  # a bright halo ...
    ring[8 * SCALE + 1 : 8 * SCALE + 3, 8 * SCALE + 1 : 8 * SCALE + 3] = 0.0  # ... around the roof itself
    ring[8 * SCALE - 6 : 8 * SCALE - 3, :] = -20000.0  # and a dark band beside it
    out = fine + ring
    bounded = bound_to_native(out, native, valid, rows, cols, margin, guides, np.ones(fine.shape, bool), GUIDE_STD)
    roof = fine > 20000
    assert np.allclose(bounded[roof], 31500.0)  # the peak the guides support
    lo, hi = neighbourhood_range(native, valid)
    lo, hi = lo[np.ix_(rows, cols)], hi[np.ix_(rows, cols)]
    assert np.all(bounded[~roof] <= hi[~roof] + margin + 1e-6)  # the halo: at most the native range
    assert bounded.min() >= 1500.0 - margin - 1e-6  # the dark band: nothing the guides show below the field


def test_a_bright_roof_no_guide_shows_is_clipped_to_the_native_range():
    fine, native, _ = _roof_scene()
    valid = np.ones(native.shape, bool)
    _, _, rows, cols = _grid(*native.shape)
    margin = BOUND_MARGIN * band_range(native, valid)
    # guides whose values are constant inside every native pixel (a roof that is only in the band, or a ring)
    flat = np.repeat(np.repeat(0.5 * native + 200.0, SCALE, axis=0), SCALE, axis=1)
    bounded = bound_to_native(
        fine, native, valid, rows, cols, margin, np.stack([flat] * 4), np.ones(fine.shape, bool), GUIDE_STD
    )
    assert bounded.max() <= native.max() + margin + 1e-6
    assert bounded.max() < 31500.0 / 3


def test_a_flat_field_gets_no_texture_the_guides_do_not_show():
    """A worm-like texture (the 20 -> 5 m maze of issue 20) over a flat field with flat guides: cut to within the
    margin of the field; the same texture where the guides show it (a band that follows them) is kept."""
    rng = np.random.default_rng(0)
    native = 1500.0 + rng.normal(0.0, 5.0, (16, 16))
    valid = np.ones(native.shape, bool)
    _, _, rows, cols = _grid(*native.shape)
    yy, xx = np.mgrid[0 : 16 * SCALE, 0 : 16 * SCALE]
    texture = 400.0 * np.sin(yy * 1.3) * np.cos(xx * 0.9)  # averages to ~0 over a native pixel
    margin = BOUND_MARGIN * band_range(native, valid)
    bounded = bound_to_native(
        native[np.ix_(rows, cols)] + texture,
        native,
        valid,
        rows,
        cols,
        margin,
        _flat_guides(texture.shape),
        np.ones(texture.shape, bool),
        GUIDE_STD,
    )
    assert np.ptp(bounded) <= np.ptp(native) + 2 * margin + 1e-6
    assert np.std(bounded) < 0.2 * np.std(texture)
    # a textured scene the guides show (the band follows them at the native grid too): its fine detail is kept
    truth = 1500.0 + 300.0 * np.sin(yy * 0.3) * np.cos(xx * 0.25) + texture
    native = truth.reshape(16, SCALE, 16, SCALE).mean(axis=(1, 3))
    kept = bound_to_native(
        truth, native, valid, rows, cols, margin, np.stack([truth - 500.0] * 4), np.ones(texture.shape, bool), GUIDE_STD
    )
    assert np.array_equal(kept, truth)


def test_the_bright_target_stays_within_its_native_range_through_the_guided_steps():
    native = _point_target()
    valid = np.ones(native.shape, bool)
    ys, xs, rows, cols = _grid(*native.shape)
    ringing = _ringing(native, gain=30.0)
    margin = BOUND_MARGIN * band_range(native, valid)
    out = consistent_and_bounded(ringing, native, valid, ys, xs, SCALE, margin, _flat_guides(ringing.shape), GUIDE_STD)
    # the roof's 3x3 neighbourhood spans 1500..9000; flat guides lend no excursion: never 30x ringing
    assert out.max() <= 9000 + margin + 1e-3
    assert out.min() >= 750.0  # half the darkest neighbour at most below it


@pytest.mark.parametrize("guide_dip", [0.0, 5000.0])
def test_the_dark_shore_never_drops_to_1_dn(guide_dip):
    """Even where a guide dips sharply at the shore (a lent excursion far below the water), the band stays above half
    the darkest neighbour, and never below 0."""
    native = _shore()
    valid = np.ones(native.shape, bool)
    ys, xs, rows, cols = _grid(*native.shape)
    ringing = _ringing(native, gain=30.0)
    guides = np.stack([np.where(np.arange(16 * SCALE)[None, :] < 8 * SCALE, 100.0, 3000.0)] * 4).repeat(
        16 * SCALE, axis=1
    )
    guides[:, :, 8 * SCALE - 1] -= guide_dip
    out = consistent_and_bounded(
        ringing, native, valid, ys, xs, SCALE, BOUND_MARGIN * band_range(native, valid), guides, GUIDE_STD
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
    range widened by what the 5 m guides show beyond theirs (the guide bands of the same output), no pixel beyond."""
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(tiny_sharpener))
    out = tmp_path / "out.tif"
    bands = ",".join([*GUIDE_BANDS, "B11"])
    result = run("upscale", l1c, "-o", out, "--resolution", "5", "--bands", bands, "--model", tiny_model_path, "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        names = list(dst.descriptions)
        guides = np.stack([dst.read(names.index(g) + 1) for g in GUIDE_BANDS]).astype(np.float64)
        for i, name in enumerate(names, start=1):
            if name != "B11":
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
            above, below = guide_supported_excursion(
                guides, (guides != 0).all(axis=0), guides.std(axis=(1, 2)), native, valid, rows, cols
            )
            slack = 0.25 * band_range(native, valid)  # (decimated-sample range, edge tiles' partial footprints)
            inside = valid[np.ix_(rows, cols)] & (sharpened != 0)
            assert np.all(sharpened[inside] <= (hi + GUIDE_EXCURSION_GAIN * above + slack)[inside])
            assert np.all(sharpened[inside] >= (lo - GUIDE_EXCURSION_GAIN * below - slack)[inside])
