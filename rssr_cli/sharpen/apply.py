"""The guided pass of an upscale: coarse bands of a band stack sharpened on the common output grid.

Each guided band is computed tile by tile on the common grid: its native pixels and the guides' native pixels
resampled (bicubic, the sharpener's kernel) at the exact positions of the output pixels, the network applied.
The guides are resampled from their own native pixels, as in training (Wald's protocol puts the degraded guides
on the band's grid by the same bicubic), never taken from the run's super-resolved guides: at outputs finer than
the guides (20 m bands to 5 m) the network was trained on guides that carry 10 m information and nothing finer,
and fed a model's sharpened 10 m bands it amplified their grain into a maze texture (BENCHMARKS.md, "20 m bands
at 5 m"). Tiles carry a halo of the network's receptive radius, so every output pixel is computed from exactly
the same inputs whatever the tiling (tile-independent, no blending needed).

A band-stack run holds a GuidedPass (load_guided_pass); the pipeline imports this module only when a band is
guided (pipeline/stack_guidance.py), so runs without one never load torch.
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from rssr_cli.core.errors import CheckpointError
from rssr_cli.geo.grid import Placement
from rssr_cli.io.products import StackBand
from rssr_cli.io.radiometry import keep_clear_of_nodata, to_dtype
from rssr_cli.io.raster_io import mask_declared_nodata
from rssr_cli.sharpen.bands import SHARPENER_ENV, default_sharpener_path
from rssr_cli.sharpen.bounds import BOUND_MARGIN, band_range
from rssr_cli.sharpen.degrade import resample_for_sharpener
from rssr_cli.sharpen.model import GuidedSharpener, load_sharpener
from rssr_cli.sharpen.predict import back_projection_halo, consistent_and_bounded, guide_ratio_for, sharpen_array
from rssr_cli.sharpen.scene import band_stats_decimated, decimated_sample, stats_of

TILE = 384  # output px per tile side (core); activations ~ width x (TILE + 2 halo)^2 floats


def find_sharpener() -> Optional[GuidedSharpener]:
    path = default_sharpener_path()
    if not path.is_file():
        if os.environ.get(SHARPENER_ENV):
            raise CheckpointError(f"{SHARPENER_ENV}={path}: no such file")
        return None
    return load_sharpener(path)


def sharpener_halo(model: GuidedSharpener, scale: float) -> int:
    """Output px of context a guided pixel depends on (network receptive field + back-projection): tiles and an
    AOI's guides are read this far beyond its edge, so the output does not depend on either."""
    return model.receptive_radius + 1 + back_projection_halo(scale)


@dataclass(frozen=True)
class Placed:
    """A band of the stack and where the common grid lies on its native pixels."""

    band: StackBand
    placement: Placement


@dataclass(frozen=True)
class GuidedJob:
    band: StackBand
    placement: Placement
    scale: float
    output_pixel: float
    guides: tuple[Placed, ...]  # the guide bands, in the sharpener's order (GUIDE_BANDS)


@dataclass(frozen=True)
class OnOutput:
    """A band's native pixels around a block of output pixels, and their bicubic values at the output centres."""

    native: np.ndarray  # [h, w] stored units, invalid pixels filled
    native_valid: np.ndarray  # [h, w]
    ys: np.ndarray  # the output rows' centres in `native`'s pixel coordinates
    xs: np.ndarray
    values: np.ndarray  # [H, W] the native pixels resampled at the output centres (SHARPENER_CUBIC_A)
    valid: np.ndarray  # [H, W] the nearest native pixel's validity (the unguided rule)


def read_on_output(
    dataset, placed: Placed, rows: tuple[int, int], cols: tuple[int, int], nodata: Optional[float], fill: float
) -> OnOutput:
    """The band's native pixels under output rows [rows) and columns [cols) of the common grid (3 native pixels
    around: the bicubic support and the bound's neighbourhood), invalid ones filled with `fill` (the scene's mean,
    so bicubic does not ring at swath edges, the same whatever the tile), resampled at the output centres."""
    p, band = placed.placement, placed.band
    ys = p.y0 + (np.arange(*rows) + 0.5) * p.dy
    xs = p.x0 + (np.arange(*cols) + 0.5) * p.dx
    top, bottom = max(0, math.floor(ys[0]) - 3), min(band.height, math.ceil(ys[-1]) + 3)
    left, right = max(0, math.floor(xs[0]) - 3), min(band.width, math.ceil(xs[-1]) + 3)
    window = Window(left, top, right - left, bottom - top)
    native = dataset.read(band.index, window=window).astype(np.float32)
    native_valid = mask_declared_nodata(native, dataset.read_masks(band.index, window=window) > 0, band.nodata, nodata)
    native[~native_valid] = fill
    ys, xs = ys - top, xs - left
    values = resample_for_sharpener(
        torch.from_numpy(native)[None, None], torch.from_numpy(ys).float()[None], torch.from_numpy(xs).float()[None]
    )[0, 0].numpy()
    near_r = np.clip(np.floor(ys).astype(int), 0, native.shape[0] - 1)
    near_c = np.clip(np.floor(xs).astype(int), 0, native.shape[1] - 1)
    return OnOutput(native, native_valid, ys, xs, values, native_valid[np.ix_(near_r, near_c)])


