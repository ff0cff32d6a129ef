"""--threads, OMP_NUM_THREADS and GDAL_CACHEMAX: the run uses what the user (or the scheduler) said."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
import rasterio.env
import torch
from typer.testing import CliRunner

from rssr_cli import backends
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.cli import app
from rssr_cli.model.checkpoint import save_model
from rssr_cli.raster_io import DEFAULT_GDAL_CACHEMAX_MB, gdal_config
from rssr_cli.threads import available_cores, cpu_threads

from model_helpers import tiny_model

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "omp, requested, expected",
    [(None, None, "cores"), ("3", None, 3), ("2,1", None, 2), ("3", 5, 5), ("abc", None, "cores"), ("0", None, "cores"), (None, 4, 4)],
)
def test_cpu_threads_honours_the_request_then_omp_num_threads(monkeypatch, omp, requested, expected):
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert cpu_threads(requested) == (available_cores() if expected == "cores" else expected)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_model(tiny_model(), tmp_path_factory.mktemp("m") / "tiny.safetensors", model_id="tiny-threads")


def test_the_model_keeps_omp_num_threads_instead_of_taking_every_core(monkeypatch, model_path):
    """A Dask worker's nanny sets OMP_NUM_THREADS=1; building the backend used to reset torch to all cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(2)
    backends.get_backend("diffusion", model=model_path, device="cpu")
    assert torch.get_num_threads() == 1
    backends.get_backend("diffusion", model=model_path, device="cpu", threads=2)  # --threads wins
    assert torch.get_num_threads() == 2


@dataclass
class EnvRecordingBackend:
    """Records the options it was built with and the GDAL settings in force while it runs."""

    options: dict
    seen: dict = field(default_factory=dict)
    name: str = "record"

    def upsample(self, requests):
        for key in ("GDAL_NUM_THREADS", "GDAL_CACHEMAX"):
            self.seen[key] = rasterio.env.get_gdal_config(key)
        return ClassicalBackend("nearest").upsample(requests)

    def provenance(self):
        return {"method": self.name}


@pytest.fixture
def recorded(monkeypatch):
    made: list[EnvRecordingBackend] = []
    monkeypatch.setitem(backends._FACTORIES, "record", lambda **o: made.append(EnvRecordingBackend(o)) or made[-1])
    return made


def test_threads_reach_the_backend_and_gdal(recorded, src_tif, tmp_path, monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)  # --threads is capped at these
    result = run("upscale", src_tif, "-o", tmp_path / "a.tif", "-s", "2", "-m", "record", "--threads", "3", "-q")
    assert result.exit_code == 0, result.output
    assert recorded[-1].options["threads"] == 3
    assert recorded[-1].seen == {"GDAL_NUM_THREADS": 3, "GDAL_CACHEMAX": DEFAULT_GDAL_CACHEMAX_MB}  # rasterio parses numbers
    # without --threads nothing is forced on GDAL, and the backend resolves its own default
    assert run("upscale", src_tif, "-o", tmp_path / "b.tif", "-s", "2", "-m", "record", "-q").exit_code == 0
    assert "threads" not in recorded[-1].options and recorded[-1].seen["GDAL_NUM_THREADS"] is None


def test_a_user_gdal_cachemax_is_left_alone(recorded, src_tif, tmp_path, monkeypatch):
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    assert "GDAL_CACHEMAX" not in gdal_config()
    # GDAL read the variable when it started (in this test process, before it was set): the run must
    # keep whatever GDAL resolved from the user's setting, not force its own 128 MB
    users = rasterio.env.get_gdal_config("GDAL_CACHEMAX")
    assert run("upscale", src_tif, "-o", tmp_path / "a.tif", "-s", "2", "-m", "record", "-q").exit_code == 0
    assert recorded[-1].seen["GDAL_CACHEMAX"] == users != DEFAULT_GDAL_CACHEMAX_MB


def test_zero_threads_is_a_usage_error(src_tif, tmp_path):
    result = run("upscale", src_tif, "-o", tmp_path / "a.tif", "-s", "2", "-m", "bicubic", "--threads", "0")
    assert result.exit_code == 2 and "--threads" in result.stderr
