"""Band stacks (Sentinel-2 products, STAC items) onto one output grid: each band super-resolved from its own grid.

The common output grid is the finest requested band's grid at the requested scale or resolution: its bounds are
that band's bounds (the pipeline's usual rule). Every band is then run on its own native grid with the common grid
*placed* on it (grid.Placement: offset and step in that band's pixel coordinates, exact, whatever the grids'
origins), so a 20 m band at 2.5 m runs at x8 and a 60 m band at x24, and the model samples the exact positions of
the common grid's pixels; nothing is resampled first. A band whose grid is the common grid is copied unchanged.
Each band is streamed (pipeline.stream.stream_tiles) into its own slot of one band-interleaved intermediate GeoTIFF,
which becomes the COG as in pipeline.scene.upscale (atomic, nothing at DST on failure).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence, cast

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window

from . import __version__
from .aoi import aoi_in_raster_crs
from .backends import CLASSICAL_METHODS, SRBackend
from .blend import keep_clear_of_nodata
from .cog import OutputSpec, check_destination, cog_options, finalize_cog, open_intermediate, staging_dir
from .errors import InputError, UsageError
from .grid import MAX_SCALE, OutputGrid, Placement, check_resolution, format_resolution, plan_tiles
from .interrupts import raise_on_signals
from .pipeline.plan import RunPlan, scene_radiometry, scene_statistics
from .pipeline.provenance import Provenance, region_tags, request_tags
from .pipeline.settings import DEFAULT_TILE, Progress, UpscaleResult, UpscaleSettings, auto_tiling, build_backend, run_method
from .pipeline.stream import plan_writer, stream_tiles
from .products import DEFAULT_PRODUCT_BANDS, BandStack, StackBand, check_compatible, is_band_stack, open_band_stack
from .raster_io import MaskKind, SourceInfo, gdal_env, inspect_source, open_raster, read_window
from .region import OutputRegion, aoi_region, tiles_for_region, whole_grid
from .source_identity import source_identity
from .stack_guidance import Guidance, copy_slot, guides_spec, plan_guidance

log = logging.getLogger(__name__)

COPY_ROWS = 256  # rows per read/write when a band is copied unchanged
SAME_GRID_TOLERANCE = 1e-6  # of a source pixel: a band this close to the common grid is on it


def request_settings(src: str | os.PathLike, settings: UpscaleSettings) -> UpscaleSettings:
    """The request as recorded in the output's tags: for a band stack, no --bands means the four 10 m bands and
    guidance is on unless turned off. Batch skip rules compare these tags, so pipeline.scenes.process_scene applies this too."""
    if not is_band_stack(str(src)):
        return settings
    if settings.bands is None:
        settings = replace(settings, bands=DEFAULT_PRODUCT_BANDS)
    return settings if settings.guidance is not None else replace(settings, guidance=True)


def plan_common_grid(
    finest: StackBand, *, scale: Optional[float], resolution: Optional[float | tuple[float, float]]
) -> OutputGrid:
    """The finest band's grid at `scale` (relative to it) or `resolution` (square, or (x, y) like gdalwarp -tr):
    same bounds, round(W*sx) x round(H*sy) px. Scale 1 is allowed (e.g. --resolution 10 with 10 m and 20 m
    bands: the 10 m bands are copied)."""
    if (scale is None) == (resolution is None):
        raise UsageError("give exactly one of --scale or --resolution")
    pixel_x, pixel_y = abs(finest.transform.a), abs(finest.transform.e)
    if resolution is not None:
        res_x, res_y = check_resolution(resolution)
        scale_x, scale_y = pixel_x / res_x, pixel_y / res_y
    else:
        assert scale is not None
        scale_x = scale_y = scale
    if not all(math.isfinite(v) and v >= 1.0 - 1e-9 for v in (scale_x, scale_y)):
        target = format_resolution(resolution) if resolution is not None else f"{finest.resolution / cast(float, scale):g}"
        raise UsageError(
            f"rssr only upsamples: the target pixel size {target} is coarser than band {finest.name}'s {finest.resolution:g}"
        )
    width = max(1, round(finest.width * scale_x))
    height = max(1, round(finest.height * scale_y))
    transform = finest.transform @ Affine.scale(finest.width / width, finest.height / height)
    return OutputGrid(finest.width, finest.height, width, height, transform)


def guide_job(slot: int, band: StackBand, common: OutputGrid) -> "BandJob":
    """A guide band's run onto the common grid (a slot of the staged guides file)."""
    grid = band_grid(band, common)
    return BandJob(slot, band, grid, is_same_grid(grid))


def band_grid(band: StackBand, common: OutputGrid) -> OutputGrid:
    """The common grid placed on a band's own grid (exact offsets and steps in that band's pixels)."""
    t, b = common.transform, band.transform
    placement = Placement(x0=(t.c - b.c) / b.a, y0=(t.f - b.f) / b.e, dx=t.a / b.a, dy=t.e / b.e)
    return OutputGrid(band.width, band.height, common.width, common.height, t, placement)


def is_same_grid(grid: OutputGrid) -> bool:
    """The band's grid is the common grid: its pixels are copied, not resampled."""
    p = grid.placement
    assert p is not None
    tol = SAME_GRID_TOLERANCE
    return (
        grid.src_width == grid.width and grid.src_height == grid.height
        and abs(p.x0) < tol and abs(p.y0) < tol and abs(p.dx - 1) < tol / max(grid.width, 1) and abs(p.dy - 1) < tol / max(grid.height, 1)
    )  # fmt: skip


