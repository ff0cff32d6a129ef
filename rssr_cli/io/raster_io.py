"""The input side: open and validate a source raster into a SourceInfo value, read windows with validity, fill nodata.

Every way a source can be unusable becomes one InputError line here, so later stages can trust SourceInfo.
"""

from __future__ import annotations

import ctypes
import math
import os
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.fill import fillnodata
from rasterio.io import DatasetReader
from rasterio.transform import array_bounds
from rasterio.windows import Window

from rssr_cli.core.errors import InputError, RssrWarning, UsageError
from rssr_cli.geo.band_names import canonical_band_name
from rssr_cli.io.sources import gdal_name, is_local

GDAL_ERRORS = (RasterioError, CPLE_BaseError)  # what rasterio raises for GDAL failures (CPLE_* are not RasterioErrors)
# GDAL's block cache defaults to 5% of RAM and keeps every block it has read: bounded here so memory does
# not grow with the scene (reading the source, writing the intermediate, building the COG).
DEFAULT_GDAL_CACHEMAX_MB = 128
SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


class MaskKind:
    """How invalid pixels are marked in the source (and therefore in the output)."""

    NONE = "none"  # every pixel is valid
    NODATA = "nodata"  # a nodata value (may be NaN)
    NAN = "nan"  # float without a nodata value: NaN marks invalid pixels
    MASK = "mask"  # an internal/sidecar mask band or an alpha band


@dataclass(frozen=True)
class SourceInfo:
    """Everything later stages need to know about the source raster, read once and validated."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: Optional[CRS]
    transform: Affine
    nodata: Optional[float]
    mask_kind: str
    alpha_band: Optional[int]
    descriptions: tuple[Optional[str], ...]
    colorinterp: tuple[ColorInterp, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    tags: dict[str, str]
    band_tags: tuple[dict[str, str], ...]

    @property
    def data_bands(self) -> tuple[int, ...]:
        """1-based band indexes holding data (an alpha band is a mask, not data)."""
        return tuple(b for b in range(1, self.count + 1) if b != self.alpha_band)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in CRS units."""
        return array_bounds(self.height, self.width, self.transform)

    @property
    def pixel_size(self) -> tuple[float, float]:
        return abs(self.transform.a), abs(self.transform.e)


GDAL_HTTP_TIMEOUTS = {
    "GDAL_HTTP_CONNECTTIMEOUT": "20",  # seconds to connect
    "GDAL_HTTP_TIMEOUT": "120",  # seconds for one request
    "GDAL_HTTP_LOW_SPEED_TIME": "30",  # abort a transfer slower than LOW_SPEED_LIMIT bytes/s for this long
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_MAX_RETRY": "2",  # a 429/502/503/504 is retried twice (GDAL's default: never), RETRY_DELAY apart
    "GDAL_HTTP_RETRY_DELAY": "1",
}


def gdal_config(threads: Optional[int] = None) -> dict:
    """GDAL settings of a run: internal masks; a bounded block cache unless the user set GDAL_CACHEMAX
    (their value then holds); GDAL_NUM_THREADS (decoding, compression, overviews) when --threads is given."""
    config: dict = {"GDAL_TIFF_INTERNAL_MASK": True}
    if "GDAL_CACHEMAX" not in os.environ:
        config["GDAL_CACHEMAX"] = DEFAULT_GDAL_CACHEMAX_MB
    # A hung server must not hold a run forever (GDAL's own default is no timeout): each setting the user's
    # environment gives wins (issue 23 item 14).
    config.update({key: value for key, value in GDAL_HTTP_TIMEOUTS.items() if key not in os.environ})
    if threads is not None:
        config["GDAL_NUM_THREADS"] = str(threads)
    return config


def gdal_env(threads: Optional[int] = None) -> rasterio.Env:
    """The GDAL settings of a run (gdal_config); enter it around everything that touches GDAL."""
    return rasterio.Env(**gdal_config(threads))


def silence_libtiff() -> None:
    """libtiff prints I/O errors straight to stderr ("_tiffWriteProc: No space left on device.") besides returning
    them to GDAL, which rasterio raises as an exception: the CLI promises one line, so libtiff's own printer is
    switched off (Linux: the loaded libtiff is found in /proc/self/maps; elsewhere nothing changes)."""
    global _libtiff_silenced
    if _libtiff_silenced:
        return
    _libtiff_silenced = True
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libtiff" in line and ".so" in line}
    except OSError:
        return
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for setter in ("TIFFSetErrorHandler", "TIFFSetWarningHandler"):
            function = getattr(library, setter, None)
            if function is not None:
                function.restype, function.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
                function(None)


