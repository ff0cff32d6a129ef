"""--threads, OMP_NUM_THREADS and GDAL_CACHEMAX: the run uses what the user (or the scheduler) said."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import rasterio.env
import torch
from typer.testing import CliRunner

from rssr_cli import backends
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.cli import app
from rssr_cli.core.threads import available_cores, cgroup_cpu_quota, cpu_threads
from rssr_cli.io.raster_io import DEFAULT_GDAL_CACHEMAX_MB, gdal_config
from rssr_cli.model.checkpoint import save_model

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
    [
        (None, None, "cores"),
        ("3", None, 3),
        ("2,1", None, 2),
        ("3", 5, 5),
        ("abc", None, "cores"),
        ("0", None, "cores"),
        (None, 4, 4),
    ],
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
    monkeypatch.setattr(
        os, "sched_getaffinity", lambda pid: set(range(8)), raising=False
    )  # --threads is capped at these
    result = run("upscale", src_tif, "-o", tmp_path / "a.tif", "-s", "2", "-m", "record", "--threads", "3", "-q")
    assert result.exit_code == 0, result.output
    assert recorded[-1].options["threads"] == 3
    assert recorded[-1].seen == {
        "GDAL_NUM_THREADS": 3,
        "GDAL_CACHEMAX": DEFAULT_GDAL_CACHEMAX_MB,
    }  # rasterio parses numbers
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


def cgroup_files(tmp_path, proc: str, files: dict[str, str]):
    """A fake /sys/fs/cgroup tree and /proc/self/cgroup: {relative path: content}."""
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    root.mkdir(exist_ok=True)
    (tmp_path / "self_cgroup").write_text(proc)
    return {"cgroup_root": root, "proc_self_cgroup": tmp_path / "self_cgroup"}


@pytest.mark.parametrize(
    "proc, files, quota",
    [
        ("0::/job\n", {"job/cpu.max": "200000 100000\n"}, 2.0),  # v2: 2 CPUs
        ("0::/job\n", {"job/cpu.max": "max 100000\n"}, None),  # v2: no quota
        ("0::/a/b\n", {"a/cpu.max": "150000 100000", "a/b/cpu.max": "max 100000"}, 1.5),  # a parent's quota binds
        ("0::/a/b\n", {"cpu.max": "100000 100000", "a/b/cpu.max": "300000 100000"}, 1.0),  # the tightest wins
        ("0::/docker/x\n", {"cpu.max": "400000 100000"}, 4.0),  # a container's namespaced root
        (
            "4:cpu,cpuacct:/job\n0::/\n",
            {"cpu,cpuacct/job/cpu.cfs_quota_us": "50000", "cpu,cpuacct/job/cpu.cfs_period_us": "100000"},
            0.5,
        ),
        (
            "4:cpu,cpuacct:/\n",
            {"cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            None,
        ),  # v1 none
        ("0::/job\n", {"job/cpu.max": "garbage"}, None),
        ("", {}, None),  # no /proc/self/cgroup entries (not Linux, or unreadable)
    ],
)
def test_cgroup_cpu_quota_from_fake_files(tmp_path, proc, files, quota):
    paths = cgroup_files(tmp_path, proc, files)
    assert cgroup_cpu_quota(paths["cgroup_root"], paths["proc_self_cgroup"]) == quota


@pytest.mark.parametrize(
    "quota, expected", [("max 100000", "affinity"), ("100000 100000", 1), ("150000 100000", 1), ("50000 100000", 1)]
)
def test_available_cores_is_the_affinity_capped_by_the_quota(tmp_path, monkeypatch, quota, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    paths = cgroup_files(tmp_path, "0::/job\n", {"job/cpu.max": quota})
    assert available_cores(**paths) == (8 if expected == "affinity" else expected)


def test_an_affinity_mask_below_the_quota_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert available_cores(**cgroup_files(tmp_path, "0::/\n", {"cpu.max": "400000 100000"})) == 1


def test_the_default_thread_count_is_the_cpus_the_process_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("rssr_cli.core.threads.available_cores", lambda: 3)
    assert cpu_threads(None) == 3


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_rssr_sets_a_passive_omp_wait_policy_before_torch_loads(preset, expected):
    """libgomp reads OMP_WAIT_POLICY once, when torch loads it: rssr must set it at its own import, before torch."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    out = subprocess.run(
        [sys.executable, "-c", POLICY_AT_TORCH_IMPORT], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [expected]


# Records OMP_WAIT_POLICY at the moment `import torch` starts, while the CLI module is imported.
POLICY_AT_TORCH_IMPORT = """
import os, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY", "unset"))
sys.meta_path.insert(0, Spy())
import rssr_cli.cli
import torch
print(seen[0])
"""
