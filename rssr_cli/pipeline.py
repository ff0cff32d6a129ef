"""The upscale API: `upscale(src, dst, settings)` super-resolves a raster into a COG that lines up with the input.

Data flows one way (DESIGN.md): open + validate the source -> plan the output grid and the tiles ->
per tile row: read each halo window, normalize, fill nodata -> backend.upsample in batches -> blend
into a bounded row accumulator -> write the rows no later tile touches -> finalize the COG atomically.
This module orchestrates; reading, grid maths, radiometry, blending and writing live in their own modules.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window

from . import __version__
from .aoi import AreaOfInterest, aoi_in_raster_crs, aoi_tag
from .backends import CLASSICAL_METHODS, SRBackend, SRRequest, backend_names, check_method_options, get_backend
from .cog import (
    DEFAULT_PROFILE,
    OutputSpec,
    check_destination,
    check_options_for_data,
    cog_options,
    finalize_cog,
    open_intermediate,
    staging_dir,
    write_rows,
)
from .errors import RssrError, UsageError
from .evaluation.fidelity import Comparison, CropSamples, measure_fidelity
from .evaluation.fidelity_report import FidelityOptions, FidelityReport, check
from .grid import OutputGrid, Tile, format_resolution, hr_grid_for, plan_output_grid, plan_tiles, tile_blend_weights, tile_seed
from .interrupts import raise_on_signals
from .products import is_band_stack
from .backends.classical import resample
from .quicklook import compose, display_bands, write_png
from .mosaic import FinishedRows, RowAccumulator, hr_validity
from .radiometry import Radiometry, denormalize, fixed_radiometry, normalize, robust_radiometry, uses_robust_range
from .raster_io import (
    MaskKind,
    SourceInfo,
    fill_invalid,
    gdal_env,
    inspect_source,
    open_raster,
    read_sample,
    read_window,
    select_bands,
)
from .source_identity import source_identity
from .region import OutputRegion, aoi_region, row_band, split_rows, tiles_for_region, whole_grid

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (windows done, windows total)

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 32
DEFAULT_BATCH_SIZE = 4
STATS_SIDE = 512  # decimated read for the scene statistics: at most 512 px on its longer side


# The method used when none is given. Never a silent fallback to a classical method: if no model can be
# found, building the backend fails with one line naming --model, RSSR_MODEL and --method bicubic.
DEFAULT_METHOD = "diffusion"


@dataclass(frozen=True)
class UpscaleSettings:
    """Everything that decides an upscale run; the CLI builds one of these from its flags.

    Give exactly one of `scale` (any real > 1) or `resolution` (target pixel size in CRS units: square, or (x, y)).
    `method=None` means DEFAULT_METHOD (diffusion); `backend_options` go to get_backend(method, **options).
    `bands` are 1-based numbers or band names (descriptions; B04, red, ... for products); None means every data
    band (an alpha band becomes the output mask), or the four 10 m bands of a Sentinel-2 product; ("all",) all bands.
    `aoi`: write only the output grid's window around this area, pixels outside it invalid (region.py).
    `fidelity`: measure the output against its input (fidelity.py), tag it, optionally write the sidecar
    report, and refuse to write it when a threshold is exceeded.
    `threads`: torch's thread count and GDAL_NUM_THREADS for the run (threads.py says what None means).
    `nodata`: pixels of this value are invalid (filled before the backend, nodata in the output, which
    carries this nodata value), in place of the file's own nodata or mask; for files that declare none.
    """

    scale: Optional[float] = None
    resolution: Optional[float | tuple[float, float]] = None
    method: Optional[str] = None
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    tile: Optional[int] = None  # None: auto_tiling() for the method and scale
    overlap: Optional[int] = None
    batch_size: int = DEFAULT_BATCH_SIZE
    bands: Optional[tuple[int | str, ...]] = None
    seed: int = 0
    overwrite: bool = False
    profile: str = DEFAULT_PROFILE
    creation_options: Mapping[str, str] = field(default_factory=dict)
    aoi: Optional[AreaOfInterest] = None
    fidelity: Optional[FidelityOptions] = None
    threads: Optional[int] = None  # CPU threads for the model and GDAL; None: OMP_NUM_THREADS, else all cores
    nodata: Optional[float] = None  # declared nodata value (files that carry none); None: the file's own
    guidance: Optional[bool] = None  # band stacks: coarse bands guided by the 10 m bands (None: not a stack / default on)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if self.method is not None:
            if not self.method.strip():  # an empty string must not quietly mean "the default method"
                raise UsageError(f"--method is empty; choose one of: {', '.join(backend_names())}")
            check_method_options(self.method, self.backend_options)


@dataclass(frozen=True)
class UpscaleResult:
    """What was written."""

    dst: Path
    width: int
    height: int
    bands: int
    dtype: str
    scale_x: float
    scale_y: float
    method: str
    windows: int
    skipped_windows: int  # entirely nodata: never sent to the backend
    seconds: float
    outside_aoi_windows: int = 0  # windows of the full-scene tiling whose patch misses the AOI: never read
    fidelity: Optional[FidelityReport] = None

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / self.seconds if self.seconds > 0 else math.inf


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

    @property
    def window_count(self) -> int:
        return sum(len(row) for row in self.tiles)


def upscale(
    src: str | Path,
    dst: str | Path,
    settings: Optional[UpscaleSettings] = None,
    *,
    progress: Optional[Progress] = None,
    backend: Optional[SRBackend] = None,
    **overrides: Any,
) -> UpscaleResult:
    """Super-resolve `src` into a COG at `dst`. Keyword overrides replace settings fields: upscale(a, b, scale=4.5).

    `backend`: an already built backend for settings.method (a batch loads its model once for every scene)."""
    settings = replace(settings or UpscaleSettings(), **overrides)
    if is_band_stack(str(src)):  # a Sentinel-2 product or STAC item: bands of several grids onto one
        from .stack_pipeline import upscale_stack

        return upscale_stack(src, dst, settings, progress=progress, backend=backend)
    dst = Path(dst)
    started = time.perf_counter()
    windows_done = [0]

    def track(done: int, total: int) -> None:
        windows_done[0] = done
        if progress is not None:
            progress(done, total)

    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan, backend = plan_run(dataset, src, dst, settings, backend)
        skipped = 0
        try:
            with staging_dir(dst) as staging:
                intermediate = staging / "stream.tif"
                with open_intermediate(intermediate, plan.output) as writer:
                    skipped = stream_tiles(dataset, plan, backend, lambda rows: _write(writer, plan, rows), track)
                report = finish(dataset, plan, backend, intermediate, dst, staging)
        except RssrError as error:  # the JSON log reports the work done before the failure, not 0
            error.windows, error.skipped_windows = windows_done[0], skipped
            raise
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", dst, seconds)
    grid, window = plan.grid, plan.region.window
    return UpscaleResult(
        dst, int(window.width), int(window.height), len(plan.bands), plan.source.dtype, grid.scale_x, grid.scale_y,
        plan.method, plan.window_count, skipped, seconds, plan.outside_aoi_windows, report,
    )  # fmt: skip


def finish(
    dataset: DatasetReader, plan: RunPlan, backend: SRBackend, intermediate: Path, dst: Path, staging: Path
) -> Optional[FidelityReport]:
    """The written intermediate -> DST: measure fidelity when asked (and refuse the output if it fails a
    check), build the COG, then move the sidecars beside it (a report never describes a file not there)."""
    settings = plan.settings
    report, sidecars = None, []
    if settings.fidelity is not None:
        report, sidecars = assess_fidelity(dataset, plan, backend, intermediate, dst, staging)
    if report is None or report.passed:
        finalize_cog(intermediate, dst, plan.creation_options, overwrite=settings.overwrite)
    for staged, final in sidecars:
        os.replace(staged, final)
    if report is not None:
        report.raise_if_failed()
    return report


def build_backend(method: str, settings: UpscaleSettings) -> SRBackend:
    """The backend of a run: settings.backend_options, plus --threads for a model's CPU threads (the classical
    resamplers are numpy: GDAL_NUM_THREADS is all --threads means to them)."""
    options = dict(settings.backend_options)
    if settings.threads is not None and method not in CLASSICAL_METHODS:
        options["threads"] = settings.threads
    return get_backend(method, **options)


MODEL_WINDOW_HR_PX = 512  # HR side of a model window's core: bounds a window's memory whatever the scale


def auto_tiling(method: str, scale: float, tile: Optional[int], overlap: Optional[int]) -> tuple[int, int]:
    """Fill in tile/overlap left unset. Classical methods: 256/32. A model's cost and memory grow with the
    HR pixels of a window (its attention and UNet run on the whole HR window), so its LR tile shrinks as
    the scale grows: about MODEL_WINDOW_HR_PX HR px per core side, overlap a quarter of the tile (<= 32)."""
    if tile is None:
        tile = DEFAULT_TILE if method in CLASSICAL_METHODS else int(min(DEFAULT_TILE, max(32, round(MODEL_WINDOW_HR_PX / scale))))
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, tile // 4)
    return tile, overlap


def plan_run(
    dataset: DatasetReader,
    src: str | Path,
    dst: Path,
    settings: UpscaleSettings,
    backend: Optional[SRBackend] = None,
    *,
    rows: Optional[tuple[int, int]] = None,
) -> tuple[RunPlan, SRBackend]:
    """Validate everything that can be refused before any work (cheap checks first, the backend last).

    `rows`: write only these full-grid output rows (one part of a scene split by rows; DST is then a part
    file, not checked against --overwrite: the caller that assembles the parts checks the real DST)."""
    source = inspect_source(dataset, nodata=settings.nodata)
    bands = select_bands(source, settings.bands)
    grid, region = scene_region(source, settings)
    method = settings.method or DEFAULT_METHOD
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
    if backend is None:
        backend = build_backend(method, settings)  # may load a model: after the cheap checks
    radiometry = scene_radiometry(dataset, source, bands)
    tags = provenance_tags(settings, method, grid, radiometry, backend) | region_tags(region, grid) | source_identity(src)
    output = output_spec(source, bands, grid, region, tags)
    stats = None if method in CLASSICAL_METHODS else scene_statistics(dataset, source, bands, radiometry)
    plan = RunPlan(
        source, bands, grid, tiles, radiometry, output, creation_options, method, settings, region, outside_aoi, stats
    )  # fmt: skip
    log.info(
        "%s: %dx%d -> %dx%d (x%.4g, x%.4g), %d bands, %d windows, method %s, radiometry %s",
        source.path, source.width, source.height, grid.width, grid.height,
        grid.scale_x, grid.scale_y, len(bands), plan.window_count, method, radiometry.rule,
    )  # fmt: skip
    if region.aoi is not None:
        window = region.window
        log.info(
            "AOI: writing %dx%d px at (%d, %d) of the full output grid; %d windows outside it are not read",
            window.width, window.height, window.col_off, window.row_off, outside_aoi,
        )  # fmt: skip
    return plan, backend


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


def scene_statistics(dataset: DatasetReader, source: SourceInfo, bands: Sequence[int], radiometry: Radiometry) -> np.ndarray:
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


def provenance_tags(
    settings: UpscaleSettings, method: str, grid: OutputGrid, radiometry: Radiometry, backend: SRBackend
) -> dict[str, str]:
    """RSSR_* tags recording how the output was made (the backend adds its own, e.g. model id and hash)."""
    return {
        "RSSR_VERSION": __version__,
        "RSSR_SCALE_XY": f"{grid.scale_x:.10g},{grid.scale_y:.10g}",
        "RSSR_TILE": str(settings.tile),
        "RSSR_OVERLAP": str(settings.overlap),
        "RSSR_RADIOMETRY": radiometry.rule,
        **request_tags(settings, method, backend),
    }


def request_tags(settings: UpscaleSettings, method: str, backend: SRBackend) -> dict[str, str]:
    """The tags that identify what was asked for (method, model hash, sampler, scale, bands, seed, AOI, declared
    nodata): an output whose tags contain these was made by an equivalent request, so a batch can skip it."""
    requested = f"{settings.scale:g}" if settings.scale is not None else f"resolution {format_resolution(settings.resolution)}"
    tags = {
        "RSSR_METHOD": method,
        "RSSR_SCALE": requested,
        "RSSR_BANDS": "all" if settings.bands is None else ",".join(map(str, settings.bands)),
        "RSSR_SEED": str(settings.seed),
        "RSSR_AOI_ID": settings.aoi.fingerprint if settings.aoi is not None else "none",
        "RSSR_NODATA": "file" if settings.nodata is None else f"{settings.nodata:g}",  # "file": the file's own
    }
    if settings.guidance is not None:  # band stacks only (stack_pipeline.request_settings sets it)
        tags["RSSR_GUIDANCE"] = "on" if settings.guidance else "off"
    tags.update({f"RSSR_{key.upper()}": str(value) for key, value in backend.provenance().items()})
    return tags


def region_tags(region: OutputRegion, grid: OutputGrid) -> dict[str, str]:
    """RSSR_AOI (WKT in the raster CRS) and its bounds, when the output is cut to an AOI."""
    if region.aoi is None:
        return {}
    resolution = min(abs(grid.transform.a), abs(grid.transform.e))
    return {
        "RSSR_AOI": aoi_tag(region.aoi, resolution),
        "RSSR_AOI_BOUNDS": ",".join(f"{v:.10g}" for v in region.aoi.bounds),
    }


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


@dataclass(frozen=True)
class PreparedWindow:
    """A tile's LR input ready for the backend; request is None when the window is entirely nodata."""

    tile: Tile
    request: Optional[SRRequest]
    valid: np.ndarray  # LR validity of the halo window, [bands, h, w]


