"""One scene split by output rows (render_rows + assemble_rows, `--split-rows` on Dask): the joined COG is
byte-identical to a whole-scene run, whatever the dtype, validity marking, AOI or backend (seeded model)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.windows import Window
from typer.testing import CliRunner

from rssr_cli.backends import get_backend
from rssr_cli.cli import app
from rssr_cli.core.errors import FidelityError
from rssr_cli.geo.region import OutputRegion, split_rows
from rssr_cli.io.aoi import load_aoi
from rssr_cli.model.checkpoint import save_model
from rssr_cli.pipeline import ModelOptions, UpscaleSettings, upscale
from rssr_cli.pipeline.model_choice import with_scene_model
from rssr_cli.pipeline.split import assemble_rows, render_rows, scene_row_bands

from conftest import UTM_TRANSFORM, synthetic_image, write_raster
from model_helpers import tiny_chain, tiny_model

torch.set_num_threads(1)


def split_and_join(src: Path, dst: Path, settings: UpscaleSettings, parts: int, backend=None) -> list[tuple[int, int]]:
    bands = scene_row_bands(src, settings, parts)
    rows = [
        render_rows(src, dst.with_name(f"{dst.stem}_rows{i}.tif"), settings, b, backend=backend)
        for i, b in enumerate(bands)
    ]
    assemble_rows(src, dst, settings, rows[::-1])  # any order
    return bands


def test_split_rows_cover_the_region_exactly():
    region = OutputRegion(Window(3, 10, 50, 101))
    bands = split_rows(region, 4)
    assert bands[0][0] == 10 and bands[-1][1] == 111 and all(a[1] == b[0] for a, b in zip(bands, bands[1:]))
    assert max(b - a for a, b in bands) - min(b - a for a, b in bands) <= 1
    assert split_rows(region, 500) == [(r, r + 1) for r in range(10, 111)]


@pytest.mark.parametrize(
    "dtype, marking, scale",
    [("uint16", "nodata", 2.5), ("uint8", "mask", 3.0), ("float32", "nan", 1.7), ("int16", "none", 4.5)],
)
def test_bands_join_into_the_same_bytes_as_a_whole_run(tmp_path, dtype, marking, scale):
    data = synthetic_image(3, 61, 47, dtype)
    kwargs = {}
    if marking == "nodata":
        data[:, 20:35, 5:25] = 0
        kwargs["nodata"] = 0
    elif marking == "mask":
        mask = np.ones(data.shape[1:], bool)
        mask[10:30, 30:] = False
        kwargs["mask"] = mask
    elif marking == "nan":
        data[:, 40:50, 10:20] = np.nan
    src = write_raster(tmp_path / "src.tif", data, **kwargs)
    settings = UpscaleSettings(scale=scale, method="lanczos", tile=16, overlap=4)
    upscale(src, tmp_path / "whole.tif", settings)
    split_and_join(src, tmp_path / "split.tif", settings, 3)
    assert (tmp_path / "split.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_a_seeded_model_and_an_aoi_join_without_a_seam(tmp_path):
    model = save_model(tiny_model(), tmp_path / "tiny.safetensors", model_id="tiny-split")
    backend = get_backend("diffusion", model=model, device="cpu", threads=1, steps=2, strength=0.3)
    src = write_raster(tmp_path / "src.tif", synthetic_image(2, 40, 36, "uint16"))
    west, north = UTM_TRANSFORM.c, UTM_TRANSFORM.f
    aoi = load_aoi(
        f"POLYGON(({west + 35} {north - 20}, {west + 300} {north - 60}, {west + 200} {north - 380}, {west + 35} {north - 20}))"
    )
    for name, extra in (("whole", {}), ("aoi", {"aoi": aoi})):
        settings = UpscaleSettings(scale=2.0, method="diffusion", tile=12, overlap=3, seed=7, **extra)
        upscale(src, tmp_path / f"{name}.tif", settings, backend=backend)
        bands = split_and_join(src, tmp_path / f"{name}_split.tif", settings, 3, backend=backend)
        assert len(bands) == 3
        assert (tmp_path / f"{name}_split.tif").read_bytes() == (tmp_path / f"{name}.tif").read_bytes()


def test_the_fidelity_report_of_a_split_run_is_that_of_a_whole_run(tmp_path):
    from rssr_cli.evaluation.fidelity_report import FidelityChecks, FidelityOptions

    src = write_raster(tmp_path / "src.tif", synthetic_image(2, 64, 52, "uint16"))
    settings = UpscaleSettings(
        scale=3.0, method="bicubic", tile=16, overlap=4, fidelity=FidelityOptions(write_report=True)
    )
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    whole = upscale(src, tmp_path / "a" / "out.tif", settings)
    split_and_join(src, tmp_path / "b" / "out.tif", settings, 3)
    assert (tmp_path / "a" / "out.tif").read_bytes() == (tmp_path / "b" / "out.tif").read_bytes()  # tags included
    a, b = (json.loads((tmp_path / d / "out.fidelity.json").read_text()) for d in "ab")
    assert {k: v for k, v in a.items() if k != "output"} == {k: v for k, v in b.items() if k != "output"}
    assert whole.fidelity.passed
    strict = replace(settings, fidelity=FidelityOptions(checks=FidelityChecks(max_consistency_error=1e-6)))
    with pytest.raises(FidelityError):
        split_and_join(src, tmp_path / "strict.tif", strict, 2)
    assert not (tmp_path / "strict.tif").exists()


def test_a_spread_side_car_joins_into_the_bytes_of_a_whole_run(tmp_path):
    """--samples K >= 2 with --split-rows: each part writes its rows of the side-car too, joined beside the output."""
    chain = save_model(tiny_chain(seed=2), tmp_path / "chain.safetensors", model_id="tiny-chain")
    data = synthetic_image(2, 30, 26, "uint16")
    data[:, :6, :5] = 0
    src = write_raster(tmp_path / "src.tif", data, nodata=0)
    options = ModelOptions(model=str(chain), device="cpu", style="realistic", samples=2)
    settings = UpscaleSettings(scale=2.0, model=options, seed=1, tile=12, overlap=3)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    whole = upscale(src, tmp_path / "a" / "out.tif", settings)
    assert whole.spread == tmp_path / "a" / "out.spread.tif"
    split_and_join(src, tmp_path / "b" / "out.tif", with_scene_model(src, settings), 3)  # as a batch gives it
    for name in ("out.tif", "out.spread.tif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["out.spread.tif", "out.tif"] + [
        f"out_rows{i}{suffix}" for i in range(3) for suffix in (".spread.tif", ".tif")
    ]


def test_assembly_refuses_bands_that_do_not_cover_the_output(tmp_path):
    src = write_raster(tmp_path / "src.tif", synthetic_image(1, 30, 30, "uint16"))
    settings = UpscaleSettings(scale=2.0, method="bicubic")
    first, _ = scene_row_bands(src, settings, 2)
    part = render_rows(src, tmp_path / "rows0.tif", settings, first)
    with pytest.raises(ValueError, match="do not cover"):
        assemble_rows(src, tmp_path / "out.tif", settings, [part])
    assert not (tmp_path / "out.tif").exists()


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_cli_split_rows_on_a_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: its helpers, for the spawned workers
    src = write_raster(tmp_path / "src.tif", synthetic_image(3, 50, 41, "uint16"), nodata=0)
    runner = CliRunner()
    common = ["-s", "2.5", "-m", "bicubic", "--tile", "16", "--overlap", "4", "-q"]
    split = runner.invoke(
        app,
        [
            "upscale",
            str(src),
            "-o",
            str(tmp_path / "split.tif"),
            *common,
            "--scheduler",
            "local:2",
            "--split-rows",
            "3",
        ],
    )
    assert split.exit_code == 0, split.output
    whole = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / "whole.tif"), *common])
    assert whole.exit_code == 0, whole.output
    assert (tmp_path / "split.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.tif", "src.tif", "whole.tif"]  # no staging left
    alone = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / "x.tif"), *common, "--split-rows", "3"])
    assert alone.exit_code == 2 and "--scheduler" in alone.output
