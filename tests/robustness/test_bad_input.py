"""Every way a run can be refused or cut short: one clear line on stderr, the right exit code, no traceback,
nothing at DST and no temporary files left beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from typer.testing import CliRunner

from rssr_cli import backends
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.cli import app
from rssr_cli.core.errors import CheckpointError

from conftest import files_in, patch_tiff_dimension, synthetic_image, write_raster

runner = CliRunner()
TIFF_IMAGE_WIDTH = 256


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, code: int, fragment: str, workdir: Path, before: set[str]) -> None:
    """One 'error:' line containing `fragment`, exit `code`, and the directory exactly as it was."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert files_in(workdir) == before


# ---- broken inputs ----------------------------------------------------------------------------------------


def _not_a_raster(d: Path) -> Path:
    (d / "notes.tif").write_text("this is not a raster\n")
    return d / "notes.tif"


def _corrupt_tiff(d: Path) -> Path:
    rng = np.random.default_rng(0)
    (d / "corrupt.tif").write_bytes(b"II*\x00" + rng.bytes(4000))
    return d / "corrupt.tif"


def _truncated_tiff(d: Path) -> Path:
    path = write_raster(d / "truncated.tif", synthetic_image(2, 120, 120), tiled=True, compress="deflate")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # header and directory survive, half the tiles do not
    return path


def _zero_width(d: Path) -> Path:
    path = write_raster(d / "zero.tif", synthetic_image(1, 8, 8))
    patch_tiff_dimension(path, TIFF_IMAGE_WIDTH, 0)
    return path


def _rotated(d: Path) -> Path:
    transform = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_000_000.0) @ Affine.rotation(20)
    return write_raster(d / "rotated.tif", synthetic_image(1, 16, 16), transform=transform)


def _complex(d: Path) -> Path:
    return write_raster(d / "complex.tif", np.ones((1, 8, 8), dtype=np.complex64))


def _directory(d: Path) -> Path:
    (d / "adir.tif").mkdir()
    return d / "adir.tif"


@pytest.mark.parametrize(
    "make_src,fragment",
    [
        (lambda d: d / "missing.tif", "no such file"),
        (_not_a_raster, "cannot read"),
        (_corrupt_tiff, "cannot read"),
        (_truncated_tiff, "corrupt or truncated"),
        (_zero_width, "zero.tif"),
        (_rotated, "gdalwarp"),
        (_complex, "complex64 is not supported"),
    ],
    ids=["missing", "not-a-raster", "corrupt", "truncated", "zero-size", "rotated", "complex"],
)
def test_bad_source_is_refused(tmp_path, make_src, fragment):
    src = make_src(tmp_path)
    before = files_in(tmp_path)
    result = run(
        "upscale",
        src,
        "-o",
        tmp_path / "out.tif",
        "--scale",
        "2",
        "--tile",
        "32",
        "--overlap",
        "4",
        "--method",
        "bicubic",
    )
    assert_refused(result, 1, fragment, tmp_path, before)


def test_an_empty_directory_is_a_batch_with_nothing_to_do(tmp_path):
    src = _directory(tmp_path)  # a directory input means batch mode: its rasters, here none
    before = files_in(tmp_path)
    result = run("upscale", src, "-o", tmp_path / "out", "--scale", "2")
    assert_refused(result, 2, "no raster matches", tmp_path, before)


def test_no_crs_warns_and_proceeds_on_the_pixel_grid(tmp_path):
    src = write_raster(
        tmp_path / "nocrs.tif", synthetic_image(1, 12, 14), crs=None, transform=Affine(1, 0, 0, 0, -1, 12)
    )
    result = run("upscale", src, "-o", tmp_path / "out.tif", "--scale", "2", "--method", "bicubic")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"warning: {src} has no CRS; the output is written on the pixel grid only"
    assert (tmp_path / "out.tif").exists()


# ---- bad options ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,fragment",
    [
        (["--scale", "1"], "scale must be > 1"),
        (["--scale", "0.5"], "scale must be > 1"),
        (["--scale", "-3"], "scale must be > 1"),
        (["--scale", "nan"], "scale must be > 1"),
        (["--scale", "1000"], "above the supported maximum"),
        ([], "exactly one of --scale or --resolution"),
        (["--scale", "2", "--resolution", "5"], "exactly one of --scale or --resolution"),
        (["--resolution", "-5"], "--resolution must be a positive number"),
        (["--scale", "2", "-b", "4"], "band 4 is out of range"),
        (["--scale", "2", "-b", "0,1"], "band 0 is out of range"),
        (["--scale", "2", "-b", "1,1"], "lists a band twice"),
        (["--scale", "2", "--method", "magic"], "unknown method 'magic'"),
        (["--scale", "2", "--tile", "16", "--overlap", "9"], "--overlap must be between 0 and half the tile"),
        (["--scale", "2", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--scale", "2", "--profile", "jpeg2000"], "unknown output profile"),
    ],
)
def test_bad_options_are_usage_errors(src_tif, tmp_path, options, fragment):
    before = files_in(tmp_path)
    result = run("upscale", src_tif, "-o", tmp_path / "out.tif", *options)
    assert_refused(result, 2, fragment, tmp_path, before)


@pytest.mark.parametrize("options", [["-b", "all,1"], ["--co", "NOVALUE"], ["--device", "tpu"], ["--scale", "x"]])
def test_unparseable_options_exit_2_without_traceback(src_tif, tmp_path, options):
    before = files_in(tmp_path)
    result = run("upscale", src_tif, "-o", tmp_path / "out.tif", "--scale", "2", *options)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "Invalid value" in result.output
    assert files_in(tmp_path) == before


# ---- bad destinations ------------------------------------------------------------------------------------------


def test_existing_destination_needs_overwrite(src_tif, tmp_path):
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"precious")
    before = files_in(tmp_path)
    result = run("upscale", src_tif, "-o", dst, "--scale", "2")
    assert_refused(result, 1, "already exists; pass --overwrite", tmp_path, before)
    assert dst.read_bytes() == b"precious"


