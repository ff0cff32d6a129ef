"""A real LR/HR pair of rasters: super-resolve the LR onto the HR's grid over their common area and score it.

Co-registration is rssr_cli.geo.coregister.plan_pair; the LR is mapped to model units by the product's rule
(radiometry.to_model_units); the SR is fitted to the HR per band before scoring (sensors differ in gain and
offset; what is scored is spatial detail, not calibration).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio

from rssr_cli.backends.base import SRBackend, SRRequest
from rssr_cli.core.errors import InputError
from rssr_cli.evaluation.jsonsafe import finite_or_none
from rssr_cli.evaluation.protocol import shave_for
from rssr_cli.geo.coregister import plan_pair
from rssr_cli.io.radiometry import to_model_units
from rssr_cli.scoring.metrics import measure_shift, psnr, shave, ssim


def linear_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band least-squares gain and offset with target ~= gain * source + offset ([C,H,W] each)."""
    gains, offsets = [], []
    for s, t in zip(source.reshape(len(source), -1), target.reshape(len(target), -1)):
        design = np.stack([s, np.ones_like(s)], axis=1)
        (g, o), *_ = np.linalg.lstsq(design, t, rcond=None)
        gains.append(g)
        offsets.append(o)
    return np.asarray(gains), np.asarray(offsets)


@dataclass(frozen=True)
class PairScore:
    """SR of a real LR raster scored against a real HR raster of the same area."""

    psnr: float
    ssim: float
    data_range: float  # in HR stored units
    gain: tuple[float, ...]  # radiometric fit HR ~= gain * SR + offset (SR in model units)
    offset: tuple[float, ...]
    shift_hr_px: tuple[float, float]  # (dy, dx) displacement of the fitted SR vs HR, HR pixels
    scale: tuple[float, float]  # (sy, sx) = LR pixel size / HR pixel size
    lr_window: tuple[int, int, int, int]
    hr_window: tuple[int, int, int, int]
    shave: int
    seconds: float

    def to_json(self) -> str:
        return json.dumps(finite_or_none(asdict(self)), allow_nan=False)


def evaluate_pairs(
    lr_path: Path | str,
    hr_path: Path | str,
    backend: SRBackend,
    *,
    lr_bands: Optional[Sequence[int]] = None,
    hr_bands: Optional[Sequence[int]] = None,
    border: Optional[int] = None,
    data_range: Optional[float] = None,
    seed: int = 0,
) -> PairScore:
    """Super-resolve the LR raster onto the HR raster's grid over their common area and score it.

    The rasters must share a CRS; bands are paired in order (select with 1-based lr_bands/hr_bands).
    Before scoring, SR is matched to HR by a per-band least-squares linear fit (sensors differ in
    gain and offset; what is scored is spatial detail, not calibration). Border: ceil(scale) HR px
    unless given. data_range: the HR's max - min over the scored pixels unless given. Nodata is not
    handled: choose pairs whose common area is fully valid.
    """
    with rasterio.open(lr_path) as lr_src, rasterio.open(hr_path) as hr_src:
        if lr_src.crs != hr_src.crs:
            raise InputError(f"CRS differ: {lr_src.crs} vs {hr_src.crs}; reproject one raster first")
        geo = plan_pair(lr_src.transform, lr_src.shape, hr_src.transform, hr_src.shape)
        lr_idx = list(lr_bands or range(1, lr_src.count + 1))
        hr_idx = list(hr_bands or range(1, hr_src.count + 1))
        if len(lr_idx) != len(hr_idx):
            raise InputError(
                f"band counts differ ({len(lr_idx)} vs {len(hr_idx)}); pass lr_bands/hr_bands (--lr-bands/--hr-bands)"
            )
        lr = to_model_units(
            lr_src.read(lr_idx, window=geo.lr_window),
            scales=[lr_src.scales[i - 1] for i in lr_idx],
            offsets=[lr_src.offsets[i - 1] for i in lr_idx],
        )
        hr = hr_src.read(hr_idx, window=geo.hr_window).astype(np.float64)
    start = time.perf_counter()
    sr = backend.upsample([SRRequest(lr=lr, grid=geo.grid, seed=seed)])[0].astype(np.float64)
    seconds = time.perf_counter() - start
    scale = (1.0 / geo.grid.dy, 1.0 / geo.grid.dx)
    cut = shave_for(max(scale), border)
    sr_s, hr_s = shave(sr, cut), shave(hr, cut)
    gain, offset = linear_fit(sr_s, hr_s)
    fitted = gain[:, None, None] * sr_s + offset[:, None, None]
    peak = float(hr_s.max() - hr_s.min()) if data_range is None else float(data_range)
    return PairScore(
        psnr=psnr(fitted, hr_s, peak),
        ssim=ssim(fitted, hr_s, peak),
        data_range=peak,
        gain=tuple(map(float, gain)),
        offset=tuple(map(float, offset)),
        shift_hr_px=measure_shift(fitted, hr_s),
        scale=scale,
        lr_window=geo.lr_tuple,
        hr_window=geo.hr_tuple,
        shave=cut,
        seconds=seconds,
    )
