"""A band stack's bands as arrays on their native grids, and the per-band statistics the model standardizes with."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import rasterio
from affine import Affine

from rssr_cli.core.errors import InputError
from rssr_cli.io.products import StackBand, open_band_stack
from rssr_cli.io.raster_io import STATS_SIDE, gdal_env, inspect_source, mask_declared_nodata, open_raster, read_sample
from rssr_cli.sharpen.bands import GUIDE_BANDS, GUIDED_BANDS


@dataclass(frozen=True)
class BandArray:
    """One band on its native grid: float32 values, validity, and the grid's transform."""

    name: str
    values: np.ndarray  # [H, W] float32
    valid: np.ndarray  # [H, W] bool
    transform: Affine

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)


def read_band(band: StackBand, nodata: Optional[float]) -> BandArray:
    """The whole band (for training and evaluation; the upscale path streams instead)."""
    with rasterio.open(band.dataset) as dataset:
        values = dataset.read(band.index).astype(np.float32)
        mask = dataset.read_masks(band.index) > 0
    return BandArray(band.name, values, mask_declared_nodata(values, mask, band.nodata, nodata), band.transform)


def load_stack_bands(src: str | os.PathLike, names: Optional[Sequence[str]] = None) -> dict[str, BandArray]:
    """Every named band of a product / STAC item / band folder (products.band_folder_files), read whole."""
    with gdal_env():
        stack = open_band_stack(src)
        wanted = stack.bands if names is None else stack.select(list(names))
        return {b.name: read_band(b, stack.default_nodata) for b in wanted}


def stats_of(values: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """(mean, std) of the valid pixels; std floored so a flat band standardizes to zeros, not infinities."""
    v = values[valid].astype(np.float64)
    if v.size == 0:
        return 0.0, 1.0
    return float(v.mean()), max(float(v.std()), 1e-3 * max(1.0, abs(float(v.mean()))), 1e-6)


def decimated_sample(band: StackBand, nodata: Optional[float]) -> tuple[np.ndarray, np.ndarray]:
    """A band's values and validity from the pipeline's decimated statistics read (STATS_SIDE): what every per-band
    statistic is computed from, so it is the same whatever the tiling."""
    with open_raster(band.dataset) as dataset:
        sample, sample_valid = read_sample(dataset, inspect_source(dataset), (band.index,), max_side=STATS_SIDE)
    values = sample[0].astype(np.float32)
    return values, mask_declared_nodata(values, sample_valid[0], band.nodata, nodata)


def band_stats_decimated(band: StackBand, nodata: Optional[float]) -> tuple[float, float]:
    """(mean, std) of a band from its decimated sample."""
    return stats_of(*decimated_sample(band, nodata))


def load_scene(source: str) -> dict[str, BandArray]:
    """A training scene's bands; refused (InputError) without the 10 m guides or any band to sharpen."""
    scene = load_stack_bands(source)  # a product, STAC item or band folder: products.open_band_stack's one rule
    missing = [name for name in GUIDE_BANDS if name not in scene]
    if missing or not any(name in scene for name in GUIDED_BANDS):
        lacking = ", ".join(missing) if missing else "every 20 m and 60 m band"
        raise InputError(
            f"{source}: lacks {lacking}; a scene for Wald's protocol needs the 10 m guides {', '.join(GUIDE_BANDS)} and bands to sharpen"
        )
    return scene
