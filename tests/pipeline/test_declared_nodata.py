"""--nodata V: a nodata value the files do not carry (Sentinel-2 writes 0 without declaring it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.io.products import StackBand
from rssr_cli.io.raster_io import declared_nodata, inspect_source, mask_declared_nodata
from rssr_cli.pipeline import UpscaleSettings, upscale
from rssr_cli.pipeline.stack_band import with_nodata
from rssr_cli.sharpen.scene import decimated_sample, read_band

from conftest import synthetic_image, write_raster

runner = CliRunner()
BICUBIC = ("-s", "2", "-m", "bicubic", "-q")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def scene_with_a_zero_region() -> np.ndarray:
    data = synthetic_image(2, 30, 40, "uint16", seed=4)
    data = np.maximum(data, 1)  # valid pixels are never 0
    data[:, :, :12] = 0  # an empty strip, as on a Sentinel-2 tile's edge
    return data


def test_declared_nodata_marks_the_region_and_equals_a_file_that_carries_it(tmp_path):
    data = scene_with_a_zero_region()
    undeclared = write_raster(tmp_path / "undeclared.tif", data)
    carried = write_raster(tmp_path / "carried.tif", data, nodata=0)

    result = run("upscale", undeclared, "-o", tmp_path / "declared_out.tif", "--nodata", "0", *BICUBIC)
    assert result.exit_code == 0, result.output
    assert run("upscale", carried, "-o", tmp_path / "carried_out.tif", *BICUBIC).exit_code == 0
    assert run("upscale", undeclared, "-o", tmp_path / "plain_out.tif", *BICUBIC).exit_code == 0

    with rasterio.open(tmp_path / "declared_out.tif") as out:
        declared, nodata, tags = out.read(), out.nodata, out.tags()
        valid = out.read_masks(1) > 0
    assert nodata == 0 and tags["RSSR_NODATA"] == "0"
    assert (declared[:, :, :24] == 0).all() and not valid[:, :24].any()  # the strip (12 LR px -> 24 HR px) is nodata
    assert valid[:, 26:].all() and (declared[:, :, 26:] > 0).all()  # everything else is valid
    with rasterio.open(tmp_path / "carried_out.tif") as out:
        assert np.array_equal(out.read(), declared)  # the fill kept zeros out of the valid neighbours
    with rasterio.open(tmp_path / "plain_out.tif") as out:
        assert out.nodata is None and out.tags()["RSSR_NODATA"] == "file"
        plain = out.read()
    assert (plain[:, :, 24:28] < declared[:, :, 24:28]).any()  # without it, zeros darken the strip's edge


def test_declared_nodata_in_the_api_and_for_floats(tmp_path):
    data = synthetic_image(1, 20, 20, "float32", seed=1)
    data[0, :5] = -9999.0
    src = write_raster(tmp_path / "f.tif", data)  # float without nodata: only NaN would be invalid
    upscale(src, tmp_path / "out.tif", UpscaleSettings(scale=2, method="bicubic", nodata=-9999))
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.nodata == -9999 and (out.read(1)[:10] == -9999).all() and (out.read(1)[10:] > -9999).all()


@pytest.mark.parametrize("value, dtype", [("-1", "uint16"), ("0.5", "uint8"), ("70000", "uint16"), ("nan", "int16")])
def test_a_nodata_value_the_type_cannot_hold_is_a_usage_error(tmp_path, value, dtype):
    src = write_raster(tmp_path / "in.tif", synthetic_image(1, 16, 16, dtype))
    result = run("upscale", src, "-o", tmp_path / "out.tif", "--nodata", value, *BICUBIC)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--nodata" in lines[0] and dtype in lines[0]
    assert not (tmp_path / "out.tif").exists()


def test_a_batch_output_made_with_another_nodata_is_not_skipped(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_raster(folder / "a.tif", scene_with_a_zero_region())
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    assert run("upscale", folder, "-o", out, *BICUBIC, "--log-json", log).exit_code == 0
    assert run("upscale", folder, "-o", out, *BICUBIC, "--nodata", "0", "--log-json", log).exit_code == 1
    assert run("upscale", folder, "-o", out, *BICUBIC, "--nodata", "0", "--overwrite", "--log-json", log).exit_code == 0
    assert run("upscale", folder, "-o", out, *BICUBIC, "--nodata", "0", "--log-json", log).exit_code == 0
    statuses = [json.loads(line)["status"] for line in log.read_text().splitlines()]
    assert statuses == ["done", "failed", "done", "skipped"]


def test_one_declared_nodata_rule_for_band_stacks(tmp_path):
    """raster_io.declared_nodata is the one rule (issue 22): the streamed stack (stack_band.with_nodata), the
    sharpener's whole-band read (sharpen.scene.read_band) and its decimated statistics agree on which pixels a
    declared value marks: only in a file that declares no nodata of its own."""
    data = scene_with_a_zero_region()[:1]
    bare, own = tmp_path / "bare.tif", tmp_path / "own.tif"
    write_raster(bare, data)
    write_raster(own, data, nodata=65535)
    values = data[0].astype(np.float32)
    assert declared_nodata(None, 0.0) == 0.0 and declared_nodata(65535.0, 0.0) is None
    for path, expected in ((bare, values != 0), (own, np.ones_like(values, bool))):
        with rasterio.open(path) as ds:
            band = StackBand("B01", str(path), 1, ds.width, ds.height, ds.transform, ds.crs, ds.dtypes[0], ds.nodata)
            source = with_nodata(inspect_source(ds), 0.0)
        np.testing.assert_array_equal(
            mask_declared_nodata(values, np.ones_like(values, bool), band.nodata, 0.0), expected
        )
        np.testing.assert_array_equal(read_band(band, 0.0).valid, expected)
        assert (source.nodata == 0.0) == (path == bare)
        sample, valid = decimated_sample(band, 0.0)
        assert valid.all() == (path == own)
