"""Cron correctness: a batch never skips a scene whose input changed, never feeds on its own outputs, shows errors
under -q, sweeps what killed runs left, acts on SIGINT/SIGTERM within seconds, and names a full disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import rasterio
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.pipeline import UpscaleSettings
from rssr_cli.pipeline.jobs import SceneJob
from rssr_cli.pipeline.scenes import DONE, SKIPPED, run_batch

from conftest import files_in, synthetic_image, write_raster

runner = CliRunner()
BICUBIC = UpscaleSettings(scale=2, method="bicubic", tile=16, overlap=4)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def scene_at(path: Path, seed: int = 0, size: tuple[int, int] = (30, 34)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_raster(path, synthetic_image(1, *size, "uint16", seed=seed))


# ---- item 5: skip only when the output was made from this very source -----------------------------------------


def test_a_replaced_input_is_redone_even_with_the_same_size_and_mtime(tmp_path):
    src = scene_at(tmp_path / "in" / "a.tif", seed=1)
    job = SceneJob(src, tmp_path / "a_x2.tif")
    assert [r.status for r in run_batch([job], BICUBIC)] == [DONE]
    assert [r.status for r in run_batch([job], BICUBIC)] == [SKIPPED]  # unchanged: skipped
    before = os.stat(src)
    replacement = scene_at(tmp_path / "new.tif", seed=2)
    assert replacement.stat().st_size == before.st_size
    os.replace(replacement, src)  # a re-processed tile: same path, same size ...
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... even the same mtime: the content decides
    assert [r.status for r in run_batch([job], BICUBIC)] == [DONE]
    with rasterio.open(src) as a, rasterio.open(job.dst) as out:
        assert out.read(1)[::2, ::2].mean() == pytest.approx(a.read(1).mean(), rel=0.05)
    assert [r.status for r in run_batch([job], BICUBIC)] == [SKIPPED]


def test_another_raster_of_the_same_stem_is_not_skipped(tmp_path):
    first = scene_at(tmp_path / "day1" / "T33UUP.tif", seed=1)
    second = scene_at(tmp_path / "day2" / "T33UUP.tif", seed=5)
    out = tmp_path / "sr"
    assert run("upscale", first, "-o", f"{out}/", "-s", "2", "-m", "bicubic", "-q").exit_code == 0
    log = tmp_path / "log.jsonl"
    result = run("upscale", second, "-o", f"{out}/", "-s", "2", "-m", "bicubic", "-q", "--log-json", log)
    assert result.exit_code == 0 and [r["status"] for r in log_lines(log)] == [DONE]
    with rasterio.open(out / "T33UUP_x2.tif") as dataset:
        assert dataset.tags()["RSSR_SOURCE_SIZE"] == str(second.stat().st_size)
        assert dataset.tags()["RSSR_SOURCE_MTIME_NS"] == str(second.stat().st_mtime_ns)


# ---- item 6: -o equal to the input folder never compounds ------------------------------------------------------


def test_three_cron_runs_into_the_input_folder_never_upscale_their_own_outputs(tmp_path):
    folder = tmp_path / "incoming"
    scene_at(folder / "a.tif")
    scene_at(folder / "b.tif", seed=3)
    for run_number in range(3):
        log = tmp_path / f"run{run_number}.jsonl"
        result = run("upscale", folder, "-o", folder, "-s", "2", "-m", "bicubic", "-q", "--log-json", log)
        assert result.exit_code == 0, result.stderr
        assert [r["status"] for r in log_lines(log)] == [DONE, DONE] if run_number == 0 else [SKIPPED, SKIPPED]
    assert files_in(folder) == {"a.tif", "b.tif", "a_x2.tif", "b_x2.tif"}
    result = run("upscale", folder / "*_x2.tif", "-o", folder, "-s", "2", "-m", "bicubic", "-q")  # a glob: same rule
    assert result.exit_code == 2 and "only rssr outputs match" in result.stderr
    result = run("upscale", folder / "a_x2.tif", "-o", f"{folder}/", "-s", "2", "-m", "bicubic", "-q")  # named: allowed
    assert result.exit_code == 0 and (folder / "a_x2_x2.tif").exists()


# ---- item 7: -q hides progress, never errors -------------------------------------------------------------------


def test_quiet_batch_still_prints_each_failed_scene(tmp_path):
    folder = tmp_path / "in"
    scene_at(folder / "good.tif")
    (folder / "broken1.tif").write_bytes(b"II*\x00 not really a tiff")
    (folder / "broken2.tif").write_bytes(b"")
    result = run("upscale", folder, "-o", tmp_path / "out", "-s", "2", "-m", "bicubic", "-q")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all("failed" in line for line in lines), result.stderr
    assert "broken1.tif" in lines[0] and "broken2.tif" in lines[1] and "good" not in result.stderr


# ---- item 8: a batch sweeps what dead runs left in its output folder, whatever output it belonged to ------------


KILLED_RUN = """
import sys, time
from pathlib import Path
from rssr_cli.io.destination import staging_dir
from rssr_cli.pipeline.locks import output_lock
dst = Path(sys.argv[1])
with output_lock(dst), staging_dir(dst) as staging:
    (staging / "stream.tif").write_bytes(b"x" * 100_000)
    print("ready", flush=True)
    time.sleep(600)
