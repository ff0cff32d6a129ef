"""Fidelity report (`upscale --report`, --max-shift, --max-consistency-error): figures measured as numbers against
backends whose faults are known (a shift, a bias, seed noise), sidecars, tags, thresholds and the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from rssr_cli.backends.base import SRRequest
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.cli import app
from rssr_cli.core.errors import FidelityError, UsageError
from rssr_cli.evaluation.fidelity_report import FidelityChecks, FidelityOptions
from rssr_cli.io.aoi import load_aoi
from rssr_cli.io.quicklook import display_bands
from rssr_cli.pipeline import UpscaleSettings, upscale
from rssr_cli.pipeline.report import sidecar_paths
from rssr_cli.scoring.metrics import area_matrix, area_weights, noise_sigma

from conftest import UTM_TRANSFORM, files_in

REPORT = FidelityOptions(write_report=True)


@dataclass
class FaultyBackend:
    """Bicubic with a known fault: content moved by (dy, dx) LR px, a constant bias, or seed-dependent noise."""

    dy: float = 0.0
    dx: float = 0.0
    bias: float = 0.0  # model units
    noise: float = 0.0  # model units, drawn from the request's seed
    name: str = "faulty"

    def upsample(self, requests: Sequence[SRRequest]) -> list[np.ndarray]:
        # sampling dy LR px above each HR pixel shows the content dy px lower than it is
        moved = [replace(r, grid=replace(r.grid, y0=r.grid.y0 - self.dy, x0=r.grid.x0 - self.dx)) for r in requests]
        out = ClassicalBackend("bicubic").upsample(moved)
        for r, patch in zip(requests, out):
            patch += self.bias + self.noise * np.random.default_rng(r.seed).standard_normal(patch.shape)
        return [p.astype(np.float32) for p in out]

    def provenance(self) -> dict[str, str]:
        return {"backend": self.name}


@pytest.fixture
def textured(make_raster) -> Path:
    return make_raster(2, 96, 80, "uint16", name="textured.tif", descriptions=["B04", "B08"])


def run(src: Path, dst: Path, *, scale: float = 4, options: FidelityOptions = REPORT, **kw):
    method, backend = kw.pop("method", "bicubic"), kw.pop("backend", None)
    return upscale(src, dst, UpscaleSettings(scale=scale, method=method, fidelity=options, **kw), backend=backend)


# ------------------------------------------------------------------------------------------- metrics


def test_area_weights_is_a_block_of_the_area_matrix():
    full = area_matrix(7, 31)  # 31 / 7: a non-integer scale
    np.testing.assert_allclose(area_weights(2, 5, 8, 23, 7, 31), full[2:5, 8:23], atol=1e-12)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-12)


def test_noise_sigma_reads_white_noise_and_ignores_a_gradient():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:200].astype(float)
    noisy = 100 + 0.5 * x + 0.2 * y + rng.normal(0, 3.0, (200, 200))
    assert noise_sigma(noisy) == pytest.approx(3.0, rel=0.05)
    assert noise_sigma(0.5 * x + 0.2 * y) == pytest.approx(0.0, abs=1e-9)
    valid = np.ones_like(noisy, dtype=bool)
    valid[:, :100] = False
    assert noise_sigma(np.where(valid, noisy, 1e6), valid) == pytest.approx(3.0, rel=0.08)  # invalid pixels ignored
    assert math.isnan(noise_sigma(noisy, np.zeros_like(valid)))


def test_display_bands_prefer_colour_interpretation_then_names_then_grey():
    rgb = (ColorInterp.blue, ColorInterp.green, ColorInterp.red)
    assert display_bands(rgb, [None] * 3) == [2, 1, 0]
    assert display_bands([ColorInterp.gray] * 4, ["B02", "B03", "B04", "B08"]) == [2, 1, 0]
    assert display_bands([ColorInterp.gray] * 2, ["B04", "B08"]) == [0]


# ------------------------------------------------------------------------------------ figures as numbers


def test_nearest_at_an_integer_scale_is_exactly_consistent(textured, tmp_path):
    result = run(textured, tmp_path / "near.tif", method="nearest")
    report = result.fidelity
    assert report.lr_pixels_compared == 96 * 80
    for band in report.bands:
        assert band.consistency_l1 == 0.0 and band.deviating_fraction == 0.0
    assert report.shift is not None and report.shift.magnitude == pytest.approx(0.0, abs=0.011)
    assert report.spectral_angle_deg == pytest.approx(0.0, abs=1e-6)
    assert report.uncertainty.deterministic and all(b.uncertainty_mean == 0.0 for b in report.bands)


@pytest.mark.parametrize("scale", [2.5, 4.5])
def test_bicubic_is_nearly_consistent_and_unshifted_at_non_integer_scales(textured, tmp_path, scale):
    report = run(textured, tmp_path / "bic.tif", scale=scale).fidelity
    assert report.passed
    assert 0 < report.worst_consistency < 0.03
    assert report.shift.magnitude < 0.05


def test_a_shifted_output_is_measured_with_its_sign_and_refused(textured, tmp_path):
    dst = tmp_path / "shifted.tif"
    backend = FaultyBackend(dy=0.5, dx=-1.0)
    with pytest.raises(FidelityError, match="shift 1.1.* > --max-shift 0.5"):
        run(
            textured,
            dst,
            options=replace(REPORT, checks=FidelityChecks(max_shift=0.5)),
            backend=backend,
            method="bicubic",
        )
    assert not dst.exists() and files_in(tmp_path) >= {"shifted.fidelity.json"}
    data = json.loads(sidecar_paths(dst)[0].read_text())
    assert data["passed"] is False and "max-shift" in data["failures"][0]
    assert data["shift_lr_px"]["dy"] == pytest.approx(0.5, abs=0.1)
    assert data["shift_lr_px"]["dx"] == pytest.approx(-1.0, abs=0.1)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "staging left behind"


@pytest.mark.parametrize("dy, dx", [(0.25, 0.0), (0.0, -0.1), (2.0, 1.0)])
def test_sub_pixel_shifts_are_read_within_a_few_hundredths(textured, tmp_path, dy, dx):
    shift = run(textured, tmp_path / "s.tif", scale=2.5, backend=FaultyBackend(dy=dy, dx=dx)).fidelity.shift
    assert (shift.dy, shift.dx) == (pytest.approx(dy, abs=0.04), pytest.approx(dx, abs=0.04))


def test_a_biased_output_fails_the_consistency_check(textured, tmp_path):
    backend = FaultyBackend(bias=0.05)  # +500 DN in uint16 reflectance units
    checks = FidelityChecks(max_consistency_error=0.05)
    with pytest.raises(FidelityError, match="consistency error"):
        run(textured, tmp_path / "biased.tif", options=FidelityOptions(checks=checks), backend=backend)
    report = run(textured, tmp_path / "ok.tif", options=FidelityOptions(checks=checks)).fidelity
    assert report.passed and (tmp_path / "ok.tif").exists()
    assert not sidecar_paths(tmp_path / "ok.tif")[0].exists(), "thresholds alone write no sidecar"


def test_seed_noise_shows_as_uncertainty_and_deviating_pixels(textured, tmp_path):
    report = run(textured, tmp_path / "noisy.tif", backend=FaultyBackend(noise=0.02)).fidelity
    assert not report.uncertainty.deterministic and report.uncertainty.samples == 4
    for band in report.bands:
        assert band.uncertainty_mean == pytest.approx(200, rel=0.1)  # 0.02 model units = 200 DN
    clean = run(textured, tmp_path / "clean.tif").fidelity
    assert all(n.deviating_fraction >= c.deviating_fraction for n, c in zip(report.bands, clean.bands))


def test_nodata_pixels_are_left_out_of_the_comparison(make_raster, tmp_path):
    from conftest import synthetic_image

    data = synthetic_image(1, 64, 64, "uint16")
    data[:, 10:30, 20:40] = 0
    src = make_raster(data=data, nodata=0, name="holes.tif")
    report = run(src, tmp_path / "holes_x4.tif", method="nearest").fidelity
    assert report.lr_pixels_compared == 64 * 64 - 20 * 20
    assert report.bands[0].consistency_l1 == 0.0  # nodata in the SR never leaks into the degrade-back


def test_an_aoi_output_is_compared_only_where_it_was_written(textured, tmp_path):
    west, north = UTM_TRANSFORM.c, UTM_TRANSFORM.f
    aoi = load_aoi(
        f"POLYGON(({west + 100} {north - 100}, {west + 500} {north - 100}, {west + 500} {north - 600}, {west + 100} {north - 600}, {west + 100} {north - 100}))"
    )
    report = run(textured, tmp_path / "aoi.tif", method="nearest", aoi=aoi).fidelity
    assert 0 < report.lr_pixels_compared <= 40 * 50
    assert report.bands[0].consistency_l1 == 0.0


# ----------------------------------------------------------------------------------- files and CLI


def test_report_sidecars_tags_and_cog(textured, tmp_path):
    dst = tmp_path / "out.tif"
    run(textured, dst, scale=3)
    json_path, png_path = sidecar_paths(dst)
    data = json.loads(json_path.read_text())
    assert data["format"] == "rssr-fidelity/1" and data["passed"] is True
    assert [b["description"] for b in data["bands"]] == ["B04", "B08"]
    with rasterio.open(png_path) as png:
        crop = data["uncertainty"]["out_window"]
        assert (png.count, png.dtypes[0], png.height, png.width) == (3, "uint8", crop[3], 3 * crop[2] + 8)
    assert cog_validate(str(dst))[0]
    with rasterio.open(dst) as out:
        tags = out.tags()
    assert len(tags["RSSR_FIDELITY_CONSISTENCY"].split(",")) == 2
    assert tags["RSSR_FIDELITY_SHIFT_LR_PX"].count(",") == 1 and "RSSR_FIDELITY_SAM_DEG" in tags


def test_options_are_validated():
    with pytest.raises(UsageError, match="max-shift"):
        FidelityChecks(max_shift=-1)
    with pytest.raises(UsageError, match="report-samples"):
        FidelityOptions(samples=1)


def test_cli_report_threshold_and_log(textured, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(
        app, ["upscale", str(textured), "-o", str(tmp_path / "a.tif"), "-s", "2", "-m", "bicubic", "--report", "-q"]
    )
    assert ok.exit_code == 0, ok.output
    assert sidecar_paths(tmp_path / "a.tif")[1].exists()
    info = runner.invoke(app, ["info", str(tmp_path / "a.tif")])
    assert info.exit_code == 0 and "made by rssr" in info.output
    assert "fidelity_shift_lr_px" in info.output and "bicubic" in info.output
    assert "made by rssr" not in runner.invoke(app, ["info", str(textured)]).output
    log = tmp_path / "log.jsonl"
    refused = runner.invoke(
        app,
        [
            "upscale",
            str(textured),
            "-o",
            str(tmp_path / "b.tif"),
            "-s",
            "2",
            "-m",
            "bicubic",
            "--max-consistency-error",
            "0.0001",
            "--log-json",
            str(log),
            "-q",
        ],
    )
    assert refused.exit_code == 1 and not (tmp_path / "b.tif").exists()
    assert "fidelity check failed" in refused.output and "Traceback" not in refused.output
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["status"] == "failed" and line["fidelity"]["passed"] is False
    bad = runner.invoke(
        app, ["upscale", str(textured), "-o", str(tmp_path / "c.tif"), "-s", "2", "--report-samples", "1"]
    )
    assert bad.exit_code == 2 and not (tmp_path / "c.tif").exists()


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_the_upscale_path_imports_no_benchmark_code():
    """upscale --report needs the fidelity engine only: not the benchmark protocol, pair scoring or backends
    comparison (nor their detail statistics)."""
    import ast
    import subprocess
    import sys

    code = (
        "import sys, rssr_cli.pipeline.api, rssr_cli.pipeline.report, rssr_cli.pipeline.stack_run; "
        "print(sorted(m for m in sys.modules if m.startswith('rssr_cli.evaluation')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = ast.literal_eval(out)
    assert "rssr_cli.evaluation.fidelity" in loaded
    assert not {
        "rssr_cli.evaluation.protocol",
        "rssr_cli.evaluation.compare",
        "rssr_cli.evaluation.pairs",
        "rssr_cli.scoring.detail",
    } & set(loaded)
