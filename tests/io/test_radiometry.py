"""Radiometry rules: fixed maps for uint8/uint16/int16, robust range for floats, exact round trips, no early clipping."""

from __future__ import annotations

import numpy as np
import pytest

from rssr_cli.io.radiometry import (
    denormalize,
    fixed_radiometry,
    normalize,
    quantize,
    robust_radiometry,
    to_dtype,
    to_model_units,
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


# ------------------------------------------------- one rule: training, benchmarks and inference agree


def _float_raster(tmp_path):
    from conftest import write_raster

    rng = np.random.default_rng(3)
    data = (250.0 + 40.0 * rng.standard_normal((3, 30, 41))).astype(np.float32)  # e.g. a temperature product
    data[:, :4, :6] = -9999.0  # nodata: must not stretch the range
    return write_raster(tmp_path / "float.tif", data, nodata=-9999.0), data


def test_training_and_inference_normalize_a_float_raster_alike(tmp_path):
    """The map `rssr train --data` applies (images.read_model_units) is the one `rssr upscale` applies
    (pipeline.plan.scene_radiometry over the whole scene): the model sees one unit whatever the path."""
    import rasterio

    from rssr_cli.io.raster_io import inspect_source
    from rssr_cli.pipeline.plan import scene_radiometry
    from rssr_cli.training.data import load_images

    path, data = _float_raster(tmp_path)
    with rasterio.open(path) as ds:
        rad = scene_radiometry(ds, inspect_source(ds), (1, 2, 3))
    assert rad.rule.startswith("robust")
    inference = normalize(data, rad)
    [trained] = load_images([path])
    ok = data != -9999.0
    np.testing.assert_allclose(trained.pixels[ok], inference[ok], rtol=1e-6, atol=1e-6)
    assert trained.quantize_levels is None
    np.testing.assert_allclose(to_model_units(data, ok), inference, rtol=1e-6, atol=1e-6)


def test_training_and_inference_honour_declared_scale_and_offset(tmp_path):
    import rasterio

    from rssr_cli.io.images import read_model_units
    from rssr_cli.io.raster_io import inspect_source
    from rssr_cli.pipeline.plan import scene_radiometry

    from conftest import write_raster

    data = np.full((2, 8, 8), 2000, dtype=np.uint16)
    path = write_raster(tmp_path / "l2a.tif", data)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (0.0001, 0.0001), (-0.1, -0.1)
    with rasterio.open(path) as ds:
        rad = scene_radiometry(ds, inspect_source(ds), (1, 2))
    values, dtype = read_model_units(path)
    assert dtype == "uint16" and rad.rule == "dataset scale/offset"
    np.testing.assert_allclose(values, normalize(data, rad), atol=1e-6)
    np.testing.assert_allclose(values, 0.1, atol=1e-6)


@pytest.mark.parametrize("levels, dtype", [(255, "uint8")])
def test_numpy_and_torch_quantize_agree(levels, dtype):
    import torch

    from rssr_cli.degradation.degrade import quantize as quantize_torch

    x = np.linspace(-0.2, 1.2, 1001, dtype=np.float32).reshape(1, 7, 143)
    np.testing.assert_allclose(quantize(x, dtype), quantize_torch(torch.from_numpy(x), levels).numpy(), atol=1e-7)