def model_input(dataset: DatasetReader, plan: RunPlan, window: Window) -> tuple[Optional[np.ndarray], np.ndarray]:
    """A window's values for the backend (normalized, nodata filled; None when entirely nodata) and its validity."""
    data, valid = read_window(dataset, plan.source, plan.bands, window)
    if not valid.any():
        return None, valid
    return fill_invalid(normalize(data, plan.radiometry), valid), valid


def prepare_window(dataset: DatasetReader, plan: RunPlan, tile: Tile) -> PreparedWindow:
    """Read a halo window, normalize it and fill its nodata so the backend sees only plausible values."""
    values, valid = model_input(dataset, plan, tile.halo)
    if values is None:
        return PreparedWindow(tile, None, valid)
    return PreparedWindow(tile, SRRequest(values, tile.hr, tile_seed(plan.settings.seed, tile), plan.scene_stats), valid)


def upsample_windows(backend: SRBackend, windows: Sequence[PreparedWindow]) -> list[np.ndarray]:
    """One backend call for a batch of windows that have data; checks the contract on the way back."""
    patches = backend.upsample([w.request for w in windows])
    if len(patches) != len(windows):
        raise ValueError(f"backend {backend.name!r} returned {len(patches)} patches for {len(windows)} windows")
    for window, patch in zip(windows, patches):
        expected = (len(window.request.lr), window.tile.hr.height, window.tile.hr.width)
        if patch.shape != expected:
            raise ValueError(f"backend {backend.name!r} returned a patch of shape {patch.shape}, expected {expected}")
    return patches