def test_destination_directory_must_exist(src_tif, tmp_path):
    before = files_in(tmp_path)
    result = run("upscale", src_tif, "-o", tmp_path / "nodir" / "out.tif", "--scale", "2")
    assert_refused(result, 1, "does not exist", tmp_path, before)


def test_destination_parent_that_is_a_file(src_tif, tmp_path):
    (tmp_path / "afile").write_text("x")
    before = files_in(tmp_path)
    result = run("upscale", src_tif, "-o", tmp_path / "afile" / "out.tif", "--scale", "2")
    assert_refused(result, 1, "does not exist", tmp_path, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_destination_directory_not_writable(src_tif, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run("upscale", src_tif, "-o", locked / "out.tif", "--scale", "2")
        assert result.exit_code == 1 and "not writable" in result.stderr
        assert files_in(locked) == set()
    finally:
        locked.chmod(0o755)


def test_staging_failure_is_an_output_error(src_tif, tmp_path, monkeypatch):
    # what a read-only directory does even to root-owned runs (e.g. a read-only mount)
    def refuse(*_, **__):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("rssr_cli.io.destination.tempfile.mkdtemp", refuse)
    monkeypatch.setattr("rssr_cli.pipeline.resume.os.mkdir", refuse)  # a local raster's staging is its resume folder
    monkeypatch.setattr("rssr_cli.io.destination.os.access", lambda *_: True)
    before = files_in(tmp_path)
    result = run("upscale", src_tif, "-o", tmp_path / "out.tif", "--scale", "2", "--method", "bicubic")
    assert_refused(result, 1, "cannot write to", tmp_path, before)


def test_destination_equal_to_source_is_refused(src_tif, tmp_path):
    before = files_in(tmp_path)
    result = run("upscale", src_tif, "-o", src_tif, "--scale", "2", "--overwrite")
    assert_refused(result, 2, "is the input file", tmp_path, before)


# ---- failures and interrupts mid-run ---------------------------------------------------------------------


@dataclass
class FailingBackend:
    """Works for `ok_calls` calls, then fails the way the test asks."""

    failure: str
    ok_calls: int = 1
    name: str = "failing"
    calls: int = 0

    def upsample(self, requests):
        self.calls += 1
        if self.calls > self.ok_calls:
            if self.failure == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler raises before this returns
            raise CheckpointError("model weights do not match their card")
        return ClassicalBackend("bicubic").upsample(requests)

    def provenance(self):
        return {"method": self.name}


@pytest.mark.parametrize("failure,fragment", [("error", "do not match"), ("sigint", "interrupted by SIGINT")])
def test_failure_mid_run_leaves_nothing(make_raster, tmp_path, monkeypatch, failure, fragment):
    src = make_raster(1, 64, 64, name="src.tif")
    monkeypatch.setitem(backends._FACTORIES, "failing", lambda **_: FailingBackend(failure))
    before = files_in(tmp_path)
    previous_handler = signal.getsignal(signal.SIGINT)
    result = run(
        "upscale",
        src,
        "-o",
        tmp_path / "out.tif",
        "-s",
        "2",
        "-m",
        "failing",
        "--tile",
        "16",
        "--overlap",
        "4",
        "--batch-size",
        "1",
    )
    assert_refused(result, 130 if failure == "sigint" else 1, fragment, tmp_path, before)
    assert signal.getsignal(signal.SIGINT) is previous_handler  # handlers restored after the run


SLOW_RUNNER = textwrap.dedent(
    """
    import pathlib, sys, time
    from rssr_cli.backends import register_backend
    from rssr_cli.backends.classical import ClassicalBackend

    started = pathlib.Path(sys.argv.pop(1))

    class SlowBackend:
        name = "slow"

        def upsample(self, requests):
            started.touch()
            time.sleep(0.3)
            return ClassicalBackend("bicubic").upsample(requests)

        def provenance(self):
            return {"method": self.name}

    register_backend("slow", lambda **_: SlowBackend())
    from rssr_cli.cli import main

    sys.argv[0] = "rssr"
    main()
    """
)


@pytest.mark.slow  # a CLI subprocess per signal, ~3 s
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_run_removes_temp_files_and_writes_no_output(make_raster, tmp_path, sig):
    work = tmp_path / "work"
    work.mkdir()
    src = write_raster(work / "src.tif", synthetic_image(2, 96, 96))
    runner_script = tmp_path / "run_slow.py"
    runner_script.write_text(SLOW_RUNNER)
    started = tmp_path / "started"
    args = [
        sys.executable,
        runner_script,
        started,
        "upscale",
        src,
        "-o",
        work / "out.tif",
        "-s",
        "2",
        "-m",
        "slow",
        "--tile",
        "16",
        "--overlap",
        "4",
        "--batch-size",
        "1",
    ]
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow backend never started"
            time.sleep(0.05)
        assert any(name.startswith(".out.tif.rssr-") for name in files_in(work))  # mid-run: staging exists
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig  # 143 for SIGTERM, 130 for SIGINT
    assert stderr.strip() == f"error: interrupted by {sig.name}; no output was written"
    assert files_in(work) == {"src.tif"}
