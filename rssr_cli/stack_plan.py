"""Band stacks (Sentinel-2 products, STAC items): the plan of a run, before any pixel is read.

The common output grid is the finest requested band's grid at the requested scale or resolution: its bounds are
that band's bounds (the pipeline's usual rule). Every band is then run on its own native grid with the common grid
*placed* on it (grid.Placement: offset and step in that band's pixel coordinates, exact, whatever the grids'
origins), so a 20 m band at 2.5 m runs at x8 and a 60 m band at x24. A band whose grid is the common grid is copied.
`rssr info` on a stack describes the same plan (describe_stack). Execution: stack_pipeline.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional, Sequence

from .aoi import aoi_in_raster_crs
from .band_names import canonical_band_name
from .errors import InputError, UsageError
from .grid import OutputGrid, Placement, check_scale, format_resolution, plan_output_grid
from .model_rule import InputFacts, ModelChoice
from .pipeline.model_choice import input_model_choice
from .pipeline.settings import UpscaleSettings
from .products import DEFAULT_PRODUCT_BANDS, BandStack, StackBand, check_compatible, is_band_stack, open_band_stack
from .raster_io import check_nodata_fits, gdal_env
from .region import OutputRegion, aoi_region, whole_grid

SAME_GRID_TOLERANCE = 1e-6  # of a source pixel: a band this close to the common grid is on it


def request_settings(src: str | os.PathLike, settings: UpscaleSettings) -> UpscaleSettings:
    """The request as recorded in the output's tags: for a band stack, no --bands means the four 10 m bands and
    guidance is on unless turned off. Batch skip rules compare these tags, so pipeline.scenes.process_scene applies this too."""
    if not is_band_stack(str(src)):
        return settings
    if settings.bands is None:
        settings = replace(settings, bands=DEFAULT_PRODUCT_BANDS)
    elif not (len(settings.bands) == 1 and str(settings.bands[0]).lower() == "all"):
        # one spelling per band (b04, B4, red -> B04): a rerun spelling the same band otherwise is the same request
        bands = tuple(canonical_band_name(b) if isinstance(b, str) and not b.isdigit() else b for b in settings.bands)
        settings = replace(settings, bands=bands)
    return settings if settings.guidance is not None else replace(settings, guidance=True)


def plan_common_grid(
    finest: StackBand, *, scale: Optional[float], resolution: Optional[float | tuple[float, float]]
) -> OutputGrid:
    """The finest band's grid at `scale` (relative to it) or `resolution` (square, or (x, y) like gdalwarp -tr):
    grid.plan_output_grid's rule on that band. Scale 1 is allowed (e.g. --resolution 10 with 10 m and 20 m
    bands: the 10 m bands are copied)."""
    return plan_output_grid(finest.width, finest.height, finest.transform, scale=scale, resolution=resolution,
                            allow_copy=True, of=f"band {finest.name}'s")  # fmt: skip


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
        check_scale(max(grid.scale_x, grid.scale_y), allow_one=True, asked=f"band {band.name} on this grid")
        jobs.append(BandJob(slot, band, grid, is_same_grid(grid)))
    nodata = output_nodata(stack, selected, settings.nodata)
    check_footprints(stack, jobs, finest, nodata)
    if all(job.copy for job in jobs):  # the single-raster rule (grid.plan_output_grid): a copy is no super-resolution
        asked = f"--resolution {format_resolution(settings.resolution)}" if settings.resolution is not None else f"--scale {settings.scale:.10g}"
        names = ", ".join(job.band.name for job in jobs)
        raise UsageError(f"{asked} is the own pixel size of every band asked ({names}): the effective scale is 1, there is nothing to super-resolve")
    region = whole_grid(common) if settings.aoi is None else aoi_region(common, aoi_in_raster_crs(settings.aoi, finest.crs))
    return StackPlan(stack, common, region, tuple(jobs), nodata, selected[0].dtype)


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
        raise InputError(f"{stack.source}: the bands declare different nodata values ({', '.join(map(str, sorted(declared)))})")
    return stack.default_nodata


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
    model: Optional[ModelChoice] = None  # the model a run without --model uses, and why (pipeline.model_choice)
    coverage: tuple[tuple[str, float], ...] = ()  # (name, fraction of the output grid on the band's data)


def describe_stack(src: str | os.PathLike, *, scale: Optional[float] = None, resolution: Optional[float | tuple[float, float]] = None,
                   bands: Optional[Sequence[int | str]] = None) -> StackReport:  # fmt: skip
    """Headers only: the stack's bands and what `upscale` would make of them."""
    with gdal_env():
        stack = open_band_stack(src)
    selected = stack.select(bands if bands is not None else DEFAULT_PRODUCT_BANDS)
    grid = None
    scales: tuple[tuple[str, Optional[float]], ...] = ()
    coverage: tuple[tuple[str, float], ...] = ()
    if scale is not None or resolution is not None:
        finest = min(selected, key=lambda b: b.resolution)
        grid = plan_common_grid(finest, scale=scale, resolution=resolution)
        placed = [band_grid(b, grid) for b in selected]
        scales = tuple((b.name, None if is_same_grid(g) else max(g.scale_x, g.scale_y)) for b, g in zip(selected, placed))
        coverage = tuple((b.name, footprint_fraction(g)) for b, g in zip(selected, placed))
    nodata = output_nodata(stack, selected, None)
    model = input_model_choice(InputFacts(band_stack=True))
    return StackReport(stack.source, stack.kind, stack.bands, nodata, tuple(b.name for b in selected), grid, scales, model, coverage)
