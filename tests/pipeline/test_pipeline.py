"""The upscale API end to end on small synthetic GeoTIFFs: geo invariants, tiling invariance, nodata, dtypes, COG."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags
from rio_cogeo.cogeo import cog_validate

from rssr_cli import backends
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.core.errors import UsageError
from rssr_cli.io.raster_io import fill_invalid
from rssr_cli.pipeline import ModelOptions, UpscaleSettings, upscale
from rssr_cli.pipeline.blend import RowAccumulator

from conftest import files_in, synthetic_image


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds


@dataclass
class CountingBackend:
    """Bicubic, but records every request (and the options it was built with)."""

    options: dict = field(default_factory=dict)
    name: str = "counting"
    requests: list = field(default_factory=list)
    calls: int = 0

    def upsample(self, requests):
        self.calls += 1
        self.requests.extend(requests)
        return ClassicalBackend("bicubic").upsample(requests)

    def provenance(self):
        return {"method": self.name, "model": "fake-v1"}


@pytest.fixture
def counting_backend(monkeypatch):
    made: list[CountingBackend] = []

    def factory(**options):
        made.append(CountingBackend(options=options))
        return made[-1]

    monkeypatch.setitem(backends._FACTORIES, "counting", factory)
    return made


# ---- geo invariants --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 2.5, 4.5, 8])
def test_output_grid_invariants(make_raster, tmp_path, scale):
    src = make_raster(2, 37, 45, "uint16")
    dst = tmp_path / "out.tif"
    result = upscale(src, dst, method="bicubic", scale=scale, tile=16, overlap=4)
    with rasterio.open(src) as a, rasterio.open(dst) as b:
        assert (b.width, b.height) == (round(45 * scale), round(37 * scale)) == (result.width, result.height)
        for edge_in, edge_out in zip(a.bounds, b.bounds):
            assert abs(edge_in - edge_out) <= 1e-9 * a.transform.a
        assert b.transform.a == pytest.approx(a.transform.a * a.width / b.width, rel=1e-12)
        assert b.transform.e == pytest.approx(a.transform.e * a.height / b.height, rel=1e-12)
        assert (b.transform.b, b.transform.d) == (0, 0)
        assert b.crs == a.crs
        assert b.dtypes == a.dtypes


def test_resolution_sets_the_pixel_size(make_raster, tmp_path):
    src = make_raster(1, 20, 30, "uint8")
    upscale(src, tmp_path / "out.tif", method="bicubic", resolution=4.0)
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert (ds.width, ds.height) == (75, 50)
        assert ds.res == pytest.approx((4.0, 4.0))


# ---- tiling invariance --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
@pytest.mark.parametrize("scale", [2.5, 4.5])
def test_tiled_equals_untiled(make_raster, tmp_path, method, scale):
    src = make_raster(2, 41, 53, "float32")
    untiled, _ = read(upscale(src, tmp_path / "untiled.tif", method=method, scale=scale, tile=512, overlap=0).dst)
    span = float(untiled.max() - untiled.min())
    # an overlap of at least twice the kernel's support (2 bicubic, 3 lanczos) makes the blend exact
    for tile, overlap in [(16, 8), (20, 6), (33, 10)]:
        out = tmp_path / f"tiled_{tile}_{overlap}.tif"
        tiled, _ = read(upscale(src, out, method=method, scale=scale, tile=tile, overlap=overlap).dst)
        np.testing.assert_allclose(tiled, untiled, atol=1e-4 * span, err_msg=f"tile {tile} overlap {overlap}")


def test_nearest_is_tile_invariant_where_centres_fall_on_lr_edges(make_raster, tmp_path):
    # at s = 1.5 every third HR centre lies exactly on an LR pixel edge
    src = make_raster(1, 30, 31, "uint16")
    untiled, _ = read(upscale(src, tmp_path / "a.tif", method="nearest", scale=1.5, tile=64, overlap=0).dst)
    tiled, _ = read(upscale(src, tmp_path / "b.tif", method="nearest", scale=1.5, tile=10, overlap=4).dst)
    np.testing.assert_array_equal(tiled, untiled)


# ---- dtypes and radiometry ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_dtype_round_trip_with_nearest(make_raster, tmp_path, dtype):
    src = make_raster(2, 19, 23, dtype)
    data, _ = read(src)
    out, ds = read(upscale(src, tmp_path / "out.tif", method="nearest", scale=2, tile=8, overlap=2).dst)
    assert out.dtype == np.dtype(dtype)
    expected = data.repeat(2, axis=1).repeat(2, axis=2)
    if np.issubdtype(np.dtype(dtype), np.integer):
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_bright_values_are_not_clipped_before_the_model(make_raster, tmp_path):
    data = np.full((1, 20, 20), 14_000, dtype=np.uint16)  # a cloud: reflectance 1.4 > 1.0
    src = make_raster(data=data)
    out, _ = read(upscale(src, tmp_path / "out.tif", method="bicubic", scale=2).dst)
    assert (out == 14_000).all()


def test_the_default_model_keeps_a_bright_flat_cloud_bright(make_raster, tmp_path):
    """The model sees values above its training range (reflectance 1.4): it must not pull them down."""
    data = np.full((1, 20, 20), 14_000, dtype=np.uint16)
    src = make_raster(data=data)
    out, _ = read(upscale(src, tmp_path / "out.tif", method="bicubic", scale=2).dst)
    # The sampler adds seeded detail; on a flat field it must stay within 0.1 % of the input level.
    assert np.abs(out.astype(float) - 14_000).max() <= 14
    assert abs(out.mean() - 14_000) < 2


def test_float_output_keeps_values_outside_the_robust_range(make_raster, tmp_path):
    data = synthetic_image(1, 24, 24, "float32")
    data[0, 10:14, 10:14] = 50.0  # far above the p98 of the scene
    src = make_raster(data=data)
    out, _ = read(upscale(src, tmp_path / "out.tif", method="nearest", scale=2).dst)
    assert out.max() == pytest.approx(50.0)


# ---- nodata and masks ------------------------------------------------------------------------------------


def _nearest_mask(valid_lr: np.ndarray, scale: int) -> np.ndarray:
    return valid_lr.repeat(scale, axis=-2).repeat(scale, axis=-1)


def test_nodata_value_propagates_through_a_nearest_mask(make_raster, tmp_path):
    data = np.full((2, 30, 36), 5_000, dtype=np.uint16) + synthetic_image(2, 30, 36, "uint16") // 20
    data[:, 5:11, 7:15] = 0
    data[:, 20:, 30:] = 0
    src = make_raster(data=data, nodata=0)
    out, ds = read(upscale(src, tmp_path / "out.tif", method="bicubic", scale=4, tile=16, overlap=4).dst)
    assert ds.nodata == 0
    expected_valid = _nearest_mask(data[0] != 0, 4)
    np.testing.assert_array_equal(out[0] != 0, expected_valid)
    np.testing.assert_array_equal(out[1] != 0, expected_valid)
    # filling before the model: no dark halo of 0s leaks into the valid pixels next to the holes
    assert out[:, expected_valid].min() > 4_000


def test_valid_pixels_never_collide_with_the_nodata_value(make_raster, tmp_path):
    data = np.ones((1, 24, 24), dtype=np.uint16)
    data[:, :, 12:] = 9_000  # a sharp edge: bicubic undershoots below 1 -> clipped to 0 == nodata
    data[0, 0, 0] = 0
    src = make_raster(data=data, nodata=0)
    out, _ = read(upscale(src, tmp_path / "out.tif", method="bicubic", scale=3).dst)
    expected_valid = _nearest_mask(data[0] != 0, 3)
    np.testing.assert_array_equal(out[0] != 0, expected_valid)


def test_nan_is_nodata_in_float_input(make_raster, tmp_path):
    data = synthetic_image(1, 20, 26, "float32")
    data[0, 3:7, 4:9] = np.nan
    src = make_raster(data=data)
    out, ds = read(upscale(src, tmp_path / "out.tif", method="lanczos", scale=2, tile=8, overlap=4).dst)
    assert math.isnan(ds.nodata)
    np.testing.assert_array_equal(np.isnan(out[0]), _nearest_mask(np.isnan(data[0]), 2))


def test_float_nodata_value_and_nan_both_mark_invalid(make_raster, tmp_path):
    data = synthetic_image(1, 20, 20, "float32")
    data[0, 2:4, 2:4] = -9999.0
    data[0, 10:12, 10:12] = np.nan
    src = make_raster(data=data, nodata=-9999.0)
    out, ds = read(upscale(src, tmp_path / "out.tif", method="bicubic", scale=2).dst)
    invalid = (data[0] == -9999.0) | np.isnan(data[0])
    np.testing.assert_array_equal(out[0] == -9999.0, _nearest_mask(invalid, 2))


@pytest.mark.parametrize("bands", [1, 2, 3, 4])  # rio-cogeo alone dropped the mask at 2 and 4 bands (RGBN)
def test_internal_mask_becomes_an_output_mask(make_raster, tmp_path, bands):
    data = synthetic_image(bands, 24, 30, "uint16")
    valid = np.ones((24, 30), bool)
    valid[4:9, 6:20] = False
    names = [f"B{i}" for i in range(bands)]
    src = make_raster(data=data, mask=valid, descriptions=names, scales=[1e-4] * bands, tags={"SENSOR": "test"})
    out_path = upscale(src, tmp_path / "out.tif", method="bicubic", scale=2.0, tile=12, overlap=4).dst
    with rasterio.open(out_path) as ds:
        assert ds.count == bands and ds.nodata is None
        assert ds.mask_flag_enums[0] == [MaskFlags.per_dataset]
        np.testing.assert_array_equal(ds.dataset_mask() > 0, _nearest_mask(valid, 2))
        assert list(ds.descriptions) == names and ds.scales == (1e-4,) * bands
        assert ds.tags()["SENSOR"] == "test" and ds.tags()["RSSR_METHOD"] == "bicubic"
        assert ds.overviews(1) or max(ds.width, ds.height) <= 512
        assert ds.compression.name == "deflate" and ds.profile["tiled"]
    assert cog_validate(str(out_path))[0]


def test_alpha_band_becomes_the_output_mask(make_raster, tmp_path):
    rgb = synthetic_image(3, 20, 22, "uint8")
    alpha = np.full((1, 20, 22), 255, np.uint8)
    alpha[0, :6, :6] = 0
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    src = make_raster(data=np.concatenate([rgb, alpha]), colorinterp=interp)
    with rasterio.open(upscale(src, tmp_path / "out.tif", method="bicubic", scale=2).dst) as ds:
        assert ds.count == 3
        assert ds.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        np.testing.assert_array_equal(ds.dataset_mask() > 0, _nearest_mask(alpha[0] > 0, 2))


def test_all_nodata_windows_skip_the_backend(make_raster, tmp_path, counting_backend):
    data = synthetic_image(1, 32, 64, "uint16") + 1
    data[:, :, :32] = 0
    src = make_raster(data=data, nodata=0)
    result = upscale(src, tmp_path / "out.tif", method="counting", scale=2, tile=16, overlap=4, batch_size=3)
    assert result.windows == 8 and result.skipped_windows == 2  # only the two tiles whose halo is all nodata
    assert len(counting_backend[0].requests) == 6
    assert counting_backend[0].calls == 2  # per tile row: 1 skipped + one batch of the 3 others
    out, _ = read(result.dst)
    assert (out[:, :, :64] == 0).all() and (out[:, :, 64:] != 0).all()


def test_fill_invalid_uses_neighbours_and_handles_empty_bands():
    values = np.stack([np.full((6, 6), 3.0), np.full((6, 6), 2.0)]).astype(np.float32)
    valid = np.ones(values.shape, bool)
    values[0, 2:4, 2:4] = -9999.0
    valid[0, 2:4, 2:4] = False
    valid[1] = False
    filled = fill_invalid(values, valid)
    np.testing.assert_allclose(filled[0], 3.0)
    np.testing.assert_allclose(filled[1], 0.0)


# ---- bands and metadata ------------------------------------------------------------------------------------


def test_band_selection_and_metadata_are_carried(make_raster, tmp_path, counting_backend):
    src = make_raster(
        3,
        21,
        25,
        "uint16",
        descriptions=["B2", "B3", "B4"],
        colorinterp=[ColorInterp.blue, ColorInterp.green, ColorInterp.red],
        scales=[1e-4, 1e-4, 2e-4],
        offsets=[-0.1, -0.1, -0.2],
        tags={"SENSOR": "S2A", "PROCESSING": "L2A"},
    )
    settings = UpscaleSettings(scale=2.0, method="counting", bands=(3, 1), tile=16, overlap=4, seed=7)
    result = upscale(src, tmp_path / "out.tif", settings)
    src_data, _ = read(src)
    with rasterio.open(result.dst) as ds:
        assert ds.count == 2
        assert ds.descriptions == ("B4", "B2")
        assert ds.colorinterp == (ColorInterp.red, ColorInterp.blue)
        assert ds.scales == (2e-4, 1e-4) and ds.offsets == (-0.2, -0.1)
        tags = ds.tags()
        assert tags["SENSOR"] == "S2A" and tags["PROCESSING"] == "L2A"
        assert tags["RSSR_METHOD"] == "counting" and tags["RSSR_MODEL"] == "fake-v1"
        assert tags["RSSR_SCALE"] == "2" and tags["RSSR_TILE"] == "16" and tags["RSSR_OVERLAP"] == "4"
        assert tags["RSSR_SEED"] == "7" and tags["RSSR_VERSION"]
        assert tags["RSSR_RADIOMETRY"] == "dataset scale/offset"
        out = ds.read()
    # band 1 of the output is source band 3: compare block means (bicubic preserves local averages)
    assert abs(float(out[0].mean()) - float(src_data[2].mean())) < 0.02 * float(src_data[2].mean())


def test_bands_out_of_range_are_a_usage_error(make_raster, tmp_path):
    with pytest.raises(UsageError, match="band 4 is out of range"):
        upscale(make_raster(3), tmp_path / "out.tif", method="bicubic", scale=2, bands=(1, 4))
    assert not (tmp_path / "out.tif").exists()


# ---- COG, streaming, API surface -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,nodata", [("uint16", 0), ("float32", None), ("int16", -1000)])
def test_output_is_a_valid_cog_with_overviews(make_raster, tmp_path, dtype, nodata):
    src = make_raster(2, 70, 90, dtype, nodata=nodata)
    dst = upscale(
        src, tmp_path / "out.tif", scale=8, tile=64, overlap=8, method="bicubic"
    ).dst  # the COG layout, not the model
    ok, errors, _ = cog_validate(str(dst))
    assert ok, errors
    with rasterio.open(dst) as ds:
        assert ds.overviews(1)  # 720x560 -> one overview level at 512 px blocks
        assert ds.profile["blockxsize"] == 512 and ds.profile["compress"] == "deflate"
        assert ds.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == ("3" if dtype == "float32" else "2")
        assert ds.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE"
    assert files_in(tmp_path) == {src.name, "out.tif"}


def test_creation_options_override_the_profile(make_raster, tmp_path):
    src = make_raster(1, 40, 40, "uint8")
    dst = upscale(
        src,
        tmp_path / "out.tif",
        method="bicubic",
        scale=4,
        creation_options={"BLOCKXSIZE": "256", "BLOCKYSIZE": "256"},
    ).dst
    with rasterio.open(dst) as ds:
        assert ds.block_shapes[0] == (256, 256)
    assert cog_validate(str(dst))[0]


def test_memory_is_bounded_by_one_row_of_tiles(make_raster, tmp_path, monkeypatch):
    held: list[int] = []
    original = RowAccumulator.extend_to

    def spy(self, bottom):
        original(self, bottom)
        held.append(self.bottom - self.top)

    monkeypatch.setattr(RowAccumulator, "extend_to", spy)
    src = make_raster(1, 300, 12, "uint8")
    upscale(src, tmp_path / "out.tif", method="bicubic", scale=2, tile=16, overlap=4)
    assert len(held) == 19  # one per tile row
    assert max(held) <= 2 * (16 + 2 * 4) + 2  # one tile row with its halo, never the scene height (600)


def test_progress_reports_every_window(make_raster, tmp_path):
    calls = []
    upscale(
        make_raster(1, 30, 30),
        tmp_path / "out.tif",
        method="bicubic",
        scale=2,
        tile=10,
        overlap=2,
        batch_size=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[-1] == (9, 9)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_model_options_reach_the_factory(make_raster, tmp_path, counting_backend):
    upscale(make_raster(1), tmp_path / "out.tif", scale=2, method="counting", model=ModelOptions(device="cpu", steps=4))
    assert counting_backend[0].options == {"device": "cpu", "steps": 4}


def test_each_window_gets_its_own_seed(make_raster, tmp_path, counting_backend):
    upscale(make_raster(1, 40, 40), tmp_path / "out.tif", scale=2, method="counting", tile=16, overlap=4, seed=3)
    seeds = [r.seed for r in counting_backend[0].requests]
    assert len(set(seeds)) == len(seeds) == 9


def test_settings_reject_a_zero_batch():
    with pytest.raises(UsageError):
        UpscaleSettings(scale=2, batch_size=0)


def test_no_crs_output_is_on_the_pixel_grid(make_raster, tmp_path):
    src = make_raster(1, 15, 17, crs=None, transform=Affine(1, 0, 0, 0, -1, 15))
    with pytest.warns(Warning, match="no CRS"):
        dst = upscale(src, tmp_path / "out.tif", method="bicubic", scale=3).dst
    with rasterio.open(dst) as ds:
        assert ds.crs is None and (ds.width, ds.height) == (51, 45)
        assert ds.transform.a == pytest.approx(1 / 3)


def test_auto_tiling_bounds_model_windows_and_keeps_classical_defaults():
    from rssr_cli.pipeline.settings import MODEL_WINDOW_HR_PX, auto_tiling

    assert auto_tiling("bicubic", 8.0, None, None) == (256, 32)
    for scale in (2.0, 4.5, 8.0, 16.0):
        tile, overlap = auto_tiling("diffusion", scale, None, None)
        assert (
            tile + 2 * overlap
        ) * scale <= 1.6 * MODEL_WINDOW_HR_PX + 1e-9 or tile == 32  # HR window side stays bounded
        assert 0 < overlap <= tile // 4
    assert auto_tiling("diffusion", 4.0, 100, None) == (100, 25)  # what the user sets is kept


def test_an_rssr_output_upscaled_again_carries_only_the_new_provenance(make_raster, tmp_path):
    src = make_raster(tags={"RSSR_AOI": "POLYGON ((0 0, 1 0, 1 1, 0 0))", "RSSR_SEED": "7", "MISSION": "S2B"})
    with rasterio.open(upscale(src, tmp_path / "out.tif", method="bicubic", scale=2).dst) as ds:
        tags = ds.tags()
    assert "RSSR_AOI" not in tags and tags["RSSR_SEED"] == "0" and tags["MISSION"] == "S2B"
