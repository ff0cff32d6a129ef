"""Radiometry: map stored pixel values to the ~[0, 1] range a model sees, and back (pure numpy).

Rules (DESIGN.md), one linear map per band, normalized = value * gain + bias:
- uint8: /255.
- uint16, int16: the dataset's own scale/offset when it declares them (e.g. Sentinel-2 L2A from GDAL:
  0.0001 and -0.1, which handles the L2A offset), else /10000 (Sentinel-2 reflectance convention).
- every other supported type (floats, 32-bit ints, int8): a per-band robust range, the 2nd..98th
  percentile of a decimated read of the whole scene, computed once so every window uses the same map.
Normalized values are never clipped (bright clouds above 1.0 must survive); only the final conversion
back to the stored dtype clips to that dtype's range (and rounds integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

REFLECTANCE_DIVISOR = 10_000.0  # Sentinel-2 L1C/L2A digital numbers are reflectance * 10000
ROBUST_PERCENTILES = (2.0, 98.0)
FIXED_DIVISORS = {"uint8": 255.0, "uint16": REFLECTANCE_DIVISOR, "int16": REFLECTANCE_DIVISOR}
REFLECTANCE_TYPES = ("uint16", "int16")


@dataclass(frozen=True)
class Radiometry:
    """Per-band linear map to model space: normalized = value * gain + bias. `rule` says which rule chose it."""

    gain: tuple[float, ...]
    bias: tuple[float, ...]
    rule: str


def uses_robust_range(dtype: str) -> bool:
    """True where no fixed rule applies and a per-scene percentile range must be measured."""
    return dtype not in FIXED_DIVISORS


def fixed_radiometry(
    dtype: str,
    n_bands: int,
    scales: Optional[Sequence[float]] = None,
    offsets: Optional[Sequence[float]] = None,
) -> Radiometry:
    """The fixed rule for uint8 / uint16 / int16 (see module docstring)."""
    if dtype not in FIXED_DIVISORS:
        raise ValueError(f"no fixed radiometry for {dtype}; use robust_radiometry")
    scales = tuple(scales) if scales is not None else (1.0,) * n_bands
    offsets = tuple(offsets) if offsets is not None else (0.0,) * n_bands
    declared = any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets)
    if dtype in REFLECTANCE_TYPES and declared:
        return Radiometry(tuple(map(float, scales)), tuple(map(float, offsets)), "dataset scale/offset")
    divisor = FIXED_DIVISORS[dtype]
    return Radiometry((1.0 / divisor,) * n_bands, (0.0,) * n_bands, f"/{divisor:g}")


def robust_radiometry(sample: np.ndarray, valid: np.ndarray) -> Radiometry:
    """Per-band 2nd..98th percentile of the valid values of a [bands, h, w] sample, mapped to [0, 1]."""
    gains, biases = [], []
    for band, ok in zip(sample, valid):
        values = band[ok & np.isfinite(band)].astype(np.float64)
        lo, hi = np.percentile(values, ROBUST_PERCENTILES) if values.size else (0.0, 1.0)
        span = hi - lo if hi > lo else max(abs(lo), 1.0)  # a constant band still needs a finite map
        gains.append(1.0 / span)
        biases.append(-lo / span)
    return Radiometry(tuple(gains), tuple(biases), "robust p2..p98 per band")


def _work_dtype(dtype: np.dtype | str) -> type:
    """float32 holds every value of the <=16-bit types and float32 exactly enough (24-bit mantissa); wider types need float64."""
    return np.float32 if np.dtype(dtype).itemsize <= 2 or np.dtype(dtype) == np.float32 else np.float64


def _per_band(values: tuple[float, ...], work: type) -> np.ndarray:
    return np.asarray(values, dtype=work)[:, None, None]


def normalize(data: np.ndarray, radiometry: Radiometry) -> np.ndarray:
    """[bands, h, w] stored values -> float32 model values (no clipping)."""
    work = _work_dtype(data.dtype)
    out = data.astype(work) * _per_band(radiometry.gain, work) + _per_band(radiometry.bias, work)
    return out.astype(np.float32, copy=False)


def denormalize(values: np.ndarray, radiometry: Radiometry, dtype: str) -> np.ndarray:
    """float model values -> the stored dtype: inverse map, rounded for integers, clipped to the dtype range."""
    work = _work_dtype(dtype)
    out = (values.astype(work, copy=False) - _per_band(radiometry.bias, work)) / _per_band(radiometry.gain, work)
    return to_dtype(out, dtype)


def denormalize_spread(spread: np.ndarray, radiometry: Radiometry) -> np.ndarray:
    """A standard deviation in model units -> the output's stored units, float32: divided by the gain, with no
    bias (a spread is a difference of values, which an offset cancels out of), never rounded or clipped."""
    gain = np.abs(np.asarray(radiometry.gain, dtype=np.float64))[:, None, None]
    return (spread.astype(np.float64) / gain).astype(np.float32)


def quantize(values: np.ndarray, dtype: str) -> np.ndarray:
    """Normalized values as a `dtype` file stores them under the fixed rule (clipped to the dtype's range,
    rounded to its levels), back in normalized units as float32. degrade.quantize is the torch twin."""
    divisor = FIXED_DIVISORS[dtype]
    stored = to_dtype(np.asarray(values, dtype=np.float64) * divisor, dtype)
    return (stored.astype(np.float64) / divisor).astype(np.float32)


def image_radiometry(
    data: np.ndarray,
    valid: Optional[np.ndarray] = None,
    scales: Optional[Sequence[float]] = None,
    offsets: Optional[Sequence[float]] = None,
) -> Radiometry:
    """The rule for a whole image held in memory [bands, h, w]: fixed for uint8/uint16/int16, else the robust
    range of its valid values. The same rules the product applies to a scene (pipeline.scene_radiometry)."""
    dtype = str(data.dtype)
    if uses_robust_range(dtype):
        return robust_radiometry(data, np.ones(data.shape, dtype=bool) if valid is None else valid)
    return fixed_radiometry(dtype, len(data), scales, offsets)


def to_model_units(
    data: np.ndarray,
    valid: Optional[np.ndarray] = None,
    *,
    scales: Optional[Sequence[float]] = None,
    offsets: Optional[Sequence[float]] = None,
) -> np.ndarray:
    """[bands, h, w] stored values -> float32 model units by image_radiometry: what training, benchmarks and
    inference all feed a model (tests pin training == inference for float rasters)."""
    return normalize(data, image_radiometry(data, valid, scales, offsets))


def to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round (integers) and clip to the dtype's range, so out-of-range model output saturates instead of wrapping."""
    target = np.dtype(dtype)
    if np.issubdtype(target, np.integer):
        info = np.iinfo(target)
        return np.clip(np.rint(values), info.min, info.max).astype(target)
    limits = np.finfo(target)
    return np.clip(values, limits.min, limits.max).astype(target)


def keep_clear_of_nodata(data: np.ndarray, valid: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """A valid integer pixel that lands on the nodata value (e.g. 0 after clipping) moves one step away,
    or it would silently vanish from the output."""
    if nodata is None or not np.issubdtype(data.dtype, np.integer):
        return data
    collide = valid & (data == nodata)
    if collide.any():
        step = 1 if nodata < np.iinfo(data.dtype).max else -1
        data[collide] = data.dtype.type(nodata + step)
    return data
