"""`--samples K` (K >= 2) also writes the per-pixel spread of the K draws: a side-car COG `<stem>.spread.tif` (issue 21)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rio_cogeo.cogeo import cog_validate

from rssr_cli.backends.base import SRRequest
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.core.errors import Interrupted
from rssr_cli.geo.grid import HRGrid
from rssr_cli.io import cog
from rssr_cli.model.checkpoint import save_model
from rssr_cli.pipeline import ModelOptions, RunRequest, UpscaleSettings, upscale

from cli_helpers import upscale_with_model
from model_helpers import tiny_chain

torch.set_num_threads(1)
REALISTIC = ["--mode", "realistic", "--seed", "1"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return save_model(
        tiny_chain(seed=2), tmp_path_factory.mktemp("models") / "chain.safetensors", model_id="tiny-chain"
    )


def _upscale(src, dst, model, *extra):
    return upscale_with_model(src, dst, model, *extra)


def _settings(model, samples=3, **fields):
    return UpscaleSettings(
        scale=2, model=ModelOptions(model=model, device="cpu", style="realistic", samples=samples), seed=1, **fields
    )


def _src_with_nodata(make_raster):
    data = np.random.default_rng(0).integers(500, 9000, (2, 24, 20)).astype("uint16")
    data[:, :6, :5] = 0  # a nodata corner
    return make_raster(data=data, nodata=0, descriptions=["red", "nir"], scales=[0.0001, 0.0001], offsets=[-0.1, -0.1])


def test_the_side_car_is_a_valid_cog_on_the_outputs_grid_with_nodata_where_the_output_has_it(
    make_raster, tmp_path, chain
):
    src, dst = _src_with_nodata(make_raster), tmp_path / "out.tif"
    result = _upscale(src, dst, chain, *REALISTIC, "--samples", "3")
    assert result.exit_code == 0, result.output
    side_car = tmp_path / "out.spread.tif"
    assert "out.spread.tif" in result.output  # named in the run's summary
    assert cog_validate(str(side_car))[0]
    with rasterio.open(dst) as out, rasterio.open(side_car) as spread:
        assert out.tags()["RSSR_SPREAD"] == "out.spread.tif" and spread.tags()["RSSR_SPREAD_OF"] == "out.tif"
        assert (spread.crs, spread.transform, spread.width, spread.height) == (
            out.crs,
            out.transform,
            out.width,
            out.height,
        )
        assert spread.dtypes == ("float32", "float32") and np.isnan(spread.nodata)
        assert spread.descriptions == ("red spread", "nir spread")
        assert spread.scales == (0.0001, 0.0001) and spread.offsets == (
            0.0,
            0.0,
        )  # stored units: the std / gain, no offset
        invalid, values = out.read() == 0, spread.read()
    assert invalid.any() and np.isnan(values[invalid]).all()
    assert np.isfinite(values[~invalid]).all() and (values[~invalid] > 0).all()  # every valid pixel: the draws scatter


def test_the_mean_is_the_k_sample_mean_and_the_spread_their_sample_std(chain):
    """Each window's generator advances through its K draws: the backend's mean and spread are those of the draws."""
    backend = DiffusionBackend(model=chain, device="cpu", style="realistic", samples=3)
    lr = np.random.default_rng(1).random((2, 10, 12)).astype(np.float32)
    request = SRRequest(lr, HRGrid(20, 24, 0.0, 0.0, 0.5, 0.5), seed=7)
    generator = [torch.Generator().manual_seed(7)]
    with torch.inference_mode():
        draws = np.stack(
            [
                backend.model.sample(
                    torch.from_numpy(lr)[None], *_grid_tensors(request), steps=4, mode="diffusion", generator=generator
                )[0].numpy()
                for _ in range(3)
            ]
        )
    ((mean, spread),) = backend.upsample_with_spread([request])
    np.testing.assert_allclose(mean, draws.mean(0), atol=1e-5)
    np.testing.assert_allclose(spread, draws.std(0, ddof=1), atol=1e-5)
    np.testing.assert_allclose(backend.upsample([request])[0], mean, atol=1e-6)  # upsample stays the mean


def _grid_tensors(request):
    grid = request.grid
    ys, xs = (
        torch.tensor(grid.centers_y()[None], dtype=torch.float32),
        torch.tensor(grid.centers_x()[None], dtype=torch.float32),
    )
    return ys, xs, torch.tensor([[grid.dy, grid.dx]], dtype=torch.float32)


def test_one_sample_writes_no_side_car(make_raster, tmp_path, chain):
    src = make_raster(1, 16, 16, "uint8")
    assert _upscale(src, tmp_path / "one.tif", chain, *REALISTIC).exit_code == 0
    with rasterio.open(tmp_path / "one.tif") as out:
        assert "RSSR_SPREAD" not in out.tags()
    assert not (tmp_path / "one.spread.tif").exists()


@pytest.mark.parametrize("where", ["stream", "output rename"])
def test_an_interrupted_or_failed_run_leaves_neither_file(make_raster, tmp_path, chain, monkeypatch, where):
    src, dst = make_raster(1, 24, 24, "uint8"), tmp_path / "out.tif"
    if where == "stream":  # a signal while the windows run
        calls = []
        original = DiffusionBackend.upsample_with_spread

        def interrupted(self, requests):
            calls.append(1)
            if len(calls) == 2:
                raise Interrupted("interrupted by SIGINT", 2)
            return original(self, requests)

        monkeypatch.setattr(DiffusionBackend, "upsample_with_spread", interrupted)
        settings = _settings(chain, tile=8, overlap=2, batch_size=1)
    else:  # the side-car is already in place when moving the output fails: it is taken back
        original_replace = cog.os.replace

        def failing_replace(staged, final):
            if str(final) == str(dst):
                raise OSError(28, "No space left on device")
            original_replace(staged, final)

        monkeypatch.setattr(cog.os, "replace", failing_replace)
        settings = _settings(chain)
    with pytest.raises((Interrupted, OSError)):
        upscale(src, dst, settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # no output, no side-car, no staging left


class _DeterministicSpread(ClassicalBackend):
    """Bicubic means and a spread that is a smooth function of them: a tiling must not change the side-car."""

    writes_spread = True

    def upsample_with_spread(self, requests):
        return [(mean, 0.01 + 0.1 * np.abs(mean)) for mean in self.upsample(requests)]


def test_the_side_car_is_tile_independent(make_raster, tmp_path, chain):
    src = make_raster(2, 30, 26, "uint16", nodata=0)
    sides = {}
    for tile in (8, 16):
        dst = tmp_path / f"t{tile}.tif"
        upscale(
            src,
            dst,
            UpscaleSettings(scale=2.5, method="bicubic", tile=tile, overlap=4),
            backend=_DeterministicSpread("bicubic"),
        )
        with rasterio.open(dst.with_name(f"t{tile}.spread.tif")) as spread:
            sides[tile] = spread.read(), spread.profile
    (a, profile_a), (b, profile_b) = sides[8], sides[16]
    assert {k: profile_a[k] for k in ("crs", "transform", "width", "height")} == {
        k: profile_b[k] for k in ("crs", "transform", "width", "height")
    }
    np.testing.assert_allclose(a, b, rtol=1e-3)  # bicubic is tile-independent; the spread follows the same blend
    # stored units: the model-unit spread (0.01 + 0.1 |mean|) divided by the uint16 gain 1/10000
    with rasterio.open(tmp_path / "t8.tif") as out:
        mean = out.read().astype(np.float64)
    valid = mean > 0
    np.testing.assert_allclose(a[valid], 100.0 + 0.1 * mean[valid], rtol=1e-3, atol=0.1)
    # the real chain: two tilings, the same grid and nodata; the spread's level agrees (each window draws its own)
    real = {}
    for tile in (8, 12):
        dst = tmp_path / f"c{tile}.tif"
        upscale(src, dst, _settings(chain, samples=2, tile=tile, overlap=2))
        with rasterio.open(dst.with_name(f"c{tile}.spread.tif")) as spread:
            real[tile] = spread.read(), spread.transform
    (c8, t8), (c12, t12) = real[8], real[12]
    assert t8 == t12 and np.array_equal(np.isnan(c8), np.isnan(c12))
    assert 0.7 < np.nanmean(c8) / np.nanmean(c12) < 1.4


def test_a_batch_redoes_an_output_whose_side_car_is_missing(make_raster, tmp_path, chain):
    folder = tmp_path / "in"
    folder.mkdir()
    make_raster(1, 16, 16, "uint8", name="in/a.tif")
    out, log = tmp_path / "out", tmp_path / "run.jsonl"

    def run():
        result = _upscale(folder, out, chain, *REALISTIC, "--samples", "2", "--log-json", str(log))
        assert result.exit_code == 0, result.output
        return json.loads(log.read_text().splitlines()[-1])

    first = run()
    assert first["status"] == "done" and first["spread"] == str(out / "a_x2.spread.tif")
    assert run()["status"] == "skipped"
    (out / "a_x2.spread.tif").unlink()
    redone = run()
    assert redone["status"] == "done" and "spread side-car a_x2.spread.tif is missing" in redone["note"]
    assert (out / "a_x2.spread.tif").is_file()


def test_band_stacks_take_samples_too_and_split_rows_accept_them(make_raster, tmp_path, chain):
    """--samples K on a band folder writes its side-car as on a raster (was refused up front; the band kinds:
    tests/pipeline/test_stack_spread.py)."""
    folder = tmp_path / "bands"
    folder.mkdir()
    for name in ("B04", "B08"):
        make_raster(1, 12, 12, "uint16", nodata=0, name=f"bands/{name}.tif")
    result = _upscale(
        folder, tmp_path / "s.tif", chain, *REALISTIC, "--samples", "2", "--bands", "B04,B08", "--no-guidance"
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "s.tif") as out, rasterio.open(tmp_path / "s.spread.tif") as spread:
        assert (spread.count, spread.transform, spread.shape) == (2, out.transform, out.shape)
        assert spread.descriptions == ("B04 spread", "B08 spread") and (spread.read() > 0).any()
    src = make_raster(1, 16, 16, "uint8")  # a split run joins the side-car's parts too (test_split)
    request = RunRequest((str(src),), tmp_path / "r.tif", _settings(str(chain), 2), scheduler="local:1", split_rows=2)
    assert request.split_rows == 2


def test_an_existing_side_car_is_not_replaced_without_overwrite(make_raster, tmp_path, chain):
    src = make_raster(1, 16, 16, "uint8")
    (tmp_path / "o.spread.tif").write_text("mine")
    result = _upscale(src, tmp_path / "o.tif", chain, *REALISTIC, "--samples", "2")
    assert result.exit_code == 1 and "o.spread.tif already exists" in result.output
    assert (tmp_path / "o.spread.tif").read_text() == "mine" and not (tmp_path / "o.tif").exists()
