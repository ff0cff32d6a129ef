"""Band stacks (Sentinel-2 products, STAC items): the plan of a run, before any pixel is read.

The common output grid is the finest requested band's grid at the requested scale or resolution: its bounds are
that band's bounds (the pipeline's usual rule). Every band is then run on its own native grid with the common grid
*placed* on it (grid.Placement: offset and step in that band's pixel coordinates, exact, whatever the grids'
origins), so a 20 m band at 2.5 m runs at x8 and a 60 m band at x24. A band whose grid is the common grid is copied.
How each band is made (copied, guided by the 10 m bands, or run by the run's method) is decided here once, by the
band rule (sharpen.bands.guides_for): a guided band's guides are read whether or not they are output (a requested
guide band is made like any other band; one not requested is only read, by the sharpener).
`rssr info` on a stack describes the same plan (describe_stack). Execution: stack_run.py (with stack_band.py, stack_output.py).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, replace
from typing import Optional, Sequence

from rssr_cli.backends import CLASSICAL_METHODS
from rssr_cli.core.errors import InputError, RssrWarning, UsageError
from rssr_cli.core.interrupts import interruptible
from rssr_cli.geo.band_names import canonical_band_name
from rssr_cli.geo.grid import OutputGrid, check_scale, format_resolution, placed_grid, plan_output_grid
from rssr_cli.geo.region import OutputRegion, aoi_region, row_band, whole_grid
from rssr_cli.io.aoi import aoi_in_raster_crs
from rssr_cli.io.products import (
    DEFAULT_PRODUCT_BANDS,
    BandStack,
    StackBand,
    check_compatible,
    is_band_stack,
    open_band_stack,
)
from rssr_cli.io.raster_io import check_nodata_fits, gdal_env
from rssr_cli.pipeline.model_choice import input_model_choice
from rssr_cli.pipeline.model_rule import InputFacts, ModelChoice
from rssr_cli.pipeline.settings import BandMade, UpscaleSettings, run_method
from rssr_cli.sharpen.bands import (
    GUIDE_BANDS,
    SHARPENER_ENV,
    default_sharpener_path,
    guided_scale_ok,
    guides_for,
    sharpener_card,
    sharpener_name,
)

log = logging.getLogger(__name__)

SAME_GRID_TOLERANCE = 1e-6  # of a source pixel: a band this close to the common grid is on it


def request_settings(src: str | os.PathLike, settings: UpscaleSettings) -> UpscaleSettings:
    """The request as recorded in the output's tags: for a band stack, no --bands means the four 10 m bands and
    guidance is on unless turned off, or the method is a classical resampler (which no band's guides change).
    Batch skip rules compare these tags, so pipeline.scenes.process_scene applies this too."""
    if not is_band_stack(str(src)):
        return settings
    if settings.bands is None:
        settings = replace(settings, bands=DEFAULT_PRODUCT_BANDS)
    elif not (len(settings.bands) == 1 and str(settings.bands[0]).lower() == "all"):
        # one spelling per band (b04, B4, red -> B04): a rerun spelling the same band otherwise is the same request
        bands = tuple(canonical_band_name(b) if isinstance(b, str) and not b.isdigit() else b for b in settings.bands)
        settings = replace(settings, bands=bands)
    return replace(settings, guidance=guidance_asked(settings))


def plan_common_grid(
    finest: StackBand, *, scale: Optional[float], resolution: Optional[float | tuple[float, float]]
) -> OutputGrid:
    """The finest band's grid at `scale` (relative to it) or `resolution` (square, or (x, y) like gdalwarp -tr):
    grid.plan_output_grid's rule on that band. Scale 1 is allowed (e.g. --resolution 10 with 10 m and 20 m
    bands: the 10 m bands are copied)."""
    return plan_output_grid(
        finest.width,
        finest.height,
        finest.transform,
        scale=scale,
        resolution=resolution,
        allow_copy=True,
        of=f"band {finest.name}'s",
    )


def band_grid(band: StackBand, common: OutputGrid) -> OutputGrid:
    """The common grid placed on a band's own grid (exact offsets and steps in that band's pixels)."""
    return placed_grid(band.width, band.height, band.transform, common)


def is_same_grid(grid: OutputGrid) -> bool:
    """The band's grid is the common grid: its pixels are copied, not resampled."""
    p = grid.placement
    assert p is not None
    tol = SAME_GRID_TOLERANCE
    return (
        grid.src_width == grid.width
        and grid.src_height == grid.height
        and abs(p.x0) < tol
        and abs(p.y0) < tol
        and abs(p.dx - 1) < tol / max(grid.width, 1)
        and abs(p.dy - 1) < tol / max(grid.height, 1)
    )


