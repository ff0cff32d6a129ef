"""`--report` and the fidelity thresholds on a band stack: every output band measured against its own native band."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import rasterio

from rssr_cli.backends import SRBackend
from rssr_cli.evaluation.fidelity_bands import OutputBand, measure_bands
from rssr_cli.evaluation.fidelity_report import FidelityReport, check
from rssr_cli.pipeline.report import record
from rssr_cli.pipeline.stack_band import BandRun
from rssr_cli.pipeline.stack_plan import StackPlan


def assess_stack_fidelity(
    plan: StackPlan,
    runs: Sequence[BandRun],
    backend: SRBackend,
    intermediate: Path,
    dst: Path,
    staging: Path,
) -> tuple[FidelityReport, list[tuple[Path, Path]]]:
    """`--report` and the thresholds on a stack: every output band measured against its own native band by the
    single-raster engine (evaluation.fidelity_bands), then tagged and staged as for a raster (pipeline.report)."""
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
