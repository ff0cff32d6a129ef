"""`--report`, the fidelity thresholds and `evaluate --fidelity` on band stacks (issue 22 item 3): each output band is
measured against its own native band by the single-raster engine, through the common grid's placement on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
from rasterio.windows import Window
from typer.testing import CliRunner

from rssr_cli.cli.app import app
from rssr_cli.evaluation.fidelity import Comparison
from rssr_cli.geo.grid import OutputGrid, Placement

import s2_products as sp

runner = CliRunner()
BANDS = "B04,B08,B8A,B11"


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    return sp.make_l1c(tmp_path_factory.mktemp("s2"), suffix=".tif", bands=("B02", "B03", "B04", "B08", "B8A", "B11"))


def test_report_on_a_product_writes_the_sidecar_and_tags(product, tmp_path):
    dst = tmp_path / "out.tif"
    result = run("upscale", product, "-b", BANDS, "-r", 5, "-m", "bicubic", "--report", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out.fidelity.json").read_text())
    assert [b["description"] for b in report["bands"]] == BANDS.split(",") and [b["band"] for b in report["bands"]] == [
        1,
        2,
        3,
        4,
    ]
    assert report["lr_pixels_compared"] > 0 and report["passed"]
    assert all(0 < b["consistency_relative"] < 0.05 for b in report["bands"])  # bicubic: close, not exact
    with rasterio.open(dst) as out:
        assert len(out.tags()["RSSR_FIDELITY_CONSISTENCY"].split(",")) == 4


def test_nearest_is_exactly_consistent_on_every_grid_offset_grids_included(product, tmp_path):
    """The fixture's 20 m grids start half a pixel west of the 10 m grid: the comparison follows the placement,
    so pixel replication averages back to the band exactly (a grid-shared-bounds assumption would not)."""
    dst = tmp_path / "out.tif"
    result = run("upscale", product, "-b", BANDS, "-s", 4, "-m", "nearest", "--report", "-o", dst, "-q")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out.fidelity.json").read_text())
    assert [b["consistency_l1"] for b in report["bands"]] == [0.0] * 4


def test_a_product_output_beyond_a_threshold_is_not_written(product, tmp_path):
    dst = tmp_path / "out.tif"
    result = run(
        "upscale", product, "-b", BANDS, "-r", 5, "-m", "bicubic", "--max-consistency-error", 1e-9, "-o", dst, "-q"
    )
    assert result.exit_code == 1 and "fidelity check failed" in result.output
    assert not dst.exists()


def test_evaluate_fidelity_of_a_product_output_matches_its_report(product, tmp_path):
    dst = tmp_path / "out.tif"
    assert run("upscale", product, "-b", BANDS, "-r", 5, "-m", "bicubic", "--report", "-o", dst, "-q").exit_code == 0
    result = run("evaluate", "--fidelity", dst, product, "--json", tmp_path / "eval.json", "-q")
    assert result.exit_code == 0, result.output
    measured = json.loads((tmp_path / "eval.json").read_text())
    reported = json.loads((tmp_path / "out.fidelity.json").read_text())
    assert [b["consistency_l1"] for b in measured["bands"]] == pytest.approx(
        [b["consistency_l1"] for b in reported["bands"]]
    )
    assert [b["description"] for b in measured["bands"]] == BANDS.split(",")


def test_a_placed_comparison_takes_the_lr_pixels_inside_the_written_region():
    grid = OutputGrid(31, 30, 240, 240, rasterio.Affine(2.5, 0, 0, 0, -2.5, 0), Placement(0.5, 0.0, 0.125, 0.125))
    cmp = Comparison.plan(grid, Window(0, 0, 240, 240))
    assert cmp.lr_cols == (1, 30) and cmp.lr_rows == (0, 30)  # column 0 sticks out west of the output
    wy, wx = cmp.weights(Window(1, 0, 2, 2), cmp.sr_window(Window(1, 0, 2, 2)))
    assert wx.sum(axis=1) == pytest.approx([1.0, 1.0]) and wy.sum(axis=1) == pytest.approx([1.0, 1.0])
