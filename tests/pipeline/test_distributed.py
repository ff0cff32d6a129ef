"""Scenes of a batch on a Dask LocalCluster: same outputs as in-process, and a killed worker is survived."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from rssr_cli.core.errors import UsageError  # noqa: E402
from rssr_cli.pipeline import ModelOptions, UpscaleSettings  # noqa: E402
from rssr_cli.pipeline.distributed import dask_client, parse_scheduler, run_batch_on_dask  # noqa: E402
from rssr_cli.pipeline.jobs import expand_inputs, plan_jobs  # noqa: E402
from rssr_cli.pipeline.scenes import DONE, SKIPPED, run_batch  # noqa: E402

from conftest import files_in, synthetic_image, write_raster  # noqa: E402

SETTINGS = UpscaleSettings(scale=2.5, method="bicubic", tile=16, overlap=4)


@pytest.fixture(scope="module")
def client():
    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: spawned workers inherit sys.path, import dask_crash
    with dask_client("local:2") as c:
        yield c


@pytest.fixture
def scenes(tmp_path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        write_raster(folder / f"t{i}.tif", synthetic_image(3, 26 + i, 30, "uint16", seed=i), nodata=0)
    return expand_inputs([str(folder)])


def test_scheduler_values_parse():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    with pytest.raises(UsageError, match="worker count"):
        parse_scheduler("local:zero")


@pytest.mark.slow  # a local Dask cluster, ~3.5 s with its setup
def test_a_local_cluster_writes_the_same_bytes_as_the_in_process_batch(client, scenes, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    local = run_batch(plan_jobs(scenes, here, SETTINGS), SETTINGS)
    seen = []
    remote = run_batch_on_dask(plan_jobs(scenes, there, SETTINGS), SETTINGS, client, on_scene=seen.append)
    assert [r.status for r in local] == [r.status for r in remote] == [DONE] * 4
    assert len(seen) == 4
    for a, b in zip(sorted(here.iterdir()), sorted(there.iterdir())):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()
    # the skip rules are the same on the cluster
    assert [r.status for r in run_batch_on_dask(plan_jobs(scenes, there, SETTINGS), SETTINGS, client)] == [SKIPPED] * 4


def test_a_worker_killed_mid_scene_is_retried_and_leaves_nothing_partial(client, scenes, tmp_path):
    from dask_crash import RegisterCrashOnce

    client.register_plugin(RegisterCrashOnce())
    out = tmp_path / "out"
    out.mkdir()
    settings = UpscaleSettings(
        scale=2, method="crash-once", tile=16, overlap=4, model=ModelOptions(model=str(tmp_path / "crashed"))
    )
    results = run_batch_on_dask(plan_jobs(scenes, out, settings), settings, client)
    assert (tmp_path / "crashed").exists()  # a worker really died mid-scene
    assert [r.status for r in results] == [DONE] * 4
    assert files_in(out) == {f"t{i}_x2.tif" for i in range(4)}  # no staging dirs, no lock files
