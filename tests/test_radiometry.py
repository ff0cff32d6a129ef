"""Radiometry rules: fixed maps for uint8/uint16/int16, robust range for floats, exact round trips, no early clipping."""

from __future__ import annotations

import numpy as np
import pytest

from rssr_cli.radiometry import (
    denormalize,
    fixed_radiometry,
    normalize,
    robust_radiometry,
    to_dtype,
    uses_robust_range,
)


def test_uint8_maps_to_unit_range():
    rad = fixed_radiometry("uint8", 1)
    data = np.array([[[0, 128, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(normalize(data, rad), [[[0.0, 128 / 255, 1.0]]], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_reflectance_types_divide_by_10000(dtype):
    rad = fixed_radiometry(dtype, 2)
    data = np.array([[[0, 10_000]], [[2_500, 12_000]]], dtype=dtype)
    np.testing.assert_allclose(normalize(data, rad), [[[0.0, 1.0]], [[0.25, 1.2]]], rtol=1e-6)


def test_declared_scale_and_offset_win_over_the_convention():
    # Sentinel-2 L2A as GDAL reports it: reflectance = DN * 1e-4 - 0.1
    rad = fixed_radiometry("uint16", 1, scales=[1e-4], offsets=[-0.1])
    data = np.array([[[1000, 11000]]], dtype=np.uint16)
    np.testing.assert_allclose(normalize(data, rad), [[[0.0, 1.0]]], atol=1e-6)
    assert rad.rule == "dataset scale/offset"


def test_uint8_ignores_scales():
    rad = fixed_radiometry("uint8", 1, scales=[2.0], offsets=[1.0])
    assert rad.gain == (1 / 255,)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_integer_round_trip_is_exact(dtype):
    info = np.iinfo(dtype)
    data = np.linspace(info.min, info.max, 257).round().astype(dtype).reshape(1, 1, -1)
    rad = fixed_radiometry(dtype, 1)
    np.testing.assert_array_equal(denormalize(normalize(data, rad), rad, dtype), data)


def test_bright_values_survive_normalization_and_clip_only_at_the_end():
    rad = fixed_radiometry("uint16", 1)
    cloud = np.array([[[15_000]]], dtype=np.uint16)
    assert normalize(cloud, rad)[0, 0, 0] == pytest.approx(1.5)  # not clipped to 1.0
    overshoot = np.array([[[7.0, -0.3]]], dtype=np.float32)  # e.g. ringing of a sharp kernel
    np.testing.assert_array_equal(denormalize(overshoot, rad, "uint16"), [[[65_535, 0]]])


def test_to_dtype_rounds_and_saturates():
    np.testing.assert_array_equal(to_dtype(np.array([-3.6, 2.5, 3.5, 300.2]), "uint8"), [0, 2, 4, 255])
    np.testing.assert_array_equal(to_dtype(np.array([-40000.0, 40000.0]), "int16"), [-32768, 32767])


def test_robust_range_maps_p2_p98_to_0_1_per_band():
    rng = np.random.default_rng(1)
    sample = np.stack([rng.uniform(0, 100, (50, 50)), rng.uniform(-5, 5, (50, 50))]).astype(np.float32)
    valid = np.ones(sample.shape, bool)
    rad = robust_radiometry(sample, valid)
    norm = normalize(sample, rad)
    for band in norm:
        lo, hi = np.percentile(band, [2, 98])
        assert lo == pytest.approx(0.0, abs=1e-5) and hi == pytest.approx(1.0, abs=1e-5)


def test_robust_range_ignores_invalid_and_nan():
    sample = np.array([[[0.0, 1.0, 2.0, -9999.0, np.nan]]], dtype=np.float32)
    valid = np.array([[[True, True, True, False, False]]])
    rad = robust_radiometry(sample, valid)
    lo = -rad.bias[0] / rad.gain[0]
    hi = lo + 1 / rad.gain[0]
    assert 0.0 <= lo < 0.1 and 1.9 < hi <= 2.0


def test_constant_or_empty_band_still_gets_a_finite_map():
    sample = np.full((2, 4, 4), 7.0, dtype=np.float32)
    valid = np.ones(sample.shape, bool)
    valid[1] = False
    rad = robust_radiometry(sample, valid)
    assert all(np.isfinite(rad.gain)) and all(g > 0 for g in rad.gain)


def test_float_round_trip_is_close():
    rng = np.random.default_rng(2)
    data = rng.normal(300, 50, (3, 20, 20)).astype(np.float32)
    rad = robust_radiometry(data, np.ones(data.shape, bool))
    np.testing.assert_allclose(denormalize(normalize(data, rad), rad, "float32"), data, rtol=1e-5)


def test_which_types_need_a_measured_range():
    assert not uses_robust_range("uint8") and not uses_robust_range("uint16") and not uses_robust_range("int16")
    assert uses_robust_range("float32") and uses_robust_range("float64") and uses_robust_range("int32")
