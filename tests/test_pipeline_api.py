"""pipeline.api.run, the one entry point of every run mode: settings refused when built, locks for a single scene
too, the JSON log and the skip rules without the CLI."""

from __future__ import annotations

import json
import re

import pytest

from rssr_cli import ModelOptions, RunRequest, UpscaleSettings, run, upscale
from rssr_cli.errors import UsageError
from rssr_cli.locks import OutputBusy, output_lock

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
        ({"scale": 2.0, "method": "bicubic", "model": ModelOptions(steps=3)}, "--steps only applies to the diffusion model"),
    ],
)
def test_settings_are_refused_when_built(fields, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        UpscaleSettings(**fields)


@pytest.mark.parametrize(
    "fields, message",
    [({"strength": 1.5}, "--strength must be in (0, 1]"), ({"steps": -1}, "--steps must be >= 0"), ({"device": "tpu"}, "unknown device")],
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
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()] == ["done", "done", "skipped", "skipped"]


def test_a_single_scene_request_logs_its_line_and_returns_its_result(make_raster, tmp_path):
    log = tmp_path / "log.jsonl"
    report = run(RunRequest((str(make_raster(1, 20, 20)),), tmp_path / "one.tif", BICUBIC, log_json=log))
    assert not report.batch and report.result is not None and report.result.width == 40
    assert json.loads(log.read_text())["status"] == "done" and not report.failed