@dataclass(frozen=True)
class BandJob:
    """One output band (or a guide the sharpener reads): where it comes from, how its native grid maps onto the common
    grid, and how it is made: copied, guided by `guided_by`, or run by the run's method."""

    slot: int  # 1-based output band (for a guide: its place among the plan's guides)
    band: StackBand
    grid: OutputGrid  # the common grid placed on the band's grid
    copy: bool
    guided_by: tuple[str, ...] = ()  # the guide bands, when guided (sharpen.bands.guides_for)

    @property
    def scale(self) -> float:
        return max(self.grid.scale_x, self.grid.scale_y)

    def method(self, run: str) -> str:
        """copy, guided, or `run` (the run's method: diffusion, bicubic, ...)."""
        return "copy" if self.copy else "guided" if self.guided_by else run


@dataclass(frozen=True)
class StackPlan:
    stack: BandStack
    common: OutputGrid
    region: OutputRegion
    jobs: tuple[BandJob, ...]
    nodata: Optional[float]
    dtype: str
    guides: tuple[BandJob, ...] = ()  # the guides of the guided jobs, on the common grid (the sharpener reads them)

    @property
    def guides_only(self) -> tuple[BandJob, ...]:
        """The guides that are read but not output (not asked for)."""
        return guides_only(self.jobs, self.guides)


def guidance_asked(settings: UpscaleSettings) -> bool:
    """Guidance is asked (the default) with a model method: a classical resampler stays what it is."""
    return settings.guidance is not False and run_method(settings) not in CLASSICAL_METHODS


def guidance_on(settings: UpscaleSettings) -> bool:
    """Whether a run guides the bands the band rule guides: asked, and a sharpener to run (RSSR_SHARPENER, else the
    shipped one)."""
    return guidance_asked(settings) and (bool(os.environ.get(SHARPENER_ENV)) or default_sharpener_path().is_file())


def plan_jobs(
    stack: BandStack, selected: Sequence[StackBand], common: OutputGrid, *, guided: bool
) -> tuple[BandJob, ...]:
    """Each selected band placed on the common grid: copied when the grid is its own, else guided when the band
    rule says so (and `guided`), else run by the run's method. Checks nothing (plan_stack does)."""
    jobs = []
    for slot, band in enumerate(selected, start=1):
        grid = band_grid(band, common)
        copy = is_same_grid(grid)
        guides = guides_for(band.name, max(grid.scale_x, grid.scale_y), stack.names) if guided and not copy else ()
        jobs.append(BandJob(slot, band, grid, copy, guides))
    return tuple(jobs)


def plan_guides(stack: BandStack, jobs: Sequence[BandJob], common: OutputGrid) -> tuple[BandJob, ...]:
    """The guides the guided jobs need, on the common grid (slot k: the k-th guide); () when none is guided."""
    names = next((job.guided_by for job in jobs if job.guided_by), ())
    by_name = {band.name: band for band in stack.bands}
    return tuple(
        BandJob(k, by_name[name], band_grid(by_name[name], common), is_same_grid(band_grid(by_name[name], common)))
        for k, name in enumerate(names, start=1)
    )


def guides_only(jobs: Sequence[BandJob], guides: Sequence[BandJob]) -> tuple[BandJob, ...]:
    output = {(job.band.dataset, job.band.index) for job in jobs}
    return tuple(g for g in guides if (g.band.dataset, g.band.index) not in output)


def bands_made(
    jobs: Sequence[BandJob], run: str, *, run_model: Optional[str], sharpener: Optional[str]
) -> tuple[BandMade, ...]:
    """How each output band is made, as reported (run summary, --log-json, `rssr info`): method, scale, guides, model."""
    return tuple(
        BandMade(
            job.band.name,
            job.method(run),
            1.0 if job.copy else job.scale,
            job.guided_by,
            None if job.copy else sharpener if job.guided_by else run_model,
        )
        for job in jobs
    )


