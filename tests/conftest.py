"""Synthetic GeoTIFF fixtures (CRS, odd sizes, nodata, masks, every supported dtype) written into tmp_path."""

from __future__ import annotations

import itertools
import os
import struct
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

SHIPPED_MODELS_DIR = os.path.realpath(Path(__file__).resolve().parents[1] / "models")
_shipped_loads: list[str] = []  # shipped model files opened (in this process) since the current test began


def _note_shipped_model_opens(event: str, args: tuple) -> None:
    """Audit hook: every Python-level open of models/<name>.safetensors (load_model and load_sharpener both read
    the header and the sha256 through Python before safetensors maps the file). Cheap: most events return at once."""
    if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.fsdecode(args[0])
    if path.endswith(".safetensors") and os.path.dirname(os.path.realpath(path)) == SHIPPED_MODELS_DIR:
        _shipped_loads.append(path)


sys.addaudithook(_note_shipped_model_opens)


@pytest.fixture(autouse=True)
def _shipped_model_guard(request):
    """A test that loads a shipped model (models/*.safetensors: seconds, and its figures move with every new
    default) fails unless it asks for it with @pytest.mark.shipped_model (issue 22); the rest use a tiny model
    (model_helpers) or --method bicubic. Only loads in this process are seen, not a subprocess's."""
    _shipped_loads.clear()
    yield
    loaded = sorted({os.path.basename(p) for p in _shipped_loads})
    _shipped_loads.clear()
    if loaded and request.node.get_closest_marker("shipped_model") is None:
        pytest.fail(
            f"{request.node.nodeid} loaded the shipped model(s) {', '.join(loaded)} without "
            "@pytest.mark.shipped_model: use a tiny model or --method bicubic, or mark the test",
            pytrace=False,
        )


UTM_CRS = "EPSG:32633"
UTM_TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_000_000.0)
DTYPE_RANGES = {
    "uint8": (0, 255),
    "uint16": (0, 10_000),
    "int16": (-1_000, 8_000),
    "float32": (-0.2, 1.3),
    "float64": (-50.0, 3_000.0),
}


def synthetic_image(bands: int, height: int, width: int, dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """Smooth structure plus texture, spanning most of the dtype's usual range (deterministic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    lo, hi = DTYPE_RANGES[dtype]
    out = np.empty((bands, height, width), dtype=np.float64)
    for b in range(bands):
        fy, fx = rng.uniform(0.05, 0.3, size=2)
        smooth = 0.5 + 0.25 * np.sin(fy * y + b) * np.cos(fx * x - b)
        texture = 0.2 * rng.random((height, width))
        out[b] = lo + (hi - lo) * np.clip(smooth + texture - 0.1, 0, 1)
    if np.issubdtype(np.dtype(dtype), np.integer):
        out = np.rint(out)
    return out.astype(dtype)


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: Optional[str] = UTM_CRS,
    transform: Affine = UTM_TRANSFORM,
    nodata: Optional[float] = None,
    mask: Optional[np.ndarray] = None,
    descriptions: Optional[Sequence[str]] = None,
    colorinterp: Optional[Sequence[ColorInterp]] = None,
    scales: Optional[Sequence[float]] = None,
    offsets: Optional[Sequence[float]] = None,
    tags: Optional[dict] = None,
    tiled: bool = False,
    compress: Optional[str] = None,
    **creation: object,
) -> Path:
    bands, height, width = data.shape
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=bands,
        dtype=str(data.dtype),
        crs=crs,
        transform=transform,
        nodata=nodata,
    )
    if tiled:
        profile.update(tiled=True, blockxsize=32, blockysize=32)
    if compress:
        profile.update(compress=compress)
    profile.update(creation)  # e.g. gcps=(points, crs), rpcs=RPC(...)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if mask is not None:
            dst.write_mask(np.where(mask, 255, 0).astype(np.uint8))
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        if colorinterp:
            dst.colorinterp = colorinterp
        if scales:
            dst.scales = scales
        if offsets:
            dst.offsets = offsets
        if tags:
            dst.update_tags(**tags)
    return path


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., Path]:
    """make_raster(bands=3, height=37, width=45, dtype='uint16', name=None, data=None, **write_raster_kwargs)."""
    counter = itertools.count()

    def _make(
        bands: int = 3,
        height: int = 37,
        width: int = 45,
        dtype: str = "uint16",
        *,
        name: Optional[str] = None,
        data: Optional[np.ndarray] = None,
        seed: int = 0,
        **kwargs,
    ) -> Path:
        if data is None:
            data = synthetic_image(bands, height, width, dtype, seed=seed)
        path = tmp_path / (name or f"src_{next(counter)}_{dtype}.tif")
        return write_raster(path, data, **kwargs)

    return _make


@pytest.fixture
def src_tif(make_raster) -> Path:
    """A small odd-sized 3-band uint16 raster in UTM."""
    return make_raster(3, 37, 45, "uint16", name="src.tif")


def patch_tiff_dimension(path: Path, tag: int, value: int) -> None:
    """Rewrite a SHORT/LONG tag of the first IFD in a classic little-endian TIFF (to forge broken files)."""
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"II*\x00", "expects a classic little-endian TIFF"
    ifd = struct.unpack_from("<I", raw, 4)[0]
    (count,) = struct.unpack_from("<H", raw, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        entry_tag, entry_type = struct.unpack_from("<HH", raw, entry)
        if entry_tag == tag:
            if entry_type == 3:
                struct.pack_into("<H", raw, entry + 8, value)
            else:
                struct.pack_into("<I", raw, entry + 8, value)
            path.write_bytes(bytes(raw))
            return
    raise KeyError(tag)


def files_in(directory: Path) -> set[str]:
    """Every entry (hidden ones too) in a directory, to check nothing was left behind."""
    return {p.name for p in directory.iterdir()}
