"""`--samples K` (K >= 2) on a band stack (issue 21 item 3): the mean of K draws and a spread side-car
`OUT.spread.tif` on the output's grid, one band per output band: the draws' std for a band the model ran (a
requested guide band too), 0 for a copied band, NaN for a guided one, NaN where the output has nodata
(stack_spread.py). A tiny chain, a tiny random sharpener (RSSR_SHARPENER), on the committed Sentinel-2 crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rio_cogeo.cogeo import cog_validate

from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.core.errors import Interrupted
from rssr_cli.io import cog
from rssr_cli.model.checkpoint import save_model
from rssr_cli.pipeline import ModelOptions, UpscaleSettings, upscale
from rssr_cli.pipeline.model_choice import with_scene_model
from rssr_cli.pipeline.split import assemble_rows, render_rows, scene_row_bands
from rssr_cli.sharpen import apply as sharpen_apply

import s2_products as sp
from cli_helpers import run
from model_helpers import tiny_chain

torch.set_num_threads(1)

REALISTIC = ("--mode", "realistic", "--seed", "1", "--samples", "2", "--device", "cpu", "--threads", "1")


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    return sp.shared_extent_product(tmp_path_factory.mktemp("s2spread"))


@pytest.fixture(scope="module")
def sharpener(tmp_path_factory) -> Path:
    return sp.tiny_sharpener(tmp_path_factory.mktemp("sharpener"), "tiny-spread")


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Path:
    return save_model(tiny_chain(seed=2), tmp_path_factory.mktemp("models") / "chain.safetensors", model_id="tiny")


@pytest.fixture(autouse=True)
def _tiny_sharpener(sharpener, monkeypatch):
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(sharpener))


def upscale_product(product: Path, out: Path, chain: Path, *args):
    result = run("upscale", product, "-o", out, "--model", chain, *REALISTIC, *args)
    assert result.exit_code == 0, result.output
    return result


def read_pair(out: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    side_car = out.with_name(out.stem + ".spread.tif")
    assert cog_validate(str(side_car))[0]
    with rasterio.open(out) as o, rasterio.open(side_car) as s:
        assert (s.crs, s.transform, s.width, s.height, s.count) == (o.crs, o.transform, o.width, o.height, o.count)
        assert s.dtypes == ("float32",) * s.count and np.isnan(s.nodata)
        assert o.tags()["RSSR_SPREAD"] == side_car.name and s.tags()["RSSR_SPREAD_OF"] == out.name
        info = {
            "descriptions": s.descriptions,
            "kinds": [s.tags(i)["RSSR_SPREAD_KIND"] for i in range(1, s.count + 1)],
            "nodata": o.nodata,
        }
        return info, o.read(), s.read()


def test_model_bands_get_their_draws_spread_guided_bands_nan(product, chain, tmp_path):
    """-r 5, guided: B04 is a guide band, run by the model with K draws like any band, B11 and B05 are sharpened
    from the guides' native pixels (no draws)."""
    out, log = tmp_path / "g.tif", tmp_path / "run.jsonl"
    result = upscale_product(product, out, chain, "--bands", "B04,B11,B05", "-r", "5", "--log-json", log)
    assert "g.spread.tif" in result.output  # named in the summary
    assert json.loads(log.read_text().splitlines()[-1])["spread"] == str(tmp_path / "g.spread.tif")
    info, values, spread = read_pair(out)
    assert info["descriptions"] == (
        "B04 spread",
        "B11 spread (guided: no draws, NaN)",
        "B05 spread (guided: no draws, NaN)",
    )
    assert info["kinds"] == ["drawn", "guided", "guided"]
    valid = values[0] != info["nodata"]
    assert valid.mean() > 0.9 and (spread[0][valid] > 0).all() and np.isnan(spread[0][~valid]).all()
    assert np.isnan(spread[1:]).all()


def test_a_copied_band_has_zero_spread_and_an_unguided_one_its_draws(product, chain, tmp_path):
    """-r 10 --no-guidance: B04 is on the output grid (copied), B11 and B01 run by the model on their own grids."""
    out = tmp_path / "c.tif"
    upscale_product(product, out, chain, "--bands", "B04,B11,B01", "-r", "10", "--no-guidance")
    info, values, spread = read_pair(out)
    assert info["kinds"] == ["copied", "drawn", "drawn"]
    assert info["descriptions"][0] == "B04 spread (copied: 0)"
    invalid = values == info["nodata"]
    assert np.isnan(spread[invalid]).all()
    assert (spread[0][~invalid[0]] == 0).all()
    for band in (1, 2):
        assert (spread[band][~invalid[band]] > 0).all()


def test_a_split_run_joins_the_same_side_car(product, chain, tmp_path):
    settings = with_scene_model(
        product,
        UpscaleSettings(
            resolution=5,
            bands=("B04", "B11"),
            seed=1,
            threads=1,
            model=ModelOptions(model=str(chain), device="cpu", style="realistic", samples=2),
        ),
    )
    upscale(product, tmp_path / "whole.tif", settings)
    bands = scene_row_bands(product, settings, 2)
    parts = [render_rows(product, tmp_path / f"part{i}.tif", settings, b) for i, b in enumerate(bands)]
    assert all((tmp_path / f"part{i}.spread.tif").is_file() for i in range(2))
    result = assemble_rows(product, tmp_path / "split.tif", settings, parts)
    assert result.spread == tmp_path / "split.spread.tif"
    _, whole_values, whole = read_pair(tmp_path / "whole.tif")
    _, split_values, split = read_pair(tmp_path / "split.tif")
    np.testing.assert_array_equal(whole_values[0], split_values[0])  # the model's band: the same draws
    np.testing.assert_array_equal(whole, split)  # NaN where NaN, the drawn band's spread the same


@pytest.mark.parametrize("where", ["stream", "output rename"])
def test_a_failed_run_leaves_neither_file_nor_a_resume_folder(product, chain, tmp_path, monkeypatch, where):
    """Nothing at DST, no side-car, no staging: a run with a spread layer does not resume (stack_spread.py)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "f.tif"
    if where == "stream":

        def interrupted(self, requests):  # B04's stream, the one band the model runs
            raise Interrupted("interrupted by SIGINT", 2)

        monkeypatch.setattr(DiffusionBackend, "upsample_with_spread", interrupted)
    else:
        original_replace = cog.os.replace

        def failing_replace(staged, final):
            if str(final) == str(dst):
                raise OSError(28, "No space left on device")
            original_replace(staged, final)

        monkeypatch.setattr(cog.os, "replace", failing_replace)
    settings = UpscaleSettings(
        resolution=5,
        bands=("B04", "B11"),
        seed=1,
        threads=1,
        batch_size=1,
        model=ModelOptions(model=str(chain), device="cpu", style="realistic", samples=2),
    )
    with pytest.raises((Interrupted, OSError)):
        upscale(product, dst, settings)
    assert list(out_dir.iterdir()) == []


def test_an_existing_side_car_is_not_replaced_without_overwrite(product, chain, tmp_path):
    (tmp_path / "o.spread.tif").write_text("mine")
    result = run("upscale", product, "-o", tmp_path / "o.tif", "--model", chain, *REALISTIC, "--bands", "B04", "-r", 5)
    assert result.exit_code == 1 and "o.spread.tif already exists" in result.output
    assert (tmp_path / "o.spread.tif").read_text() == "mine" and not (tmp_path / "o.tif").exists()
