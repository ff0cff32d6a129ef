"""Fidelity of an output whose bands come from different rasters on their own grids (a band stack: Sentinel-2
product, STAC item, band folder): the one engine (fidelity.measure_fidelity) run on each output band against its
own native band, through the common grid's placement on that band, and the figures gathered into one report.

What differs from a single raster: the shift is measured per band in that band's own pixels and the report keeps
the largest (the check is then on the worst band); there is no spectral angle (the bands are not on one LR grid);
the uncertainty crop is the first sampled band's."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

from rasterio.io import DatasetReader
from rasterio.windows import Window

from rssr_cli.evaluation.fidelity import Comparison, SampleCrop, measure_fidelity
from rssr_cli.evaluation.fidelity_report import FidelityOptions, FidelityReport
from rssr_cli.geo.grid import OutputGrid
from rssr_cli.io.products import StackBand
from rssr_cli.io.raster_io import inspect_source, open_raster, with_nodata


@dataclass(frozen=True)
class OutputBand:
    """One output band and the native band it was made from."""

    slot: int  # 1-based band of the output
    band: StackBand
    grid: OutputGrid  # the output's full grid placed on the band's own grid (stack_plan.band_grid)
    sample_crop: Optional[SampleCrop] = None  # the band's method on one LR crop (uncertainty); None: not sampled


def measure_bands(
    output: DatasetReader,
    bands: Sequence[OutputBand],
    region: Window,
    *,
    source: str,
    method: str,
    options: FidelityOptions,
    nodata: Optional[float],
    scale_xy: tuple[float, float],
    seed: int = 0,
) -> FidelityReport:
    """Each output band against its native band (`nodata`: the stack's, for band files that declare none)."""
    reports = []
    for item in bands:
        with open_raster(item.band.dataset) as dataset:
            info = with_nodata(inspect_source(dataset), nodata)
            descriptions = list(info.descriptions)
            descriptions[item.band.index - 1] = item.band.name
            info = replace(info, descriptions=tuple(descriptions))
            report, _ = measure_fidelity(
                dataset,
                info,
                (item.band.index,),
                output,
                Comparison.plan(item.grid, region),
                method=method,
                options=options,
                sample_crop=item.sample_crop,
                seed=seed,
                output_bands=(item.slot,),
            )
        reports.append((item.slot, report))
    return combine(reports, source=source, method=method, scale_xy=scale_xy, options=options)


def combine(
    reports: Sequence[tuple[int, FidelityReport]],
    *,
    source: str,
    method: str,
    scale_xy: tuple[float, float],
    options: FidelityOptions,
) -> FidelityReport:
    """One report from single-band reports: bands numbered by their output slot, the worst band's shift."""
    bands = tuple(replace(r.bands[0], band=slot) for slot, r in reports if r.bands)
    shifts = [r.shift for _, r in reports if r.shift is not None]
    crops = [r.uncertainty for _, r in reports if r.uncertainty is not None]
    return FidelityReport(
        source=source,
        output="",
        method=method,
        scale_xy=scale_xy,
        lr_pixels_compared=sum(r.lr_pixels_compared for _, r in reports),
        bands=bands,
        spectral_angle_deg=None,
        shift=max(shifts, key=lambda s: s.magnitude if math.isfinite(s.magnitude) else -1.0) if shifts else None,
        uncertainty=crops[0] if crops else None,
        checks=options.checks,
        failures=(),
    )