def stream_tiles(
    dataset: DatasetReader,
    plan: RunPlan,
    backend: SRBackend,
    write: Callable[[FinishedRows], None],
    progress: Optional[Progress] = None,
) -> int:
    """Process tile rows top to bottom, handing finished output rows to `write`; returns the skipped window count.

    After tile row r, output rows above tile row r+1's first HR row get no more contributions, so
    they are written and dropped: the accumulator spans about one tile row of output at any time.
    Windows with data are batched (batch_size per backend call) within a row; all-nodata ones are skipped.
    """
    grid, tiles = plan.grid, plan.tiles
    track_validity = plan.source.mask_kind != MaskKind.NONE
    accumulator = RowAccumulator(len(plan.bands), plan.region.window, track_validity=track_validity)
    counter = _ProgressCounter(plan.window_count, progress)
    skipped = 0
    for r, row in enumerate(tiles):
        last = r + 1 == len(tiles)
        # The last row also opens the region's rows below every kept tile (an AOI's edge rows may have none).
        accumulator.extend_to(grid.height if last else max(int(t.out.row_off + t.out.height) for t in row))
        pending: list[PreparedWindow] = []
        for tile in row:
            window = prepare_window(dataset, plan, tile)
            _record_validity(accumulator, window, grid)
            if window.request is None:
                skipped += 1
                counter.advance(1)
            else:
                pending.append(window)
            if len(pending) == plan.settings.batch_size:
                _blend_batch(backend, pending, accumulator, plan)
                counter.advance(len(pending))
                pending = []
        if pending:
            _blend_batch(backend, pending, accumulator, plan)
            counter.advance(len(pending))
        final_row = grid.height if last else int(tiles[r + 1][0].out.row_off)
        finished = accumulator.pop_until(final_row)
        if finished is not None:
            write(finished)
    return skipped


