"""Guided band sharpening (issue 13): Wald degradation geometry, the network's locality, tile independence,
training by Wald's protocol, the guided pass in `rssr upscale` on Sentinel-2 products, and `evaluate --wald`.
Runs pin a tiny random sharpener (RSSR_SHARPENER) except the consistency test, which checks the shipped one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from rssr_cli.core.errors import InputError
from rssr_cli.degradation.sensor_degradation import SensorDraw
from rssr_cli.geo.grid import Placement
from rssr_cli.model.checkpoint import save_model
from rssr_cli.sharpen import apply as sharpen_apply
from rssr_cli.sharpen.bands import GUIDE_BANDS
from rssr_cli.sharpen.consistency import average_onto_native, consistency_error, psf_consistency_error
from rssr_cli.sharpen.degrade import MTF_AT_NYQUIST, centres, gaussian_blur, psf_sigma, sample_at
from rssr_cli.sharpen.model import TINY_SPEC, build_sharpener, load_sharpener, save_sharpener
from rssr_cli.sharpen.scene import BandArray
from rssr_cli.sharpen.train import SharpenTrainConfig, train_sharpener
from rssr_cli.sharpen.wald import ergas, sam_degrees, sre
from rssr_cli.sharpen.wald_inputs import BOX, degraded_band, guides_on_window, wald_inputs

import s2_products as sp
from cli_helpers import run
from model_helpers import tiny_model

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "sharpen.safetensors"


@pytest.fixture(scope="module")
def tiny_sharpener(tmp_path_factory) -> Path:
    """A tiny sharpener with random (non-zero) weights, so guided output differs from bicubic."""
    torch.manual_seed(0)
    model = build_sharpener(TINY_SPEC)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    return save_sharpener(model, tmp_path_factory.mktemp("sharpener") / "tiny", {"name": "tiny-test"})


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> Path:
    """A tiny single-band diffusion model for the 10 m bands (the runs that do not mean to test the shipped one)."""
    return save_model(tiny_model(), tmp_path_factory.mktemp("model") / "tiny.safetensors", model_id="tiny-sharpen-test")


@pytest.fixture(scope="module")
def l1c(tmp_path_factory) -> Path:
    return sp.make_l1c(tmp_path_factory.mktemp("s2"))


def test_psf_has_the_mtf_at_the_coarse_nyquist():
    ratio = 4.0
    x = torch.arange(512, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * x / (2 * ratio)).float()[None, None, None].expand(1, 1, 8, 512).contiguous()
    blurred = gaussian_blur(wave, psf_sigma(ratio))
    amplitude = float(blurred[0, 0, 4, 100:400].abs().max())
    assert amplitude == pytest.approx(MTF_AT_NYQUIST, abs=0.01)


def test_sample_at_pixel_centres_is_identity_and_positions_are_exact():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    same = sample_at(x, centres(0, 1, 3), centres(0, 1, 4))
    assert torch.allclose(same, x, atol=1e-5)
    ramp = torch.arange(10.0)[None, None, None].expand(1, 1, 10, 10).contiguous()  # value = column index
    half = sample_at(ramp, centres(2, 1, 3), centres(3.25, 0.5, 4))  # x centres 3.5, 4.0, 4.5, 5.0
    assert np.allclose(half[0, 0, 0].numpy(), [3.0, 3.5, 4.0, 4.5], atol=1e-4)


def test_guides_land_on_the_coarse_bands_grid_with_its_offset():
    """A 20 m grid starting 10 m west of the 10 m grid (as in real products): a linear ramp of the guide, degraded
    and resampled onto the 20 m grid, is the ramp at the 20 m pixel centres: exactly at r = 2 (the degraded grid
    is the 20 m grid), unbiased at r = 3 (torch's bicubic, a = -0.75, ripples around a ramp but does not shift it)."""
    h10, w10 = 64, 64
    east = np.tile(np.arange(w10, dtype=np.float32) * 10 + 5, (h10, 1))  # value = easting of the pixel centre
    guide = BandArray("B08", east, np.ones_like(east, bool), Affine(10, 0, 0, 0, -10, 640))
    band = BandArray("B8A", np.zeros((32, 33), np.float32), np.ones((32, 33), bool), Affine(20, 0, -10, 0, -20, 640))
    for ratio in (2.0, 3.0):
        got = guides_on_window([guide], band, ratio, (8, 8, 12, 12))[0]
        expected = -10 + 20 * (np.arange(8, 20) + 0.5)
        error = got[4, 2:-2] - expected[2:-2]
        assert abs(error.mean()) < 0.2 and (ratio != 2.0 or np.abs(error).max() < 0.05), (ratio, error)


@pytest.mark.parametrize("phase", [(0.0, 0.0), (0.3, 0.7)])
def test_sensor_members_keep_the_geometry_whatever_their_phase(phase):
    """The sensor family's PSF member (Gaussian + box, symmetric) on the same ramps: the guide degraded and resampled
    lands on the 20 m pixel centres (grid 10 m west of the guide's) and the band's own Wald input is the band's ramp,
    whatever sub-pixel phase the member's grid has (positions follow the phase). Torch's bicubic (a = -0.75) ripples
    around a ramp and, at a fixed sub-pixel fraction, is biased by up to ~0.05 px (1 unit here); it is exact where
    the degraded grid is the 20 m grid (the guide at r = 2, phase 0)."""
    h10, w10 = 64, 64
    east = np.tile(np.arange(w10, dtype=np.float32) * 10 + 5, (h10, 1))
    guide = BandArray("B08", east, np.ones_like(east, bool), Affine(10, 0, 0, 0, -10, 640))
    band_east = np.tile(-10 + 20 * (np.arange(33, dtype=np.float32) + 0.5), (32, 1))
    band = BandArray("B8A", band_east, np.ones((32, 33), bool), Affine(20, 0, -10, 0, -20, 640))
    member = SensorDraw(gaussian_mtf=0.4, origin=phase)
    expected = -10 + 20 * (np.arange(8, 20) + 0.5)
    for ratio in (2.0, 3.0):
        inputs = wald_inputs(band, [guide], ratio, (8, 8, 12, 12), member=member)
        for got, exact in ((inputs.guides[0], ratio == 2.0 and phase == (0.0, 0.0)), (inputs.band_up, False)):
            # 6 px: whole ripple periods at r = 2 and 3; a phase error of 0.1 px would be 2 here
            error = got[4, 2:-4] - expected[2:-4]
            assert abs(error.mean()) < 1.0 and np.abs(error).max() < (0.05 if exact else 3.0), (ratio, phase, error)


def test_the_box_member_is_a_block_mean_at_integer_ratios():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 3000, (12, 18)).astype(np.float32)
    band = BandArray("B05", values, np.ones_like(values, bool), Affine(20, 0, 0, 0, -20, 0))
    for ratio in (2, 3, 6):
        lr, _, lr_window = degraded_band(band, float(ratio), (0, 0, 12, 18), margin=0, member=BOX)
        block = values.reshape(12 // ratio, ratio, 18 // ratio, ratio).mean(axis=(1, 3))
        assert np.allclose(lr, block, rtol=1e-5), ratio
        assert lr_window == (0.0, 0.0, 1 / ratio, 1 / ratio)


def test_training_crops_draw_noisy_quantized_members_in_reflectance_units():
    """Noise and 12 bits act in reflectance (DN / 10,000): the quantization step is ~2.4 DN, not 1/4095 DN."""
    values = np.full((24, 24), 1234.0, np.float32)
    band = BandArray("B05", values, np.ones_like(values, bool), Affine(20, 0, 0, 0, -20, 0))
    member = SensorDraw(gaussian_mtf=1.0, noise_std=0.001, levels=4095)
    lr, _, _ = degraded_band(
        band, 2.0, (0, 0, 24, 24), margin=0, member=member, generator=torch.Generator().manual_seed(0)
    )
    steps = lr / 10000 * 4095
    assert np.allclose(steps, np.round(steps), atol=1e-3) and 2.0 < lr.std() < 20.0


def test_the_network_is_local_within_its_receptive_radius():
    model = build_sharpener({"width": 8, "blocks": 2}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    band, guides = torch.zeros(1, 1, 40, 40), torch.zeros(1, len(GUIDE_BANDS), 40, 40)
    args = (torch.tensor([0]), torch.tensor([2.0]), torch.tensor([1.0]))
    base = model(band, guides, *args)
    guides[0, 0, 20, 20] = 5.0
    changed = (model(band, guides, *args) - base).abs()[0, 0] > 1e-7
    rows, cols = np.nonzero(changed.numpy())
    assert changed.any() and max(np.abs(rows - 20).max(), np.abs(cols - 20).max()) <= model.receptive_radius


def test_consistency_averages_output_pixels_onto_their_native_pixel():
    native = np.arange(6, dtype=np.float32).reshape(2, 3)
    output = np.repeat(np.repeat(native, 2, 0), 2, 1)
    mean, counts = average_onto_native(output, Placement(0, 0, 0.5, 0.5), native.shape)
    assert np.array_equal(mean, native) and (counts == 4).all()
    assert consistency_error(output + 1, native, Placement(0, 0, 0.5, 0.5)) == pytest.approx(1.0)
    flat = np.full((40, 40), 7.0)
    assert psf_consistency_error(flat + 2, np.full((20, 20), 7.0), Placement(0, 0, 0.5, 0.5)) == pytest.approx(2.0)


def test_wald_metrics_on_known_values():
    truth = np.full((4, 4), 100.0)
    valid = np.ones((4, 4), bool)
    assert sre(truth + 10, truth, valid) == pytest.approx(20.0)  # 10 log10(100^2 / 10^2)
    assert ergas([10.0], [100.0], 2.0) == pytest.approx(5.0)  # 100 / 2 * 0.1
    a, b = [np.ones((2, 2)), np.zeros((2, 2))], [np.zeros((2, 2)), np.ones((2, 2))]
    assert sam_degrees(a, b, np.ones((2, 2), bool)) == pytest.approx(90.0)


def test_training_by_walds_protocol_writes_a_loadable_best_model(tmp_path):
    config = SharpenTrainConfig(
        scenes=[str(sp.BANDS_DIR)],
        out=str(tmp_path / "run"),
        steps=4,
        batch=2,
        crop=12,
        width=8,
        blocks=1,
        share_60m=0.0,
        eval_every=2,
        threads=1,
        precision="bf16",  # autocast (emulated where the CPU has no bf16: slower, the same numbers)
    )
    best = train_sharpener(config, log=lambda _: None)
    model = load_sharpener(best)
    assert model.card["training"]["scenes"] == [str(sp.BANDS_DIR)]
    assert model.card["training"]["precision"] == "bf16"
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4] and all(math.isfinite(h["score"]) for h in history)
    assert (tmp_path / "run" / "state.pt").exists()  # resumable


def test_training_on_the_matched_psf_draws_no_member_and_selects_on_psf_alone(tmp_path, monkeypatch):
    """--degradation psf: every crop by Wald's matched Gaussian (no sensor-family member is drawn) and the logged
    selection score is the psf protocol's alone, the figure of the model it keeps."""
    from rssr_cli.sharpen import train as sharpen_train
    from rssr_cli.sharpen.scene import load_scene
    from rssr_cli.sharpen.wald import evaluate_scene_split

    def no_member(_rng):
        raise AssertionError("a sensor-family member was drawn")

    monkeypatch.setattr(sharpen_train.sensor, "draw", no_member)
    config = SharpenTrainConfig(scenes=[str(sp.BANDS_DIR)], out=str(tmp_path / "run"), degradation="psf", **TINY_RUN)
    model = load_sharpener(train_sharpener(config, log=lambda _: None))
    assert "matched Gaussian" in model.card["training"]["degradation"]
    scene = load_scene(str(sp.BANDS_DIR))
    stats = sharpen_train.scene_stats(scene)
    (logged,) = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    psf_only = evaluate_scene_split(model, scene, stats, "select", ("psf",))["score"]
    both = evaluate_scene_split(model, scene, stats, "select")["score"]
    assert logged["score"] == pytest.approx(psf_only, rel=1e-5) and psf_only != pytest.approx(both, rel=1e-3)


def test_selection_scenes_free_every_row_of_the_training_scenes(tmp_path):
    """A 24 px crop fits the fixture's 30 rows of 20 m bands but not their top 3/4: trainable only with --select
    (then the checkpoint is chosen on the selection scene, recorded in the card)."""
    base = dict(
        scenes=[str(sp.BANDS_DIR)], steps=2, batch=2, crop=24, width=8, blocks=1, share_60m=0.0, eval_every=2, threads=1
    )
    with pytest.raises(InputError):
        train_sharpener(SharpenTrainConfig(out=str(tmp_path / "split"), **base), log=lambda _: None)  # type: ignore[arg-type]
    out = tmp_path / "run"
    result = run(
        "train-sharpener",
        sp.BANDS_DIR,
        "--select",
        sp.BANDS_DIR,
        "-o",
        out,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "24",
        "--width",
        "8",
        "--blocks",
        "1",
        "--eval-every",
        "2",
        "--threads",
        "1",
        "-q",
    )
    assert result.exit_code == 0, result.output
    card = load_sharpener(out / "best.safetensors").card["training"]
    assert card["select"] == [str(sp.BANDS_DIR)] and "sensor_degradation" in card["degradation"]


def test_train_sharpener_command_skips_a_band_group_too_small_for_its_crop(tmp_path):
    """The 60 m bands of the fixture (11 px) hold no 16 px crop: trained on the 20 m bands alone, no error."""
    out = tmp_path / "run"
    result = run(
        "train-sharpener",
        sp.BANDS_DIR,
        "-o",
        out,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "12",
        "--width",
        "8",
        "--blocks",
        "1",
        "--eval-every",
        "2",
        "--threads",
        "1",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert load_sharpener(out / "best.safetensors").card["spec"] == {"width": 8, "blocks": 1}
    result = run("train-sharpener", sp.BANDS_DIR, "-o", tmp_path / "big", "--crop", "400", "--steps", "2")
    assert result.exit_code == 1 and "too small for --crop 400" in result.output


TINY_RUN = dict(steps=2, batch=2, crop=12, width=8, blocks=1, share_60m=0.0, eval_every=2, threads=1)


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("steps", -5, "--steps must be a whole number >= 1"),
        ("steps", 0, "--steps"),
        ("blocks", -1, "--blocks must be a whole number >= 0"),
        ("eval_every", 0, "--eval-every"),
        ("batch", 0, "--batch-size"),
        ("crop", 0, "--crop"),
        ("width", 0, "--width"),
        ("threads", -1, "--threads"),
        ("lr", float("nan"), "--lr must be a finite number"),
        ("lr", 0.0, "--lr must be > 0"),
        ("width", 4096, "a sharpener holds at most"),
        ("steps", 2.5, "--steps must be a whole number"),
        ("scenes", "scene.SAFE", "scenes must be a list"),
        ("precision", "fp8", "unknown precision 'fp8'"),
        ("precision", "fp16", "training runs in fp32 or bf16"),
        ("degradation", "gaussian", "--degradation must be one of family, psf"),
    ],
)
def test_train_sharpener_options_are_checked_before_any_file_is_read(tmp_path, option, value, message):
    """Issue 23 item 9: --steps -5 reported "model written" with no file; the others were tracebacks."""
    from rssr_cli.core.errors import UsageError

    options = {"scenes": [str(tmp_path / "absent")], "out": str(tmp_path / "run"), **TINY_RUN, option: value}
    with pytest.raises(UsageError, match=message):
        SharpenTrainConfig(**options)
    assert not (tmp_path / "run").exists()


