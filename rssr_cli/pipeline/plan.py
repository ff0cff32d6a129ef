"""Planning one scene: open questions answered before any pixel is processed (bands, output grid and region,
tiles, radiometry, scene statistics, the output's spec and tags), as one RunPlan value."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader

from rssr_cli.backends import CLASSICAL_METHODS, SRBackend
from rssr_cli.geo.grid import OutputGrid, Tile, plan_output_grid, plan_tiles
from rssr_cli.geo.region import OutputRegion, aoi_region, row_band, tiles_for_region, whole_grid
from rssr_cli.io.aoi import aoi_in_raster_crs
from rssr_cli.io.cog import OutputSpec
from rssr_cli.io.cog_profiles import check_options_for_data, cog_options
from rssr_cli.io.destination import check_destination
from rssr_cli.io.radiometry import Radiometry, fixed_radiometry, normalize, robust_radiometry, uses_robust_range
from rssr_cli.io.raster_io import STATS_SIDE, MaskKind, SourceInfo, inspect_source, read_sample, select_bands
from rssr_cli.io.source_identity import source_identity
from rssr_cli.pipeline.provenance import Provenance, provenance_tags, region_tags
from rssr_cli.pipeline.settings import UpscaleSettings, auto_tiling, build_backend, run_method
from rssr_cli.pipeline.spread import SPREAD_DTYPE, SpreadLayer, spread_path, spread_tags

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """The resolved, validated run: what to read, the grid to produce, how to map values, what to write."""

    source: SourceInfo
    bands: tuple[int, ...]
    grid: OutputGrid
    tiles: list[list[Tile]]
    radiometry: Radiometry
    output: OutputSpec
    creation_options: dict
    method: str
    settings: UpscaleSettings
    region: OutputRegion  # the part of the full output grid that is written
    outside_aoi_windows: int
    scene_stats: Optional[np.ndarray] = None  # [bands, 2] mean, std (normalized units) for a model's standardization
    spread: Optional[SpreadLayer] = None  # the side-car of a run that draws K >= 2 samples per window (spread.py)

    @property
    def window_count(self) -> int:
        return sum(len(row) for row in self.tiles)


def plan_run(
    dataset: DatasetReader,
    src: str | Path,
    dst: Path,
    settings: UpscaleSettings,
    backend: Optional[SRBackend] = None,
    *,
    rows: Optional[tuple[int, int]] = None,
) -> tuple[RunPlan, SRBackend]:
    """plan_scene for a run that processes tiles: its backend is `backend`, or built here for settings.method
    once the cheap checks have passed (a model loads only for a request that can run)."""
    built: list[SRBackend] = []

    def provenance(method: str) -> Provenance:
        built.append(backend if backend is not None else build_backend(method, settings))
        return Provenance.of(method, built[0])

    plan = plan_scene(dataset, src, dst, settings, provenance, rows=rows)
    return plan, built[0]


def plan_scene(
    dataset: DatasetReader,
    src: str | Path,
    dst: Path,
    settings: UpscaleSettings,
    provenance: Callable[[str], Provenance],
    *,
    rows: Optional[tuple[int, int]] = None,
) -> RunPlan:
    """Validate everything that can be refused before any work (cheap checks first, `provenance(method)` last: it
    may load a model). `rows`: write only these full-grid output rows (one part of a scene split by rows; DST is
    then a part file, not checked against --overwrite: the caller that assembles the parts checks the real DST)."""
    source = inspect_source(dataset, nodata=settings.nodata)
    bands = select_bands(source, settings.bands)
    grid, region = scene_region(source, settings)
    method = run_method(settings)
    tile, overlap = auto_tiling(method, max(grid.scale_x, grid.scale_y), settings.tile, settings.overlap)
    settings = replace(settings, tile=tile, overlap=overlap)
    if rows is not None:
        region = row_band(region, rows)
    # The full scene's tiling, then a selection: kept tiles have the seeds and weights of a full-scene run.
    tiles, outside_aoi = tiles_for_region(region, plan_tiles(grid, tile=tile, overlap=overlap))
    if rows is None:
        check_destination(dst, overwrite=settings.overwrite, src=str(src))
    creation_options = cog_options(settings.profile, source.dtype, settings.creation_options)
    check_options_for_data(creation_options, source.dtype, len(bands), asked=settings.creation_options)
    recorded = provenance(method)
    if recorded.spread:
        check_spread_destination(dst, settings, len(bands), src, part=rows is not None)
    radiometry = scene_radiometry(dataset, source, bands)
    tags = provenance_tags(settings, grid, radiometry, recorded) | region_tags(region, grid) | source_identity(src)
    output = output_spec(source, bands, grid, region, tags | (spread_tags(dst) if recorded.spread else {}))
    spread = SpreadLayer.of(dst, output, spread_creation_options(settings)) if recorded.spread else None
    stats = None if method in CLASSICAL_METHODS else scene_statistics(dataset, source, bands, radiometry)
    plan = RunPlan(
        source,
        bands,
        grid,
        tiles,
        radiometry,
        output,
        creation_options,
        method,
        settings,
        region,
        outside_aoi,
        stats,
        spread,
    )
    log.info(
        "%s: %dx%d -> %dx%d (x%.4g, x%.4g), %d bands, %d windows, method %s, radiometry %s",
        source.path,
        source.width,
        source.height,
        grid.width,
        grid.height,
        grid.scale_x,
        grid.scale_y,
        len(bands),
        plan.window_count,
        method,
        radiometry.rule,
    )
    if region.aoi is not None:
        window = region.window
        log.info(
            "AOI: writing %dx%d px at (%d, %d) of the full output grid; %d windows outside it are not read",
            window.width,
            window.height,
            window.col_off,
            window.row_off,
            outside_aoi,
        )
    return plan


def spread_creation_options(settings: UpscaleSettings) -> dict:
    """The spread side-car's COG options: the run's profile and --co, for float32 data."""
    return cog_options(settings.profile, SPREAD_DTYPE, settings.creation_options)


def check_spread_destination(dst: Path, settings: UpscaleSettings, bands: int, src: str | Path, *, part: bool) -> None:
    """What refuses a spread side-car before any work: an existing side-car without --overwrite (not for a `part`
    of a split scene, whose side-car is a part file too: the assembly checks the real one), and --co that GDAL
    rejects for float32."""
    if not part:
        check_destination(spread_path(dst), overwrite=settings.overwrite, src=str(src))
    check_options_for_data(spread_creation_options(settings), SPREAD_DTYPE, bands, asked=settings.creation_options)


def scene_region(source: SourceInfo, settings: UpscaleSettings) -> tuple[OutputGrid, OutputRegion]:
    """The full output grid and the part of it a run writes (all of it, or the AOI's window)."""
    grid = plan_output_grid(
        source.width, source.height, source.transform, scale=settings.scale, resolution=settings.resolution
    )
    region = whole_grid(grid) if settings.aoi is None else aoi_region(grid, aoi_in_raster_crs(settings.aoi, source.crs))
    return grid, region


def scene_radiometry(dataset: DatasetReader, source: SourceInfo, bands: Sequence[int]) -> Radiometry:
    """The one value map used for every window of the scene (see radiometry.py for the rules)."""
    if uses_robust_range(source.dtype):
        sample, valid = read_sample(dataset, source, bands)
        return robust_radiometry(sample, valid)
    pick = [b - 1 for b in bands]
    return fixed_radiometry(
        source.dtype,
        len(bands),
        scales=[source.scales[i] for i in pick],
        offsets=[source.offsets[i] for i in pick],
    )


def scene_statistics(
    dataset: DatasetReader, source: SourceInfo, bands: Sequence[int], radiometry: Radiometry
) -> np.ndarray:
    """Per band (mean, std) of the scene's valid pixels in normalized units, from a decimated read.

    A model standardizes every window with these rather than the window's own, so a pixel's value does not
    depend on where the tiling (tile size, AOI, row split) put its window: only the blend differs."""
    sample, valid = read_sample(dataset, source, bands, max_side=STATS_SIDE)
    values = normalize(sample, radiometry)
    stats = np.zeros((len(bands), 2), dtype=np.float32)
    for b in range(len(bands)):
        v = values[b][valid[b]]
        if v.size:
            stats[b] = (float(v.mean()), float(v.std()))
    return stats


def output_spec(
    source: SourceInfo, bands: Sequence[int], grid: OutputGrid, region: OutputRegion, provenance: dict[str, str]
) -> OutputSpec:
    """The output carries the source's metadata for the selected bands, on the region of the output grid."""
    pick = [b - 1 for b in bands]
    is_float = np.issubdtype(np.dtype(source.dtype), np.floating)
    nodata = source.nodata
    if source.mask_kind == MaskKind.NAN or (nodata is None and is_float):
        nodata = math.nan  # NaN marked invalid pixels in the input; it does in the output too
    # Pixels outside an AOI are invalid: without a nodata value to mark them, an internal mask does.
    internal_mask = source.mask_kind == MaskKind.MASK or (region.aoi is not None and nodata is None)
    # The alpha band (if selected at all) is data here: the output's validity lives in its internal mask.
    colorinterp = tuple(
        ColorInterp.undefined if source.colorinterp[i] == ColorInterp.alpha else source.colorinterp[i] for i in pick
    )
    return OutputSpec(
        width=int(region.window.width),
        height=int(region.window.height),
        transform=region.transform(grid),
        crs=source.crs,
        dtype=source.dtype,
        nodata=None if internal_mask else nodata,
        internal_mask=internal_mask,
        descriptions=tuple(source.descriptions[i] for i in pick),
        colorinterp=colorinterp,
        scales=tuple(source.scales[i] for i in pick),
        offsets=tuple(source.offsets[i] for i in pick),
        # an input that is itself an rssr output passes its own tags on, but never its stale RSSR_* provenance
        tags={**{k: v for k, v in source.tags.items() if not k.startswith("RSSR_")}, **provenance},
        band_tags=tuple(source.band_tags[i] for i in pick),
    )