def _record_validity(accumulator: RowAccumulator, window: PreparedWindow, grid: OutputGrid) -> None:
    if accumulator.tracks_validity:
        accumulator.set_validity(window.tile.out, hr_validity(window.valid, window.tile, grid))


def _blend_batch(backend: SRBackend, batch: Sequence[PreparedWindow], accumulator: RowAccumulator, plan: RunPlan) -> None:
    for window, patch in zip(batch, upsample_windows(backend, batch)):
        accumulator.add(window.tile.out, patch, tile_blend_weights(window.tile, plan.grid, plan.settings.overlap))


class _ProgressCounter:
    """Counts finished windows and reports (done, total) to the optional callback."""

    def __init__(self, total: int, callback: Optional[Progress]) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def advance(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, self.total)


def _write(writer: DatasetWriter, plan: RunPlan, rows: FinishedRows) -> None:
    """Back to stored values, invalid pixels marked as the output marks them, then onto disk, a block at a time."""
    spec, window = plan.output, plan.region.window
    for row_off, values, valid in rows.blocks():
        data = denormalize(values, plan.radiometry, spec.dtype)
        inside = plan.region.inside(row_off, data.shape[1])
        if inside is not None:
            valid = np.broadcast_to(inside, data.shape) if valid is None else valid & inside
        mask = None
        if valid is not None:
            if spec.internal_mask:
                mask = valid.all(axis=0)
                data[:, ~mask] = 0
            else:
                data = _keep_clear_of_nodata(data, valid, spec.nodata)
                data[~valid] = spec.nodata
        write_rows(writer, spec, row_off - int(window.row_off), data, mask)


