"""`--report` and the fidelity thresholds of a run: measure the written intermediate against its source
(fidelity.measure_fidelity), tag it, stage the sidecars (JSON, quick-look), and refuse an output that fails a check."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import rasterio
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window

from rssr_cli.backends import SRBackend, SRRequest
from rssr_cli.backends.classical import resample
from rssr_cli.evaluation.fidelity import Comparison, CropSamples, measure_fidelity
from rssr_cli.evaluation.fidelity_report import FidelityReport, check
from rssr_cli.geo.grid import hr_grid_for
from rssr_cli.io.cog import CogLayer, finalize_cogs, open_optional_intermediate
from rssr_cli.io.quicklook import compose, display_bands, write_png
from rssr_cli.io.radiometry import denormalize
from rssr_cli.io.raster_io import read_window
from rssr_cli.pipeline.plan import RunPlan
from rssr_cli.pipeline.stream import model_input

log = logging.getLogger(__name__)


def finish(
    dataset: DatasetReader, plan: RunPlan, backend: Optional[SRBackend], intermediate: Path, dst: Path, staging: Path
) -> Optional[FidelityReport]:
    """The written intermediate(s) -> DST: measure fidelity when asked (and refuse the output if it fails a
    check), build the COG (and the spread side-car's, streamed to staging/SPREAD_INTERMEDIATE), then move the
    sidecars beside it (a report never describes a file not there)."""
    settings = plan.settings
    report: Optional[FidelityReport] = None
    sidecars: list[tuple[Path, Path]] = []
    if settings.fidelity is not None:
        report, sidecars = assess_fidelity(dataset, plan, backend, intermediate, dst, staging)
    layers = (
        []
        if plan.spread is None
        else [CogLayer(staging / SPREAD_INTERMEDIATE, plan.spread.path, plan.spread.creation_options)]
    )
    return publish(intermediate, dst, plan.creation_options, settings.overwrite, report, sidecars, layers)


SPREAD_INTERMEDIATE = (
    "spread.tif"  # the spread side-car's streamed intermediate, beside the output's in the staging directory
)


@contextmanager
def open_spread_intermediate(staging: Path, plan: RunPlan) -> Iterator[Optional[DatasetWriter]]:
    """The spread side-car's intermediate, streamed beside the output's (None when the plan has no spread layer)."""
    with open_optional_intermediate(staging / SPREAD_INTERMEDIATE, plan.spread.spec if plan.spread else None) as w:
        yield w


def publish(
    intermediate: Path,
    dst: Path,
    creation_options: dict,
    overwrite: bool,
    report: Optional[FidelityReport],
    sidecars: Sequence[tuple[Path, Path]] = (),
    layers: Sequence[CogLayer] = (),
) -> Optional[FidelityReport]:
    """Build the COG (with its side-car `layers`, published together: cog.finalize_cogs) unless the report failed
    a check, move the staged sidecars beside it, then raise the failure."""
    if report is None or report.passed:
        finalize_cogs([CogLayer(intermediate, dst, creation_options), *layers], overwrite=overwrite)
    for staged, final in sidecars:
        os.replace(staged, final)
    if report is not None:
        report.raise_if_failed()
    return report


def sidecar_paths(dst: Path) -> tuple[Path, Path]:
    """Where `--report` writes: OUT.fidelity.json and OUT.fidelity.png beside OUT.tif."""
    return dst.with_name(dst.stem + ".fidelity.json"), dst.with_name(dst.stem + ".fidelity.png")


def assess_fidelity(
    dataset: DatasetReader, plan: RunPlan, backend: Optional[SRBackend], intermediate: Path, dst: Path, staging: Path
) -> tuple[FidelityReport, list[tuple[Path, Path]]]:
    """Measure the written intermediate against the source, record the figures in its tags, and stage the
    sidecars (JSON and quick-look) when asked; returns the checked report and (staged, final) sidecar paths."""
    options = plan.settings.fidelity
    if options is None or backend is None:
        raise ValueError("assess_fidelity needs the run's fidelity options and its backend")
    comparison = Comparison.plan(plan.grid, plan.region.window)
    with rasterio.open(intermediate) as output:
        report, crop = measure_fidelity(
            dataset,
            plan.source,
            plan.bands,
            output,
            comparison,
            method=plan.method,
            options=options,
            sample_crop=crop_sampler(dataset, plan, backend),
            seed=plan.settings.seed,
        )
        report = check(report, str(dst))
        quicklook = (
            _quicklook(dataset, plan, output, crop, report) if options.write_report and crop is not None else None
        )
    return record(report, intermediate, dst, staging, options.write_report, quicklook)


def record(
    report: FidelityReport,
    intermediate: Path,
    dst: Path,
    staging: Path,
    write_report: bool,
    quicklook: Optional[np.ndarray] = None,
) -> tuple[FidelityReport, list[tuple[Path, Path]]]:
    """Tag the intermediate with the report's key figures and stage its sidecars (JSON, quick-look) when asked."""
    with rasterio.open(intermediate, "r+") as output:
        output.update_tags(**report.tags())
    log.info("fidelity: %s", report.summary())
    if not write_report:
        return report, []
    json_path, png_path = sidecar_paths(dst)
    staged = [(staging / json_path.name, json_path)]
    staged[0][0].write_text(report.to_json() + "\n")
    if quicklook is not None:
        write_png(quicklook, staging / png_path.name)
        staged.append((staging / png_path.name, png_path))
    return report, staged


def crop_sampler(dataset: DatasetReader, plan: RunPlan, backend: SRBackend):
    """SampleCrop for fidelity.py: the backend run on one LR crop (with the run's halo) once per seed."""

    def sample(core: Window, seeds: Sequence[int]) -> list[np.ndarray]:
        grid, ov = plan.grid, int(plan.settings.overlap or 0)
        r0, c0 = max(0, int(core.row_off) - ov), max(0, int(core.col_off) - ov)
        r1 = min(grid.src_height, int(core.row_off + core.height) + ov)
        c1 = min(grid.src_width, int(core.col_off + core.width) + ov)
        halo = Window(c0, r0, c1 - c0, r1 - r0)
        out_halo, hr = hr_grid_for(halo, grid)
        out_core, _ = hr_grid_for(core, grid)
        values, _ = model_input(dataset, plan, halo)  # the crop is entirely valid: never None
        assert values is not None, "fidelity crops are chosen where the source is entirely valid"
        dy, dx = int(out_core.row_off - out_halo.row_off), int(out_core.col_off - out_halo.col_off)
        h, w = int(out_core.height), int(out_core.width)
        patches: list[np.ndarray] = []
        size = plan.settings.batch_size
        for i in range(0, len(seeds), size):
            patches += backend.upsample([SRRequest(values, hr, s, plan.scene_stats) for s in seeds[i : i + size]])
        return [denormalize(p[:, dy : dy + h, dx : dx + w], plan.radiometry, plan.source.dtype) for p in patches]

    return sample


def _quicklook(
    dataset: DatasetReader, plan: RunPlan, output: DatasetReader, crop: CropSamples, report: FidelityReport
) -> np.ndarray:
    """LR | SR | uncertainty (std over the samples, relative to each band's range, max over bands)."""
    lr, _ = read_window(dataset, plan.source, plan.bands, crop.lr_window)
    _, hr = hr_grid_for(crop.lr_window, plan.grid)
    lr_replicated = resample(lr.astype(np.float64), hr, "nearest")
    sr = output.read(window=crop.out_window).astype(np.float64)
    spans = np.array([max(b.value_range[1] - b.value_range[0], 1e-12) for b in report.bands])
    uncertainty = (crop.std / spans[:, None, None]).max(axis=0)
    pick = [b - 1 for b in plan.bands]
    show = display_bands([plan.source.colorinterp[i] for i in pick], [plan.source.descriptions[i] for i in pick])
    return compose(lr_replicated, sr, uncertainty, show)
