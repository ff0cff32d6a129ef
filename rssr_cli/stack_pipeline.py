"""Band stacks (Sentinel-2 products, STAC items) onto one output grid: each band super-resolved from its own grid.

The plan (common grid, each band's placement and scale) is stack_plan.py's. Every band runs on its own native grid,
the model sampling the exact positions of the common grid's pixels; nothing is resampled first. A band whose grid is
the common grid is copied unchanged; coarse Sentinel-2 bands are guided by the 10 m bands (stack_guidance.py).
Each band is streamed (pipeline.stream.stream_tiles) into its own slot of one band-interleaved intermediate GeoTIFF,
which becomes the COG as in pipeline.scene.upscale (atomic, nothing at DST on failure).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window

from .backends import CLASSICAL_METHODS, SRBackend
from .blend import keep_clear_of_nodata
from .cog import OutputSpec, finalize_cog, open_intermediate
from .cog_profiles import cog_options
from .destination import check_destination, staging_dir
from .errors import InputError
from .grid import plan_tiles
from .interrupts import raise_on_signals
from .messages import redact
from .pipeline.plan import RunPlan, scene_radiometry, scene_statistics
from .pipeline.provenance import Provenance, model_choice_tags, region_tags, request_tags
from .pipeline.settings import DEFAULT_TILE, Progress, UpscaleResult, UpscaleSettings, auto_tiling, build_backend, run_method
from .pipeline.stream import plan_writer, stream_tiles
from .products import open_band_stack
from .raster_io import MaskKind, SourceInfo, declared_nodata, gdal_env, inspect_source, open_raster, read_window
from .region import tiles_for_region
from .source_identity import source_identity
from .stack_guidance import COPY_ROWS, Guidance, copy_slot, guides_spec, plan_guidance
from .stack_plan import BandJob, StackPlan, guide_job, plan_stack, request_settings
from .version import __version__

log = logging.getLogger(__name__)


class _BandSlot:
    """The writer of one output band, for blend.write_blended (which writes a [1, h, w] block at a window)."""

    def __init__(self, writer: DatasetWriter, slot: int) -> None:
        self.writer, self.slot = writer, slot

    def write(self, data: np.ndarray, window: Window) -> None:
        self.writer.write(data, indexes=[self.slot], window=window)

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
        stack = open_band_stack(src)
        plan = plan_stack(stack, settings)
        check_destination(dst, overwrite=settings.overwrite, src=str(src))
        method = run_method(settings)
        creation_options = cog_options(settings.profile, plan.dtype, settings.creation_options)
        if backend is None:
            backend = build_backend(method, settings)
        runs = [_BandRun.open(job, plan, settings, method) for job in plan.jobs]  # headers only, closed below
        log.info(
            "%s: %s, %d band(s) -> %dx%d px on %s's grid (x%.4g), %d windows, method %s",
            stack.source, stack.kind, len(plan.jobs), plan.common.width, plan.common.height,
            min(plan.jobs, key=lambda j: j.band.resolution).band.name, plan.common.scale_x, sum(r.windows for r in runs), method,
        )  # fmt: skip
        guidance = plan_guidance(plan, settings, method)
        guide_runs = [_BandRun.open(job, plan, settings, method) for job in guidance.guide_jobs(plan, guide_job)] if guidance else []
        total = sum(run.windows for run in runs if not (guidance and guidance.replaces(run.job)))
        total += sum(run.windows for run in guide_runs) + (guidance.tiles(plan) if guidance else 0)
        spec = stack_output_spec(plan, settings, method, backend, runs, guidance)
        done, skipped = 0, 0

        def step_progress(offset: int) -> Progress:
            def report(n: int, _total: int = 0) -> None:
                if progress is not None:
                    progress(offset + n, total)

            return report

        with staging_dir(dst) as staging:
            guides_path = staging / "guides.tif"
            if guidance:
                with open_intermediate(guides_path, guides_spec(plan)) as guide_writer:
                    for run in guide_runs:
                        skipped += run.execute(guide_writer, backend, step_progress(done))
                        done += run.windows
            intermediate = staging / "stream.tif"
            with open_intermediate(intermediate, spec) as writer:
                for run in runs:
                    staged = guidance.guide_slot(run.job) if guidance else None
                    if staged is not None:
                        copy_slot(guides_path, staged, writer, run.job.slot)
                    elif guidance and guidance.is_guided(run.job):
                        done += guidance.sharpen(run.job, plan, guides_path, writer, step_progress(done))
                    else:
                        skipped += run.execute(writer, backend, step_progress(done))
                        done += run.windows
                blank_outside_footprints(writer, plan)
            finalize_cog(intermediate, dst, creation_options, overwrite=settings.overwrite)
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", dst, seconds)
    window = plan.region.window
    return UpscaleResult(
        dst, int(window.width), int(window.height), len(plan.jobs), plan.dtype, plan.common.scale_x,
        plan.common.scale_y, method, total, skipped, seconds,
    )  # fmt: skip


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

    @classmethod
    def open(cls, job: BandJob, plan: StackPlan, settings: UpscaleSettings, method: str) -> "_BandRun":
        with open_raster(job.band.dataset) as dataset:
            source = with_nodata(inspect_source(dataset), plan.nodata)
        if job.copy:
            return cls(job, plan, settings, method, source, [], 0, 0)
        tile, overlap = auto_tiling(method, job.scale, band_tile(method, job.scale, settings.tile), settings.overlap)
        tiles, _ = tiles_for_region(plan.region, plan_tiles(job.grid, tile=tile, overlap=overlap))
        return cls(job, plan, settings, method, source, tiles, tile, overlap)

    @property
    def windows(self) -> int:
        return sum(len(row) for row in self.tiles)

    def execute(self, writer: DatasetWriter, backend: SRBackend, progress: Progress) -> int:
        """Write this band into its slot; returns the windows skipped as entirely nodata."""
        with open_raster(self.job.band.dataset) as dataset:
            if self.job.copy:
                self._copy(dataset, writer)
                return 0
            bands = (self.job.band.index,)
            radiometry = scene_radiometry(dataset, self.source, bands)
            settings = replace(self.settings, tile=self.tile, overlap=self.overlap, bands=bands)
            output = band_output_spec(self.stack_plan)
            stats = None if self.method in CLASSICAL_METHODS else scene_statistics(dataset, self.source, bands, radiometry)
            run = RunPlan(
                self.source, bands, self.job.grid, self.tiles, radiometry, output, {}, self.method, settings,
                self.stack_plan.region, 0, stats,
            )  # fmt: skip
            slot = _BandSlot(writer, self.job.slot)
            log.info(
                "band %s: %dx%d px at %g -> x%.4g, %d windows", self.job.band.name, self.source.width,
                self.source.height, self.job.band.resolution, self.job.scale, self.windows,
            )  # fmt: skip
            return stream_tiles(dataset, run, backend, plan_writer(slot, run), progress)

    def _copy(self, dataset: DatasetReader, writer: DatasetWriter) -> None:
        """The band is on the common grid: its stored values go straight into the output (AOI and nodata applied)."""
        region, nodata = self.stack_plan.region, self.stack_plan.nodata
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
            writer.write(data, indexes=[self.job.slot], window=Window(0, row - top, width, rows))


def blank_outside_footprints(writer: DatasetWriter, plan: StackPlan) -> None:
    """Nodata where a band has no pixel (its footprint ends inside the output grid): whatever a run wrote there
    (its edge pixels extended by the resampler, a sharpened guide) is beyond the band's data."""
    window = plan.region.window
    top, left = int(window.row_off), int(window.col_off)
    bottom, right = top + int(window.height), left + int(window.width)
    for job in plan.jobs:
        col0, col1, row0, row1 = job.grid.footprint()
        outside = [  # (row_start, row_stop, col_start, col_stop) in full-grid pixels, clipped to the region
            (top, bottom, left, min(col0, right)), (top, bottom, max(col1, left), right),
            (top, min(row0, bottom), left, right), (max(row1, top), bottom, left, right),
        ]
        for r0, r1, c0, c1 in outside:
            if r1 <= r0 or c1 <= c0:
                continue
            assert plan.nodata is not None  # stack_plan.check_footprints: a partial band needs one
            for row in range(r0, r1, COPY_ROWS):
                rows = min(COPY_ROWS, r1 - row)
                block = np.full((1, rows, c1 - c0), plan.nodata, dtype=plan.dtype)
                writer.write(block, indexes=[job.slot], window=Window(c0 - left, row - top, c1 - c0, rows))