def test_train_sharpener_never_reports_a_model_it_did_not_write(tmp_path, monkeypatch):
    """Every selection score NaN (a diverged run): no best.safetensors, so an error (exit 1), never "model written"."""
    from rssr_cli.sharpen import train as sharpen_train

    monkeypatch.setattr(sharpen_train, "evaluate_scene_split", lambda *a, **k: {"score": float("nan"), "bands": {}})
    result = run(
        "train-sharpener",
        sp.BANDS_DIR,
        "-o",
        tmp_path / "run",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "12",
        "--width",
        "8",
        "--blocks",
        "1",
        "--eval-every",
        "2",
        "--threads",
        "1",
    )
    assert result.exit_code == 1, result.output
    assert "no model was written" in result.output and "model written:" not in result.output


def _upscale(l1c: Path, out: Path, *args) -> None:
    result = run("upscale", l1c, "-o", out, "--bands", "all", *args, "-q")
    assert result.exit_code == 0, result.output


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_guided_upscale_at_10m_copies_the_10m_bands_and_guides_the_rest(
    l1c, tmp_path, tiny_sharpener, tiny_model_path, monkeypatch
):
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(tiny_sharpener))
    guided, plain = tmp_path / "guided.tif", tmp_path / "plain.tif"
    _upscale(l1c, guided, "--resolution", "10", "--model", tiny_model_path)
    _upscale(l1c, plain, "--resolution", "10", "--no-guidance", "--model", tiny_model_path)
    assert cog_validate(str(guided))[0]
    with rasterio.open(guided) as g, rasterio.open(plain) as p, rasterio.open(sp.band_path("B02")) as b02:
        assert g.count == 13 and g.res == (10.0, 10.0) and g.bounds == b02.bounds and g.crs == b02.crs
        names = g.descriptions
        assert g.tags()["RSSR_GUIDANCE"] == "on" and p.tags()["RSSR_GUIDANCE"] == "off"
        assert g.tags()["RSSR_GUIDED_BANDS"] == "B01,B05,B06,B07,B8A,B09,B10,B11,B12"
        for i, name in enumerate(names, start=1):
            if name in GUIDE_BANDS:
                with rasterio.open(sp.band_path(name)) as src:
                    assert np.array_equal(g.read(i), src.read(1))  # copied unchanged
            else:
                assert g.tags(i)["RSSR_GUIDED_BY"] == "B02,B03,B04,B08"
                assert "RSSR_GUIDED_BY" not in p.tags(i)
                assert not np.array_equal(g.read(i), p.read(i))
                assert (g.read(i) == 0).sum() == (p.read(i) == 0).sum()  # the nodata corner stays nodata


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_guided_upscale_runs_at_2_5m_and_is_tile_independent(
    l1c, tmp_path, tiny_sharpener, tiny_model_path, monkeypatch
):
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(tiny_sharpener))
    whole, tiled = tmp_path / "whole.tif", tmp_path / "tiled.tif"
    args = ("--resolution", "2.5", "--bands", "B04,B8A", "--model", tiny_model_path)
    result = run("upscale", l1c, "-o", whole, *args, "-q")
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(sharpen_apply, "TILE", 37)
    result = run("upscale", l1c, "-o", tiled, *args, "-q")
    assert result.exit_code == 0, result.output
    assert cog_validate(str(whole))[0]
    with rasterio.open(whole) as a, rasterio.open(tiled) as b:
        assert a.res == (2.5, 2.5) and a.descriptions == ("B04", "B8A")
        assert a.tags()["RSSR_GUIDED_BANDS"] == "B8A"
        assert np.abs(a.read().astype(int) - b.read().astype(int)).max() <= 1  # float reassociation only