def _keep_clear_of_nodata(data: np.ndarray, valid: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """A valid integer pixel that lands on the nodata value (e.g. 0 after clipping) moves one step away,
    or it would silently vanish from the output."""
    if nodata is None or not np.issubdtype(data.dtype, np.integer):
        return data
    collide = valid & (data == nodata)
    if collide.any():
        step = 1 if nodata < np.iinfo(data.dtype).max else -1
        data[collide] = data.dtype.type(nodata + step)
    return data


# ------------------------------------------------------------------------------------------ fidelity


def sidecar_paths(dst: Path) -> tuple[Path, Path]:
    """Where `--report` writes: OUT.fidelity.json and OUT.fidelity.png beside OUT.tif."""
    return dst.with_name(dst.stem + ".fidelity.json"), dst.with_name(dst.stem + ".fidelity.png")


def assess_fidelity(
    dataset: DatasetReader, plan: RunPlan, backend: SRBackend, intermediate: Path, dst: Path, staging: Path
) -> tuple[FidelityReport, list[tuple[Path, Path]]]:
    """Measure the written intermediate against the source, record the figures in its tags, and stage the
    sidecars (JSON and quick-look) when asked; returns the checked report and (staged, final) sidecar paths."""
    import rasterio

    options = plan.settings.fidelity
    assert options is not None
    comparison = Comparison.plan(plan.grid, plan.region.window)
    with rasterio.open(intermediate) as output:
        report, crop = measure_fidelity(
            dataset, plan.source, plan.bands, output, comparison, method=plan.method, options=options,
            sample_crop=crop_sampler(dataset, plan, backend), seed=plan.settings.seed,
        )  # fmt: skip
        report = check(report, str(dst))
        quicklook = _quicklook(dataset, plan, output, crop, report) if options.write_report and crop is not None else None
    with rasterio.open(intermediate, "r+") as output:
        output.update_tags(**report.tags())
    log.info("fidelity: %s", report.summary())
    if not options.write_report:
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


# ------------------------------------------------------------------------------------ split by rows


@dataclass(frozen=True)
class RowsPart:
    """One band of output rows of a scene, written by render_rows to a plain GeoTIFF."""

    path: Path
    rows: tuple[int, int]  # full-grid output rows [start, stop)
    method: str
    provenance: dict[str, str]  # the backend's tags (model hash, sampler), so assembly needs no model
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
    src: str | Path, part: Path, settings: UpscaleSettings, rows: tuple[int, int], *, backend: Optional[SRBackend] = None
) -> RowsPart:
    """Write output rows [start, stop) of the scene to `part`, exactly as a whole-scene run computes them:
    the tiles are those of the full-scene tiling whose patch reaches these rows, with their own seeds and
    blend weights, so the bands of a split run join without a seam (assemble_rows)."""
    started = time.perf_counter()
    settings = replace(settings, fidelity=None)  # measured once on the assembled output (assemble_rows)
    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan, backend = plan_run(dataset, src, part, settings, backend, rows=rows)
        with open_intermediate(part, plan.output) as writer:
            skipped = stream_tiles(dataset, plan, backend, lambda finished: _write(writer, plan, finished))
    return RowsPart(part, rows, plan.method, dict(backend.provenance()), plan.window_count, skipped, time.perf_counter() - started)


