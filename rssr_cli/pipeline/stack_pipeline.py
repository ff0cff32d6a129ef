"""Band stacks (Sentinel-2 products, STAC items) onto one output grid: each band super-resolved from its own grid.

The plan (common grid, each band's placement and scale) is stack_plan.py's. Every band runs on its own native grid,
the model sampling the exact positions of the common grid's pixels; nothing is resampled first. A band whose grid is
the common grid is copied unchanged; coarse Sentinel-2 bands are guided by the 10 m bands (stack_guidance.py).
Each band is streamed (pipeline.stream.stream_tiles) into its own slot of one band-interleaved intermediate GeoTIFF,
which becomes the COG as in pipeline.scene.upscale (atomic, nothing at DST on failure). StackRun writes a plan's
region: the whole output here, one row part of it for --split-rows (pipeline.split). The bands run in a fixed
order (the staged guides, then the output's bands); a whole run does so in the output's resume folder when every
band read is local (resume.py): an interrupted run continues from the bands written and the rows of the band it
stopped in.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, cast

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window

from rssr_cli.backends import CLASSICAL_METHODS, SRBackend
from rssr_cli.core.errors import InputError
from rssr_cli.core.interrupts import raise_on_signals
from rssr_cli.core.messages import redact
from rssr_cli.core.version import __version__
from rssr_cli.evaluation.fidelity import SampleCrop
from rssr_cli.evaluation.fidelity_bands import OutputBand, measure_bands
from rssr_cli.evaluation.fidelity_report import FidelityReport, check
from rssr_cli.geo.grid import plan_tiles
from rssr_cli.geo.region import OutputRegion, tiles_for_region
from rssr_cli.io.cog import OutputSpec, open_intermediate, write_band
from rssr_cli.io.cog_profiles import cog_options
from rssr_cli.io.destination import check_destination
from rssr_cli.io.products import open_band_stack
from rssr_cli.io.radiometry import keep_clear_of_nodata
from rssr_cli.io.raster_io import MaskKind, SourceInfo, gdal_env, inspect_source, open_raster, read_window, with_nodata
from rssr_cli.io.source_identity import bands_identity
from rssr_cli.pipeline.plan import RunPlan, scene_radiometry, scene_statistics
from rssr_cli.pipeline.provenance import Provenance, model_choice_tags, region_tags, request_tags
from rssr_cli.pipeline.report import crop_sampler, publish, record
from rssr_cli.pipeline.resume import (
    INTERMEDIATE,
    ResumableWriter,
    Resume,
    StackState,
    StreamState,
    resume_key,
    run_staging,
)
from rssr_cli.pipeline.settings import (
    DEFAULT_TILE,
    BandMade,
    Progress,
    UpscaleResult,
    UpscaleSettings,
    auto_tiling,
    build_backend,
    run_method,
)
from rssr_cli.pipeline.stack_guidance import COPY_ROWS, Guidance, guides_spec, plan_guidance
from rssr_cli.pipeline.stack_plan import BandJob, StackPlan, bands_made, plan_stack, request_settings
from rssr_cli.pipeline.stream import plan_writer, stream_tiles, windows_left

log = logging.getLogger(__name__)


class _BandSlot:
    """The writer of one output band, for blend.write_blended (which writes a [1, h, w] block at a window)."""

    def __init__(self, writer: DatasetWriter, slot: int) -> None:
        self.writer, self.slot = writer, slot

    @property
    def name(self) -> str:
        return str(self.writer.name)

    def write(self, data: np.ndarray, window: Window) -> None:
        write_band(self.writer, self.slot, data, window)

    def write_mask(self, *_: Any, **__: Any) -> None:
        raise RuntimeError("band stack outputs mark invalid pixels with a nodata value, not a mask")


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
        run = StackRun.of(plan, settings, backend)
        key = resume_key(run.spec.tags, run.spec, settings, plan.region.window, band_files=read_band_files(plan))
        with run_staging(dst, key, StackState) as resume:  # an interrupted run of this very request resumes
            intermediate = run.write(resume, progress)
            report: Optional[FidelityReport] = None
            sidecars: list[tuple[Path, Path]] = []
            if settings.fidelity is not None:
                report, sidecars = assess_stack_fidelity(plan, run.runs, run.backend, intermediate, dst, resume.folder)
            publish(intermediate, dst, creation_options, settings.overwrite, report, sidecars)
        skipped = sum(resume.state.skipped)
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", dst, seconds)
    return stack_result(plan, dst, run.provenance, run.total, skipped, seconds, report)


def stack_result(
    plan: StackPlan,
    dst: Path,
    provenance: Provenance,
    windows: int,
    skipped: int,
    seconds: float,
    report: Optional[FidelityReport],
) -> UpscaleResult:
    """What a stack run (whole, or joined from row parts: pipeline.split) reports."""
    window = plan.region.window
    return UpscaleResult(
        dst,
        int(window.width),
        int(window.height),
        len(plan.jobs),
        plan.dtype,
        plan.common.scale_x,
        plan.common.scale_y,
        provenance.method,
        windows,
        skipped,
        seconds,
        0,
        report,
        bands_made=made_by(plan.jobs, provenance),
        guides_only=made_by(plan.guides_only, provenance),
    )


GUIDES = "guides.tif"  # the staged guides, beside resume.INTERMEDIATE in the run's staging folder


@dataclass
class StackRun:
    """A planned stack run, ready to write: each band's run, the guided pass, what it records and its output spec
    (over plan.region: the whole output, or one row part of it)."""

    plan: StackPlan
    backend: SRBackend
    runs: list["_BandRun"]
    guidance: Optional[Guidance]
    guide_runs: list["_BandRun"]  # the guides' runs, over the staged window (the region and the sharpener's halo)
    provenance: Provenance
    spec: OutputSpec

    @classmethod
    def of(cls, plan: StackPlan, settings: UpscaleSettings, backend: Optional[SRBackend] = None) -> "StackRun":
        """Builds the backend (unless given) and loads the sharpener when a band is guided; reads headers only."""
        method = run_method(settings)
        if backend is None:
            backend = build_backend(method, settings)
        runs = band_runs(plan, settings, method)
        guidance = plan_guidance(plan)
        guide_runs = (
            [_BandRun.open(job, plan, settings, method, guidance.staged_region) for job in plan.guides]
            if guidance
            else []
        )
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
        return cls(plan, backend, runs, guidance, guide_runs, provenance, spec)

    @property
    def total(self) -> int:
        """The windows (and guided tiles) the run computes."""
        total = sum(run.windows for run in self.runs if not self.plan.from_guides(run.job))
        if self.guidance:
            total += sum(run.windows for run in self.guide_runs) + self.guidance.tiles()
        return total

    def write(self, resume: Resume[StackState], progress: Optional[Progress] = None) -> Path:
        """Stage the guides, then write every output band into the intermediate, in `resume.folder`; returns the
        intermediate (the windows skipped as entirely nodata are in resume.state). The bands run in a fixed order
        (guides, then the output's), so `resume.state` says which are written and how far the next is: a resumed run
        skips the bands written and continues the next one's stream, its progress counting the windows left
        (resume.py)."""
        plan, guidance, backend, state = self.plan, self.guidance, self.backend, resume.state
        steps = [(run, OWN) for run in self.guide_runs] + [(run, _how(run, plan, guidance)) for run in self.runs]
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

        def run_band(run: _BandRun, how: str, writer: DatasetWriter) -> None:
            nonlocal done
            work, skipped = _windows_left(run, how, guidance, state.band.rows_written), 0
            if how == GUIDE_COPY and guidance:
                guidance.copy_guide(guides_path, run.job, writer)
            elif how == GUIDED and guidance:
                guidance.sharpen(run.job, guides_path, writer, step_progress())
            else:
                skipped = run.execute(writer, backend, step_progress(), state=state.band, after_row=resume.after_row)
            done += work
            state.finish_band(skipped)
            resume.after_row()

        guides_path = resume.folder / GUIDES
        n_guides = len(self.guide_runs)
        if guidance and state.bands_done <= n_guides:  # the guides' footprints are blanked before they count
            path, held = resume.intermediate(GUIDES)
            with _tracked(resume, path, guides_spec(plan, guidance.staged), held) as writer:
                for run, how in steps[state.bands_done : n_guides]:
                    run_band(run, how, writer)
                blank_outside_footprints(writer, plan.guides, guidance.staged_region, plan)
        path, held = resume.intermediate(INTERMEDIATE)
        with _tracked(resume, path, self.spec, held) as writer:
            for run, how in steps[state.bands_done :]:
                run_band(run, how, writer)
            blank_outside_footprints(writer, plan.jobs, plan.region, plan)
        resume.streamed = True
        return path


def band_runs(plan: StackPlan, settings: UpscaleSettings, method: str) -> list["_BandRun"]:
    """Each output band's run over the plan's region (headers only, files closed)."""
    return [_BandRun.open(job, plan, settings, method) for job in plan.jobs]


OWN, GUIDE_COPY, GUIDED = "own", "guide copy", "guided"  # how a band is written: its run, a staged guide, sharpened


def _how(run: "_BandRun", plan: StackPlan, guidance: Optional[Guidance]) -> str:
    if guidance and plan.guide_slot(run.job) is not None:
        return GUIDE_COPY
    return GUIDED if guidance and run.job.guided_by else OWN


def _windows_left(run: "_BandRun", how: str, guidance: Optional[Guidance], rows_written: int) -> int:
    """The windows (tiles, for a guided band) a band's run has left, its stream having written `rows_written`."""
    if how == GUIDE_COPY:
        return 0
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


def assess_stack_fidelity(
    plan: StackPlan,
    runs: Sequence["_BandRun"],
    backend: SRBackend,
    intermediate: Path,
    dst: Path,
    staging: Path,
) -> tuple[FidelityReport, list[tuple[Path, Path]]]:
    """`--report` and the thresholds on a stack: every output band measured against its own native band by the
    single-raster engine (evaluation.fidelity_bands), then tagged and staged as for a raster (pipeline.report)."""
    import rasterio

    settings = runs[0].settings
    options = settings.fidelity
    assert options is not None
    bands = [
        OutputBand(
            run.job.slot,
            run.job.band,
            run.job.grid,
            None if run.job.copy or run.job.guided_by else run.sampler(backend),
        )
        for run in runs
    ]
    with rasterio.open(intermediate) as output:
        report = measure_bands(
            output,
            bands,
            plan.region.window,
            source=plan.stack.source,
            method=runs[0].method,
            options=options,
            nodata=plan.nodata,
            scale_xy=(plan.common.scale_x, plan.common.scale_y),
            seed=settings.seed,
        )
    return record(check(report, str(dst)), intermediate, dst, staging, options.write_report)


def made_by(jobs: Sequence[BandJob], provenance: Provenance) -> tuple[BandMade, ...]:
    """How each band was made: the backend's own method and model for the bands it ran, the sharpener for the guided."""
    tags = provenance.backend_tags
    return bands_made(
        jobs, tags.get("method", provenance.method), run_model=tags.get("model"), sharpener=provenance.sharpener
    )


@dataclass
class _BandRun:
    """One band's run: the pipeline's RunPlan for it (tiles over its own grid), or a plain copy."""

    job: BandJob
    stack_plan: StackPlan
    settings: UpscaleSettings
    method: str
    source: SourceInfo
    tiles: list
    tile: int
    overlap: int
    region: OutputRegion  # the part of the common grid it writes: the run's region, or where the guides are staged

    @classmethod
    def open(
        cls,
        job: BandJob,
        plan: StackPlan,
        settings: UpscaleSettings,
        method: str,
        region: Optional[OutputRegion] = None,
    ) -> "_BandRun":
        region = region or plan.region
        with open_raster(job.band.dataset) as dataset:
            source = with_nodata(inspect_source(dataset), plan.nodata)
        if job.copy:
            return cls(job, plan, settings, method, source, [], 0, 0, region)
        tile, overlap = auto_tiling(method, job.scale, band_tile(method, job.scale, settings.tile), settings.overlap)
        tiles, _ = tiles_for_region(region, plan_tiles(job.grid, tile=tile, overlap=overlap))
        return cls(job, plan, settings, method, source, tiles, tile, overlap, region)

    @property
    def windows(self) -> int:
        return sum(len(row) for row in self.tiles)

    def windows_left(self, rows_written: int) -> int:
        """The windows its stream computes when resumed at output row `rows_written` (0: all of them)."""
        return windows_left(self.tiles, self.job.grid.height, rows_written)

    def run_plan(self, dataset: DatasetReader) -> RunPlan:
        """The pipeline's plan of this band's run (its own grid, tiles, radiometry and statistics)."""
        bands = (self.job.band.index,)
        radiometry = scene_radiometry(dataset, self.source, bands)
        settings = replace(self.settings, tile=self.tile, overlap=self.overlap, bands=bands)
        output = band_output_spec(self.stack_plan, self.region)
        stats = None if self.method in CLASSICAL_METHODS else scene_statistics(dataset, self.source, bands, radiometry)
        return RunPlan(
            self.source,
            bands,
            self.job.grid,
            self.tiles,
            radiometry,
            output,
            {},
            self.method,
            settings,
            self.region,
            0,
            stats,
        )

    def sampler(self, backend: SRBackend) -> SampleCrop:
        """This band's method on one LR crop (pipeline.report.crop_sampler on its own plan), for the uncertainty."""

        def sample(core: Window, seeds: Sequence[int]) -> list[np.ndarray]:
            with open_raster(self.job.band.dataset) as dataset:
                return crop_sampler(dataset, self.run_plan(dataset), backend)(core, seeds)

        return sample

    def execute(
        self,
        writer: DatasetWriter,
        backend: SRBackend,
        progress: Progress,
        *,
        state: Optional[StreamState] = None,
        after_row: Optional[Callable[[], None]] = None,
    ) -> int:
        """Write this band into its slot; returns the windows skipped as entirely nodata. `state` and `after_row`:
        stream_tiles' (a resumed band continues its stream; a copy is redone whole)."""
        with open_raster(self.job.band.dataset) as dataset:
            if self.job.copy:
                self._copy(dataset, writer)
                return 0
            run = self.run_plan(dataset)
            slot = _BandSlot(writer, self.job.slot)
            log.info(
                "band %s: %dx%d px at %g -> x%.4g, %d windows",
                self.job.band.name,
                self.source.width,
                self.source.height,
                self.job.band.resolution,
                self.job.scale,
                self.windows,
            )
            return stream_tiles(
                dataset, run, backend, plan_writer(slot, run), progress, state=state, after_row=after_row
            )

    def _copy(self, dataset: DatasetReader, writer: DatasetWriter) -> None:
        """The band is on the common grid: its stored values go straight into the output (AOI and nodata applied)."""
        region, nodata = self.region, self.stack_plan.nodata
        top, left = int(region.window.row_off), int(region.window.col_off)
        height, width = int(region.window.height), int(region.window.width)
        for row in range(top, top + height, COPY_ROWS):
            rows = min(COPY_ROWS, top + height - row)
            data, valid = read_window(dataset, self.source, (self.job.band.index,), Window(left, row, width, rows))
            inside = region.inside(row, rows)
            if inside is not None:
                valid = valid & inside[None]
            if nodata is not None:
                data = keep_clear_of_nodata(data, valid, nodata)
                data[~valid] = nodata
            write_band(writer, self.job.slot, data, Window(0, row - top, width, rows))


def blank_outside_footprints(
    writer: DatasetWriter, jobs: Sequence[BandJob], region: OutputRegion, plan: StackPlan
) -> None:
    """Nodata where a band has no pixel (its footprint ends inside the output grid): whatever a run wrote there
    (its edge pixels extended by the resampler, a sharpened guide) is beyond the band's data. `writer` covers
    `region` of the common grid, the jobs in its slots."""
    window = region.window
    top, left = int(window.row_off), int(window.col_off)
    bottom, right = top + int(window.height), left + int(window.width)
    for job in jobs:
        col0, col1, row0, row1 = job.grid.footprint()
        outside = [  # (row_start, row_stop, col_start, col_stop) in full-grid pixels, clipped to the region
            (top, bottom, left, min(col0, right)),
            (top, bottom, max(col1, left), right),
            (top, min(row0, bottom), left, right),
            (max(row1, top), bottom, left, right),
        ]
        for r0, r1, c0, c1 in outside:
            if r1 <= r0 or c1 <= c0 or plan.nodata is None:  # an output band's: stack_plan.check_footprints
                continue
            for row in range(r0, r1, COPY_ROWS):
                rows = min(COPY_ROWS, r1 - row)
                block = np.full((1, rows, c1 - c0), plan.nodata, dtype=plan.dtype)
                write_band(writer, job.slot, block, Window(c0 - left, row - top, c1 - c0, rows))


CLASSICAL_TILE_HR_PX = 2048  # HR side of a classical window's core: bounds the row accumulator at high scales


def band_tile(method: str, scale: float, tile: Optional[int]) -> Optional[int]:
    """The LR tile of one band's run when none is given. The accumulator spans a tile row of output, so a 60 m band
    at x24 with the classical 256 px tile would hold 6144 full-width output rows; its tile shrinks instead, to
    about CLASSICAL_TILE_HR_PX output px (the model's tile already shrinks with the scale: pipeline.settings.auto_tiling)."""
    if tile is not None or method not in CLASSICAL_METHODS:
        return tile
    return int(min(DEFAULT_TILE, max(32, round(CLASSICAL_TILE_HR_PX / scale))))


def band_output_spec(plan: StackPlan, region: OutputRegion) -> OutputSpec:
    """What blend.write_blended needs to know of one band's slot: its dtype and how invalid pixels are marked."""
    window = region.window
    return OutputSpec(
        width=int(window.width),
        height=int(window.height),
        transform=region.transform(plan.common),
        crs=None,
        dtype=plan.dtype,
        nodata=plan.nodata,
        internal_mask=False,
        descriptions=(None,),
        colorinterp=(ColorInterp.gray,),
        scales=(1.0,),
        offsets=(0.0,),
        tags={},
        band_tags=({},),
    )


def read_bands_identity(plan: StackPlan) -> dict[str, str]:
    """The identity of the band files this run reads (its bands and the guides its guided bands read): a change to
    any of them redoes the scene in a batch, a change to a file it does not read (manifest.safe) does not."""
    return bands_identity(_read_bands(plan).items())


def read_band_files(plan: StackPlan) -> list[str]:
    """The GDAL datasets of the band files this run reads (read_bands_identity's)."""
    return list(_read_bands(plan).values())


def _read_bands(plan: StackPlan) -> dict[str, str]:
    return {job.band.name: job.band.dataset for job in (*plan.jobs, *plan.guides)}


def stack_output_spec(
    plan: StackPlan,
    settings: UpscaleSettings,
    provenance: Provenance,
    runs: Sequence[_BandRun],
) -> OutputSpec:
    """The output: common grid (or the AOI's window of it), band names as descriptions, per-band provenance (how
    each band was made: RSSR_BAND_METHOD, RSSR_GUIDED_BY, RSSR_BAND_MODEL)."""
    if plan.nodata is None and any(run.source.mask_kind != MaskKind.NONE for run in runs):
        raise InputError(
            f"{plan.stack.source}: some bands mark invalid pixels but the output has no nodata value to keep them"
        )
    window = plan.region.window
    common = plan.common
    finest = min(plan.jobs, key=lambda j: j.band.resolution).band
    pixel = (abs(common.transform.a), abs(common.transform.e))
    tags = {
        "RSSR_VERSION": __version__,
        "RSSR_SCALE_XY": f"{common.scale_x:.10g},{common.scale_y:.10g}",
        "RSSR_PIXEL_SIZE": f"{pixel[0]:.10g},{pixel[1]:.10g}",
        "RSSR_PRODUCT": plan.stack.kind,
        "RSSR_GRID_OF": finest.name,
        "RSSR_BAND_NAMES": ",".join(job.band.name for job in plan.jobs),
        "RSSR_BAND_SCALES": ",".join(
            f"{job.band.name}:{'copy' if job.copy else format(job.scale, '.6g')}" for job in plan.jobs
        ),
        **request_tags(settings, provenance),
        **model_choice_tags(settings, provenance.method),
        **read_bands_identity(plan),  # a batch redoes the scene when a band it read was replaced
    }
    if plan.region.aoi is not None:
        tags |= region_tags(plan.region, common)
    tags |= provenance.guidance  # the sharpener's, when bands are guided
    band_tags = tuple(
        {
            "RSSR_NATIVE_RESOLUTION": f"{job.band.resolution:g}",
            "RSSR_SCALE_XY": "1,1 (copied)" if job.copy else f"{job.grid.scale_x:.10g},{job.grid.scale_y:.10g}",
            "RSSR_SOURCE": redact(job.band.dataset),  # a signed URL's credentials stay out of the file
            **(
                {}
                if job.copy or plan.from_guides(job)
                else {"RSSR_TILE": str(run.tile), "RSSR_OVERLAP": str(run.overlap)}
            ),
            "RSSR_BAND_METHOD": made.method,
            **({"RSSR_GUIDED_BY": ",".join(made.guided_by)} if made.guided_by else {}),
            **({"RSSR_BAND_MODEL": made.model} if made.model else {}),
        }
        for job, run, made in zip(plan.jobs, runs, made_by(plan.jobs, provenance))
    )
    return OutputSpec(
        width=int(window.width),
        height=int(window.height),
        transform=plan.region.transform(common),
        crs=finest.crs,
        dtype=plan.dtype,
        nodata=plan.nodata,
        internal_mask=False,
        descriptions=tuple(job.band.name for job in plan.jobs),
        colorinterp=tuple(ColorInterp.gray if i == 0 else ColorInterp.undefined for i in range(len(plan.jobs))),
        scales=tuple(run.source.scales[job.band.index - 1] for job, run in zip(plan.jobs, runs)),
        offsets=tuple(run.source.offsets[job.band.index - 1] for job, run in zip(plan.jobs, runs)),
        tags=tags,
        band_tags=band_tags,
        interleave="band",
    )
