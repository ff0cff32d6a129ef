"""The diffusion backend through the whole raster pipeline (tiny model): geo contract, nodata, seeds, bands."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from rssr_cli.model.checkpoint import save_model
from rssr_cli.pipeline import ModelOptions, UpscaleSettings, upscale

from model_helpers import tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    model = tiny_model(seed=1)
    model.sampler_defaults.update(steps=2, strength=0.3)
    return save_model(model, path)


def _run(src, dst, model_path, **kw):
    options = ModelOptions(model=str(model_path), device="cpu")
    settings = UpscaleSettings(method="diffusion", model=options, overwrite=True, **kw)
    return upscale(src, dst, settings)


@pytest.mark.parametrize("scale", [2.5, 4.5])
def test_model_output_honours_the_geo_contract(make_raster, tmp_path, model_path, scale):
    src = make_raster(4, 29, 33, "uint16", nodata=0)
    with rasterio.open(src) as s:
        data = s.read()
    data[:, :5, :7] = 0  # a nodata corner
    with rasterio.open(src, "r+") as s:
        s.write(data)
    dst = tmp_path / "out.tif"
    _run(src, dst, model_path, scale=scale, tile=16, overlap=4)
    with rasterio.open(src) as s, rasterio.open(dst) as d:
        assert d.crs == s.crs and d.dtypes == s.dtypes and d.count == 4
        assert (d.width, d.height) == (round(33 * scale), round(29 * scale))
        for a, b in zip(d.bounds, s.bounds):
            assert abs(a - b) < 1e-9 * s.res[0]
        assert d.tags()["RSSR_METHOD"] == "diffusion" and d.tags()["RSSR_STEPS"] == "2"
        out = d.read()
        corner = out[:, : int(5 * scale) - 1, : int(7 * scale) - 1]
        assert (corner == 0).all()  # nodata restored
        assert (out[:, -5:, -5:] != 0).all()  # valid pixels stay valid
    assert cog_validate(str(dst))[0]


def test_same_seed_same_output_different_seed_different(make_raster, tmp_path, model_path):
    src = make_raster(3, 21, 19, "uint8")
    outs = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        dst = tmp_path / f"{name}.tif"
        _run(src, dst, model_path, scale=2, tile=12, overlap=3, seed=seed, batch_size=1 if name == "b" else 4)
        with rasterio.open(dst) as d:
            outs.append(d.read())
    np.testing.assert_array_equal(outs[0], outs[1])  # batch size / processing grouping does not matter
    assert not np.array_equal(outs[0], outs[2])


@pytest.mark.parametrize("bands", [1, 13])
def test_any_band_count_with_the_single_band_model(make_raster, tmp_path, model_path, bands):
    src = make_raster(bands, 17, 15, "uint16")
    dst = tmp_path / "out.tif"
    _run(src, dst, model_path, scale=2)
    with rasterio.open(dst) as d:
        assert d.count == bands and (d.width, d.height) == (30, 34)
