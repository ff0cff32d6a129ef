"""Band stacks (Sentinel-2 products, STAC items) onto one output grid: each band super-resolved from its own grid.

The plan (common grid, each band's placement and scale) is stack_plan.py's. Every band runs on its own native grid,
the model sampling the exact positions of the common grid's pixels; nothing is resampled first. A band whose grid is
the common grid is copied unchanged; coarse Sentinel-2 bands are guided by the 10 m bands (stack_guidance.py).
Each band is streamed (pipeline.stream.stream_tiles) into its own slot of one band-interleaved intermediate GeoTIFF,
which becomes the COG as in pipeline.scene.upscale (atomic, nothing at DST on failure). StackRun writes a plan's
region: the whole output here, one row part of it for --split-rows (pipeline.split). The bands run in the
output's order; a whole run does so in the output's resume folder when every band read is local (resume.py): an
interrupted run continues from the bands written and the rows of the band it stopped in.

The modules by job: stack_band.py (one band's run on its own grid), stack_output.py (the output's spec, tags and
result), stack_fidelity.py (--report on a stack), stack_spread.py (the --samples K side-car: such a run does not
resume); this one runs them in order and publishes the COG.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, cast

from rasterio.io import DatasetWriter

from rssr_cli.backends import SRBackend
from rssr_cli.core.interrupts import raise_on_signals
from rssr_cli.evaluation.fidelity_report import FidelityReport
from rssr_cli.io.cog import CogLayer, OutputSpec, open_intermediate, open_optional_intermediate
from rssr_cli.io.cog_profiles import cog_options
from rssr_cli.io.destination import check_destination
from rssr_cli.io.products import open_band_stack
from rssr_cli.io.raster_io import gdal_env
from rssr_cli.pipeline.plan import check_spread_destination
from rssr_cli.pipeline.provenance import Provenance
from rssr_cli.pipeline.report import SPREAD_INTERMEDIATE, publish
from rssr_cli.pipeline.resume import INTERMEDIATE, ResumableWriter, Resume, StackState, resume_key, run_staging
from rssr_cli.pipeline.settings import Progress, UpscaleResult, UpscaleSettings, build_backend, run_method
from rssr_cli.pipeline.spread import SpreadLayer
from rssr_cli.pipeline.stack_band import BandRun, band_runs, blank_outside_footprints
from rssr_cli.pipeline.stack_fidelity import assess_stack_fidelity
from rssr_cli.pipeline.stack_guidance import Guidance, plan_guidance
from rssr_cli.pipeline.stack_output import read_band_files, stack_output_spec, stack_result
from rssr_cli.pipeline.stack_plan import StackPlan, plan_stack, request_settings
from rssr_cli.pipeline.stack_spread import finish_spread, with_spread

log = logging.getLogger(__name__)


def upscale_stack(
    src: str | os.PathLike,
    dst: str | Path,
    settings: UpscaleSettings,
    *,
    progress: Optional[Progress] = None,
    backend: Optional[SRBackend] = None,
) -> UpscaleResult:
    """Super-resolve the requested bands of a band stack onto one grid, as one COG at `dst` (see module doc)."""
    settings = request_settings(src, settings)
    dst = Path(dst)
    started = time.perf_counter()
    with raise_on_signals(), gdal_env(settings.threads):
        plan = plan_stack(open_band_stack(src), settings)
        check_destination(dst, overwrite=settings.overwrite, src=str(src))
        creation_options = cog_options(settings.profile, plan.dtype, settings.creation_options)
        run = StackRun.of(plan, settings, dst, backend)
        key = (
            resume_key(run.spec.tags, run.spec, settings, plan.region.window, band_files=read_band_files(plan))
            if run.spread is None
            else None  # a run with a spread side-car starts from zero (stack_spread.py), as a raster's does
        )
        with run_staging(dst, key, StackState) as resume:  # an interrupted run of this very request resumes
            intermediate = run.write(resume, progress)
            report: Optional[FidelityReport] = None
            sidecars: list[tuple[Path, Path]] = []
            if settings.fidelity is not None:
                report, sidecars = assess_stack_fidelity(plan, run.runs, run.backend, intermediate, dst, resume.folder)
            layers = run.spread_layers(resume.folder)
            publish(intermediate, dst, creation_options, settings.overwrite, report, sidecars, layers)
        skipped = sum(resume.state.skipped)
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", dst, seconds)
    return stack_result(plan, dst, run.provenance, run.total, skipped, seconds, report, run.spread)


@dataclass
class StackRun:
    """A planned stack run, ready to write: each band's run, the guided pass, what it records and its output spec
    (over plan.region: the whole output, or one row part of it), and its spread side-car with --samples K >= 2."""

    plan: StackPlan
    backend: SRBackend
    runs: list[BandRun]
    guidance: Optional[Guidance]
    provenance: Provenance
    spec: OutputSpec
    spread: Optional[SpreadLayer] = None  # the side-car of a run whose backend draws K >= 2 samples (stack_spread.py)

    @classmethod
    def of(
        cls,
        plan: StackPlan,
        settings: UpscaleSettings,
        dst: Path,
        backend: Optional[SRBackend] = None,
        *,
        part: bool = False,
    ) -> "StackRun":
        """Builds the backend (unless given) and loads the sharpener when a band is guided; reads headers only. `dst`:
        where the output goes (a row part's file when `part`: its side-car is not checked against --overwrite)."""
        method = run_method(settings)
        if backend is None:
            backend = build_backend(method, settings)
        runs = band_runs(plan, settings, method)
        guidance = plan_guidance(plan)
        provenance = replace(Provenance.of(method, backend), guidance=guidance.tags() if guidance else {})
        log.info(
            "%s: %s, %d band(s) -> %dx%d px on %s's grid (x%.4g), %d windows, method %s",
            plan.stack.source,
            plan.stack.kind,
            len(plan.jobs),
            plan.common.width,
            plan.common.height,
            min(plan.jobs, key=lambda j: j.band.resolution).band.name,
            plan.common.scale_x,
            sum(r.windows for r in runs),
            method,
        )
        if plan.guides_only:
            log.info("%s read as guides only (not output)", ",".join(job.band.name for job in plan.guides_only))
        spec = stack_output_spec(plan, settings, provenance, runs)
        spread = None
        if provenance.spread:
            check_spread_destination(dst, settings, len(plan.jobs), plan.stack.source, part=part)
            spec, spread = with_spread(spec, plan, dst, settings)
        return cls(plan, backend, runs, guidance, provenance, spec, spread)

    def spread_layers(self, folder: Path) -> list[CogLayer]:
        """The side-car that report.publish builds and publishes with the output (none without a spread layer)."""
        if self.spread is None:
            return []
        return [CogLayer(folder / SPREAD_INTERMEDIATE, self.spread.path, self.spread.creation_options)]

    @property
    def total(self) -> int:
        """The windows (and guided tiles) the run computes."""
        total = sum(run.windows for run in self.runs if not run.job.guided_by)
        return total + (self.guidance.tiles() if self.guidance else 0)

    def write(self, resume: Resume[StackState], progress: Optional[Progress] = None) -> Path:
        """Write every output band into the intermediate, in `resume.folder`; returns the intermediate (the windows
        skipped as entirely nodata are in resume.state). The bands run in the output's order, so `resume.state` says
        which are written and how far the next is: a resumed run skips the bands written and continues the next
        one's stream, its progress counting the windows left (resume.py). With a spread layer, the side-car's
        intermediate is written alongside, in `resume.folder` as report.SPREAD_INTERMEDIATE (such a run does not
        resume: stack_spread.py)."""
        plan, guidance, backend, state = self.plan, self.guidance, self.backend, resume.state
        if self.spread is not None and resume.durable:
            raise ValueError("a run with a spread side-car does not resume: stage it without a resume key")
        steps = [(run, GUIDED if guidance and run.job.guided_by else OWN) for run in self.runs]
        left = sum(
            _windows_left(run, how, guidance, state.band.rows_written if i == state.bands_done else 0)
            for i, (run, how) in enumerate(steps)
            if i >= state.bands_done
        )
        done = 0

        def step_progress() -> Progress:
            offset = done

            def report(n: int, _total: int = 0) -> None:
                if progress is not None:
                    progress(offset + n, left)

            return report

        def run_band(run: BandRun, how: str, writer: DatasetWriter, spread: Optional[DatasetWriter]) -> None:
            nonlocal done
            work, skipped = _windows_left(run, how, guidance, state.band.rows_written), 0
            if how == GUIDED and guidance:
                guidance.sharpen(run.job, writer, step_progress())
            else:
                drawn = (self.spread, spread) if self.spread is not None and spread is not None else None
                skipped = run.execute(
                    writer, backend, step_progress(), spread=drawn, state=state.band, after_row=resume.after_row
                )
            done += work
            state.finish_band(skipped)
            resume.after_row()

        path, held = resume.intermediate(INTERMEDIATE)
        side_car = resume.folder / SPREAD_INTERMEDIATE
        with (
            _tracked(resume, path, self.spec, held) as writer,
            open_optional_intermediate(side_car, self.spread.spec if self.spread is not None else None) as spread,
        ):
            for run, how in steps[state.bands_done :]:
                run_band(run, how, writer, spread)
            blank_outside_footprints(writer, plan)
        if self.spread is not None:
            finish_spread(path, side_car, plan)
        resume.streamed = True
        return path


OWN, GUIDED = "own", "guided"  # how a band is written: by its run (the run's method, or a copy), or sharpened


def _windows_left(run: BandRun, how: str, guidance: Optional[Guidance], rows_written: int) -> int:
    """The windows (tiles, for a guided band) a band's run has left, its stream having written `rows_written`."""
    if how == GUIDED and guidance:
        return guidance.band_tiles()
    return run.windows_left(rows_written)


@contextmanager
def _tracked(resume: Resume[StackState], path: Path, spec: OutputSpec, held: bool) -> Iterator[DatasetWriter]:
    """An intermediate (created, or updated in place when `held`) whose rows the resume's checkpoints flush; a last
    checkpoint when it is complete (a kill after it recomputes none of its bands)."""
    with open_intermediate(path, spec, resume=held) as dataset:
        writer = ResumableWriter(dataset)
        resume.track(writer)
        try:
            yield cast(DatasetWriter, writer)  # it stands for the dataset (it forwards every attribute to it)
            resume.checkpoint()
        finally:
            writer.close()  # the dataset a checkpoint reopened: its rows reach the disk before the side-car is saved
            resume.track(None)
