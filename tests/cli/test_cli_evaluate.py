"""`rssr evaluate` (folder, --pairs, --fidelity) and `rssr info --model` through typer's CliRunner."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from PIL import Image

from rssr_cli.evaluation.compare import model_backends, posterior_spec
from rssr_cli.model.checkpoint import save_model
from rssr_cli.scoring.metrics import degrade_back

from cli_helpers import one_error_line, run
from conftest import synthetic_image, write_raster
from model_helpers import tiny_model
from textures import smooth_field

torch.set_num_threads(1)
CPU = ("--device", "cpu", "--threads", "1")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_model(
        tiny_model(),
        tmp_path_factory.mktemp("model") / "tiny.safetensors",
        model_id="tiny-eval",
        training={"command": "rssr train --preset tiny", "scales": [1, 8]},
        metrics={"x4": {"psnr": 1.5}},
    )


@pytest.fixture(scope="module")
def png_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hr")
    for i in range(3):
        data = synthetic_image(3, 48, 48, "uint8", seed=i)
        Image.fromarray(np.moveaxis(data, 0, -1)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def no_default_model(monkeypatch, tmp_path):
    monkeypatch.setenv("RSSR_MODEL", str(tmp_path / "absent.safetensors"))


# --------------------------------------------------------------------------------------------- folder


def test_model_backends_share_one_loaded_model(model_path):
    backends = model_backends(model_path, steps=(0, 2, 2), strength=0.3, full_chain=(5,), device="cpu", threads=1)
    assert list(backends) == ["model-prior", "model-k2", "model-full5"]  # 0 is the prior; duplicates collapse
    assert len({id(b.model) for b in backends.values()}) == 1
    assert (backends["model-k2"].steps, backends["model-k2"].strength, backends["model-k2"].mode) == (
        2,
        0.3,
        "diffusion",
    )
    assert (backends["model-full5"].steps, backends["model-full5"].strength) == (5, 1.0)
    assert list(model_backends(model_path, device="cpu", threads=1)) == ["model-prior", "model-k4"]  # the card's steps


def test_folder_with_model_prior_steps_and_classical(png_dir, model_path, tmp_path):
    out = tmp_path / "out.json"
    result = run("evaluate", png_dir, "--model", model_path, "--steps", "0,2", "--scales", "2,3", "--json", out, *CPU)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    summary = {(s["scale"], s["backend"]): s for s in doc["summary"]}
    names = ("model-prior", "model-k2", "bicubic", "lanczos")
    assert set(summary) == {(s, n) for s in (2.0, 3.0) for n in names}
    assert all(math.isfinite(s["psnr"]) and s["images"] == 3 for s in summary.values())
    assert len(doc["rows"]) == 3 * 2 * 4
    assert doc["meta"]["provenance"]["model-k2"]["steps"] == "2"
    assert doc["meta"]["provenance"]["model-prior"]["method"] == "diffusion-prior"
    assert "model-k2" in result.stdout and "ΔPSNR" in result.stdout and "+0.00" in result.stdout  # bicubic vs itself


def test_folder_full_chain_and_strength(png_dir, model_path, tmp_path):
    out = tmp_path / "out.json"
    result = run(
        "evaluate",
        png_dir,
        "--model",
        model_path,
        "--steps",
        "1",
        "--steps",
        "2",
        "--strength",
        "0.3",
        "--full-chain",
        "3",
        "--methods",
        "bicubic",
        "--scales",
        "2",
        "--limit",
        "1",
        "--json",
        out,
        "-q",
        *CPU,
    )
    assert result.exit_code == 0, result.output
    assert result.output == ""
    doc = json.loads(out.read_text())
    assert doc["backends"] == ["model-prior", "model-k1", "model-k2", "model-full3", "bicubic"]
    assert doc["meta"]["images"] == 1
    assert doc["meta"]["provenance"]["model-k1"]["strength"] == "0.3"
    assert doc["meta"]["provenance"]["model-full3"]["strength"] == "1"


def test_folder_without_a_model_evaluates_classical_methods_only(png_dir, tmp_path, no_default_model):
    out = tmp_path / "out.json"
    result = run("evaluate", png_dir, "--scales", "2", "--json", out)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("no model found") == 1
    assert json.loads(out.read_text())["backends"] == ["bicubic", "lanczos"]


@pytest.mark.parametrize(
    "args, code",
    [
        (("--scales", "1"), 2),
        (("--scales", "two"), 2),
        (("--steps", "-1"), 2),
        (("--methods", "nope"), 2),
    ],
)
def test_folder_bad_options_are_usage_errors(png_dir, no_default_model, args, code):
    result = run("evaluate", png_dir, *args)
    assert result.exit_code == code, result.output


def test_exactly_one_mode(png_dir, tmp_path):
    assert run("evaluate").exit_code == 2
    result = run("evaluate", png_dir, "--fidelity", tmp_path / "a.tif", tmp_path / "b.tif")
    assert result.exit_code == 2 and "exactly one of" in one_error_line(result)


def test_missing_model_and_empty_folder_are_one_line(png_dir, tmp_path):
    result = run("evaluate", png_dir, "--model", tmp_path / "missing.safetensors", *CPU)
    assert result.exit_code == 1 and "missing.safetensors" in one_error_line(result)
    (tmp_path / "empty").mkdir()
    result = run("evaluate", tmp_path / "empty", "--model", tmp_path / "missing.safetensors")
    assert result.exit_code == 1 and "no PNG/JPEG/TIFF images" in one_error_line(result)


# ------------------------------------------------------------------------------------- --samples K


def test_posterior_spec_judges_every_model_variant_and_reruns_only_the_stochastic_ones(model_path):
    backends = model_backends(model_path, steps=(0, 2), device="cpu", threads=1, tta=True)
    spec = posterior_spec({**backends, "bicubic": object()}, 3)
    assert spec is not None and (spec.samples, spec.prior) == (3, "model-prior")
    assert spec.candidates == (
        "model-prior",
        "model-k2",
        "model-prior-tta",
        "model-k2-tta",
    )  # classical methods: not samplers
    assert spec.repeated == ("model-prior", "model-prior-tta")
    assert posterior_spec(backends, 0) is None


def test_folder_samples_judges_the_sampler_in_json_and_table(png_dir, model_path, tmp_path):
    out = tmp_path / "out.json"
    result = run(
        "evaluate",
        png_dir,
        "--model",
        model_path,
        "--steps",
        "2",
        "--scales",
        "4",
        "--method",
        "bicubic",
        "--samples",
        "2",
        "--json",
        out,
        *CPU,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["meta"]["samples"] == 2
    cells = {c["backend"]: c for c in doc["posterior"]}
    assert set(cells) == {"model-prior", "model-k2"}  # bicubic is not a sampler
    for cell in cells.values():
        assert (cell["scale"], cell["samples"], cell["images"]) == (4.0, 2, 3)
        assert [b["number"] for b in cell["bars"]] == list(range(1, 8))
        assert all(
            {"name", "mean", "low", "high", "rule", "passed"} <= set(f) for b in cell["bars"] for f in b["figures"]
        )
    prior_bars = {b["number"]: b for b in cells["model-prior"]["bars"]}
    assert (
        not prior_bars[7]["passed"] and prior_bars[7]["figures"][0]["mean"] == 0.0
    )  # K copies of the prior: no spread
    rows = {(r["image"], r["backend"]): r for r in doc["rows"]}
    assert rows[("img0.png", "bicubic")]["posterior"] is None
    sampled = rows[("img0.png", "model-k2")]["posterior"]
    assert sampled["samples"] == 2 and sampled["spread"] > 0.0  # the seeds differ: two different samples
    assert (
        "posterior bars, K = 2" in result.stdout
        and "bars passed" in result.stdout
        and "7 calibrated spread" in result.stdout
    )


def test_samples_zero_leaves_the_report_without_posterior_figures(png_dir, model_path, tmp_path):
    out = tmp_path / "out.json"
    result = run(
        "evaluate",
        png_dir,
        "--model",
        model_path,
        "--steps",
        "0",
        "--scales",
        "4",
        "--method",
        "bicubic",
        "--limit",
        "1",
        "--json",
        out,
        "-q",
        *CPU,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["posterior"] == [] and all(r["posterior"] is None for r in doc["rows"])


@pytest.mark.parametrize(
    "args, message",
    [
        (("--samples", "1"), "--samples must be >= 2"),
        (("--samples", "-2"), "--samples must be >= 2"),
    ],
)
def test_samples_bad_values_are_usage_errors(png_dir, model_path, args, message):
    result = run("evaluate", png_dir, "--model", model_path, *args, *CPU)
    assert result.exit_code == 2 and message in one_error_line(result)


def test_samples_without_a_model_or_on_a_pair_are_usage_errors(png_dir, tmp_path, no_default_model, model_path):
    result = run("evaluate", png_dir, "--samples", "2")
    assert result.exit_code == 2 and "give --model" in one_error_line(result)
    lr, hr = _pair(tmp_path)
    result = run("evaluate", "--pairs", lr, hr, "--model", model_path, "--samples", "2", *CPU)
    assert result.exit_code == 2 and "needs HR_DIR mode" in one_error_line(result)
    result = run("evaluate", "--fidelity", hr, lr, "--samples", "2")
    assert result.exit_code == 2 and "needs HR_DIR mode" in one_error_line(result)


# ---------------------------------------------------------------------------------------- fidelity, pairs


def smooth_uint16(bands: int, height: int, width: int) -> np.ndarray:
    """Texture well above its noise level: the shift is measured on textured blocks only."""
    return (2000 + 6000 * smooth_field(height, width, bands=bands, seed=4)).round().astype(np.uint16)


def test_fidelity_of_a_bicubic_upscale_is_consistent_and_centred(make_raster, tmp_path):
    lr = make_raster(3, 40, 48, "uint16", name="lr.tif", data=smooth_uint16(3, 40, 48))
    sr = tmp_path / "sr.tif"
    assert run("upscale", lr, "-o", sr, "-s", "3", "-m", "bicubic", "-q").exit_code == 0
    out = tmp_path / "fid.json"
    result = run("evaluate", "--fidelity", sr, lr, "--json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())  # the `upscale --report` sidecar's format: one fidelity engine
    assert doc["format"] == "rssr-fidelity/1" and doc["method"] == "bicubic"
    assert len(doc["bands"]) == 3 and max(b["consistency_l1"] for b in doc["bands"]) < 200  # stored: 0.02 reflectance
    assert doc["spectral_angle_deg"] < 2.0
    assert abs(doc["shift_lr_px"]["dy"]) < 0.1 and abs(doc["shift_lr_px"]["dx"]) < 0.1
    assert doc["scale_xy"] == [3.0, 3.0] and doc["lr_pixels_compared"] == 40 * 48
    assert "spectral angle" in result.stdout and "shift" in result.stdout


def test_fidelity_sees_a_displaced_sr(make_raster, tmp_path):
    lr = make_raster(1, 40, 40, "uint16", name="lr.tif", data=smooth_uint16(1, 40, 40))
    sr = tmp_path / "sr.tif"
    run("upscale", lr, "-o", sr, "-s", "2", "-m", "bicubic", "-q")
    with rasterio.open(sr) as ds:
        data, profile = ds.read(), ds.profile
    moved = tmp_path / "moved.tif"
    with rasterio.open(moved, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(np.roll(data, 2, axis=-1))  # 2 HR px = 1 LR px to the right
    out = tmp_path / "fid.json"
    assert run("evaluate", "--fidelity", moved, lr, "--json", out, "-q").exit_code == 0
    assert json.loads(out.read_text())["shift_lr_px"]["dx"] == pytest.approx(1.0, abs=0.15)


def test_fidelity_refuses_rasters_of_different_areas(make_raster):
    a = make_raster(1, 20, 20, "uint16", name="a.tif")
    b = make_raster(1, 40, 40, "uint16", name="b.tif", transform=Affine(5.0, 0, 500_100.0, 0, -5.0, 4_000_000.0))
    result = run("evaluate", "--fidelity", b, a)
    assert result.exit_code == 1 and "same area" in one_error_line(result)


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    hr = synthetic_image(2, 64, 64, "uint16", seed=3)
    hr_t = Affine(5.0, 0, 500_000.0, 0, -5.0, 4_000_000.0)
    write_raster(tmp_path / "hr.tif", hr, transform=hr_t)
    lr = np.rint(degrade_back(hr.astype(np.float64), (32, 32))).astype(np.uint16)  # area-downsampled x2
    write_raster(tmp_path / "lr.tif", lr, transform=hr_t @ Affine.scale(2.0))
    return tmp_path / "lr.tif", tmp_path / "hr.tif"


def test_pairs_with_classical_methods(tmp_path, no_default_model):
    lr, hr = _pair(tmp_path)
    out = tmp_path / "pair.json"
    result = run("evaluate", "--pairs", lr, hr, "--json", out)
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())["scores"]
    assert set(scores) == {"bicubic", "lanczos"}
    for s in scores.values():
        assert math.isfinite(s["psnr"]) and s["psnr"] > 20 and s["scale"] == [2.0, 2.0]
        assert all(abs(v) < 0.5 for v in s["shift_hr_px"])
    assert "gain" in result.stdout and "lanczos" in result.stdout


def test_pairs_with_the_model(tmp_path, model_path):
    lr, hr = _pair(tmp_path)
    out = tmp_path / "pair.json"
    result = run(
        "evaluate",
        "--pairs",
        lr,
        hr,
        "--model",
        model_path,
        "--steps",
        "1",
        "--method",
        "bicubic",
        "--json",
        out,
        "-q",
        *CPU,
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())["scores"]
    assert list(scores) == ["model-prior", "model-k1", "bicubic"]
    assert all(math.isfinite(s["psnr"]) for s in scores.values())


# ------------------------------------------------------------------------------------------ info --model


def test_info_model_prints_the_card(model_path):
    result = run("info", "--model", model_path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    card = json.loads(model_path.with_suffix(".json").read_text())
    assert card["sha256"] in out and "tiny-eval" in out
    assert "independent: every band is super-resolved on its own" in out
    for part in ("operator", "prior_features", "denoiser", "neurop_operator", "sr3_unet", "parameters"):
        assert part in out
    assert "rssr train --preset tiny" in out and "psnr" in out and "strength 0.4" in out


def test_info_model_defaults_to_the_default_model(model_path, monkeypatch):
    monkeypatch.setenv("RSSR_MODEL", str(model_path))
    result = run("info", "--model")
    assert result.exit_code == 0 and "tiny-eval" in result.stdout


def test_info_model_missing_or_truncated_is_one_line(model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("RSSR_MODEL", str(tmp_path / "absent.safetensors"))
    result = run("info", "--model")
    assert result.exit_code == 1 and "absent.safetensors" in one_error_line(result)
    result = run("info", "--model", tmp_path / "nope.safetensors")
    assert result.exit_code == 1 and "no model at" in one_error_line(result)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(model_path.read_bytes()[:2000])
    broken.with_suffix(".json").write_text(model_path.with_suffix(".json").read_text())
    result = run("info", "--model", broken)
    assert result.exit_code == 1 and "truncated" in one_error_line(result)
    broken.with_suffix(".json").unlink()  # no card: the safetensors reader itself must refuse it
    result = run("info", "--model", broken)
    assert result.exit_code == 1 and "truncated or corrupt" in one_error_line(result)


def test_info_model_rejects_raster_preview_options(model_path):
    result = run("info", "--model", model_path, "--scale", "2")
    assert result.exit_code == 2 and "not with --model" in one_error_line(result)