"""


def test_a_batch_removes_staging_and_locks_of_killed_runs_whatever_their_name(tmp_path):
    import signal
    import subprocess
    import sys

    folder = tmp_path / "in"
    scene_at(folder / "a.tif")
    out = tmp_path / "out"
    out.mkdir()
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(out / "other_x2.tif")], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout.readline().strip() == "ready"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    # and what an older run or a kill between mkdir and the owner file leaves: no owner file at all
    legacy = out / ".legacy_x2.tif.rssr-k3j2h1"
    legacy.mkdir()
    (legacy / "stream.tif").write_bytes(b"partial")
    (out / ".legacy_x2.tif.lock").write_text("pid 999999 on a dead host since 2026-01-01\n")
    (out / ".othertool.lock").write_text("locked by another program\n")  # not rssr's: left alone
    assert len([p for p in out.iterdir() if ".rssr-" in p.name]) == 2 and (out / ".other_x2.tif.lock").exists()
    result = run("upscale", folder, "-o", out, "-s", "2", "-m", "bicubic", "-q")
    assert result.exit_code == 0, result.stderr
    assert files_in(out) == {"a_x2.tif", ".othertool.lock"}


def test_a_batch_never_removes_a_live_runs_staging_or_lock(tmp_path):
    from rssr_cli.io.destination import staging_dir
    from rssr_cli.pipeline.locks import lock_path, output_lock

    folder = tmp_path / "in"
    scene_at(folder / "a.tif")
    out = tmp_path / "out"
    out.mkdir()
    live = out / "live_x2.tif"
    with staging_dir(out / "api_x2.tif") as api_staging, output_lock(live), staging_dir(live) as live_staging:
        (api_staging / "stream.tif").write_bytes(b"in progress")  # an API upscale() holds no output lock
        result = run("upscale", folder, "-o", out, "-s", "2", "-m", "bicubic", "-q")
        assert result.exit_code == 0, result.stderr
        assert (api_staging / "stream.tif").exists() and live_staging.is_dir() and lock_path(live).exists()
    assert files_in(out) == {"a_x2.tif"}


# ---- item 9: SIGINT/SIGTERM act within 2 s in every stage, the COG build included ------------------------------


def big_scene(path: Path) -> Path:
    """Noise compresses slowly: at x6 its intermediate is ~78 MB and the COG build takes several seconds."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.random.default_rng(0).random((3, 850, 850)) * 200).astype("uint8")
    return write_raster(path, data)


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
@pytest.mark.parametrize("mode, sig", [("single", "SIGTERM"), ("batch", "SIGINT")])
def test_a_signal_during_the_cog_build_acts_within_seconds(tmp_path, mode, sig):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "in"
    out = tmp_path / "out"
    out.mkdir()
    if mode == "single":
        args, cog_lines = [big_scene(folder / "big.tif"), "-o", out / "big.tif"], 1
    else:
        scene_at(folder / "a.tif")  # done first, then the big one is interrupted
        args, cog_lines = [folder / "a.tif", big_scene(folder / "big.tif"), "-o", out], 2
    command = [sys.executable, "-m", "rssr_cli", "upscale", *args, "-s", "6", "-m", "bicubic", "-v"]
    proc = subprocess.Popen([str(a) for a in command], stderr=subprocess.PIPE, text=True)
    lines, seen = [], 0
    try:
        for line in proc.stderr:
            lines.append(line)
            seen += "building COG" in line
            if seen == cog_lines:
                break
        assert seen == cog_lines, "".join(lines)
        time.sleep(0.5)  # well inside the build (it takes several seconds)
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(getattr(signal, sig))
        rest = proc.stderr.read()
        proc.wait(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + getattr(signal, sig) and elapsed < 3, (proc.returncode, elapsed, rest)
    assert f"interrupted by {sig}" in rest and "Traceback" not in rest
    if mode == "batch":
        assert "after 1 of 2 scene(s) (1 done, 0 skipped, 0 busy, 0 failed)" in rest
    # Nothing partial at the destination; the interrupted scene's hidden resume folder is kept for the next run.
    assert files_in(out) == ({"a_x6.tif", ".big_x6.tif.rssr-resume"} if mode == "batch" else {".big.tif.rssr-resume"})


# ---- item 10: a full disk is named, with the path, and the log keeps the real window count ---------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (needs root, as in the CI container); skipped where mounting is not allowed."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
@pytest.mark.parametrize("side", [300, 420], ids=["intermediate", "cog"])  # which write hits the full disk first
def test_a_full_disk_is_one_line_naming_it_and_the_log_counts_the_windows(tmp_path, tiny_disk, side):
    import subprocess
    import sys

    import numpy as np

    src = write_raster(tmp_path / "src.tif", (np.random.default_rng(0).random((1, side, side)) * 250).astype("uint8"))
    log = tmp_path / "log.jsonl"
    args = [
        sys.executable,
        "-m",
        "rssr_cli",
        "upscale",
        src,
        "-o",
        tiny_disk / "out.tif",
        "-s",
        "2",
        "-m",
        "bicubic",
        "--tile",
        "256",
        "--log-json",
        log,
    ]
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = [
        line for line in result.stderr.splitlines() if not line.startswith("upscaling: ")
    ]  # progress (no terminal)
    assert lines == [f"error: cannot write {tiny_disk / 'out.tif'}: no space left on device in {tiny_disk}"]
    [record] = log_lines(log)
    assert record["status"] == "failed" and record["windows"] == 4 and "no space left on device" in record["error"]
    assert files_in(tiny_disk) == set()


def test_a_gdal_write_error_on_a_full_disk_is_reported_as_such(tmp_path, monkeypatch):
    """Where no tmpfs can be mounted: GDAL's error as libtiff words it, on a filesystem with no space left."""
    from rasterio._err import CPLE_FileIOError

    from rssr_cli.io import cog

    def full(*_, **__):
        raise CPLE_FileIOError(3, 1, "TIFFAppendToStrip:Write error at scanline 0")

    monkeypatch.setattr(cog, "cog_translate", full)
    monkeypatch.setattr(cog.os, "statvfs", lambda _: os.statvfs_result((4096, 4096, 100, 0, 0, 100, 0, 0, 0, 255)))
    folder = tmp_path / "in"
    scene_at(folder / "a.tif", size=(60, 60))
    out = tmp_path / "out"
    log = tmp_path / "log.jsonl"
    result = run("upscale", folder, "-o", out, "-s", "2", "-m", "bicubic", "--tile", "16", "-q", "--log-json", log)
    assert result.exit_code == 1
    [record] = log_lines(log)
    assert record["error"] == f"cannot write {out / 'a_x2.tif'}: no space left on device in {out}"
    assert record["windows"] == 16 and record["status"] == "failed"
    assert files_in(out) == set()


def test_a_full_log_device_is_one_line(tmp_path):
    folder = tmp_path / "in"
    scene_at(folder / "a.tif")
    result = run("upscale", folder, "-o", tmp_path / "out", "-s", "2", "-m", "bicubic", "-q", "--log-json", "/dev/full")
    [line] = result.stderr.strip().splitlines()  # one line, naming the scene whose log line was lost
    assert result.exit_code == 1 and line.startswith(
        "error: cannot append to --log-json /dev/full: No space left on device"
    )
    assert "a.tif" in line


def test_a_signal_before_any_scene_runs_is_one_line_and_exit_143(tmp_path, monkeypatch):
    import signal
    import time

    from rssr_cli.pipeline import api

    def slow_expansion(inputs):  # e.g. globbing a huge archive on a slow network share
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("the signal did not interrupt the expansion")

    def outer(*_):  # what a test runner or an embedding program may have installed: must be restored after
        pass

    monkeypatch.setattr(api, "expand_inputs", slow_expansion)
    previous = signal.signal(signal.SIGTERM, outer)
    try:
        started = time.monotonic()
        result = run("upscale", tmp_path, "-o", tmp_path / "out", "-s", "2", "-m", "bicubic")
        assert result.exit_code == 143 and result.stderr.strip() == "error: interrupted by SIGTERM"
        assert time.monotonic() - started < 2 and signal.getsignal(signal.SIGTERM) is outer
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_cog_built_in_a_child_process_is_the_same_file(tmp_path):
    from rssr_cli.core.errors import OutputError
    from rssr_cli.io import cog
    from rssr_cli.io.cog_profiles import cog_options

    intermediate = scene_at(tmp_path / "stream.tif", size=(70, 90))
    options = cog_options("deflate", "uint16", {})
    cog.build_cog(intermediate, tmp_path / "here.tif", options)
    cog._build_cog_in_child(intermediate, tmp_path / "child.tif", options, tmp_path / "out.tif")
    assert (tmp_path / "here.tif").read_bytes() == (tmp_path / "child.tif").read_bytes()
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(OutputError, match=r"^cannot write the COG for .*out.tif: .+"):
        cog._build_cog_in_child(tmp_path / "bad.tif", tmp_path / "never.tif", options, tmp_path / "out.tif")


# ---- issue 23: items 15, 19, 23 ------------------------------------------------------------------------------------


def test_threads_are_capped_at_the_cpus_this_process_may_use(monkeypatch):
    """--threads 1000 under a process limit made thread creation fail and the run segfault (item 15)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert UpscaleSettings(scale=2, method="bicubic", threads=1000).threads == 2
    assert UpscaleSettings(scale=2, method="bicubic", threads=1).threads == 1


def test_a_rerun_spelling_the_same_band_otherwise_is_skipped(tmp_path):
    """--bands B04, then b04 and red: the same band, the same request (item 19)."""
    import s2_products as sp

    safe = sp.make_l1c(tmp_path, suffix=".tif", bands=("B03", "B04"))
    common = (
        "upscale",
        safe,
        "-o",
        f"{tmp_path / 'out'}/",
        "-s",
        "2",
        "-m",
        "bicubic",
        "--log-json",
        tmp_path / "log.jsonl",
    )
    for spelling in ("B04", "b04", "red", "B4"):
        result = run(*common, "--bands", spelling)
        assert result.exit_code == 0, result.output
    assert [line["status"] for line in log_lines(tmp_path / "log.jsonl")] == [DONE, SKIPPED, SKIPPED, SKIPPED]


def test_the_different_request_hint_names_the_option_the_readme_and_help_name(tmp_path):
    """The failure says --overwrite, as README and --help do for that case, never --force (item 23)."""
    src = scene_at(tmp_path / "scene.tif")
    common = ("upscale", src, "-o", f"{tmp_path / 'out'}/", "-s", "2")
    assert run(*common, "-m", "bicubic").exit_code == 0
    changed = run(*common, "-m", "nearest")
    assert changed.exit_code == 1 and "different request; pass --overwrite to replace it" in changed.stderr
    assert "--force" not in changed.stderr
    assert run(*common, "-m", "nearest", "--overwrite").exit_code == 0


@pytest.mark.parametrize("product", ["l1c", "stac"])
def test_a_full_disk_during_a_product_run_is_the_same_line(tmp_path, monkeypatch, product):
    """Issue 23 item 17: a band stack's writes (copied bands, blended bands, footprints) name a full disk as the
    single-raster path does, never rasterio's "Write failed. See previous exception for details."."""
    import rasterio.io
    from rasterio._err import CPLE_FileIOError
    from rasterio.errors import RasterioIOError

    import s2_products as sp

    def full(*_, **__):
        try:
            raise CPLE_FileIOError(3, 1, "TIFFAppendToStrip:Write error at scanline 0")
        except CPLE_FileIOError as cause:
            raise RasterioIOError("Write failed. See previous exception for details.") from cause

    src = (
        sp.make_l1c(tmp_path, suffix=".tif", bands=("B02", "B03", "B04", "B08"))
        if product == "l1c"
        else sp.make_stac_item(tmp_path)
    )
    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", full)
    from rssr_cli.io import cog

    monkeypatch.setattr(cog.os, "statvfs", lambda _: os.statvfs_result((4096, 4096, 100, 0, 0, 100, 0, 0, 0, 255)))
    out = tmp_path / "out"
    out.mkdir()
    result = run("upscale", src, "-o", out / "sr.tif", "-s", "2", "-m", "bicubic", "-b", "B04,B08", "-q")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: cannot write {out / 'sr.tif'}: no space left on device in {out}"
    ]
    assert files_in(out) == set()


# ---- issue 23 item 24: one batch per output folder at a time -------------------------------------------------------


def test_a_second_batch_on_the_same_output_folder_exits_75_and_does_nothing(tmp_path):
    """A */15 cron whose scenes take hours: the next tick finds the job running and leaves at once (exit 75, one
    line naming the running one); once it is gone the job runs, and its lock is not left behind."""
    from rssr_cli.pipeline.locks import job_lock

    folder = tmp_path / "in"
    scene_at(folder / "a.tif")
    out = tmp_path / "out"
    out.mkdir()
    args = ("upscale", folder, "-o", out, "-s", "2", "-m", "bicubic", "-q")
    with job_lock(out):  # the running batch (flock: another open of the file conflicts, in any process)
        result = run(*args)
        assert result.exit_code == 75, result.output
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            f"error: another rssr batch is running on {out} (pid {os.getpid()} on "
        ) and line.endswith("nothing was done")
        assert files_in(out) == {".rssr-batch.lock"}
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert files_in(out) == {"a_x2.tif"}
