"""The `rssr` command line through typer's CliRunner: options reach the API, output is quiet or informative."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from rssr_cli import backends
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.cli import app
from rssr_cli.model.checkpoint import save_model

from model_helpers import tiny_model

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@dataclass
class CapturingBackend:
    options: dict = field(default_factory=dict)
    name: str = "capture"

    def upsample(self, requests):
        return ClassicalBackend("nearest").upsample(requests)

    def provenance(self):
        return {"method": self.name}


@pytest.fixture
def captured(monkeypatch):
    made: list[CapturingBackend] = []
    monkeypatch.setitem(backends._FACTORIES, "capture", lambda **o: made.append(CapturingBackend(o)) or made[-1])
    return made


def test_help_documents_the_exit_codes():
    for args in ([], ["upscale", "--help"], ["info", "--help"]):
        result = run(*args) if args else runner.invoke(app, ["--help"])
        text = " ".join(result.output.split())  # rich wraps the help text
        assert "Exit codes: 0 ok, 1 processing error" in text
        assert "2 usage error" in text


def test_upscale_writes_a_cog_and_a_summary(src_tif, tmp_path):
    dst = tmp_path / "out.tif"
    result = run("upscale", src_tif, "-o", dst, "--scale", "4.5", "--tile", "16", "--overlap", "4", "-m", "bicubic")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("wrote ") and "202x166 px" in result.stderr
    assert cog_validate(str(dst))[0]


def test_a_non_terminal_stderr_gets_a_progress_line_per_10_percent(src_tif, tmp_path):
    """Issue 23 item 24: a cron log got no progress at all (the bar is for terminals only); -q stays silent."""
    result = run(
        "upscale", src_tif, "-o", tmp_path / "out.tif", "-s", "4", "--tile", "8", "--overlap", "2", "-m", "bicubic"
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("upscaling: ")]
    assert [line.split(" %")[0] for line in lines] == [f"upscaling: {p}" for p in range(10, 101, 10)]
    assert all("elapsed, ETA " in line for line in lines[:-1]) and lines[-1].endswith("elapsed; writing COG")
    quiet = run(
        "upscale", src_tif, "-o", tmp_path / "q.tif", "-s", "4", "--tile", "8", "--overlap", "2", "-m", "bicubic", "-q"
    )
    assert quiet.exit_code == 0 and quiet.output == ""
    batch = run(
        "upscale", src_tif, "-o", f"{tmp_path / 'out'}/", "-s", "4", "--tile", "8", "--overlap", "2", "-m", "bicubic"
    )
    assert batch.exit_code == 0, batch.output
    assert f"{src_tif.name}: 50 % (" in batch.stderr and f"{src_tif.name}: 100 % (" in batch.stderr


def test_line_progress_estimates_the_time_left(monkeypatch):
    from rssr_cli.cli import common

    printed: list[str] = []
    monkeypatch.setattr(common.stderr, "print", lambda text: printed.append(str(text)))
    now = [100.0]
    update = common.line_progress("scene.tif", clock=lambda: now[0])
    for done, t in ((1, 110.0), (25, 160.0), (26, 170.0), (100, 500.0)):
        now[0] = t
        update(done, 100)
    assert printed == [
        "scene.tif: 20 % (25/100 windows), 1m00s elapsed, ETA 3m00s",
        "scene.tif: 100 % (100/100 windows), 6m40s elapsed; writing COG",
    ]


def test_quiet_prints_nothing(src_tif, tmp_path):
    result = run("upscale", src_tif, "-o", tmp_path / "out.tif", "-s", "2", "-q", "-m", "bicubic")
    assert result.exit_code == 0
    assert result.output == ""


def test_verbose_logs_the_plan(src_tif, tmp_path):
    result = run("upscale", src_tif, "-o", tmp_path / "out.tif", "-s", "2", "-v", "-m", "bicubic")
    assert result.exit_code == 0
    assert "INFO rssr_cli.pipeline.plan" in result.stderr and "45x37 -> 90x74" in result.stderr


def test_model_options_are_forwarded_only_when_given(src_tif, tmp_path, captured):
    run("upscale", src_tif, "-o", tmp_path / "a.tif", "-s", "2", "-m", "capture")
    assert captured[-1].options == {"device": "auto"}
    result = run(
        "upscale",
        src_tif,
        "-o",
        tmp_path / "b.tif",
        "-s",
        "2",
        "-m",
        "capture",
        "--device",
        "cpu",
        "--model",
        "m.safetensors",
        "--steps",
        "4",
        "--strength",
        "0.3",
        "--precision",
        "bf16",
    )
    assert result.exit_code == 0, result.output
    options = dict(captured[-1].options)
    assert str(options.pop("model")) == "m.safetensors"
    assert options == {"device": "cpu", "steps": 4, "strength": 0.3, "precision": "bf16"}


def test_bands_resolution_profile_and_creation_options(src_tif, tmp_path):
    dst = tmp_path / "out.tif"
    result = run(
        "upscale",
        src_tif,
        "-o",
        dst,
        "--resolution",
        "2.5",
        "-b",
        "3,1",
        "--profile",
        "zstd",
        "--co",
        "BLOCKXSIZE=256",
        "--co",
        "blockysize=256",
        "--seed",
        "5",
        "--batch-size",
        "2",
        "--model",
        save_model(tiny_model(), tmp_path / "tiny.safetensors"),  # model options: a tiny model, not the shipped one
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as ds:
        assert ds.count == 2 and (ds.width, ds.height) == (180, 148)
        assert ds.profile["compress"] == "zstd" and ds.block_shapes[0] == (256, 256)
        assert ds.tags()["RSSR_SEED"] == "5"


def test_overwrite_replaces_the_output(src_tif, tmp_path):
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"old")
    result = run("upscale", src_tif, "-o", dst, "-s", "2", "--overwrite", "-m", "bicubic")
    assert result.exit_code == 0
    assert cog_validate(str(dst))[0]


def test_info_describes_the_raster_and_the_would_be_output(make_raster):
    src = make_raster(4, 37, 45, "uint16", nodata=0, descriptions=["B2", "B3", "B4", "B8"])
    result = run("info", src, "--scale", "4.5")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "45 x 37 px, 4 band(s), uint16" in out
    assert "EPSG:32633" in out
    assert "(10, 0, 500000, 0, -10, 4000000)" in out
    assert "pixel size  10 x 10" in out
    assert "west 500000, south 3999630, east 500450, north 4000000" in out
    assert "nodata = 0" in out and "B8" in out
    assert "202 x 166 px" in out  # round-half-even: 45 * 4.5 = 202.5 -> 202
    assert "pixel size  2.227722772 x 2.228915663" in out
    assert "262.0 KB uncompressed" in out  # 202 * 166 * 4 bands * 2 bytes


def test_info_without_scale_shows_no_preview(make_raster):
    src = make_raster(1, 10, 12, "float32")
    result = run("info", src)
    assert result.exit_code == 0
    assert "upscale would write" not in result.stdout
    assert "NaN (float without a nodata value)" in result.stdout


def test_info_with_resolution_and_bands(src_tif):
    result = run("info", src_tif, "--resolution", "5", "-b", "1")
    assert result.exit_code == 0
    assert "90 x 74 px (x2, x2), 1 band(s)" in result.stdout


def test_info_reports_a_missing_file_in_one_line(tmp_path):
    result = run("info", tmp_path / "nope.tif")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: no such file: {tmp_path / 'nope.tif'}"


def test_info_without_a_raster_is_a_usage_error():
    result = run("info")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: give a raster to describe")


# ---- conventions of rio / rio-cogeo / GDAL (issue 10, item 3) -------------------------------------------------------


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.output.strip().startswith("rssr ")


def test_repeated_band_options_accumulate_like_comma_lists(src_tif, tmp_path):
    for name, args in (("a.tif", ("-b", "3", "-b", "1")), ("b.tif", ("-b", "3,1"))):
        result = run("upscale", src_tif, "-o", tmp_path / name, "-s", "2", "-m", "bicubic", *args)
        assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert a.count == 2 and (a.read() == b.read()).all() and a.tags()["RSSR_BANDS"] == "3,1"


def test_a_batch_with_a_bad_scale_is_a_usage_error_before_any_work(src_tif, tmp_path):
    result = run("upscale", src_tif.parent, "-o", tmp_path / "out", "-s", "0.5", "-m", "bicubic")
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "error: scale must be > 1 (got 0.5); rssr only upsamples"
    ]
    assert not (tmp_path / "out").exists()


def test_info_json(src_tif):
    import json

    result = run("info", src_tif, "-s", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["width"] == 45 and report["preview"]["width"] == 90 and len(report["transform"]) == 6


def test_help_shows_the_batch_text_and_completion():
    text = " ".join(run("upscale", "--help").output.split())
    assert "batch mode" in text and "busy" in text
    assert "--install-completion" in run("--help").output


def test_cli_modules_hold_no_locking_scheduling_or_signal_code():
    from pathlib import Path

    import rssr_cli.cli

    for module in Path(rssr_cli.cli.__file__).parent.glob("*.py"):
        text = module.read_text()
        for word in ("output_lock", "raise_on_signals", "import signal", "dask_client", "sweep_stale", "JsonLog"):
            assert word not in text, (module.name, word)
