"""A scene split by output rows (`--split-rows`): each row band rendered on its own (a Dask task), then the bands
joined into one COG, byte-identical to a whole-scene run."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import rasterio
from rasterio.windows import Window

from rssr_cli.backends import SRBackend
from rssr_cli.core.errors import UsageError
from rssr_cli.core.interrupts import raise_on_signals
from rssr_cli.geo.region import split_rows
from rssr_cli.io.cog import open_intermediate, write_rows
from rssr_cli.io.destination import staging_dir
from rssr_cli.io.products import is_band_stack
from rssr_cli.io.raster_io import gdal_env, inspect_source, open_raster
from rssr_cli.pipeline.plan import plan_run, plan_scene, scene_region
from rssr_cli.pipeline.provenance import Provenance
from rssr_cli.pipeline.report import finish
from rssr_cli.pipeline.settings import UpscaleResult, UpscaleSettings, build_backend
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
    if is_band_stack(str(src)):
        raise UsageError(f"--split-rows is not supported for band stacks (products, STAC items): {src}")
    with gdal_env(settings.threads), open_raster(src) as dataset:
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
    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan, backend = plan_run(dataset, src, part, settings, backend, rows=rows)
        with open_intermediate(part, plan.output) as writer:
            skipped = stream_tiles(dataset, plan, backend, plan_writer(writer, plan))
    provenance = Provenance.of(plan.method, backend)
    return RowsPart(part, rows, provenance, plan.window_count, skipped, time.perf_counter() - started)


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
    whole-scene run. The parts must cover the output rows exactly once. With settings.fidelity the report
    is measured here on the joined output; its uncertainty crop needs the backend (built here if not given)."""
    dst = Path(dst)
    started = time.perf_counter()
    parts = sorted(parts, key=lambda p: p.rows)
    provenance = parts[0].provenance
    if backend is None and settings.fidelity is not None:
        backend = build_backend(provenance.method, settings)
    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan = plan_scene(dataset, src, dst, replace(settings, method=provenance.method), lambda _: provenance)
        window = plan.region.window
        expected = (int(window.row_off), int(window.row_off + window.height))
        covered = [p.rows for p in parts]
        if (
            covered[0][0] != expected[0]
            or covered[-1][1] != expected[1]
            or any(a[1] != b[0] for a, b in zip(covered, covered[1:]))
        ):
            raise ValueError(
                f"row bands {covered} do not cover the output rows {expected[0]}..{expected[1]} exactly once"
            )
        with staging_dir(dst) as staging:
            intermediate = staging / "stream.tif"
            with open_intermediate(intermediate, plan.output) as writer:
                for part in parts:
                    with rasterio.open(part.path) as band:
                        for top in range(0, band.height, ASSEMBLY_ROWS):
                            block = Window(0, top, band.width, min(ASSEMBLY_ROWS, band.height - top))
                            mask = band.read_masks(1, window=block) > 0 if plan.output.internal_mask else None
                            row_off = part.rows[0] - expected[0] + top
                            write_rows(writer, plan.output, row_off, band.read(window=block), mask)
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
    )