CLASSICAL_TILE_HR_PX = 2048  # HR side of a classical window's core: bounds the row accumulator at high scales


def band_tile(method: str, scale: float, tile: Optional[int]) -> Optional[int]:
    """The LR tile of one band's run when none is given. The accumulator spans a tile row of output, so a 60 m band
    at x24 with the classical 256 px tile would hold 6144 full-width output rows; its tile shrinks instead, to
    about CLASSICAL_TILE_HR_PX output px (the model's tile already shrinks with the scale: pipeline.settings.auto_tiling)."""
    if tile is not None or method not in CLASSICAL_METHODS:
        return tile
    return int(min(DEFAULT_TILE, max(32, round(CLASSICAL_TILE_HR_PX / scale))))


def with_nodata(source: SourceInfo, nodata: Optional[float]) -> SourceInfo:
    """raster_io.declared_nodata's rule on a band file's SourceInfo (Sentinel-2: 0 marks pixels outside the swath).
    A file with a mask of its own but no nodata value keeps the mask: a SourceInfo reads through one mask kind."""
    value = declared_nodata(source.nodata, nodata)
    if value is None or source.mask_kind != MaskKind.NONE:
        return source
    return replace(source, nodata=value, mask_kind=MaskKind.NODATA)


def band_output_spec(plan: StackPlan) -> OutputSpec:
    """What blend.write_blended needs to know of one band's slot: its dtype and how invalid pixels are marked."""
    window = plan.region.window
    return OutputSpec(
        width=int(window.width), height=int(window.height), transform=plan.region.transform(plan.common), crs=None,
        dtype=plan.dtype, nodata=plan.nodata, internal_mask=False, descriptions=(None,),
        colorinterp=(ColorInterp.gray,), scales=(1.0,), offsets=(0.0,), tags={}, band_tags=({},),
    )  # fmt: skip


