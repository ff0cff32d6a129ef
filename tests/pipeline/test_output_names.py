"""Output names a cron user can live with (issue 22 item 6): {bands}, {date}, {tile} in --name, and a product's
default name carries its band set, so two jobs with different band lists never collide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from rssr_cli.cli.app import app
from rssr_cli.core.errors import UsageError
from rssr_cli.pipeline.api import RunRequest
from rssr_cli.pipeline.jobs import output_name
from rssr_cli.pipeline.settings import UpscaleSettings

import s2_products as sp
from conftest import write_raster

runner = CliRunner()
BICUBIC = UpscaleSettings(scale=2, method="bicubic")
PRODUCT_STEM = sp.L1C_NAME.removesuffix(".SAFE")


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    return sp.make_l1c(tmp_path_factory.mktemp("s2"), suffix=".tif", bands=("B02", "B03", "B04", "B08", "B8A", "B11"))


def test_a_products_default_name_carries_its_band_set(product):
    assert output_name(None, str(product), BICUBIC) == f"{PRODUCT_STEM}_B02-B03-B04-B08_x2.tif"
    spelled = UpscaleSettings(scale=2, method="bicubic", bands=("b4", "nir", "B8A"))
    assert output_name(None, str(product), spelled) == f"{PRODUCT_STEM}_B04-B08-B8A_x2.tif"
    every = UpscaleSettings(resolution=5, method="bicubic", bands=("all",))
    assert output_name(None, str(product), every) == f"{PRODUCT_STEM}_all_xr5.tif"


def test_a_plain_rasters_default_name_is_unchanged():
    assert output_name(None, "scenes/a.tif", BICUBIC) == "a_x2.tif"


def test_bands_date_and_tile_fields(product):
    settings = UpscaleSettings(scale=2, method="bicubic", bands=("B11", "B8A"))
    name = output_name("{tile}/{date}_{bands}_{method}.tif", str(product), settings)
    assert name == f"{sp.TILE}/{sp.STAMP[:8]}_B11-B8A_bicubic.tif"
    assert (
        output_name("{tile}_{date}_{bands}.tif", "S2B_18SUJ_20181231_0_L2A.json", settings)
        == "T18SUJ_20181231_B11-B8A.tif"
    )
    assert output_name("{stem}_{bands}.tif", "a.tif", UpscaleSettings(scale=2, bands=(3, 2, 1))) == "a_3-2-1.tif"
    assert output_name("{stem}_{bands}.tif", "a.tif", BICUBIC) == "a_all.tif"
    assert output_name("{stem}_{bands}.tif", "a.tif", UpscaleSettings(scale=2, bands=("red/edge",))) == "a_red_edge.tif"


def test_a_date_or_tile_the_name_does_not_hold_is_a_usage_error():
    with pytest.raises(UsageError, match="holds no Sentinel-2 tile id"):
        output_name("{tile}.tif", "a.tif", BICUBIC)
    with pytest.raises(UsageError, match="holds no sensing date"):
        output_name("{date}.tif", "a.tif", BICUBIC)
    RunRequest(("a.tif",), "out/", BICUBIC, name="{bands}_{date}_{tile}.tif")  # the fields are known to the request


def test_two_cron_jobs_with_different_band_lists_never_collide(product, tmp_path):
    """Before: both wrote <product>_x2.tif; the second job failed ('made by a different request') on every run."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / product.name).symlink_to(product, target_is_directory=True)
    out, log = tmp_path / "sr", tmp_path / "log.jsonl"
    jobs = [("--bands", "B02,B03,B04,B08"), ("--bands", "B8A,B11")]
    for _ in range(2):  # each cron line, twice
        for bands in jobs:
            result = run(
                "upscale", incoming, "-o", f"{out}/", "-s", 2, "-m", "bicubic", *bands, "--log-json", log, "-q"
            )
            assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".tif") == [
        f"{PRODUCT_STEM}_B02-B03-B04-B08_x2.tif",
        f"{PRODUCT_STEM}_B8A-B11_x2.tif",
    ]
    statuses = [json.loads(line)["status"] for line in log.read_text().splitlines()]
    assert statuses == ["done", "done", "skipped", "skipped"]
    with rasterio.open(out / f"{PRODUCT_STEM}_B8A-B11_x2.tif") as ds:
        assert ds.descriptions == ("B8A", "B11")


def test_a_name_without_bands_says_how_to_keep_both(tmp_path):
    src = tmp_path / "in" / "a.tif"
    src.parent.mkdir()
    write_raster(src, np.arange(3 * 16 * 16, dtype="uint16").reshape(3, 16, 16))
    out = tmp_path / "sr"
    first = run("upscale", src.parent, "-o", f"{out}/", "-s", 2, "-m", "bicubic", "-b", "1,2", "-q")
    assert first.exit_code == 0, first.output
    second = run("upscale", src.parent, "-o", f"{out}/", "-s", 2, "-m", "bicubic", "-b", "3", "-q")
    assert second.exit_code == 1 and "{bands}" in second.output
    third = run(
        "upscale",
        src.parent,
        "-o",
        f"{out}/",
        "-s",
        2,
        "-m",
        "bicubic",
        "-b",
        "3",
        "--name",
        "{stem}_{bands}.tif",
        "-q",
    )
    assert third.exit_code == 0 and (out / "a_3.tif").is_file()
