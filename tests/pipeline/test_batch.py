"""Batch mode: input expansion, name templates, idempotent re-runs, per-output locks, failure isolation, JSON log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.core.errors import UsageError
from rssr_cli.pipeline import UpscaleSettings
from rssr_cli.pipeline.jobs import SceneJob, expand_inputs, plan_jobs
from rssr_cli.pipeline.locks import OutputBusy, lock_path, output_lock
from rssr_cli.pipeline.scenes import BUSY, DONE, FAILED, SKIPPED, run_batch

from conftest import files_in, synthetic_image, write_raster

runner = CliRunner()
BICUBIC = UpscaleSettings(scale=2, method="bicubic", tile=16, overlap=4)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def scenes(tmp_path) -> Path:
    """A folder of three small scenes, one with an all-nodata corner (its windows are skipped)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        data = synthetic_image(2, 30, 34, "uint16", seed=i)
        if i == 2:
            data[:, :20, :20] = 0
        write_raster(folder / f"scene{i}.tif", data, nodata=0)
    (folder / "notes.txt").write_text("not a raster; directories expand to raster files only")
    return folder


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_inputs_expand_from_files_directories_and_globs(scenes):
    by_dir = expand_inputs([str(scenes)])
    assert by_dir == [str(scenes / f"scene{i}.tif") for i in range(3)]
    assert expand_inputs([str(scenes / "scene1.tif"), str(scenes / "*.tif")]) == [
        str(scenes / f"scene{i}.tif") for i in (1, 0, 2)
    ]
    assert expand_inputs([str(scenes.parent / "**" / "scene2.tif")]) == [str(scenes / "scene2.tif")]
    with pytest.raises(UsageError, match="no raster matches"):
        expand_inputs([str(scenes / "*.jp2")])


def test_name_template_fills_fields_and_refuses_collisions(tmp_path):
    settings = UpscaleSettings(scale=4.5, method="bicubic")
    jobs = plan_jobs([Path("a/t1.tif"), Path("b/t2.tif")], tmp_path, settings)
    assert [j.dst.name for j in jobs] == ["t1_x4.5.tif", "t2_x4.5.tif"]
    assert (
        plan_jobs([Path("t.tif")], tmp_path, settings, "{method}/{stem}.tif")[0].dst == tmp_path / "bicubic" / "t.tif"
    )
    with pytest.raises(UsageError, match="would both write"):
        plan_jobs([Path("a/t.tif"), Path("b/t.tif")], tmp_path, settings)
    with pytest.raises(UsageError, match="bad name template"):
        plan_jobs([Path("t.tif")], tmp_path, settings, "{nope}.tif")


def test_a_rerun_skips_done_scenes_and_force_redoes_them(scenes, tmp_path):
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    args = (
        "upscale",
        scenes,
        "-o",
        out,
        "-s",
        "2",
        "-m",
        "bicubic",
        "--tile",
        "16",
        "--overlap",
        "4",
        "--log-json",
        log,
    )
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == ["scene0_x2.tif", "scene1_x2.tif", "scene2_x2.tif"]
    assert [r["status"] for r in log_lines(log)] == [DONE] * 3
    skipped_windows = {Path(r["input"]).name: r["skipped_windows"] for r in log_lines(log)}
    assert skipped_windows["scene2.tif"] > 0 and skipped_windows["scene0.tif"] == 0
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    again = run(*args)
    assert again.exit_code == 0 and [r["status"] for r in log_lines(log)[3:]] == [SKIPPED] * 3
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp  # nothing rewritten

    forced = run(*args, "--force", "-q")
    assert forced.exit_code == 0 and forced.output == ""
    assert [r["status"] for r in log_lines(log)[6:]] == [DONE] * 3
    assert all(p.stat().st_mtime_ns != stamp[p.name] for p in out.iterdir())


def test_an_output_made_by_a_different_request_is_not_silently_kept_or_replaced(scenes, tmp_path):
    out = tmp_path / "out"
    # one input, but "-o DIR/" spells a directory: batch mode with its skip rules
    common = (
        "upscale",
        scenes / "scene0.tif",
        "-o",
        f"{out}/",
        "-s",
        "2",
        "--tile",
        "16",
        "--overlap",
        "4",
        "--name",
        "{stem}.tif",
    )
    assert run(*common, "-m", "bicubic").exit_code == 0
    changed = run(*common, "-m", "nearest")  # same name, different method: not "done"
    assert changed.exit_code == 1 and "different request" in changed.stderr
    with rasterio.open(out / "scene0.tif") as ds:
        assert ds.tags()["RSSR_METHOD"] == "bicubic"
    assert run(*common, "-m", "nearest", "--overwrite").exit_code == 0
    with rasterio.open(out / "scene0.tif") as ds:
        assert ds.tags()["RSSR_METHOD"] == "nearest"