@dataclass(frozen=True)
class BandJob:
    """One output band: where it comes from and how its native grid maps onto the common grid."""

    slot: int  # 1-based output band
    band: StackBand
    grid: OutputGrid  # the common grid placed on the band's grid
    copy: bool

    @property
    def scale(self) -> float:
        return max(self.grid.scale_x, self.grid.scale_y)


@dataclass(frozen=True)
class StackPlan:
    stack: BandStack
    common: OutputGrid
    region: OutputRegion
    jobs: tuple[BandJob, ...]
    nodata: Optional[float]
    dtype: str


def plan_stack(stack: BandStack, settings: UpscaleSettings) -> StackPlan:
    """Validate the request against the stack (bands, grids, scales, AOI) before any pixel is read."""
    if settings.fidelity is not None:
        raise UsageError("--report/--max-shift/--max-consistency-error are not supported for band stacks (products, STAC items) yet")
    selected = stack.select(settings.bands)
    check_compatible(selected, stack.source)
    finest = min(selected, key=lambda b: b.resolution)  # the first of the finest, in the order asked
    common = plan_common_grid(finest, scale=settings.scale, resolution=settings.resolution)
    jobs = []
    for slot, band in enumerate(selected, start=1):
        grid = band_grid(band, common)
        if min(grid.scale_x, grid.scale_y) < 1.0 - 1e-9:
            raise UsageError(f"band {band.name} ({band.resolution:g}) is finer than the output pixels; rssr only upsamples")
        if grid.scale_x > MAX_SCALE or grid.scale_y > MAX_SCALE:
            raise UsageError(
                f"band {band.name} would need x{max(grid.scale_x, grid.scale_y):.4g}, above the supported maximum of "
                f"x{MAX_SCALE:g}; choose a coarser --resolution or leave the band out"
            )
        jobs.append(BandJob(slot, band, grid, is_same_grid(grid)))
    region = whole_grid(common) if settings.aoi is None else aoi_region(common, aoi_in_raster_crs(settings.aoi, finest.crs))
    nodata = output_nodata(stack, selected, settings.nodata)
    return StackPlan(stack, common, region, tuple(jobs), nodata, selected[0].dtype)


def output_nodata(stack: BandStack, bands: Sequence[StackBand], given: Optional[float]) -> Optional[float]:
    """The nodata value of the output: the one given (--nodata), else the one the band files declare, else the
    product's convention (0 for Sentinel-2)."""
    if given is not None:
        return float(given)
    declared = {b.nodata for b in bands if b.nodata is not None}
    if len(declared) == 1:
        return float(declared.pop())
    if len(declared) > 1:
        raise InputError(f"{stack.source}: the bands declare different nodata values ({', '.join(map(str, sorted(declared)))})")
    return stack.default_nodata


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


CLASSICAL_TILE_HR_PX = 2048  # HR side of a classical window's core: bounds the row accumulator at high scales


def band_tile(method: str, scale: float, tile: Optional[int]) -> Optional[int]:
    """The LR tile of one band's run when none is given. The accumulator spans a tile row of output, so a 60 m band
    at x24 with the classical 256 px tile would hold 6144 full-width output rows; its tile shrinks instead, to
    about CLASSICAL_TILE_HR_PX output px (the model's tile already shrinks with the scale: pipeline.settings.auto_tiling)."""
    if tile is not None or method not in CLASSICAL_METHODS:
        return tile
    return int(min(DEFAULT_TILE, max(32, round(CLASSICAL_TILE_HR_PX / scale))))


def with_nodata(source: SourceInfo, nodata: Optional[float]) -> SourceInfo:
    """A band file that declares no nodata takes the stack's (Sentinel-2: 0 marks pixels outside the swath)."""
    if nodata is None or source.mask_kind != MaskKind.NONE:
        return source
    return replace(source, nodata=nodata, mask_kind=MaskKind.NODATA)


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
            "RSSR_SOURCE": job.band.dataset,
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


# ------------------------------------------------------------------------------------------------ info


@dataclass(frozen=True)
class StackReport:
    """A band stack's bands with their native grids and, given a scale or resolution, the output upscale would
    write (common grid, each band's scale)."""

    source: str
    kind: str
    bands: tuple[StackBand, ...]
    nodata: Optional[float]
    selected: tuple[str, ...]  # what upscale would write with these --bands
    grid: Optional[OutputGrid]  # the common output grid, when a scale or resolution was given
    band_scales: tuple[tuple[str, Optional[float]], ...]  # (name, scale; None = copied)


def describe_stack(src: str | os.PathLike, *, scale: Optional[float] = None, resolution: Optional[float | tuple[float, float]] = None,
                   bands: Optional[Sequence[int | str]] = None) -> StackReport:  # fmt: skip
    """Headers only: the stack's bands and what `upscale` would make of them."""
    with gdal_env():
        stack = open_band_stack(src)
    selected = stack.select(bands if bands is not None else DEFAULT_PRODUCT_BANDS)
    grid = None
    scales: tuple[tuple[str, Optional[float]], ...] = ()
    if scale is not None or resolution is not None:
        finest = min(selected, key=lambda b: b.resolution)
        grid = plan_common_grid(finest, scale=scale, resolution=resolution)
        placed = [band_grid(b, grid) for b in selected]
        scales = tuple((b.name, None if is_same_grid(g) else max(g.scale_x, g.scale_y)) for b, g in zip(selected, placed))
    nodata = output_nodata(stack, selected, None)
    return StackReport(stack.source, stack.kind, stack.bands, nodata, tuple(b.name for b in selected), grid, scales)