@pytest.mark.shipped_model  # about the shipped model(s) itself (conftest's guard)
@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped sharpener")
def test_shipped_sharpener_is_no_less_consistent_than_bicubic(l1c, tmp_path):
    """Under the sensor's PSF (what a native pixel measures), every guided band is at least as consistent with its
    native pixels as bicubic; the box average is reported in BENCHMARKS.md (it rates blur, and the truth, worse)."""
    guided, bicubic = tmp_path / "guided.tif", tmp_path / "bicubic.tif"
    _upscale(l1c, guided, "--resolution", "10")
    _upscale(l1c, bicubic, "--resolution", "10", "--method", "bicubic")
    with rasterio.open(guided) as g, rasterio.open(bicubic) as b:
        for i, name in enumerate(g.descriptions, start=1):
            if name in GUIDE_BANDS:
                continue
            with rasterio.open(sp.band_path(name)) as src:
                native = src.read(1).astype(np.float64)
                t, s = g.transform, src.transform
                placement = Placement((t.c - s.c) / s.a, (t.f - s.f) / s.e, t.a / s.a, t.e / s.e)
            valid = native > 0
            mine = psf_consistency_error(g.read(i).astype(np.float64), native, placement, valid)
            theirs = psf_consistency_error(b.read(i).astype(np.float64), native, placement, valid)
            assert mine <= theirs, (name, mine, theirs)