def test_a_failing_scene_does_not_stop_the_batch(scenes, tmp_path):
    (scenes / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    result = run("upscale", scenes, "-o", out, "-s", "2", "-m", "bicubic", "--log-json", log)
    assert result.exit_code == 1  # documented: some scene failed
    status = {Path(r["input"]).name: r for r in log_lines(log)}
    assert status["broken.tif"]["status"] == FAILED and "cannot read" in status["broken.tif"]["error"]
    assert [status[f"scene{i}.tif"]["status"] for i in range(3)] == [DONE] * 3
    assert files_in(out) == {"scene0_x2.tif", "scene1_x2.tif", "scene2_x2.tif"}  # no partial or lock files
    assert "Traceback" not in result.output and "failed" in result.stderr


def test_a_scene_locked_by_another_run_is_reported_busy_and_left_alone(scenes, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    jobs = plan_jobs(expand_inputs([str(scenes)]), out, BICUBIC)
    with output_lock(jobs[1].dst):  # another run is writing scene1 right now
        with pytest.raises(OutputBusy, match="another run"):
            with output_lock(jobs[1].dst):
                pass
        results = run_batch(jobs, BICUBIC)
    assert [r.status for r in results] == [DONE, BUSY, DONE]
    assert not jobs[1].dst.exists() and not lock_path(jobs[1].dst).exists()
    assert [r.status for r in run_batch(jobs, BICUBIC)] == [SKIPPED, DONE, SKIPPED]


def test_a_crashed_run_leaves_nothing_that_blocks_or_pollutes_the_next(scenes, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = SceneJob(scenes / "scene0.tif", out / "scene0_x2.tif")
    # What kill -9 mid-scene leaves: a lock file nobody holds and a staging directory with a partial file.
    lock_path(job.dst).write_text("pid 999999 on a dead host\n")
    stale = out / f".{job.dst.name}.rssr-abc123"
    stale.mkdir()
    (stale / "stream.tif").write_bytes(b"partial")
    assert [r.status for r in run_batch([job], BICUBIC)] == [DONE]
    assert files_in(out) == {"scene0_x2.tif"}


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_two_runs_on_one_folder_process_each_scene_exactly_once(scenes, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "rssr_cli",
        "upscale",
        str(scenes),
        "-o",
        str(out),
        "-s",
        "3",
        "-m",
        "lanczos",
        "-q",
    ]
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    runs = [subprocess.Popen([*command, "--log-json", str(log)], env={**os.environ}) for log in logs]
    codes = [p.wait(timeout=300) for p in runs]
    # one batch per output folder (issue 23 item 24): a run that finds the other one running leaves with 75
    assert 0 in codes and set(codes) <= {0, 75}, codes
    records = [r for log in logs if log.exists() for r in log_lines(log)]
    done = sorted(Path(r["input"]).name for r in records if r["status"] == DONE)
    assert done == ["scene0.tif", "scene1.tif", "scene2.tif"]  # each exactly once; the other run skipped or saw busy
    assert {r["status"] for r in records} <= {DONE, SKIPPED, BUSY}
    assert files_in(out) == {"scene0_x3.tif", "scene1_x3.tif", "scene2_x3.tif"}


def test_batch_output_must_be_a_directory(scenes, tmp_path):
    afile = tmp_path / "afile.tif"
    afile.write_text("x")
    result = run("upscale", scenes, "-o", afile, "-s", "2", "-m", "bicubic")
    assert result.exit_code == 2 and "must be a directory" in result.stderr


def test_single_scene_mode_writes_its_log_line(scenes, tmp_path):
    log = tmp_path / "log.jsonl"
    dst = tmp_path / "one.tif"
    assert (
        run("upscale", scenes / "scene1.tif", "-o", dst, "-s", "2", "-m", "bicubic", "--log-json", log).exit_code == 0
    )
    again = run("upscale", scenes / "scene1.tif", "-o", dst, "-s", "2", "-m", "bicubic", "--log-json", log)
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert [(r["status"], r["output"]) for r in log_lines(log)] == [(DONE, str(dst)), (FAILED, str(dst))]
    with rasterio.open(dst) as ds:
        assert ds.tags()["RSSR_BANDS"] == "all" and np.isfinite(ds.read()).all()


def test_aoi_from_the_command_line_in_single_and_batch_mode(scenes, tmp_path):
    # scene rasters are 34x30 px of 10 m from (500000, 4000000): a WKT square over their top-left quarter
    square = "POLYGON ((500020 3999980, 500150 3999980, 500150 3999870, 500020 3999870, 500020 3999980))"
    single = run(
        "upscale",
        scenes / "scene0.tif",
        "-o",
        tmp_path / "one.tif",
        "-s",
        "2",
        "-m",
        "bicubic",
        "--tile",
        "8",
        "--overlap",
        "2",
        "--aoi",
        square,
    )
    assert single.exit_code == 0, single.output
    assert "windows outside the AOI not read" in single.stderr
    with rasterio.open(tmp_path / "one.tif") as ds:
        assert ds.bounds == pytest.approx((500020, 3999870, 500150, 3999980))
        assert ds.res == pytest.approx((5.0, 5.0)) and ds.tags()["RSSR_AOI_ID"] != "none"

    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    args = (
        "upscale",
        scenes,
        "-o",
        out,
        "-s",
        "2",
        "-m",
        "bicubic",
        "--tile",
        "8",
        "--overlap",
        "2",
        "--log-json",
        log,
    )
    assert run(*args, "--aoi", square).exit_code == 0
    assert run(*args, "--aoi", square).exit_code == 0  # same AOI: done already
    assert [r["status"] for r in log_lines(log)] == [DONE] * 3 + [SKIPPED] * 3
    assert all(r["outside_aoi_windows"] > 0 for r in log_lines(log)[:3])
    whole = run(*args)  # the whole scene is a different request from its AOI crop
    assert whole.exit_code == 1 and [r["status"] for r in log_lines(log)[6:]] == [FAILED] * 3


@pytest.mark.parametrize(
    "options,fragment",
    [(["--aoi", "POLYGON ((0 0, 1 1"], "WKT"), (["--aoi-crs", "EPSG:4326"], "there is no --aoi")],
)
def test_bad_aoi_options_are_usage_errors(scenes, tmp_path, options, fragment):
    result = run("upscale", scenes / "scene0.tif", "-o", tmp_path / "x.tif", "-s", "2", "-m", "bicubic", *options)
    assert result.exit_code == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.tif").exists()
