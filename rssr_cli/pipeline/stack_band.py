"""One band of a band stack (Sentinel-2 product, STAC item, band folder) on its own grid: its run over the common
grid's region (BandRun: the pipeline's RunPlan for it, its tiling, or a plain copy for a band already on the common
grid), the slot of the output it writes, and the footprint rule (nodata where a band has no pixel).

The stack's run (every band in order, resume, guides) is stack_run.py's; the output's spec and tags stack_output.py's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window

from rssr_cli.backends import CLASSICAL_METHODS, SRBackend
from rssr_cli.evaluation.fidelity import SampleCrop
from rssr_cli.geo.grid import plan_tiles
from rssr_cli.geo.region import OutputRegion, tiles_for_region
from rssr_cli.io.cog import OutputSpec, write_band
from rssr_cli.io.radiometry import keep_clear_of_nodata
from rssr_cli.io.raster_io import SourceInfo, inspect_source, open_raster, read_window, with_nodata
from rssr_cli.pipeline.plan import RunPlan, scene_radiometry, scene_statistics
from rssr_cli.pipeline.report import crop_sampler
from rssr_cli.pipeline.resume import StreamState
from rssr_cli.pipeline.settings import DEFAULT_TILE, Progress, UpscaleSettings, auto_tiling
from rssr_cli.pipeline.spread import SpreadLayer
from rssr_cli.pipeline.stack_guidance import COPY_ROWS
from rssr_cli.pipeline.stack_plan import BandJob, StackPlan
from rssr_cli.pipeline.stack_spread import slot_spread
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


def band_runs(plan: StackPlan, settings: UpscaleSettings, method: str) -> list["BandRun"]:
    """Each output band's run over the plan's region (headers only, files closed)."""
    return [BandRun.open(job, plan, settings, method) for job in plan.jobs]


@dataclass
class BandRun:
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
    def open(
        cls,
        job: BandJob,
        plan: StackPlan,
        settings: UpscaleSettings,
        method: str,
    ) -> "BandRun":
        with open_raster(job.band.dataset) as dataset:
            source = with_nodata(inspect_source(dataset), plan.nodata)
        if job.copy:
            return cls(job, plan, settings, method, source, [], 0, 0)
        tile, overlap = auto_tiling(method, job.scale, band_tile(method, job.scale, settings.tile), settings.overlap)
        tiles, _ = tiles_for_region(plan.region, plan_tiles(job.grid, tile=tile, overlap=overlap))
        return cls(job, plan, settings, method, source, tiles, tile, overlap)

    @property
    def region(self) -> OutputRegion:
        """The part of the common grid it writes: the run's region."""
        return self.stack_plan.region

    @property
    def windows(self) -> int:
        return sum(len(row) for row in self.tiles)

    def windows_left(self, rows_written: int) -> int:
        """The windows its stream computes when resumed at output row `rows_written` (0: all of them)."""
        return windows_left(self.tiles, self.job.grid.height, rows_written)

    def run_plan(self, dataset: DatasetReader, spread: Optional[SpreadLayer] = None) -> RunPlan:
        """The pipeline's plan of this band's run (its own grid, tiles, radiometry and statistics); with the stack's
        `spread` side-car, its stream blends the K draws' spread into this band's slot of it too."""
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
            slot_spread(spread, output) if spread is not None else None,
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
        spread: Optional[tuple[SpreadLayer, DatasetWriter]] = None,
        state: Optional[StreamState] = None,
        after_row: Optional[Callable[[], None]] = None,
    ) -> int:
        """Write this band into its slot; returns the windows skipped as entirely nodata. `spread`: the stack's
        side-car and its intermediate, whose slot the stream writes too (a copy's is stack_spread.finish_spread's).
        `state` and `after_row`: stream_tiles' (a resumed band continues its stream; a copy is redone whole)."""
        with open_raster(self.job.band.dataset) as dataset:
            if self.job.copy:
                self._copy(dataset, writer)
                return 0
            run = self.run_plan(dataset, spread[0] if spread is not None else None)
            slot = _BandSlot(writer, self.job.slot)
            spread_slot = _BandSlot(spread[1], self.job.slot) if spread is not None else None
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
                dataset, run, backend, plan_writer(slot, run, spread_slot), progress, state=state, after_row=after_row
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


def blank_outside_footprints(writer: DatasetWriter, plan: StackPlan) -> None:
    """Nodata where a band has no pixel (its footprint ends inside the output grid): whatever a run wrote there
    (its edge pixels extended by the resampler, a sharpened band) is beyond the band's data. `writer` covers
    plan.region of the common grid, the output's bands in their slots."""
    window = plan.region.window
    top, left = int(window.row_off), int(window.col_off)
    bottom, right = top + int(window.height), left + int(window.width)
    for job in plan.jobs:
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