def guides_read(guides: Sequence[BandJob]) -> tuple[BandMade, ...]:
    """The guides only read (not output), as reported: nothing is made of them; the sharpener reads their native
    pixels at their scale."""
    return tuple(BandMade(job.band.name, "read", 1.0 if job.copy else job.scale) for job in guides)


def plan_stack(stack: BandStack, settings: UpscaleSettings, *, rows: Optional[tuple[int, int]] = None) -> StackPlan:
    """Validate the request against the stack (bands, grids, scales, AOI) before any pixel is read. `rows`: the
    plan of full-grid output rows [start, stop) only (one part of a run split by rows, pipeline.split): every band,
    the region cut to those rows (the sharpener reads the guides with its halo around it: stack_guidance)."""
    selected = stack.select(settings.bands)
    check_compatible(selected, stack.source)
    finest = min(selected, key=lambda b: b.resolution)  # the first of the finest, in the order asked
    common = plan_common_grid(finest, scale=settings.scale, resolution=settings.resolution)
    jobs = plan_jobs(stack, selected, common, guided=guidance_on(settings))
    for job in jobs:
        grid, band = job.grid, job.band
        if min(grid.scale_x, grid.scale_y) < 1.0 - 1e-9:
            raise UsageError(
                f"band {band.name} ({band.resolution:g}) is finer than the output pixels; rssr only upsamples"
            )
        check_scale(max(grid.scale_x, grid.scale_y), allow_one=True, asked=f"band {band.name} on this grid")
    warn_unguided(stack, jobs, settings)
    guides = plan_guides(stack, jobs, common)
    if guides:
        check_compatible(tuple(selected) + tuple(g.band for g in guides), stack.source)
    nodata = output_nodata(stack, selected, settings.nodata)
    check_footprints(stack, jobs, finest, nodata)
    if all(job.copy for job in jobs):  # the single-raster rule (grid.plan_output_grid): a copy is no super-resolution
        asked = (
            f"--resolution {format_resolution(settings.resolution)}"
            if settings.resolution is not None
            else f"--scale {settings.scale:.10g}"
        )
        names = ", ".join(job.band.name for job in jobs)
        raise UsageError(
            f"{asked} is the own pixel size of every band asked ({names}): the effective scale is 1, there is nothing to super-resolve"
        )
    region = (
        whole_grid(common) if settings.aoi is None else aoi_region(common, aoi_in_raster_crs(settings.aoi, finest.crs))
    )
    if rows is not None:
        region = row_band(region, rows)
    return StackPlan(stack, common, region, jobs, nodata, selected[0].dtype, guides)


def warn_unguided(stack: BandStack, jobs: Sequence[BandJob], settings: UpscaleSettings) -> None:
    """Never silently unguided: a band the model serves at its scale, left unguided for want of a guide band or of
    the sharpener, is named (--no-guidance says it is meant, and silences this)."""
    if not guidance_asked(settings):
        return
    unguided = [
        job.band.name
        for job in jobs
        if not job.copy and not job.guided_by and guided_scale_ok(job.band.name, job.scale)
    ]
    if not unguided:
        return
    missing = [name for name in GUIDE_BANDS if name not in stack.names]
    if missing:
        warnings.warn(
            f"{stack.source} lacks {', '.join(missing)} of the 10 m bands that guide the coarser bands: {', '.join(unguided)} "
            "super-resolved unguided (--no-guidance says so and silences this)",
            RssrWarning,
            stacklevel=3,
        )
    else:
        log.warning(
            "no guided sharpening model found (%s): %s super-resolved unguided",
            default_sharpener_path(),
            ", ".join(unguided),
        )


def check_footprints(stack: BandStack, jobs: Sequence[BandJob], finest: StackBand, nodata: Optional[float]) -> None:
    """A band that misses the output grid (the finest band's) is refused; one that covers part of it is nodata
    elsewhere, so the output needs a nodata value."""
    for job in jobs:
        col0, col1, row0, row1 = job.grid.footprint()
        if col0 == col1 or row0 == row1:
            raise InputError(
                f"{stack.source}: band {job.band.name} does not overlap band {finest.name}'s extent, on which the output grid is; "
                "leave it out with --bands"
            )
        partial = (col0, col1, row0, row1) != (0, job.grid.width, 0, job.grid.height)
        if partial and nodata is None:
            raise InputError(
                f"{stack.source}: band {job.band.name} covers only part of the output grid and the bands declare no nodata "
                "value for the rest; give --nodata"
            )


