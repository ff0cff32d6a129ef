"""What a band-stack run writes and reports: the output's spec (the common grid or the AOI's window of it, band
names, per-band provenance tags), how each band was made, the identity of the band files it reads (the resume key and
a batch's skip rule), and the run's UpscaleResult."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from rasterio.enums import ColorInterp

from rssr_cli.core.errors import InputError
from rssr_cli.core.messages import redact
from rssr_cli.core.version import __version__
from rssr_cli.evaluation.fidelity_report import FidelityReport
from rssr_cli.io.cog import OutputSpec
from rssr_cli.io.raster_io import MaskKind
from rssr_cli.io.source_identity import bands_identity
from rssr_cli.pipeline.provenance import Provenance, model_choice_tags, region_tags, request_tags
from rssr_cli.pipeline.settings import BandMade, UpscaleResult, UpscaleSettings
from rssr_cli.pipeline.spread import SpreadLayer
from rssr_cli.pipeline.stack_band import BandRun
from rssr_cli.pipeline.stack_plan import BandJob, StackPlan, bands_made, guides_read


def stack_result(
    plan: StackPlan,
    dst: Path,
    provenance: Provenance,
    windows: int,
    skipped: int,
    seconds: float,
    report: Optional[FidelityReport],
    spread: Optional[SpreadLayer] = None,
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
        guides_only=guides_read(plan.guides_only),
        spread=spread.path if spread is not None else None,
    )


def made_by(jobs: Sequence[BandJob], provenance: Provenance) -> tuple[BandMade, ...]:
    """How each band was made: the backend's own method and model for the bands it ran, the sharpener for the guided."""
    tags = provenance.backend_tags
    return bands_made(
        jobs, tags.get("method", provenance.method), run_model=tags.get("model"), sharpener=provenance.sharpener
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
    runs: Sequence[BandRun],
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
            **({} if job.copy or job.guided_by else {"RSSR_TILE": str(run.tile), "RSSR_OVERLAP": str(run.overlap)}),
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
