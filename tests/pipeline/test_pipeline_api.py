"""pipeline.api.run, the one entry point of every run mode: settings refused when built, locks for a single scene
too, the JSON log and the skip rules without the CLI."""

from __future__ import annotations

import json
import re

import pytest

from rssr_cli import ModelOptions, RunRequest, UpscaleSettings, run, upscale
from rssr_cli.core.errors import UsageError
from rssr_cli.pipeline.locks import OutputBusy, output_lock

BICUBIC = UpscaleSettings(scale=2, method="bicubic")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"scale": 0.5}, "scale must be > 1"),
        ({"scale": 40.0}, "above the supported maximum"),
        ({"scale": 2.0, "resolution": 5.0}, "exactly one of --scale or --resolution"),
        ({"resolution": (5.0, -1.0)}, "--resolution must be a positive number"),
        ({"scale": 2.0, "tile": 4}, "--tile must be at least 8"),
        ({"scale": 2.0, "tile": 16, "overlap": 9}, "--overlap must be between 0 and half the tile (8)"),
        ({"scale": 2.0, "profile": "jpeg2000"}, "unknown output profile"),
        (
            {"scale": 2.0, "method": "bicubic", "model": ModelOptions(steps=3)},
            "--steps only applies to the diffusion model",
        ),
    ],
)
def test_settings_are_refused_when_built(fields, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        UpscaleSettings(**fields)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"strength": 1.5}, "--strength must be in (0, 1]"),
        ({"steps": -1}, "--steps must be >= 0"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_model_options_are_refused_when_built(fields, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        ModelOptions(**fields)


def test_a_request_is_refused_when_built_whatever_the_mode(tmp_path):
    with pytest.raises(UsageError, match="exactly one of --scale or --resolution"):
        RunRequest((str(tmp_path),), tmp_path / "out", UpscaleSettings(method="bicubic"))
    with pytest.raises(UsageError, match="give --scheduler too"):
        RunRequest(("a.tif",), "b.tif", BICUBIC, split_rows=2)
    with pytest.raises(UsageError, match="bad name template"):
        RunRequest(("a.tif",), tmp_path, BICUBIC, name="{stem.__class__}.tif")
    with pytest.raises(UsageError, match="is a number, not a raster"):
        RunRequest(("a.tif", "20"), tmp_path, BICUBIC)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: RunRequest("scene.tif", "sr/", BICUBIC), "RunRequest.inputs must be a list of inputs, not one path"),
        (lambda: RunRequest(("a.tif", 3), "sr/", BICUBIC), "RunRequest.inputs must be a list of paths"),
        (lambda: RunRequest(("a.tif",), 5, BICUBIC), "RunRequest.output must be"),
        (lambda: RunRequest(("a.tif",), "sr/", {"scale": 2}), "RunRequest.settings must be UpscaleSettings"),
        (lambda: RunRequest(("a.tif",), "sr/", BICUBIC, force="yes"), "RunRequest.force must be True or False"),
        (lambda: RunRequest(("a.tif",), "sr/", BICUBIC, split_rows="2"), "RunRequest.split_rows must be"),
        (
            lambda: UpscaleSettings(scale=2, guidance="no"),
            "UpscaleSettings.guidance must be True or False or None, not 'no'",
        ),
        (lambda: UpscaleSettings(scale="2"), "UpscaleSettings.scale must be a number"),
        (lambda: UpscaleSettings(scale=2, bands="B04"), "UpscaleSettings.bands must be a list or tuple"),
        (lambda: UpscaleSettings(scale=2, threads=2.5), "UpscaleSettings.threads must be a whole number"),
        (lambda: UpscaleSettings(scale=2, model="cpu"), "UpscaleSettings.model must be ModelOptions"),
        (lambda: UpscaleSettings(scale=2, overwrite=1), "UpscaleSettings.overwrite must be True or False"),
        (
            lambda: UpscaleSettings(scale=2, creation_options=["COMPRESS=LZW"]),
            "UpscaleSettings.creation_options must be a mapping",
        ),
        (lambda: UpscaleSettings(scale=2, seed=None), "UpscaleSettings.seed must be a whole number"),
        (lambda: ModelOptions(tta="no"), "ModelOptions.tta must be True or False"),
        (lambda: ModelOptions(steps=2.5), "ModelOptions.steps must be a whole number"),
        (lambda: upscale(["a.tif"], "b.tif", BICUBIC), "upscale's src must be a path"),
        (lambda: upscale("a.tif", "b.tif", {"scale": 2}), "upscale's settings must be an UpscaleSettings"),
    ],
)
def test_wrong_types_are_the_documented_usage_error_before_any_file_is_opened(tmp_path, monkeypatch, build, message):
    """Issue 23 item 10: RunRequest("scene.tif", ...) split the string into characters ("." then upscaled the current
    folder); guidance="no" meant guidance on; wrong types were TypeError/AttributeError, or passed."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=re.escape(message)):
        build()
    assert list(tmp_path.iterdir()) == []


def test_lists_are_taken_where_tuples_are_annotated():
    assert UpscaleSettings(scale=2, bands=[1, "B04"]).bands == (1, "B04")
    assert RunRequest(["a.tif"], "b.tif", BICUBIC).inputs == ("a.tif",)


def test_a_single_scene_takes_the_output_lock(make_raster, tmp_path):
    dst = tmp_path / "out.tif"
    with output_lock(dst):
        with pytest.raises(OutputBusy):
            upscale(make_raster(1), dst, BICUBIC)
        with pytest.raises(OutputBusy):
            run(RunRequest((str(make_raster(1)),), dst, BICUBIC))
    assert not dst.exists() and upscale(make_raster(1), dst, BICUBIC).dst == dst


def test_run_gives_a_notebook_the_cron_semantics(make_raster, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        make_raster(1, 20, 20).rename(src / f"s{i}.tif")
    log = tmp_path / "log.jsonl"
    request = RunRequest((str(src),), tmp_path / "out", BICUBIC, log_json=log)
    seen = []
    first = run(request, on_scene=seen.append)
    assert first.batch and [s.status for s in first.scenes] == ["done", "done"] and seen == list(first.scenes)
    assert [s.status for s in run(request).scenes] == ["skipped", "skipped"]
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()] == [
        "done",
        "done",
        "skipped",
        "skipped",
    ]


def test_a_single_scene_request_logs_its_line_and_returns_its_result(make_raster, tmp_path):
    log = tmp_path / "log.jsonl"
    report = run(RunRequest((str(make_raster(1, 20, 20)),), tmp_path / "one.tif", BICUBIC, log_json=log))
    assert not report.batch and report.result is not None and report.result.width == 40
    assert json.loads(log.read_text())["status"] == "done" and not report.failed