def footprint_fraction(grid: OutputGrid) -> float:
    """The share of the output grid's pixels that lie on the band's data (1: it covers the grid)."""
    col0, col1, row0, row1 = grid.footprint()
    return (col1 - col0) * (row1 - row0) / (grid.width * grid.height)


def output_nodata(stack: BandStack, bands: Sequence[StackBand], given: Optional[float]) -> Optional[float]:
    """The nodata value of the output: the one given (--nodata), else the one the band files declare, else the
    product's convention (0 for Sentinel-2)."""
    if given is not None:
        check_nodata_fits(float(given), bands[0].dtype)  # 0.5 or 70000 on uint16 would be written, never matched
        return float(given)
    declared = {b.nodata for b in bands if b.nodata is not None}
    if len(declared) == 1:
        return float(declared.pop())
    if len(declared) > 1:
        raise InputError(
            f"{stack.source}: the bands declare different nodata values ({', '.join(map(str, sorted(declared)))})"
        )
    return stack.default_nodata


@dataclass(frozen=True)
class StackReport:
    """A band stack's bands with their native grids and, given a scale or resolution, the output upscale would
    write (common grid, each band's scale and how it is made)."""

    source: str
    kind: str
    bands: tuple[StackBand, ...]
    nodata: Optional[float]
    selected: tuple[str, ...]  # what upscale would write with these --bands
    grid: Optional[OutputGrid]  # the common output grid, when a scale or resolution was given
    band_scales: tuple[tuple[str, Optional[float]], ...]  # (name, scale; None = copied)
    model: Optional[ModelChoice] = None  # the model a run without --model uses, and why (pipeline.model_choice)
    coverage: tuple[tuple[str, float], ...] = ()  # (name, fraction of the output grid on the band's data)
    band_methods: tuple[
        BandMade, ...
    ] = ()  # how upscale would make each band (its defaults: guided where the rule says)
    guides_only: tuple[BandMade, ...] = ()  # guide bands it would read without writing them (guides_read)


@interruptible
def describe_stack(
    src: str | os.PathLike,
    *,
    scale: Optional[float] = None,
    resolution: Optional[float | tuple[float, float]] = None,
    bands: Optional[Sequence[int | str]] = None,
    settings: Optional[UpscaleSettings] = None,
) -> StackReport:
    """Headers only: the stack's bands and what `upscale` would make of them (with `settings`' method and guidance;
    default: upscale's defaults)."""
    with gdal_env():
        stack = open_band_stack(src)
    selected = stack.select(bands if bands is not None else DEFAULT_PRODUCT_BANDS)
    grid = None
    scales: tuple[tuple[str, Optional[float]], ...] = ()
    coverage: tuple[tuple[str, float], ...] = ()
    made: tuple[BandMade, ...] = ()
    only: tuple[BandMade, ...] = ()
    model = input_model_choice(InputFacts(band_stack=True))
    if scale is not None or resolution is not None:
        settings = settings or UpscaleSettings()
        finest = min(selected, key=lambda b: b.resolution)
        grid = plan_common_grid(finest, scale=scale, resolution=resolution)
        jobs = plan_jobs(stack, selected, grid, guided=guidance_on(settings))
        scales = tuple((job.band.name, None if job.copy else job.scale) for job in jobs)
        coverage = tuple((job.band.name, footprint_fraction(job.grid)) for job in jobs)
        method = run_method(settings)
        sharpener = sharpener_name(sharpener_card(default_sharpener_path()))
        run_model = model.name if method not in CLASSICAL_METHODS else None
        made = bands_made(jobs, method, run_model=run_model, sharpener=sharpener)
        only = guides_read(guides_only(jobs, plan_guides(stack, jobs, grid)))
    nodata = output_nodata(stack, selected, None)
    return StackReport(
        stack.source,
        stack.kind,
        stack.bands,
        nodata,
        tuple(b.name for b in selected),
        grid,
        scales,
        model,
        coverage,
        made,
        only,
    )