_libtiff_silenced = False


@contextmanager
def open_raster(path: str | Path) -> Iterator[DatasetReader]:
    """Open a raster for reading: a local path or any GDAL dataset name (sources.py: /vsi paths, URLs,
    connection strings). A missing local file, or a dataset GDAL cannot read, is one InputError line."""
    path = str(path)
    if is_local(path):
        try:
            os.stat(path)
        except FileNotFoundError:
            raise InputError(f"no such file: {path}") from None
        except OSError as exc:  # a name too long, a folder we may not enter, ...
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        if os.path.isdir(path):
            raise InputError(f"{path} is a directory, not a raster")
        if not stat.S_ISREG(os.stat(path).st_mode):  # GDAL would block on a FIFO or read a device forever
            raise InputError(f"{path} is not a regular file (a device, FIFO or socket); give a raster file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # we warn once, in our own words
            dataset = rasterio.open(gdal_name(path))
    except GDAL_ERRORS as exc:
        raise InputError(f"cannot read {path} as a raster: {gdal_message(exc)}") from exc
    with dataset:
        yield dataset


def gdal_message(exc: BaseException) -> str:
    """The GDAL message worth showing: rasterio often wraps it ('Read failed. See previous exception')."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "previous exception" in str(exc):
        exc = cause
    if len(getattr(exc, "args", ())) == 3 and isinstance(exc.args[2], str):  # CPLE_*Error(class, code, message)
        text = exc.args[2]
    else:
        text = str(exc)
    text = text.strip() or type(exc).__name__
    return text.splitlines()[0]


def inspect_source(dataset: DatasetReader, *, nodata: Optional[float] = None) -> SourceInfo:
    """Validate an open dataset and describe it; refuses what the pipeline cannot handle correctly.

    `nodata`: a value declared by the user (--nodata) for files that do not carry theirs (Sentinel-2 uses 0):
    pixels equal to it are invalid, and it replaces the file's own nodata value or mask."""
    _refuse_unusable(dataset)
    if dataset.crs is None:
        warnings.warn(
            f"{dataset.name} has no CRS; the output is written on the pixel grid only", RssrWarning, stacklevel=2
        )
    dtype = dataset.dtypes[0]
    alpha_band = _alpha_band(dataset)
    if nodata is not None:
        check_nodata_fits(nodata, dtype)
    return SourceInfo(
        path=dataset.name,
        width=dataset.width,
        height=dataset.height,
        count=dataset.count,
        dtype=dtype,
        crs=dataset.crs,
        transform=dataset.transform,
        nodata=dataset.nodata if nodata is None else nodata,
        mask_kind=_mask_kind(dataset, dtype, alpha_band) if nodata is None else MaskKind.NODATA,
        alpha_band=alpha_band,
        descriptions=tuple(dataset.descriptions),
        colorinterp=tuple(dataset.colorinterp),
        scales=tuple(dataset.scales),
        offsets=tuple(dataset.offsets),
        tags=dict(dataset.tags()),
        band_tags=tuple(dict(dataset.tags(b)) for b in dataset.indexes),
    )


def _refuse_unusable(dataset: DatasetReader) -> None:
    path = dataset.name
    if dataset.width == 0 or dataset.height == 0 or dataset.count == 0:
        raise InputError(f"{path} is empty ({dataset.width}x{dataset.height} px, {dataset.count} bands)")
    dtypes = set(dataset.dtypes)
    if len(dtypes) > 1:
        raise InputError(f"{path} mixes band data types ({', '.join(sorted(dtypes))}); rssr needs one type")
    if dataset.dtypes[0] not in SUPPORTED_DTYPES:
        supported = ", ".join(SUPPORTED_DTYPES)
        raise InputError(f"{path}: data type {dataset.dtypes[0]} is not supported (supported: {supported})")
    if _has_colour_table(dataset):
        # Pixel values are class numbers: interpolating them makes classes that do not exist (between 3 and 5, a 4).
        raise InputError(
            f"{path} is paletted (its values are colour-table entries, not measurements); "
            f"expand it to colours first, e.g. gdal_translate -expand rgb {path} rgb.tif"
        )
    transform = dataset.transform
    if transform.is_identity and (dataset.gcps[0] or dataset.rpcs is not None):
        # Ground control points (or RPCs) locate the pixels without a grid: an output on the pixel grid
        # would lose the georeferencing. gdalwarp resamples onto a north-up grid once, explicitly.
        kind, option = ("ground control points", "") if dataset.gcps[0] else ("RPCs", "-rpc ")
        raise InputError(
            f"{path} is georeferenced by {kind} only (no geotransform); "
            f"warp it onto a grid first, e.g. gdalwarp {option}{path} gridded.tif"
        )
    if transform.b != 0 or transform.d != 0:
        # A rotated/sheared grid has no axis-aligned output grid; a north-up warp first is exact and explicit.
        raise InputError(
            f"{path} has a rotated or sheared geotransform; make it north-up first, e.g. gdalwarp {path} north_up.tif"
        )


def declared_nodata(own: Optional[float], declared: Optional[float]) -> Optional[float]:
    """The declared-nodata rule of a band stack: a band file that declares no nodata value of its own takes the
    declared one (--nodata, the bands' common value, or the product's convention: Sentinel-2 marks pixels outside the
    swath 0); one that declares its own keeps it. Returns the value that marks invalid pixels beyond the file's own
    mask, or None."""
    return declared if own is None else None


def mask_declared_nodata(
    values: np.ndarray, valid: np.ndarray, own: Optional[float], declared: Optional[float]
) -> np.ndarray:
    """`valid` (the file's own mask) less the pixels equal to the declared nodata value, by declared_nodata's rule."""
    value = declared_nodata(own, declared)
    return valid if value is None else valid & (values != value)


def check_nodata_fits(value: float, dtype: str) -> None:
    """A declared nodata value must be storable in the data type, or no pixel could ever carry it."""
    if np.issubdtype(np.dtype(dtype), np.floating):
        limit = float(np.finfo(dtype).max)
        if math.isfinite(value) and abs(value) > limit:
            raise UsageError(f"--nodata {value:g} cannot be stored in {dtype} (at most {limit:g} in magnitude)")
        return
    if not np.issubdtype(np.dtype(dtype), np.integer):
        return
    info = np.iinfo(dtype)
    if not (math.isfinite(value) and value == int(value) and info.min <= value <= info.max):
        raise UsageError(f"--nodata {value:g} cannot be stored in {dtype} (whole numbers {info.min}..{info.max})")


def _has_colour_table(dataset: DatasetReader) -> bool:
    if ColorInterp.palette in dataset.colorinterp:
        return True
    for band in dataset.indexes:
        try:
            dataset.colormap(band)
        except ValueError:  # rasterio's way of saying "no colour table"
            continue
        return True
    return False


def _alpha_band(dataset: DatasetReader) -> Optional[int]:
    for index, interp in zip(dataset.indexes, dataset.colorinterp):
        if interp == ColorInterp.alpha:
            return index
    return None


def _mask_kind(dataset: DatasetReader, dtype: str, alpha_band: Optional[int]) -> str:
    if dataset.nodata is not None:
        return MaskKind.NODATA
    flags = dataset.mask_flag_enums
    if alpha_band is not None or any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags):
        return MaskKind.MASK
    if np.issubdtype(np.dtype(dtype), np.floating):
        return MaskKind.NAN
    return MaskKind.NONE


