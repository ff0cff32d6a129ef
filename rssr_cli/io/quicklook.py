"""The fidelity report's quick-look PNG: LR input (pixel-replicated by the nearest resampler), SR output and the
uncertainty map, side by side.

Pure array work plus one PNG write; which crop and what the numbers mean is decided in evaluation/fidelity.py.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning

GAP = 4  # px of white between panels
# Display bands by description when the colour interpretation says nothing (Sentinel-2 / Landsat names).
RGB_NAMES = ({"red", "b04", "b4"}, {"green", "b03", "b3"}, {"blue", "b02", "b2"})


def display_bands(colorinterp: Sequence[ColorInterp], descriptions: Sequence[Optional[str]]) -> list[int]:
    """0-based indexes of the bands shown as R, G, B (or one band as grey)."""
    wanted = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    by_interp = [list(colorinterp).index(c) if c in colorinterp else None for c in wanted]
    if None not in by_interp:
        return [i for i in by_interp if i is not None]
    names = [re.sub(r"[^a-z0-9]", "", (d or "").lower()) for d in descriptions]
    by_name = [next((i for i, n in enumerate(names) if n in group), None) for group in RGB_NAMES]
    if None not in by_name:
        return [i for i in by_name if i is not None]
    return [0]


def stretch(img: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[bands, h, w] -> uint8 with per-band limits (lo -> 0, hi -> 255)."""
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (img - lo[:, None, None]) / span[:, None, None]
    return np.clip(np.nan_to_num(out) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def heat(values: np.ndarray, top: float) -> np.ndarray:
    """[h, w] >= 0 -> RGB uint8 ramp black -> red -> yellow -> white, top (and above) = white."""
    t = np.clip(values / top, 0.0, 1.0) if top > 0 else np.zeros_like(values)
    r, g, b = np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)
    return (np.stack([r, g, b]) * 255.0 + 0.5).astype(np.uint8)


def compose(lr_up: np.ndarray, sr: np.ndarray, uncertainty: np.ndarray, show: Sequence[int]) -> np.ndarray:
    """The three panels as one RGB uint8 image [3, h, 3w + 2 GAP]. lr_up and sr share a stretch (the LR's
    2-98 percentiles); the uncertainty (max over bands, relative to each band's range) has its own scale."""
    pick = list(show)
    lo = np.percentile(lr_up[pick], 2, axis=(-2, -1))
    hi = np.percentile(lr_up[pick], 98, axis=(-2, -1))
    panels = [stretch(lr_up[pick], lo, hi), stretch(sr[pick], lo, hi)]
    panels = [np.repeat(p, 3, axis=0) if len(p) == 1 else p for p in panels]
    top = float(np.percentile(uncertainty, 99)) if uncertainty.size else 0.0
    panels.append(heat(uncertainty, top))
    h, w = sr.shape[-2:]
    gap = np.full((3, h, GAP), 255, dtype=np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=2)


def write_png(image: np.ndarray, path: Path) -> None:
    """RGB uint8 [3, h, w] to a PNG (GDAL's PNG driver, no georeferencing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture, not a raster
        _write(image, path)


def _write(image: np.ndarray, path: Path) -> None:
    with rasterio.open(
        path, "w", driver="PNG", width=image.shape[2], height=image.shape[1], count=3, dtype="uint8"
    ) as dst:
        dst.write(image)
