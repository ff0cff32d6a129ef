"""Image files as benchmarks and training read them: discovery and stored pixels (PNG, JPEG, TIFF).

One home for what `rssr evaluate HR_DIR` and `rssr train --data` both do; the values are mapped to model
units by radiometry.py (`to_model_units`), like every raster the product reads.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import rasterio
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning

from rssr_cli.io.radiometry import to_model_units

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PIL_CONVERT = {"P": "RGB", "PA": "RGB", "RGBA": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LA": "L"}  # alpha dropped


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def find_images(folder: Path | str) -> list[Path]:
    """Image files under folder (recursively), in a stable order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image(p))


def read_model_units(path: Path | str) -> tuple[np.ndarray, str]:
    """An image in model units (float32 [bands, H, W], radiometry.to_model_units with the file's declared
    scales/offsets, as `rssr upscale` maps it) and the dtype it was stored in."""
    pixels, valid, scales, offsets = _read(Path(path))
    return to_model_units(pixels, valid, scales=scales, offsets=offsets), str(pixels.dtype)


def read_pixels(path: Path | str) -> np.ndarray:
    """Stored pixels as [bands, H, W]: rasterio for TIFF (any band count), pillow otherwise (alpha dropped)."""
    return _read(Path(path))[0]


def _read(
    path: Path,
) -> tuple[np.ndarray, Optional[np.ndarray], Optional[tuple[float, ...]], Optional[tuple[float, ...]]]:
    """(pixels, valid mask or None, declared scales, offsets): what the radiometry rule needs."""
    if path.suffix.lower() in (".tif", ".tiff"):
        with warnings.catch_warnings():  # plain TIFF benchmarks carry no georeferencing, and need none
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.read(), src.read_masks() > 0, tuple(src.scales), tuple(src.offsets)
    with Image.open(path) as img:
        if img.mode in PIL_CONVERT:
            img = img.convert(PIL_CONVERT[img.mode])
        a = np.asarray(img)
    if a.dtype == np.int32 and a.max(initial=0) <= 65535 and a.min(initial=0) >= 0:
        a = a.astype(np.uint16)  # pillow opens 16-bit PNGs as mode "I"
    return (a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)), None, None, None