@dataclass(frozen=True)
class RecordedProvenance:
    """Stands in for the backend when assembling parts: only its name and tags are needed then."""

    name: str
    tags: dict[str, str]

    def upsample(self, requests: Sequence[SRRequest]) -> list[np.ndarray]:
        raise RuntimeError("assembly never runs the model")

    def provenance(self) -> dict[str, str]:
        return self.tags


ASSEMBLY_ROWS = 256  # rows copied per read/write while assembling


def assemble_rows(
    src: str | Path, dst: str | Path, settings: UpscaleSettings, parts: Sequence[RowsPart], *, backend: Optional[SRBackend] = None
) -> UpscaleResult:
    """Join the row bands of a split scene into one COG at `dst` (atomic, like upscale); byte-identical to a
    whole-scene run. The parts must cover the output rows exactly once. With settings.fidelity the report
    is measured here on the joined output; its uncertainty crop needs the backend (built here if not given)."""
    import rasterio

    dst = Path(dst)
    started = time.perf_counter()
    parts = sorted(parts, key=lambda p: p.rows)
    if backend is None:
        backend = (
            build_backend(parts[0].method, settings) if settings.fidelity is not None
            else RecordedProvenance(parts[0].method, parts[0].provenance)
        )  # fmt: skip
    with raise_on_signals(), gdal_env(settings.threads), open_raster(src) as dataset:
        plan, _ = plan_run(dataset, src, dst, replace(settings, method=parts[0].method), backend)
        window = plan.region.window
        expected = (int(window.row_off), int(window.row_off + window.height))
        covered = [p.rows for p in parts]
        if covered[0][0] != expected[0] or covered[-1][1] != expected[1] or any(a[1] != b[0] for a, b in zip(covered, covered[1:])):
            raise ValueError(f"row bands {covered} do not cover the output rows {expected[0]}..{expected[1]} exactly once")
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
        dst, int(window.width), int(window.height), len(plan.bands), plan.source.dtype, plan.grid.scale_x,
        plan.grid.scale_y, parts[0].method, sum(p.windows for p in parts), sum(p.skipped_windows for p in parts),
        time.perf_counter() - started, plan.outside_aoi_windows, report,
    )  # fmt: skip