def stack_output_spec(
    plan: StackPlan, settings: UpscaleSettings, method: str, backend: SRBackend, runs: Sequence[_BandRun],
    guidance: Optional[Guidance] = None,
) -> OutputSpec:
    """The output: common grid (or the AOI's window of it), band names as descriptions, per-band provenance."""
    if plan.nodata is None and any(run.source.mask_kind != MaskKind.NONE for run in runs):
        raise InputError(f"{plan.stack.source}: some bands mark invalid pixels but the output has no nodata value to keep them")
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
        "RSSR_BAND_SCALES": ",".join(f"{job.band.name}:{'copy' if job.copy else format(job.scale, '.6g')}" for job in plan.jobs),
        **request_tags(settings, Provenance.of(method, backend)),
        **model_choice_tags(settings, method),
        **source_identity(plan.stack.source),  # a batch redoes the scene when the product was replaced
    }
    if plan.region.aoi is not None:
        tags |= region_tags(plan.region, common)
    if guidance:
        tags |= guidance.tags(plan)
    band_tags = tuple(
        {
            "RSSR_NATIVE_RESOLUTION": f"{job.band.resolution:g}",
            "RSSR_SCALE_XY": "1,1 (copied)" if job.copy else f"{job.grid.scale_x:.10g},{job.grid.scale_y:.10g}",
            "RSSR_SOURCE": redact(job.band.dataset),  # a signed URL's credentials stay out of the file
            **({} if job.copy or (guidance and guidance.replaces(job)) else {"RSSR_TILE": str(run.tile), "RSSR_OVERLAP": str(run.overlap)}),
            **(guidance.band_tags(job) if guidance else {}),
        }
        for job, run in zip(plan.jobs, runs)
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