def test_evaluate_wald_scores_bicubic_unguided_and_guided(tmp_path, tiny_sharpener, tiny_model_path, monkeypatch):
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(tiny_sharpener))
    out = tmp_path / "wald.json"
    result = run(
        "evaluate",
        "--wald",
        sp.BANDS_DIR,
        "--wald-split",
        "all",
        "--degradation",
        "box",
        "--model",
        tiny_model_path,
        "--json",
        out,
        "-q",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["degradation"] == "box"
    assert report["methods"] == ["bicubic", "unguided", "guided"]
    groups = {g["resolution"]: g for g in report["groups"]}
    assert (
        set(groups) == {20} and groups[20]["ratio"] == 2
    )  # the fixture's 60 m bands (11 px) are 1 px at 1/6: left out
    assert set(groups[20]["bands"]) == {"B05", "B06", "B07", "B8A", "B11", "B12"}
    for method in report["methods"]:
        assert all(math.isfinite(v) for v in groups[20]["group"][method].values())


def test_evaluate_wald_refuses_a_bad_split():
    result = run("evaluate", "--wald", sp.BANDS_DIR, "--wald-split", "middle")
    assert result.exit_code == 2


def test_evaluate_wald_degradation_is_psf_or_box():
    result = run("evaluate", "--wald", sp.BANDS_DIR, "--degradation", "bicubic")
    assert result.exit_code == 2 and "psf or box" in result.output


def test_wald_degradations_differ_and_psf_is_the_default():
    scene = {
        name: BandArray(name, np.asarray(v, np.float32), np.ones(np.shape(v), bool), t) for name, v, t in _ramp_scene()
    }
    from rssr_cli.sharpen.wald import bicubic_method, wald_report

    psf = wald_report(scene, source="s", methods={"bicubic": bicubic_method}, split="all")
    box = wald_report(scene, source="s", methods={"bicubic": bicubic_method}, split="all", degradation="box")
    assert psf.degradation == "psf" and box.as_dict()["degradation"] == "box"
    assert psf.groups[0].bands["B05"]["bicubic"]["rmse"] != box.groups[0].bands["B05"]["bicubic"]["rmse"]


def _ramp_scene():
    rng = np.random.default_rng(1)
    for name in GUIDE_BANDS:
        yield name, rng.uniform(0, 1000, (48, 48)), Affine(10, 0, 0, 0, -10, 480)
    yield "B05", rng.uniform(0, 1000, (24, 24)), Affine(20, 0, 0, 0, -20, 480)