def select_bands(info: SourceInfo, bands: Optional[Sequence[int | str]]) -> tuple[int, ...]:
    """1-based band indexes to process: the given ones (numbers, or names matched to band descriptions;
    validated) or every data band (None or 'all')."""
    if not bands or (len(bands) == 1 and isinstance(bands[0], str) and bands[0].lower() == "all"):
        if not info.data_bands:
            raise InputError(f"{info.path} has no data band (only an alpha band)")
        return info.data_bands
    indexes = [b if isinstance(b, int) else band_by_name(info, b) for b in bands]
    bad = [b for b in indexes if not 1 <= b <= info.count]
    if bad:
        raise UsageError(f"band {bad[0]} is out of range: {info.path} has bands 1..{info.count}")
    if len(set(indexes)) != len(indexes):
        raise UsageError(f"--bands lists a band twice: {','.join(map(str, indexes))}")
    return tuple(indexes)


def band_by_name(info: SourceInfo, name: str) -> int:
    """The 1-based band whose description is `name` (case-insensitive; B4 = B04, red = B04 as for products)."""
    wanted = canonical_band_name(name).upper()
    matches = [i for i, d in enumerate(info.descriptions, start=1) if d and canonical_band_name(d).upper() == wanted]
    if len(matches) > 1:
        candidates = ", ".join(f"{i} ({info.descriptions[i - 1]})" for i in matches)
        raise UsageError(f"{info.path}: bands {candidates} all match {name!r}; choose one by number")
    if matches:
        return matches[0]
    named = [d for d in info.descriptions if d]
    have = f"its bands are named {', '.join(named)}" if named else "its bands have no names (descriptions); use numbers"
    raise UsageError(f"{info.path} has no band named {name!r}; {have}")


