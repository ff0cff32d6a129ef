"""The guided pass of an upscale: coarse bands of a band stack sharpened on the common output grid.

The guide bands are first written onto the common grid (copied when it is their own, super-resolved by the
run's method otherwise) into a staging file; each guided band is then computed tile by tile on that grid: its
native pixels resampled (bicubic) at the exact positions of the output pixels, the guides read back, the
network applied. Tiles carry a halo of the network's receptive radius, so every output pixel is computed from
exactly the same inputs whatever the tiling (tile-independent, no blending needed).

A band-stack run holds a GuidedPass (load_guided_pass); the pipeline imports this module only when a band is
guided (pipeline/stack_guidance.py), so runs without one never load torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
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
    AOI's staged guides carry this much beyond their core, so the output does not depend on either."""
    return model.receptive_radius + 1 + back_projection_halo(scale)


@dataclass(frozen=True)
class GuidedJob:
    band: StackBand
    placement: Placement
    scale: float
    output_pixel: float


def _read_native(
    dataset, band: StackBand, rows: tuple[int, int], cols: tuple[int, int], nodata: Optional[float], fill: float
):
    """Values (invalid pixels filled with the scene's mean, so bicubic does not ring at swath edges, the same
    whatever the tile) and validity."""
    window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
    values = dataset.read(band.index, window=window).astype(np.float32)
    valid = mask_declared_nodata(values, dataset.read_masks(band.index, window=window) > 0, band.nodata, nodata)
    values[~valid] = fill
    return values, valid


def sharpen_band(
    model: GuidedSharpener,
    job: GuidedJob,
    guides_path: Path,
    guide_stats: np.ndarray,
    *,
    region: Window,
    staged: Window,
    nodata: Optional[float],
    dtype: str,
    write: Callable[[np.ndarray, Window], None],
    progress: Optional[Callable[[int], None]] = None,
    tile: Optional[int] = None,
) -> int:
    """Write one guided band over `region` (a window of the common grid), tile by tile through
    `write(data [1,h,w], window in region coordinates)`; returns the tiles done. guides_path holds the guides on
    `staged`: the region and the halo beyond it (sharpener_halo, clamped to the grid), so a tile at the region's
    edge sees the context it has in a run over the whole grid."""
    halo = sharpener_halo(model, job.scale)
    tile = tile or TILE
    sample = decimated_sample(job.band, nodata)  # one read for both statistics
    stats, margin = stats_of(*sample), BOUND_MARGIN * band_range(*sample)
    top, left, height, width = int(region.row_off), int(region.col_off), int(region.height), int(region.width)
    s_top, s_left = int(staged.row_off), int(staged.col_off)
    s_bottom, s_right = s_top + int(staged.height), s_left + int(staged.width)
    if not (s_top <= top and s_left <= left and top + height <= s_bottom and left + width <= s_right):
        raise ValueError(f"the staged guides {staged} do not cover the region {region}")
    p = job.placement
    done = 0
    with rasterio.open(guides_path) as guides_file, rasterio.open(job.band.dataset) as band_file:
        for r0 in range(top, top + height, tile):
            for c0 in range(left, left + width, tile):  # full-grid pixels from here on
                r1, c1 = min(top + height, r0 + tile), min(left + width, c0 + tile)
                hr0, hr1, hc0, hc1 = (
                    max(s_top, r0 - halo),
                    min(s_bottom, r1 + halo),
                    max(s_left, c0 - halo),
                    min(s_right, c1 + halo),
                )
                guides = guides_file.read(window=Window(hc0 - s_left, hr0 - s_top, hc1 - hc0, hr1 - hr0)).astype(
                    np.float32
                )
                guide_valid = np.ones(guides.shape[1:], bool) if nodata is None else (guides != nodata).all(axis=0)
                # output pixel centres in the band's native pixel coordinates
                ys = p.y0 + (np.arange(hr0, hr1) + 0.5) * p.dy
                xs = p.x0 + (np.arange(hc0, hc1) + 0.5) * p.dx
                rows = (max(0, math.floor(ys[0]) - 3), min(job.band.height, math.ceil(ys[-1]) + 3))
                cols = (max(0, math.floor(xs[0]) - 3), min(job.band.width, math.ceil(xs[-1]) + 3))
                native, native_valid = _read_native(band_file, job.band, rows, cols, nodata, stats[0])
                ty = torch.from_numpy(ys - rows[0]).float()[None]
                tx = torch.from_numpy(xs - cols[0]).float()[None]
                band_up = resample_for_sharpener(torch.from_numpy(native)[None, None], ty, tx)[0, 0].numpy()
                near_r = np.clip(np.floor(ys - rows[0]).astype(int), 0, native.shape[0] - 1)
                near_c = np.clip(np.floor(xs - cols[0]).astype(int), 0, native.shape[1] - 1)
                valid = native_valid[np.ix_(near_r, near_c)]  # the unguided rule: the nearest native pixel's
                out = sharpen_array(
                    model,
                    job.band.name,
                    band_up,
                    guides,
                    scale=job.scale,
                    guide_ratio=guide_ratio_for(job.output_pixel),
                    band_stats=stats,
                    guide_stats=guide_stats,
                )
                out = np.where(guide_valid, out, band_up)  # no guide there (swath edge): the band resampled alone
                out = consistent_and_bounded(
                    out,
                    native,
                    native_valid,
                    ys - rows[0],
                    xs - cols[0],
                    job.scale,
                    margin,
                    guides,
                    guide_stats[:, 1],
                    guide_valid,
                )
                core = (slice(r0 - hr0, r1 - hr0), slice(c0 - hc0, c1 - hc0))
                data, ok = to_dtype(out[core], dtype)[None], valid[core][None]
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
        guides_path: Path,
        **options: Any,
    ) -> int:
        """sharpen_band of one band (a GuidedJob's fields) with this model and these statistics (options: its keywords)."""
        job = GuidedJob(band, placement, scale, output_pixel)
        return sharpen_band(self.model, job, guides_path, self.guide_stats, **options)


def load_guided_pass(guides: Sequence[StackBand], nodata: Optional[float]) -> GuidedPass:
    """The sharpener (find_sharpener: $RSSR_SHARPENER or the shipped one) for a run guided by `guides`."""
    model = find_sharpener()
    if model is None:  # stack_plan.guidance_on saw it a moment ago
        raise CheckpointError(f"no guided sharpening model at {default_sharpener_path()}")
    return GuidedPass(model, guide_statistics(guides, nodata))
