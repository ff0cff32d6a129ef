"""A plain folder of one scene's band files is a product for every command (upscale, info, evaluate --wald), by the
one rule products.band_folder_files; a folder of unrelated rasters stays a batch (issue 22 item 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from rssr_cli.cli.app import app
from rssr_cli.core.errors import InputError
from rssr_cli.io.products import is_band_stack, is_product_dir, open_band_stack, scene_stem
from rssr_cli.pipeline.jobs import expand_inputs, is_batch

import s2_products as sp
from conftest import write_raster

runner = CliRunner()
PREFIX = f"{sp.TILE}_{sp.STAMP}_"


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def band_folder(
    root: Path, name: str = "T18SUJ_bands", bands=("B02", "B03", "B04", "B08", "B8A", "B11"), prefix: str = PREFIX
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for band in bands:
        shutil.copy(sp.band_path(band), folder / f"{prefix}{band}.tif")
    return folder


def test_a_folder_of_one_scenes_band_files_is_a_product(tmp_path):
    folder = band_folder(tmp_path)
    shutil.copy(sp.band_path("B04"), folder / f"{PREFIX}TCI.tif")  # a product's non-band layer: ignored
    assert is_band_stack(folder) and is_product_dir(folder)
    stack = open_band_stack(folder)
    assert stack.kind == "Sentinel-2 band folder" and stack.names == ("B02", "B03", "B04", "B08", "B8A", "B11")
    assert not is_batch([str(folder)], tmp_path / "out.tif") and expand_inputs([str(folder)]) == [str(folder)]
    assert scene_stem(folder) == "T18SUJ_bands"


def test_the_committed_band_crops_folder_is_a_product():
    assert is_band_stack(sp.BANDS_DIR) and len(open_band_stack(sp.BANDS_DIR).bands) == 13


@pytest.mark.parametrize("layout", ["unrelated", "two scenes", "one band", "stray raster"])
def test_other_folders_stay_folders_of_scenes(tmp_path, layout):
    folder = tmp_path / "incoming"
    if layout == "unrelated":
        folder.mkdir()
        for name in ("a.tif", "b.tif"):
            write_raster(folder / name, np.ones((1, 8, 8), "uint16"))
    elif layout == "two scenes":
        band_folder(tmp_path, "incoming", ("B02", "B03"), prefix="T18SUJ_20190101_")
        band_folder(tmp_path, "other", ("B04",), prefix="T18SUJ_20190202_")
        shutil.copy(tmp_path / "other" / "T18SUJ_20190202_B04.tif", folder)
    elif layout == "one band":
        band_folder(tmp_path, "incoming", ("B04",))
    else:  # a raster not of the scene beside its band files
        band_folder(tmp_path, "incoming", ("B02", "B03"))
        write_raster(folder / "dem.tif", np.ones((1, 8, 8), "uint16"))
    assert not is_band_stack(folder) and not is_product_dir(folder)
    assert is_batch([str(folder)], tmp_path / "out.tif")
    with pytest.raises(InputError, match="folder of scenes|holds no Sentinel-2 band files"):
        open_band_stack(folder)


def test_upscale_and_info_take_a_band_folder_as_one_product(tmp_path):
    folder = band_folder(tmp_path)
    dst = tmp_path / "one.tif"
    result = run("upscale", folder, "-r", 5, "-m", "bicubic", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.descriptions == ("B02", "B03", "B04", "B08") and out.res == (5.0, 5.0)
    info = run("info", folder, "-r", 5, "-b", "B04,B11")
    assert info.exit_code == 0, info.output
    assert "Sentinel-2 band folder" in info.output and "B11 guided by B02,B03,B04,B08 x4" in info.output


def test_a_folder_of_band_folders_is_a_batch_of_products_and_unrelated_rasters_stay_a_batch(tmp_path):
    incoming = tmp_path / "incoming"
    band_folder(incoming, "T18SUJ_a")
    band_folder(incoming, "T18SUJ_b", ("B02", "B03", "B04", "B08"))
    write_raster(incoming / "plain.tif", np.full((1, 8, 8), 7, "uint16"))
    out = tmp_path / "sr"
    result = run("upscale", incoming, "-o", f"{out}/", "-s", 2, "-m", "bicubic", "-q")
    assert result.exit_code == 0, result.output
    outputs = sorted(p.name for p in out.iterdir() if p.suffix == ".tif")
    assert len(outputs) == 3 and outputs[2] == "plain_x2.tif"
    for name in outputs[:2]:
        with rasterio.open(out / name) as ds:
            assert ds.count == 4 and ds.descriptions == ("B02", "B03", "B04", "B08")


def test_evaluate_wald_refuses_a_folder_of_scenes_with_one_line(tmp_path):
    folder = tmp_path / "incoming"
    band_folder(tmp_path, "incoming", ("B02", "B03", "B04", "B08"), prefix="A_")
    band_folder(tmp_path, "other", ("B05", "B11"), prefix="B_")
    for path in (tmp_path / "other").iterdir():
        shutil.copy(path, folder)
    result = run("evaluate", "--wald", folder, "--wald-split", "all", "-q")
    assert result.exit_code != 0 and "folder of scenes" in result.output and "Traceback" not in result.output
