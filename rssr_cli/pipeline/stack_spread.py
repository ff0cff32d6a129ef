"""The spread side-car of a band stack (`--samples K`, K >= 2; spread.py has the raster's): `OUT.spread.tif` on the
output's grid, one float32 band per output band in the output's stored units, NaN nodata.

What a band's spread holds depends on how the band was made (stack_plan.BandJob):
- run by the model (a requested guide band too, like any band the model runs): the per-pixel standard deviation
  of its K draws, blended across seams with the mean's weights, exactly as for a raster (stream.py);
- copied unchanged (the band is on the common grid already): 0, every draw being the stored value;
- sharpened from the guides (the guided pass): NaN, the sharpener being run once on the guides' native pixels:
  no draws, so no spread is claimed.
The kind is in each band's description (`B08 spread (copied: 0)`) and its RSSR_SPREAD_KIND tag. Every band's spread
is NaN where the output has nodata (outside the band's footprint or the AOI, invalid input): finish_spread's pass
over the written output. A run with a spread layer starts from zero (no resume), as a raster's does (resume.py).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import rasterio
from rasterio.windows import Window

from rssr_cli.io.cog import OutputSpec, write_band
from rssr_cli.pipeline.plan import spread_creation_options
from rssr_cli.pipeline.settings import UpscaleSettings
from rssr_cli.pipeline.spread import SPREAD_DTYPE, SpreadLayer, spread_tags
from rssr_cli.pipeline.stack_guidance import COPY_ROWS
from rssr_cli.pipeline.stack_plan import BandJob, StackPlan

DRAWN, COPIED, GUIDED = "drawn", "copied", "guided"
SPREAD_KIND_TAG = "RSSR_SPREAD_KIND"  # on each side-car band: DRAWN, COPIED or GUIDED
_DESCRIBED = {DRAWN: "spread", COPIED: "spread (copied: 0)", GUIDED: "spread (guided: no draws, NaN)"}
_FILL = {COPIED: 0.0, GUIDED: math.nan}  # the spread of the bands that have no draws


def spread_kind(job: BandJob) -> str:
    """Whether an output band's spread is its K draws', a copy's 0 or a guided band's NaN (module doc)."""
    return COPIED if job.copy else GUIDED if job.guided_by else DRAWN


def with_spread(
    spec: OutputSpec, plan: StackPlan, dst: Path, settings: UpscaleSettings
) -> tuple[OutputSpec, SpreadLayer]:
    """The output's spec naming its side-car (RSSR_SPREAD), and the side-car: spread.SpreadLayer's, each band
    described by its kind, band-interleaved (its bands are written one after another)."""
    spec = replace(spec, tags={**spec.tags, **spread_tags(dst)})
    layer = SpreadLayer.of(dst, spec, spread_creation_options(settings))
    kinds = [spread_kind(job) for job in plan.jobs]
    side_car = replace(
        layer.spec,
        descriptions=tuple(f"{job.band.name} {_DESCRIBED[kind]}" for job, kind in zip(plan.jobs, kinds)),
        band_tags=tuple({SPREAD_KIND_TAG: kind} for kind in kinds),
        interleave="band",
    )
    return spec, replace(layer, spec=side_car)


def slot_spread(layer: SpreadLayer, band_spec: OutputSpec) -> SpreadLayer:
    """One band's slot of the side-car, for its stream (stream.plan_writer): the band's spec in float32, NaN nodata."""
    return replace(layer, spec=replace(band_spec, dtype=SPREAD_DTYPE, nodata=math.nan))


def finish_spread(output: Path, side_car: Path, plan: StackPlan) -> None:
    """The last pass over a written stack: the copied bands' 0 and the guided bands' NaN, then NaN wherever the
    output has nodata (module doc). `output` and `side_car` are the intermediates over plan.region."""
    with rasterio.open(output) as out, rasterio.open(side_car, "r+") as spread:
        for job in plan.jobs:
            fill = _FILL.get(spread_kind(job))
            for row in range(0, out.height, COPY_ROWS):
                window = Window(0, row, out.width, min(COPY_ROWS, out.height - row))
                values = _values(spread, job.slot, window, fill)
                invalid = _nodata(out.read(job.slot, window=window), plan.nodata)
                if invalid is not None:
                    values[invalid] = np.nan
                write_band(spread, job.slot, values[None], window)


def _values(spread, slot: int, window: Window, fill: Optional[float]) -> np.ndarray:
    if fill is None:  # a drawn band: its stream wrote it
        return spread.read(slot, window=window)
    return np.full((int(window.height), int(window.width)), fill, dtype=SPREAD_DTYPE)


def _nodata(values: np.ndarray, nodata: Optional[float]) -> Optional[np.ndarray]:
    if nodata is None:
        return None
    return np.isnan(values) if math.isnan(nodata) else values == nodata
