"""A scene split by output rows (`--split-rows`): each row band rendered on its own (a Dask task), then the bands
joined into one COG, byte-identical to a whole-scene run.

A band stack (Sentinel-2 product, STAC item, band folder) splits the same way: each part holds every output band
over its rows, each band's tiles those of the whole run's tiling that reach these rows; the sharpener reads the
guides over the part's rows and its halo (as for an AOI), so a part's edge sees the guides the whole run sees. The
sharpener's convolutions then run on tiles of another shape than in a whole run, which may move a guided value by
float rounding: guided bands are within 1 DN of a whole run, every other band is identical."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import rasterio
from rasterio.windows import Window

from rssr_cli.backends import SRBackend
from rssr_cli.core.interrupts import raise_on_signals
from rssr_cli.evaluation.fidelity_report import FidelityReport
from rssr_cli.geo.region import split_rows
from rssr_cli.io.cog import CogLayer, OutputSpec, open_intermediate, open_optional_intermediate, write_rows
from rssr_cli.io.cog_profiles import cog_options
from rssr_cli.io.destination import check_destination, staging_dir
from rssr_cli.io.products import is_band_stack, open_band_stack
from rssr_cli.io.raster_io import gdal_env, inspect_source, open_raster
from rssr_cli.pipeline.plan import check_spread_destination, plan_run, plan_scene, scene_region
from rssr_cli.pipeline.provenance import Provenance
from rssr_cli.pipeline.report import SPREAD_INTERMEDIATE, finish, publish
from rssr_cli.pipeline.resume import StackState, run_staging
from rssr_cli.pipeline.settings import UpscaleResult, UpscaleSettings, build_backend
from rssr_cli.pipeline.spread import spread_path
from rssr_cli.pipeline.stack_band import band_runs
from rssr_cli.pipeline.stack_fidelity import assess_stack_fidelity
from rssr_cli.pipeline.stack_output import stack_output_spec, stack_result
from rssr_cli.pipeline.stack_plan import plan_stack, request_settings
from rssr_cli.pipeline.stack_run import StackRun
from rssr_cli.pipeline.stack_spread import with_spread
from rssr_cli.pipeline.stream import plan_writer, stream_tiles


@dataclass(frozen=True)
class RowsPart:
    """One band of output rows of a scene, written by render_rows to a plain GeoTIFF."""

    path: Path
    rows: tuple[int, int]  # full-grid output rows [start, stop)
    provenance: Provenance  # the method and its backend's tags (model hash, sampler), so assembly needs no model
    windows: int
    skipped_windows: int
    seconds: float


def scene_row_bands(src: str | Path, settings: UpscaleSettings, parts: int) -> list[tuple[int, int]]:
    """How to split a scene's output into `parts` row bands (of the AOI's window, when there is one)."""
    with gdal_env(settings.threads):
        if is_band_stack(str(src)):
            region = plan_stack(open_band_stack(src), request_settings(src, settings)).region
        else:
            with open_raster(src) as dataset:
                _, region = scene_region(inspect_source(dataset), settings)
    return split_rows(region, parts)


def render_rows(
    src: str | Path,
    part: Path,
    settings: UpscaleSettings,
    rows: tuple[int, int],
    *,
    backend: Optional[SRBackend] = None,
) -> RowsPart:
    """Write output rows [start, stop) of the scene to `part`, exactly as a whole-scene run computes them:
    the tiles are those of the full-scene tiling whose patch reaches these rows, with their own seeds and
    blend weights, so the bands of a split run join without a seam (assemble_rows)."""
    started = time.perf_counter()
    settings = replace(settings, fidelity=None)  # measured once on the assembled output (assemble_rows)
    if is_band_stack(str(src)):
        provenance, windows, skipped = _render_stack_rows(src, part, settings, rows, backend)
        return RowsPart(part, rows, provenance, windows, skipped, time.perf_counter() - started)
    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan, backend = plan_run(dataset, src, part, settings, backend, rows=rows)
        with (
            open_intermediate(part, plan.output) as writer,
            open_optional_intermediate(spread_path(part), plan.spread.spec if plan.spread else None) as spread_writer,
        ):  # a spread side-car: beside the part
            skipped = stream_tiles(dataset, plan, backend, plan_writer(writer, plan, spread_writer))
    provenance = Provenance.of(plan.method, backend)
    return RowsPart(part, rows, provenance, plan.window_count, skipped, time.perf_counter() - started)


def _render_stack_rows(
    src: str | Path, part: Path, settings: UpscaleSettings, rows: tuple[int, int], backend: Optional[SRBackend]
) -> tuple[Provenance, int, int]:
    """A band stack's rows: every output band over them (the guides read around them by the sharpener), and their
    spread beside `part` as its own side-car (spread_path(part)) when the run draws K >= 2 samples."""
    settings = request_settings(src, settings)
    with raise_on_signals(), gdal_env(settings.threads):
        plan = plan_stack(open_band_stack(src), settings, rows=rows)
        run = StackRun.of(plan, settings, part, backend, part=True)
        with run_staging(part, None, StackState) as staging:  # parts do not resume (resume.py)
            written = run.write(staging)
            for layer in run.spread_layers(staging.folder):
                os.replace(layer.intermediate, layer.dst)
            os.replace(written, part)
    return run.provenance, run.total, sum(staging.state.skipped)


ASSEMBLY_ROWS = 256  # rows copied per read/write while assembling


def assemble_rows(
    src: str | Path,
    dst: str | Path,
    settings: UpscaleSettings,
    parts: Sequence[RowsPart],
    *,
    backend: Optional[SRBackend] = None,
) -> UpscaleResult:
    """Join the row bands of a split scene into one COG at `dst` (atomic, like upscale); byte-identical to a
    whole-scene run (a band stack's guided bands: within 1 DN, see the module doc). The parts must cover the output rows exactly once. With settings.fidelity the report
    is measured here on the joined output; its uncertainty crop needs the backend (built here if not given)."""
    dst = Path(dst)
    started = time.perf_counter()
    parts = sorted(parts, key=lambda p: p.rows)
    if is_band_stack(str(src)):
        return _assemble_stack(src, dst, settings, parts, backend, started)
    provenance = parts[0].provenance
    if backend is None and settings.fidelity is not None:
        backend = build_backend(provenance.method, settings)
    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan = plan_scene(dataset, src, dst, replace(settings, method=provenance.method), lambda _: provenance)
        window = plan.region.window
        top = _check_cover(parts, window)
        with staging_dir(dst) as staging:
            intermediate = staging / "stream.tif"
            _join(parts, intermediate, plan.output, top)
            if plan.spread is not None:  # finish publishes it with the output
                _join_spread(parts, staging, plan.spread.spec, top)
            report = finish(dataset, plan, backend, intermediate, dst, staging)
    return UpscaleResult(
        dst,
        int(window.width),
        int(window.height),
        len(plan.bands),
        plan.source.dtype,
        plan.grid.scale_x,
        plan.grid.scale_y,
        provenance.method,
        sum(p.windows for p in parts),
        sum(p.skipped_windows for p in parts),
        time.perf_counter() - started,
        plan.outside_aoi_windows,
        report,
        spread=plan.spread.path if plan.spread is not None else None,
    )


def _assemble_stack(
    src: str | Path,
    dst: Path,
    settings: UpscaleSettings,
    parts: Sequence[RowsPart],
    backend: Optional[SRBackend],
    started: float,
) -> UpscaleResult:
    """assemble_rows for a band stack: the whole run's plan and output spec (headers only; the sharpener's tags come
    with the parts' provenance), the parts' rows joined, then --report and the COG as in stack_run."""
    provenance = parts[0].provenance
    settings = request_settings(src, replace(settings, method=provenance.method))
    with raise_on_signals(), gdal_env(settings.threads):
        plan = plan_stack(open_band_stack(src), settings)
        check_destination(dst, overwrite=settings.overwrite, src=str(src))
        top = _check_cover(parts, plan.region.window)
        runs = band_runs(plan, settings, provenance.method)
        spec = stack_output_spec(plan, settings, provenance, runs)
        spread = None
        if provenance.spread:
            check_spread_destination(dst, settings, len(plan.jobs), src, part=False)
            spec, spread = with_spread(spec, plan, dst, settings)
        creation_options = cog_options(settings.profile, plan.dtype, settings.creation_options)
        with staging_dir(dst) as staging:
            intermediate = staging / "stream.tif"
            _join(parts, intermediate, spec, top)
            layers = []
            if spread is not None:  # each part's side-car, joined and published with the output
                layers.append(
                    CogLayer(_join_spread(parts, staging, spread.spec, top), spread.path, spread.creation_options)
                )
            report: Optional[FidelityReport] = None
            sidecars: list[tuple[Path, Path]] = []
            if settings.fidelity is not None:
                backend = backend or build_backend(provenance.method, settings)  # the uncertainty crop runs it
                report, sidecars = assess_stack_fidelity(plan, runs, backend, intermediate, dst, staging)
            publish(intermediate, dst, creation_options, settings.overwrite, report, sidecars, layers)
    windows, skipped = sum(p.windows for p in parts), sum(p.skipped_windows for p in parts)
    return stack_result(plan, dst, provenance, windows, skipped, time.perf_counter() - started, report, spread)


def _check_cover(parts: Sequence[RowsPart], window: Window) -> int:
    """The parts (sorted) cover the region's rows exactly once; returns its first row."""
    expected = (int(window.row_off), int(window.row_off + window.height))
    covered = [p.rows for p in parts]
    if (
        covered[0][0] != expected[0]
        or covered[-1][1] != expected[1]
        or any(a[1] != b[0] for a, b in zip(covered, covered[1:]))
    ):
        raise ValueError(f"row bands {covered} do not cover the output rows {expected[0]}..{expected[1]} exactly once")
    return expected[0]


def _join(parts: Sequence[RowsPart], intermediate: Path, spec: OutputSpec, top: int) -> None:
    """Copy the parts' rows (every band, and the mask when the output has one) into the intermediate at `spec`."""
    with open_intermediate(intermediate, spec) as writer:
        for part in parts:
            with rasterio.open(part.path) as band:
                for row in range(0, band.height, ASSEMBLY_ROWS):
                    block = Window(0, row, band.width, min(ASSEMBLY_ROWS, band.height - row))
                    mask = band.read_masks(1, window=block) > 0 if spec.internal_mask else None
                    write_rows(writer, spec, part.rows[0] - top + row, band.read(window=block), mask)


def _join_spread(parts: Sequence[RowsPart], staging: Path, spec: OutputSpec, top: int) -> Path:
    """The parts' spread side-cars (spread_path of each part) joined into the staged spread intermediate."""
    intermediate = staging / SPREAD_INTERMEDIATE
    _join([replace(p, path=spread_path(p.path)) for p in parts], intermediate, spec, top)
    return intermediate
