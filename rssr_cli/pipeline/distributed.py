"""Scale-out on Dask distributed: the scenes of a batch become tasks on a cluster's workers.

A task is one whole scene: `scenes.process_scene`, the function the in-process batch runs, so skip rules,
locks, results and logs are the same either way. Each worker process builds the backend once (the model
loads once per worker) and keeps it for every scene it gets. Workers read inputs and write outputs
themselves, so the paths must be on storage every worker sees (NFS, a shared disk, a FUSE bucket); only
small SceneResult records travel back to the client. A worker that dies mid-scene (OOM, kill -9, a
preempted node) leaves its lock released by the kernel and a staging directory that the next holder of
the lock removes; the scheduler runs the scene again on another worker (up to `retries` times more).
GPU workers: start them with `--resources GPU=1`; with device cuda each scene asks for one GPU.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, cast

from rssr_cli.backends import SRBackend
from rssr_cli.core.errors import ClusterError, UsageError
from rssr_cli.io.destination import staging_dir
from rssr_cli.pipeline.jobs import SceneJob
from rssr_cli.pipeline.model_choice import check_model_found, uses_model_rule
from rssr_cli.pipeline.provenance import Provenance
from rssr_cli.pipeline.scenes import FAILED, SceneBackends, SceneCallback, SceneResult, process_scene
from rssr_cli.pipeline.settings import UpscaleResult, UpscaleSettings
from rssr_cli.pipeline.split import RowsPart, assemble_rows, render_rows, scene_row_bands

SCHEDULER_ENV = "RSSR_SCHEDULER"
DEFAULT_RETRIES = 2
CONNECT_TIMEOUT_ENV = "RSSR_SCHEDULER_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 5.0  # a scheduler answers in milliseconds; a cron job should not hang on a dead one


def _import_distributed() -> Any:
    try:
        import distributed  # lazy: an optional dependency (rssr[dask]), only for --scheduler
    except ImportError:
        raise UsageError("--scheduler needs Dask distributed: pip install 'rssr[dask]'") from None
    return distributed


def parse_scheduler(value: str) -> tuple[str, Any]:
    """'local:N' -> ('local', N); anything else is a scheduler address ('tcp://host:8786')."""
    if value.startswith("local"):
        _, _, count = value.partition(":")
        try:
            workers = int(count) if count else os.cpu_count() or 1
        except ValueError:
            workers = 0
        if workers < 1:
            raise UsageError(f"--scheduler local:N needs a worker count N >= 1, got {value!r}")
        return "local", workers
    if not value.strip() or any(c.isspace() for c in value):
        raise UsageError(f"--scheduler {value!r} is not an address like tcp://host:8786 or local:N")
    return "address", value


def check_split_rows(parts: int) -> None:
    """--split-rows N: refused before any cluster is contacted."""
    if parts < 2:
        raise UsageError(f"--split-rows needs at least 2 parts, got {parts}")


def connect_timeout() -> float:
    """Seconds to wait for a scheduler: $RSSR_SCHEDULER_TIMEOUT, else DEFAULT_CONNECT_TIMEOUT_S."""
    text = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"${CONNECT_TIMEOUT_ENV} must be a number of seconds > 0, got {text!r}")
    return seconds


@contextmanager
def dask_client(scheduler: str, *, gpu: bool = False) -> Iterator[Any]:
    """A connected Client: to a running scheduler, or to a LocalCluster of N single-threaded worker processes."""
    distributed = _import_distributed()
    kind, target = parse_scheduler(scheduler)
    if kind == "local":
        # One thread per worker: each worker runs one scene at a time and torch uses that core (Dask's
        # nanny sets OMP_NUM_THREADS=1), so N workers share the machine instead of oversubscribing it.
        cluster = distributed.LocalCluster(
            n_workers=target,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            resources={"GPU": 1} if gpu else None,
        )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    timeout = connect_timeout()
    try:
        client = distributed.Client(target, timeout=f"{timeout}s")
    except ValueError as exc:  # a malformed address (no port, unknown protocol)
        raise UsageError(f"--scheduler {target!r} is not a scheduler address ({exc}); e.g. tcp://host:8786") from None
    except (OSError, TimeoutError) as exc:  # nothing answers there: the environment failed, not the request
        raise ClusterError(f"cannot reach the Dask scheduler at {target}: {exc}") from None
    with client:
        yield client


_worker_backends = SceneBackends()  # per worker process: each model built once, reused by every scene


def _worker_backend(settings: UpscaleSettings) -> tuple[Provenance, SRBackend]:
    provenance, backend = _worker_backends(settings)
    return provenance, cast(SRBackend, backend)  # SceneBackends() builds with batch_backend: always a backend


def run_scene_on_worker(job: SceneJob, settings: UpscaleSettings, force: bool) -> SceneResult:
    return process_scene(job, settings, _worker_backends, force=force)


def provenance_on_worker(settings: UpscaleSettings) -> Provenance:
    """The method and backend tags, from a worker: the client never loads the model."""
    return _worker_backend(settings)[0]


def render_rows_on_worker(src: str, part: Path, settings: UpscaleSettings, rows: tuple[int, int]) -> RowsPart:
    provenance, backend = _worker_backend(settings)
    return render_rows(src, part, replace(settings, method=provenance.method), rows, backend=backend)


def _task_resources(settings: UpscaleSettings) -> Optional[dict[str, int]]:
    """With device cuda, every task asks for one GPU (workers started with --resources GPU=1)."""
    return {"GPU": 1} if settings.model.uses_gpu else None


def run_batch_on_dask(
    jobs: Sequence[SceneJob],
    settings: UpscaleSettings,
    client: Any,
    *,
    force: bool = False,
    on_scene: Optional[SceneCallback] = None,
    retries: int = DEFAULT_RETRIES,
) -> list[SceneResult]:
    """Submit every scene, report each as it finishes (in completion order), return results in job order."""
    distributed = _import_distributed()
    check_model_found(settings)  # no shipped model for the rule: stop before any task
    resources = _task_resources(settings)
    batch_id = uuid.uuid4().hex[:8]  # keys must be new per batch, or Dask hands back a previous batch's results
    futures = {
        client.submit(
            run_scene_on_worker,
            job,
            settings,
            force,
            pure=False,
            retries=retries,
            resources=resources,
            key=f"rssr-{batch_id}-{i}-{job.dst.name}",
        ): i
        for i, job in enumerate(jobs)
    }
    results: list[Optional[SceneResult]] = [None] * len(jobs)
    for future in distributed.as_completed(futures):
        i = futures[future]
        try:
            scene = future.result()
        except Exception as error:  # the scene's worker kept dying (KilledWorker) or the task could not run
            job = jobs[i]
            scene = SceneResult(str(job.src), str(job.dst), FAILED, 0.0, error=f"{type(error).__name__}: {error}")
        results[i] = scene
        if on_scene is not None:
            on_scene(scene)
    return [r for r in results if r is not None]


def run_split_batch_on_dask(
    jobs: Sequence[SceneJob],
    settings: UpscaleSettings,
    client: Any,
    parts: int,
    *,
    force: bool = False,
    on_scene: Optional[SceneCallback] = None,
    retries: int = DEFAULT_RETRIES,
) -> list[SceneResult]:
    """Scenes one after another, each split into `parts` row bands that run as parallel tasks (for scenes too
    big for one worker's time budget). The client holds each output's lock and applies the skip rules
    (scenes.process_scene); workers write their bands into a staging directory beside the output; the client
    assembles them into the COG (split.assemble_rows: byte-identical to a whole-scene run). Rasters and band stacks
    alike: a stack's part holds every output band over its rows."""
    check_split_rows(parts)
    check_model_found(settings)
    resources = _task_resources(settings)

    def provenance_of(scene_settings: UpscaleSettings) -> tuple[Provenance, None]:  # per model, asked of a worker once
        return client.submit(provenance_on_worker, scene_settings, pure=False, resources=resources).result(), None

    provenances = SceneBackends(provenance_of)
    if not uses_model_rule(settings):
        provenances(settings)  # a bad --model stops the run before any scene
    batch_id = uuid.uuid4().hex[:8]

    def split_run(job: SceneJob, run_settings: UpscaleSettings) -> UpscaleResult:
        bands = scene_row_bands(job.src, run_settings, parts)
        with staging_dir(job.dst) as staging:
            futures = [
                client.submit(
                    render_rows_on_worker,
                    job.src,
                    staging / f"rows{i}.tif",
                    run_settings,
                    rows,
                    pure=False,
                    retries=retries,
                    resources=resources,
                    key=f"rssr-{batch_id}-{job.dst.name}-rows{i}",
                )
                for i, rows in enumerate(bands)
            ]
            return assemble_rows(job.src, job.dst, run_settings, client.gather(futures))

    results = []
    for job in jobs:
        scene = process_scene(job, settings, provenances, force=force, runner=split_run)
        results.append(scene)
        if on_scene is not None:
            on_scene(scene)
    return results
