"""Guidance is a property of the band and the product (issue 22): a guided band is the same whatever else is asked
for, whatever the AOI and the tiling, and the output's tags, `rssr info` and the run summary say per band how it
was made. A tiny random sharpener (RSSR_SHARPENER) and a tiny diffusion model; every band shares one extent (as in
a real product), so every run has the same common grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.model.checkpoint import save_model
from rssr_cli.sharpen import apply as sharpen_apply

import s2_products as sp
from cli_helpers import run
from model_helpers import tiny_model

AOI = "POLYGON((441870 4166370, 442130 4166370, 442130 4166610, 441870 4166610, 441870 4166370))"  # 26 x 24 px at 10 m, well inside: the outer 4 px have scene pixels beyond


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    return sp.shared_extent_product(tmp_path_factory.mktemp("s2shared"))  # GeoTIFF: quicker to read than JPEG 2000


@pytest.fixture(scope="module")
def sharpener(tmp_path_factory) -> Path:
    return sp.tiny_sharpener(tmp_path_factory.mktemp("sharpener"), "tiny-test")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_model(
        tiny_model(), tmp_path_factory.mktemp("model") / "tiny.safetensors", model_id="tiny-guidance-test"
    )


@pytest.fixture(autouse=True)
def _tiny_sharpener(sharpener, monkeypatch):
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(sharpener))


def upscale(product: Path, out: Path, *args) -> Path:
    result = run("upscale", product, "-o", out, *args, "-q")
    assert result.exit_code == 0, result.output
    return out


def band(path: Path, name: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(ds.descriptions.index(name) + 1).astype(np.int64)


def test_a_guided_band_is_guided_whatever_else_is_asked_for(product, model_path, tmp_path):
    """--bands B11 reads the 10 m guides without writing them: B11 is the B11 of a run that outputs its guides too."""
    alone = upscale(product, tmp_path / "b11.tif", "--bands", "B11", "-r", "10", "--model", model_path)
    every = upscale(product, tmp_path / "all.tif", "--bands", "B02,B03,B04,B08,B11", "-r", "10", "--model", model_path)
    plain = upscale(
        product, tmp_path / "plain.tif", "--bands", "B11", "-r", "10", "--no-guidance", "--model", model_path
    )
    with rasterio.open(alone) as ds:
        assert ds.count == 1 and ds.descriptions == ("B11",)  # the guides were read, not output
        assert ds.tags(1)["RSSR_BAND_METHOD"] == "guided"
        assert ds.tags(1)["RSSR_GUIDED_BY"] == "B02,B03,B04,B08"
        assert ds.tags(1)["RSSR_BAND_MODEL"] == "tiny-test"
        assert ds.tags()["RSSR_GUIDED_BANDS"] == "B11"
    assert np.abs(band(alone, "B11") - band(every, "B11")).max() <= 1
    assert np.abs(band(alone, "B11") - band(plain, "B11")).max() > 10
    with rasterio.open(plain) as ds:
        assert ds.tags(1)["RSSR_BAND_METHOD"] == "diffusion" and "RSSR_GUIDED_BY" not in ds.tags(1)
    said = run("info", alone)  # an output says per band how it was made
    assert said.exit_code == 0 and "B11" in said.output and "guided x2 by B02,B03,B04,B08 (tiny-test)" in said.output
    assert json.loads(run("info", plain, "--json").output)["bands"][0]["made"]["band_method"] == "diffusion"


def test_bicubic_outputs_are_not_tagged_guided(product, tmp_path):
    out = upscale(product, tmp_path / "bicubic.tif", "--bands", "B04,B11", "-r", "5", "--method", "bicubic")
    with rasterio.open(out) as ds:
        assert ds.tags()["RSSR_GUIDANCE"] == "off"
        assert [ds.tags(i)["RSSR_BAND_METHOD"] for i in (1, 2)] == ["bicubic", "bicubic"]
        assert "RSSR_GUIDED_BY" not in ds.tags(2) and "RSSR_GUIDED_BANDS" not in ds.tags()


def test_an_aoi_output_is_the_full_run_inside_the_aoi_frame_included(product, model_path, tmp_path):
    args = ("--bands", "B05,B11,B01", "-r", "10", "--model", model_path)
    full = upscale(product, tmp_path / "full.tif", *args)
    cut = upscale(product, tmp_path / "aoi.tif", *args, "--aoi", AOI)
    with rasterio.open(full) as f, rasterio.open(cut) as c:
        window = rasterio.windows.from_bounds(*c.bounds, transform=f.transform).round_offsets().round_lengths()
        assert (c.width, c.height) == (26, 24)
        for i in range(1, 4):
            diff = np.abs(f.read(i, window=window).astype(int) - c.read(i).astype(int))
            assert diff.max() <= 1, (f.descriptions[i - 1], diff.max(), np.argwhere(diff > 1)[:5])


def test_the_guided_pass_does_not_depend_on_the_tiling(product, model_path, tmp_path, monkeypatch):
    args = ("--bands", "B8A,B12,B09", "-r", "10", "--model", model_path)
    whole = upscale(product, tmp_path / "whole.tif", *args)
    monkeypatch.setattr(sharpen_apply, "TILE", 19)  # 3 x 3 tiles, cut where no tile of the whole run is
    tiled = upscale(product, tmp_path / "tiled.tif", *args)
    cut = upscale(product, tmp_path / "tiled_aoi.tif", *args, "--aoi", AOI)
    with rasterio.open(whole) as a, rasterio.open(tiled) as b, rasterio.open(cut) as c:
        assert np.abs(a.read().astype(int) - b.read().astype(int)).max() <= 1
        window = rasterio.windows.from_bounds(*c.bounds, transform=a.transform).round_offsets().round_lengths()
        assert np.abs(a.read(window=window).astype(int) - c.read().astype(int)).max() <= 1


def test_finer_than_the_guides_the_sharpener_reads_their_native_pixels_not_the_model_output(
    product, model_path, tmp_path
):
    """At 5 m the network sees the 10 m guides resampled as in its training (bicubic of their native pixels), never
    the run's super-resolved guides (a model's grain it would amplify into texture): the guided bands do not depend
    on the model that super-resolves the 10 m bands, which do."""
    other = save_model(tiny_model(seed=7), tmp_path / "other.safetensors", model_id="tiny-guidance-other")
    args = ("--bands", "B02,B03,B04,B08,B11,B01", "-r", "5")
    one = upscale(product, tmp_path / "one.tif", *args, "--model", model_path)
    two = upscale(product, tmp_path / "two.tif", *args, "--model", other)
    assert np.abs(band(one, "B08") - band(two, "B08")).max() > 10  # the models differ
    for name in ("B11", "B01"):
        assert np.abs(band(one, name) - band(two, name)).max() == 0, name


def test_the_model_runs_on_the_guides_only_when_they_are_output(product, model_path, tmp_path, monkeypatch):
    """--bands B11 -r 5: the sharpener reads the four guides' native pixels, the model runs on none of them (nothing is
    computed that the output does not hold). --bands B08,B11: B08 is an ordinary band, run by the model over the
    region like any band (its tiling tagged), and B11 is the same."""
    windows: list[int] = []
    original = DiffusionBackend.upsample

    def counting(self, requests):
        windows.append(len(requests))
        return original(self, requests)

    monkeypatch.setattr(DiffusionBackend, "upsample", counting)
    log = tmp_path / "run.jsonl"
    args = ("--bands", "B11", "-r", "5", "--model", model_path, "--log-json", log)
    result = run("upscale", product, "-o", tmp_path / "b11.tif", *args)
    assert result.exit_code == 0, result.output
    assert windows == []  # B11 is guided, the guides only read
    line = json.loads(log.read_text().splitlines()[-1])
    assert [(g["band"], g["method"]) for g in line["guides_only"]] == [
        (n, "read") for n in ("B02", "B03", "B04", "B08")
    ]
    assert "B02,B03,B04,B08 read as guides only (not output)" in " ".join(result.output.split())
    both = upscale(product, tmp_path / "b08.tif", "--bands", "B08,B11", "-r", "5", "--model", model_path)
    with rasterio.open(both) as ds:
        assert ds.tags(1)["RSSR_BAND_METHOD"] == "diffusion" and "RSSR_TILE" in ds.tags(1)
        assert ds.tags(2)["RSSR_BAND_METHOD"] == "guided" and "RSSR_TILE" not in ds.tags(2)
    assert sum(windows) > 0  # B08's windows
    np.testing.assert_array_equal(band(both, "B11"), band(tmp_path / "b11.tif", "B11"))


def test_a_classical_stack_run_does_not_depend_on_the_window_size(product, tmp_path):
    args = ("--bands", "B04,B11,B01", "-r", "5", "--method", "bicubic")
    default = upscale(product, tmp_path / "default.tif", *args)
    small = upscale(product, tmp_path / "small.tif", *args, "--tile", "16", "--overlap", "8")
    cut = upscale(product, tmp_path / "cut.tif", *args, "--tile", "16", "--overlap", "8", "--aoi", AOI)
    with rasterio.open(default) as a, rasterio.open(small) as b, rasterio.open(cut) as c:
        assert np.abs(a.read().astype(int) - b.read().astype(int)).max() <= 1
        window = rasterio.windows.from_bounds(*c.bounds, transform=a.transform).round_offsets().round_lengths()
        assert np.abs(a.read(window=window).astype(int) - c.read().astype(int)).max() <= 1


def test_info_says_per_band_how_a_product_would_be_made(product):
    result = run("info", product, "-r", "10", "--bands", "B04,B11,B01", "--json")
    assert result.exit_code == 0, result.output
    made = {b["band"]: b for b in json.loads(result.output)["band_methods"]}
    assert made["B04"]["method"] == "copy"
    assert made["B11"]["method"] == "guided" and made["B11"]["guided_by"] == ["B02", "B03", "B04", "B08"]
    assert made["B11"]["scale"] == pytest.approx(2) and made["B01"]["scale"] == pytest.approx(6)
    text = run("info", product, "-r", "10", "--bands", "B04,B11,B01")
    assert "B11 guided by B02,B03,B04,B08 x2" in text.output


def test_the_summary_says_per_band_what_ran(product, model_path, tmp_path):
    """B04 is copied, B11 guided at x2, B01 guided at x6: no `x1`, no single method for all; B02/B03/B08 are read
    as guides and not output, and the summary says so."""
    log = tmp_path / "run.jsonl"
    out = tmp_path / "summary.tif"
    result = run(
        "upscale", product, "-o", out, "--bands", "B04,B11,B01", "-r", "10", "--model", model_path, "--log-json", log
    )
    assert result.exit_code == 0, result.output
    summary = " ".join(result.output.split())
    assert "B04 copied" in summary and "B11 guided x2" in summary and "B01 guided x6" in summary
    assert "x1 " not in summary and "diffusion x" not in summary
    assert "B02,B03,B08 read as guides only (not output)" in summary
    line = json.loads(log.read_text().splitlines()[-1])
    made = {b["band"]: b for b in line["bands"]}
    assert made["B11"]["method"] == "guided" and made["B11"]["scale"] == pytest.approx(2)
    assert made["B04"]["method"] == "copy" and [g["band"] for g in line["guides_only"]] == ["B02", "B03", "B08"]


def test_a_batch_redoes_guided_outputs_once_when_the_guided_steps_change(product, model_path, tmp_path):
    """Issue 20: a cron batch redoes a scene once when what makes its guided bands changed (another sharpener, or
    other steps after it: RSSR_GUIDED_WITH), and says why; an output made before the tag existed counts as changed."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / product.name).symlink_to(product)
    out, log = tmp_path / "sr", tmp_path / "log.jsonl"
    args = ("upscale", incoming, "-o", f"{out}/", "--model", model_path, "--bands", "B04,B11", "-r", 10)
    args += ("--log-json", log, "-q")

    def batch() -> dict:
        result = run(*args)
        assert result.exit_code == 0, result.output
        return json.loads(log.read_text().splitlines()[-1])

    assert batch()["status"] == "done"
    made = next(out.iterdir())
    with rasterio.open(made) as ds:
        current = ds.tags()["RSSR_GUIDED_WITH"]
    assert "tiny-test" in current and "back-projection" in current
    assert batch()["status"] == "skipped"
    with rasterio.open(made, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:  # as if older steps had made it
        ds.update_tags(RSSR_GUIDED_WITH="tiny-test 000000000000; gaussian back-projection")
    redone = batch()
    assert redone["status"] == "done"
    assert redone["note"] == f"guided bands changed: tiny-test 000000000000; gaussian back-projection -> {current}"
    assert batch()["status"] == "skipped"