def sharpen_band(
    model: GuidedSharpener,
    job: GuidedJob,
    guide_stats: np.ndarray,
    *,
    region: Window,
    context: Window,
    nodata: Optional[float],
    dtype: str,
    write: Callable[[np.ndarray, Window], None],
    progress: Optional[Callable[[int], None]] = None,
    tile: Optional[int] = None,
) -> int:
    """Write one guided band over `region` (a window of the common grid), tile by tile through
    `write(data [1,h,w], window in region coordinates)`; returns the tiles done. A tile reads its inputs over its
    core and the halo beyond it (sharpener_halo) within `context` (the region grown by that halo, clamped to the
    grid), so a tile at the region's edge sees what it sees in a run over the whole grid."""
    halo = sharpener_halo(model, job.scale)
    tile = tile or TILE
    sample = decimated_sample(job.band, nodata)  # one read for both statistics
    stats, margin = stats_of(*sample), BOUND_MARGIN * band_range(*sample)
    top, left, height, width = int(region.row_off), int(region.col_off), int(region.height), int(region.width)
    c_top, c_left = int(context.row_off), int(context.col_off)
    c_bottom, c_right = c_top + int(context.height), c_left + int(context.width)
    if not (c_top <= top and c_left <= left and top + height <= c_bottom and left + width <= c_right):
        raise ValueError(f"the context {context} does not hold the region {region}")
    placed = Placed(job.band, job.placement)
    done = 0
    with ExitStack() as files:
        band_file = files.enter_context(rasterio.open(job.band.dataset))
        guide_files = [files.enter_context(rasterio.open(g.band.dataset)) for g in job.guides]
        for r0 in range(top, top + height, tile):
            for c0 in range(left, left + width, tile):  # full-grid pixels from here on
                r1, c1 = min(top + height, r0 + tile), min(left + width, c0 + tile)
                rows = (max(c_top, r0 - halo), min(c_bottom, r1 + halo))
                cols = (max(c_left, c0 - halo), min(c_right, c1 + halo))
                band = read_on_output(band_file, placed, rows, cols, nodata, stats[0])
                on_output = [
                    read_on_output(f, g, rows, cols, nodata, float(s[0]))
                    for f, g, s in zip(guide_files, job.guides, guide_stats)
                ]
                guides = np.stack([g.values for g in on_output])
                guide_valid = np.logical_and.reduce([g.valid for g in on_output])
                out = sharpen_array(
                    model,
                    job.band.name,
                    band.values,
                    guides,
                    scale=job.scale,
                    guide_ratio=guide_ratio_for(job.output_pixel),
                    band_stats=stats,
                    guide_stats=guide_stats,
                )
                out = np.where(guide_valid, out, band.values)  # no guide there (swath edge): the band resampled alone
                out = consistent_and_bounded(
                    out,
                    band.native,
                    band.native_valid,
                    band.ys,
                    band.xs,
                    job.scale,
                    margin,
                    guides,
                    guide_stats[:, 1],
                    guide_valid,
                )
                core = (slice(r0 - rows[0], r1 - rows[0]), slice(c0 - cols[0], c1 - cols[0]))
                data, ok = to_dtype(out[core], dtype)[None], band.valid[core][None]
                if nodata is not None:
                    data = keep_clear_of_nodata(data, ok, nodata)
                    data[~ok] = nodata
                write(data, Window(c0 - left, r0 - top, c1 - c0, r1 - r0))
                done += 1
                if progress is not None:
                    progress(done)
    return done


def tiles_of(region: Window, tile: Optional[int] = None) -> int:
    tile = tile or TILE
    return math.ceil(int(region.height) / tile) * math.ceil(int(region.width) / tile)


def guide_statistics(guides: Sequence[StackBand], nodata: Optional[float]) -> np.ndarray:
    """[G, 2] (mean, std) of the guide bands from their native files (as in training: the scene's statistics)."""
    return np.array([band_stats_decimated(g, nodata) for g in guides], dtype=np.float32)


@dataclass(frozen=True)
class GuidedPass:
    """A loaded sharpener with the guides' statistics, and the pass that runs it: what a band-stack run holds."""

    model: GuidedSharpener
    guide_stats: np.ndarray  # [G, 2] (mean, std) of the guide bands (guide_statistics)

    @property
    def card(self) -> dict[str, Any]:
        return getattr(self.model, "card", {})

    def halo(self, scale: float) -> int:
        return sharpener_halo(self.model, scale)

    def tiles(self, region: Window) -> int:
        return tiles_of(region)

    def sharpen(
        self,
        band: StackBand,
        placement: Placement,
        scale: float,
        output_pixel: float,
        guides: Sequence[tuple[StackBand, Optional[Placement]]],
        **options: Any,
    ) -> int:
        """sharpen_band of one band (a GuidedJob's fields; the guides with their placements on the common grid) with
        this model and these statistics (options: its keywords)."""
        placed = []
        for guide, where in guides:
            assert where is not None  # every band of a stack is placed on the common grid (stack_plan.band_grid)
            placed.append(Placed(guide, where))
        job = GuidedJob(band, placement, scale, output_pixel, tuple(placed))
        return sharpen_band(self.model, job, self.guide_stats, **options)


def load_guided_pass(guides: Sequence[StackBand], nodata: Optional[float]) -> GuidedPass:
    """The sharpener (find_sharpener: $RSSR_SHARPENER or the shipped one) for a run guided by `guides`."""
    model = find_sharpener()
    if model is None:  # stack_plan.guidance_on saw it a moment ago
        raise CheckpointError(f"no guided sharpening model at {default_sharpener_path()}")
    return GuidedPass(model, guide_statistics(guides, nodata))
