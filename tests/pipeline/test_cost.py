"""estimate_cost and `rssr info --estimate`: the model's time and peak memory from the planned windows + a calibration."""

from __future__ import annotations

import json

import pytest
import torch
from affine import Affine
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.geo.grid import iter_tiles, plan_output_grid, plan_tiles
from rssr_cli.model.checkpoint import save_model
from rssr_cli.pipeline.cost import estimate_cost
from rssr_cli.pipeline.settings import auto_tiling

from model_helpers import tiny_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread_small_calibration(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(
        "rssr_cli.pipeline.cost.CALIBRATION_HR_SIDES", (24, 48)
    )  # the tiny model's steps on 384² take seconds
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_model(tiny_model(), tmp_path_factory.mktemp("m") / "tiny.safetensors", model_id="tiny-cost")


def test_the_estimate_counts_the_planned_windows_and_their_halos(model_path):
    grid = plan_output_grid(300, 200, Affine(10, 0, 0, 0, -10, 0), scale=3.0)
    est = estimate_cost(grid, 2, model=str(model_path))
    tile, overlap = auto_tiling("diffusion", 3.0, None, None)
    tiles = list(iter_tiles(plan_tiles(grid, tile=tile, overlap=overlap)))
    assert (est.windows, est.tile, est.overlap, est.threads) == (len(tiles), tile, overlap, 1)
    assert (
        est.computed_band_px == 2 * sum(t.hr.height * t.hr.width for t in tiles) > est.output_band_px == 2 * 900 * 600
    )
    assert est.model == "tiny-cost" and est.mode.startswith("diffusion")  # the tiny preset runs denoiser steps
    assert est.seconds > 0 and est.cpu_hours > 0
    assert est.peak_rss_bytes >= est.calibration.base_rss_bytes > 0


def test_info_estimate_as_json(src_tif, model_path, monkeypatch):
    monkeypatch.setenv("RSSR_MODEL", str(model_path))
    result = runner.invoke(app, ["info", str(src_tif), "-s", "2", "--estimate", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["estimate"]["windows"] >= 1 and doc["estimate"]["calibration"]["hr_side"] == [24, 48]
    plain = runner.invoke(app, ["info", str(src_tif), "-s", "2"])  # without --estimate nothing is loaded or run
    assert plain.exit_code == 0 and "estimated cost" not in plain.stdout


@pytest.mark.parametrize("args", [["--estimate"], ["--estimate", "--model"]])
def test_info_estimate_needs_an_output_preview(src_tif, args):
    result = runner.invoke(app, ["info", str(src_tif), *args])
    assert result.exit_code == 2 and result.stderr.count("error:") == 1 and "--estimate" in result.stderr