def read_window(
    dataset: DatasetReader, info: SourceInfo, bands: Sequence[int], window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """Stored values [bands, h, w] of a window and their validity (True = valid), same shape."""
    try:
        data = dataset.read(list(bands), window=window)
        valid = _validity(dataset, info, bands, data, window=window)
    except GDAL_ERRORS as exc:
        raise InputError(f"{info.path} is corrupt or truncated: {gdal_message(exc)}") from exc
    return data, valid


STATS_SIDE = 512  # decimated read for the scene statistics: at most 512 px on its longer side (pipeline and sharpener)


def read_sample(
    dataset: DatasetReader, info: SourceInfo, bands: Sequence[int], max_side: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """A decimated read of the whole scene (uses overviews when present), for scene-wide statistics."""
    factor = max(1, math.ceil(max(info.width, info.height) / max_side))
    shape = (len(bands), max(1, info.height // factor), max(1, info.width // factor))
    try:
        data = dataset.read(list(bands), out_shape=shape, resampling=Resampling.nearest)
        valid = _validity(dataset, info, bands, data, out_shape=shape)
    except GDAL_ERRORS as exc:
        raise InputError(f"{info.path} is corrupt or truncated: {gdal_message(exc)}") from exc
    return data, valid


def _validity(
    dataset: DatasetReader, info: SourceInfo, bands: Sequence[int], data: np.ndarray, **read_kw
) -> np.ndarray:
    is_float = np.issubdtype(data.dtype, np.floating)
    if info.mask_kind == MaskKind.MASK:
        valid = dataset.read_masks(list(bands), resampling=Resampling.nearest, **read_kw) > 0
    elif info.mask_kind == MaskKind.NODATA and info.nodata is not None and not math.isnan(info.nodata):
        valid = data != info.nodata  # compared as numbers: a nodata value outside the dtype never wraps around
    else:
        valid = np.ones(data.shape, dtype=bool)
    if is_float:
        valid &= np.isfinite(data)  # NaN is nodata in float input, whatever else marks it
    return valid


def fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels of float32 [bands, h, w] by values interpolated from valid neighbours.

    The model must not see nodata values (a -9999 or a NaN would smear across the window); the
    filled pixels are set back to nodata after SR, so only their influence on neighbours matters.
    """
    out = values.copy()
    _, h, w = values.shape
    for band, ok in zip(out, valid):
        if ok.all():
            continue
        if not ok.any():
            band[:] = 0.0
            continue
        band[~ok] = np.nan
        band[:] = fillnodata(band, mask=ok.astype(np.uint8), max_search_distance=float(h + w), smoothing_iterations=0)
        holes = ~np.isfinite(band)
        if holes.any():  # beyond the search distance: fall back to the band's mean
            band[holes] = float(band[~holes].mean())
    return out


def with_nodata(source: SourceInfo, nodata: Optional[float]) -> SourceInfo:
    """declared_nodata's rule on a band file's SourceInfo (Sentinel-2: 0 marks pixels outside the swath). A file with
    a mask of its own but no nodata value keeps the mask: a SourceInfo reads through one mask kind."""
    value = declared_nodata(source.nodata, nodata)
    if value is None or source.mask_kind != MaskKind.NONE:
        return source
    return replace(source, nodata=value, mask_kind=MaskKind.NODATA)
