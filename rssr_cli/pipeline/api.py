"""The one entry point of every run mode: `run(RunRequest)` for one scene or a batch, in this process or on Dask,
whole scenes or split by rows. It owns what a cron job relies on, so a notebook gets it too: the output locks (a
single scene's as well), the skip rules, the JSON log, SIGINT/SIGTERM, the output folders and the scheduler.

    request = RunRequest(("scenes/",), "out/", UpscaleSettings(scale=4, method="bicubic"), log_json=Path("run.jsonl"))
    report = run(request, on_scene=print)
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from rssr_cli.core.errors import Interrupted, OutputError, RssrError, UsageError
from rssr_cli.core.interrupts import raise_on_signals
from rssr_cli.core.value_types import check_field_types
from rssr_cli.io.destination import check_output_name
from rssr_cli.io.products import is_input_path
from rssr_cli.pipeline.distributed import (
    check_split_rows,
    dask_client,
    parse_scheduler,
    run_batch_on_dask,
    run_split_batch_on_dask,
)
from rssr_cli.pipeline.joblog import JsonLog, check_log_path
from rssr_cli.pipeline.jobs import (
    NAME_FIELDS,
    SceneJob,
    check_name_template,
    expand_inputs,
    is_batch,
    plan_jobs,
    refuse_stray_numbers,
)
from rssr_cli.pipeline.locks import job_lock, output_lock, sweep_stale
from rssr_cli.pipeline.scene import render_scene
from rssr_cli.pipeline.scenes import (
    BUSY,
    DONE,
    FAILED,
    SKIPPED,
    SceneCallback,
    SceneResult,
    failed,
    run_batch,
    scene_fields,
)
from rssr_cli.pipeline.settings import Progress, UpscaleResult, UpscaleSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """A whole run as a value, checked when built (a usage error before any work, whatever the mode).

    One input and an output that is not a folder: one scene, written to `output` (an existing one needs
    settings.overwrite or `force`). Otherwise a batch: every input (files, folders, globs, products, URLs)
    goes to output/`name` (None: {stem}_x{scale}.tif, a product {stem}_{bands}_x{scale}.tif), skipping scenes already done with the same request unless `force`.
    `scheduler`: run a batch's scenes on Dask (tcp://host:8786, or local:N); `split_rows`: with a scheduler,
    each scene in N row bands on different workers. `log_json`: append one JSON line per scene."""

    inputs: tuple[str, ...]
    output: str | Path
    settings: UpscaleSettings
    name: Optional[str] = None  # None: jobs.default_name_template (a product's name carries its band set)
    force: bool = False
    log_json: Optional[Path] = None
    scheduler: Optional[str] = None
    split_rows: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.inputs, (str, bytes, os.PathLike)):  # tuple("scene.tif") would be its characters
            raise UsageError(f"RunRequest.inputs must be a list of inputs, not one path: write [{self.inputs!r}]")
        if not isinstance(self.inputs, (tuple, list)) or not all(
            isinstance(i, (str, os.PathLike)) for i in self.inputs
        ):
            raise UsageError(f"RunRequest.inputs must be a list of paths or URLs, not {self.inputs!r}")
        object.__setattr__(self, "inputs", tuple(map(str, self.inputs)))
        check_field_types(self)
        if not self.inputs:
            raise UsageError("give at least one input raster")
        refuse_stray_numbers(self.inputs)
        self.settings.require_target()
        if self.name is not None:
            check_name_template(self.name, dict.fromkeys(NAME_FIELDS, ""))
        if self.scheduler:
            parse_scheduler(self.scheduler)
        if self.split_rows is not None:
            check_split_rows(self.split_rows)
            if not self.scheduler:
                raise UsageError(
                    "--split-rows runs the row bands on a Dask cluster: give --scheduler too (e.g. local:2)"
                )

    @property
    def is_batch(self) -> bool:
        return is_batch(self.inputs, self.output)


@dataclass(frozen=True)
class RunReport:
    """What a run did: one SceneResult per scene (the JSON log's lines) and, for a single scene, its UpscaleResult."""

    batch: bool
    scenes: tuple[SceneResult, ...]
    result: Optional[UpscaleResult] = None

    @property
    def failed(self) -> list[SceneResult]:
        return failed(self.scenes)


def run(
    request: RunRequest,
    *,
    on_scene: Optional[SceneCallback] = None,
    progress_for: Optional[Callable[[SceneJob], Optional[Progress]]] = None,
) -> RunReport:
    """Run the request. `on_scene` sees each batch scene's result as soon as it is known; `progress_for(job)` may
    give a scene its progress(done, total) callback (scenes run in this process only).

    A single scene raises its error (after logging it); a batch records failed scenes and goes on (RunReport.failed).
    SIGINT/SIGTERM raise Interrupted (exit 130/143 at the CLI), in every stage, saying what was completed."""
    with raise_on_signals(outcome=""):  # expanding inputs and sweeping folders too
        if not request.is_batch:
            check_output_name(Path(request.output))  # before the lock file beside it is made
            if request.scheduler and request.split_rows is None:
                raise UsageError(
                    "--scheduler distributes the scenes of a batch: give several inputs or a directory -o, or --split-rows"
                )
            job = SceneJob(request.inputs[0], Path(request.output))
            check_log_path(request.log_json, [job])
            if request.split_rows is None:
                progress = progress_for(job) if progress_for is not None else None
                return run_one(job, request.settings, force=request.force, log_json=request.log_json, progress=progress)
            return RunReport(False, tuple(run_many([job], request, on_scene=on_scene)))
        jobs = plan_batch(request)
        with job_lock(Path(request.output)):  # one batch per output folder at a time (JobBusy: exit 75)
            return RunReport(True, tuple(run_many(jobs, request, on_scene=on_scene, progress_for=progress_for)))


def plan_batch(request: RunRequest) -> list[SceneJob]:
    """The batch's jobs, its log path checked against them, and its output folder made (before any scene)."""
    sources = expand_inputs(request.inputs)
    output = Path(request.output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output} must be a directory when several scenes are written")
    jobs = plan_jobs(sources, output, request.settings, request.name)
    for source in dict.fromkeys(job.src for job in jobs):  # outputs inside a .SAFE would be redone on every rerun
        if is_input_path(output, source):
            raise UsageError(f"-o {output} is inside the input {source}; write the outputs elsewhere")
    check_log_path(request.log_json, jobs)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory {output}: {exc.strerror or exc}") from None
    return jobs


def run_one(
    job: SceneJob,
    settings: UpscaleSettings,
    *,
    force: bool = False,
    log_json: Optional[Path] = None,
    progress: Optional[Progress] = None,
) -> RunReport:
    """One scene to one path, as before batches existed: an existing DST needs overwrite (or `force`); no skip rule."""
    if force:
        settings = replace(settings, overwrite=True)
    with JsonLog(log_json) as joblog:
        started = time.perf_counter()
        try:
            with output_lock(job.dst):
                result = render_scene(job.src, job.dst, settings, progress=progress)
        except RssrError as error:
            figures = getattr(error, "figures", None)
            seconds = time.perf_counter() - started
            joblog.write(
                SceneResult(
                    job.src,
                    str(job.dst),
                    FAILED,
                    seconds,
                    error.windows,
                    error.skipped_windows,
                    error=str(error),
                    fidelity=figures,
                )
            )
            raise
        scene = SceneResult(job.src, str(job.dst), DONE, result.seconds, **scene_fields(result))
        joblog.write(scene)
    return RunReport(False, (scene,), result)


def run_many(
    jobs: list[SceneJob],
    request: RunRequest,
    *,
    on_scene: Optional[SceneCallback] = None,
    progress_for: Optional[Callable[[SceneJob], Optional[Progress]]] = None,
) -> list[SceneResult]:
    """Run a batch in-process or on Dask; each scene's result goes to the JSON log (and `on_scene`) at once.
    First, what killed runs left in the output folders (staging directories, lock files) is removed."""
    for folder in dict.fromkeys(job.dst.parent for job in jobs):
        for path in sweep_stale(folder):
            logging.getLogger("rssr_cli.pipeline.locks").info("removed %s, left by a run that is gone", path)
    settings, force, finished = request.settings, request.force, []
    with JsonLog(request.log_json) as joblog:

        def record(scene: SceneResult) -> None:
            finished.append(scene)
            joblog.write(scene)
            if on_scene is not None:
                on_scene(scene)

        # An interrupt stops the batch between (or inside) scenes, never mid-write; it says what was completed.
        try:
            with raise_on_signals():
                if request.scheduler:
                    with dask_client(request.scheduler, gpu=settings.model.uses_gpu) as client:
                        if request.split_rows is not None:
                            return run_split_batch_on_dask(
                                jobs, settings, client, request.split_rows, force=force, on_scene=record
                            )
                        return run_batch_on_dask(jobs, settings, client, force=force, on_scene=record)
                return run_batch(jobs, settings, force=force, on_scene=record, progress_for=progress_for)
        except Interrupted as interrupt:
            raise Interrupted(interruption_summary(interrupt.signum, finished, len(jobs)), interrupt.signum) from None


def interruption_summary(signum: int, finished: list[SceneResult], total: int) -> str:
    name = signal.Signals(signum).name
    counts = ", ".join(
        f"{sum(s.status == status for s in finished)} {status}" for status in (DONE, SKIPPED, BUSY, FAILED)
    )
    return f"interrupted by {name} after {len(finished)} of {total} scene(s) ({counts}); the scene in progress was not written"
