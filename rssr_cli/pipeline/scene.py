"""One scene: `upscale(src, dst, settings)` super-resolves a raster into a COG that lines up with the input.

Data flows one way (DESIGN.md): open + validate the source -> plan the output grid and the tiles (plan.py) ->
per tile row: read, normalize, run the backend, blend, write finished rows (stream.py, blend.py) -> measure
fidelity when asked (report.py) -> finalize the COG atomically (with its spread side-car for --samples K >= 2).
Band stacks (Sentinel-2 products, STAC items, band folders) take their own path (stack_run.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from rasterio.io import DatasetReader

from rssr_cli.backends import SRBackend
from rssr_cli.core.errors import RssrError, UsageError
from rssr_cli.core.interrupts import raise_on_signals
from rssr_cli.evaluation.fidelity_report import FidelityReport
from rssr_cli.io.cog import open_intermediate
from rssr_cli.io.destination import check_output_name, staging_dir
from rssr_cli.io.products import is_band_stack
from rssr_cli.io.raster_io import gdal_env, open_raster
from rssr_cli.pipeline.locks import output_lock
from rssr_cli.pipeline.model_choice import with_scene_model
from rssr_cli.pipeline.plan import RunPlan, plan_run
from rssr_cli.pipeline.report import finish, open_spread_intermediate
from rssr_cli.pipeline.resume import (
    INTERMEDIATE,
    ResumableWriter,
    Resume,
    StreamState,
    resumable_staging,
    resume_key,
)
from rssr_cli.pipeline.settings import Progress, UpscaleResult, UpscaleSettings
from rssr_cli.pipeline.stack_run import upscale_stack
from rssr_cli.pipeline.stream import plan_writer, stream_tiles

log = logging.getLogger(__name__)


def upscale(
    src: str | Path,
    dst: str | Path,
    settings: Optional[UpscaleSettings] = None,
    *,
    progress: Optional[Progress] = None,
    backend: Optional[SRBackend] = None,
    **overrides: Any,
) -> UpscaleResult:
    """Super-resolve `src` into a COG at `dst`, holding `dst`'s lock (locks.py: OutputBusy at once if another run
    writes it). Keyword overrides replace settings fields: upscale(a, b, scale=4.5).

    `backend`: an already built backend for settings.method (a batch loads its model once for every scene).
    For skip rules, a JSON log and many scenes, see pipeline.api.run."""
    for name, value in (("src", src), ("dst", dst)):
        if not isinstance(value, (str, os.PathLike)):
            raise UsageError(f"upscale's {name} must be a path or URL, not {value!r} ({type(value).__name__})")
    if settings is not None and not isinstance(settings, UpscaleSettings):
        raise UsageError(f"upscale's settings must be an UpscaleSettings, not {type(settings).__name__}")
    settings = replace(settings or UpscaleSettings(), **overrides)
    settings.require_target()
    dst = Path(dst)
    check_output_name(dst)  # before the lock file beside it is made
    with output_lock(dst):
        return render_scene(src, dst, settings, progress=progress, backend=backend)


def render_scene(
    src: str | Path,
    dst: Path,
    settings: UpscaleSettings,
    *,
    progress: Optional[Progress] = None,
    backend: Optional[SRBackend] = None,
) -> UpscaleResult:
    """upscale's work, for a caller that already holds the output's lock. Without a `backend`, the scene's model is
    chosen here (model_choice.with_scene_model: --model, $RSSR_MODEL, else the input's rule)."""
    if backend is None:
        settings = with_scene_model(src, settings)
    if is_band_stack(str(src)):  # a Sentinel-2 product or STAC item: bands of several grids onto one
        return upscale_stack(src, dst, settings, progress=progress, backend=backend)
    started = time.perf_counter()
    windows_done = [0]

    def track(done: int, total: int) -> None:
        windows_done[0] = done
        if progress is not None:
            progress(done, total)

    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan, backend = plan_run(dataset, src, dst, settings, backend)
        skipped = 0
        key = (
            resume_key(plan.output.tags, plan.output, plan.settings, plan.region.window)
            if plan.spread is None
            else None
        )
        try:
            if key is not None:  # an interrupted run of this very request resumes (resume.py)
                with resumable_staging(dst, key, StreamState) as resume:
                    skipped, report = _resumable_scene(dataset, plan, backend, dst, resume, track)
            else:
                with staging_dir(dst) as staging:
                    intermediate = staging / "stream.tif"
                    with (
                        open_intermediate(intermediate, plan.output) as writer,
                        open_spread_intermediate(staging, plan) as spread,
                    ):
                        skipped = stream_tiles(dataset, plan, backend, plan_writer(writer, plan, spread), track)
                    report = finish(dataset, plan, backend, intermediate, dst, staging)
        except RssrError as error:  # the JSON log reports the work done before the failure, not 0
            error.windows, error.skipped_windows = windows_done[0], skipped
            raise
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", dst, seconds)
    grid, window = plan.grid, plan.region.window
    return UpscaleResult(
        dst,
        int(window.width),
        int(window.height),
        len(plan.bands),
        plan.source.dtype,
        grid.scale_x,
        grid.scale_y,
        plan.method,
        plan.window_count,
        skipped,
        seconds,
        plan.outside_aoi_windows,
        report,
        spread=plan.spread.path if plan.spread is not None else None,
    )


def _resumable_scene(
    dataset: DatasetReader,
    plan: RunPlan,
    backend: SRBackend,
    dst: Path,
    resume: Resume[StreamState],
    track: Progress,
) -> tuple[int, Optional[FidelityReport]]:
    """render_scene's stream and finish in a resume folder: checkpointed as it goes, continued where it stopped."""
    intermediate, held = resume.intermediate(INTERMEDIATE)
    with open_intermediate(intermediate, plan.output, resume=held) as dataset_writer:
        writer = ResumableWriter(dataset_writer)
        resume.track(writer)
        try:
            skipped = stream_tiles(
                dataset, plan, backend, plan_writer(writer, plan), track, state=resume.state, after_row=resume.after_row
            )
            resume.checkpoint()  # a kill during the COG build (minutes for a large scene) recomputes nothing
        finally:
            writer.close()  # the dataset a checkpoint reopened: its rows reach the disk before the side-car is saved
    resume.streamed = True
    return skipped, finish(dataset, plan, backend, intermediate, dst, resume.folder)
