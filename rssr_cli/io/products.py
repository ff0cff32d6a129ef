"""Band stacks: Sentinel-2 products (.SAFE folder or .SAFE.zip) and STAC items, found by layout and names.

A band stack is a list of named single bands, each in its own dataset at its own native grid (10, 20 and 60 m
for Sentinel-2). Products are recognised by their file layout, never by parsing the product XML, so a partial
or re-packed product still works:

- L1C: GRANULE/*/IMG_DATA/T*_B??.jp2
- L2A: GRANULE/*/IMG_DATA/R10m|R20m|R60m/T*_B??_{10,20,60}m.jp2 (each band at its native resolution, else the finest present)
- band files may also be GeoTIFFs (.tif/.tiff); a .SAFE.zip is read through /vsizip/ without unpacking.
- a band folder: a plain folder of one scene's band files, <scene>B??[_NNm].jp2|tif (T33UUU_20240101T100031_B02.jp2,
  s2_B05.tif, B8A.tif), at least two bands, every other raster in it of that scene too (a TCI, an SCL); a folder
  whose rasters belong to several scenes, or are not band files, is a folder of scenes (is_band_folder).
- a STAC item (JSON file or http(s) URL): each asset holding one band is a band, named by its Sentinel-2 id
  (B01..B12, B8A) when its eo:bands name, asset key or common name (red, nir08, swir16, ...) maps to one, else by
  its eo:bands name; hrefs relative to the item are resolved against it.
Nothing here reads pixels; a band's grid comes from its dataset's header.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import stat
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from affine import Affine
from rasterio.crs import CRS

from rssr_cli.core.errors import InputError, UsageError
from rssr_cli.geo.band_names import SENTINEL2_BANDS, SENTINEL2_NATIVE_M, canonical_band_name
from rssr_cli.io.raster_io import GDAL_ERRORS, gdal_message, open_raster
from rssr_cli.io.sources import exists_locally, is_local

DEFAULT_PRODUCT_BANDS = ("B02", "B03", "B04", "B08")  # the four 10 m bands
SENTINEL2_NODATA = 0.0  # L1C and L2A mark pixels outside the swath with 0 but do not declare it in the files

BAND_FILE_SUFFIXES = (".jp2", ".tif", ".tiff")
_BAND_PATH = re.compile(
    r"(?:^|/)GRANULE/(?P<granule>[^/]+)/IMG_DATA/(?:R(?P<folder_res>10|20|60)m/)?"
    r"[^/]*_(?P<band>B(?:0[1-9]|1[0-2]|8A))(?:_(?P<res>10|20|60)m)?\.(?:jp2|tiff?)$",
    re.IGNORECASE,
)


_BAND_FILE = re.compile(
    r"^(?P<scene>.*?)(?P<band>B(?:0[1-9]|1[0-2]|8A))(?:_(?P<res>10|20|60)m)?\.(?:jp2|tiff?)$", re.IGNORECASE
)
FOLDER_RASTER_SUFFIXES = (".jp2", ".tif", ".tiff", ".vrt", ".img")  # what a batch folder scan takes as rasters


@dataclass(frozen=True)
class StackBand:
    """One named band: where it is (a GDAL dataset name and 1-based band index) and its native grid."""

    name: str
    dataset: str
    index: int
    width: int
    height: int
    transform: Affine
    crs: Optional[CRS]
    dtype: str
    nodata: Optional[float]

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)


@dataclass(frozen=True)
class BandStack:
    """The bands of one scene, in product order. `default_nodata` applies to files that declare none."""

    source: str
    kind: str  # "Sentinel-2 L1C (.SAFE)", "STAC item", ...
    bands: tuple[StackBand, ...]
    default_nodata: Optional[float] = SENTINEL2_NODATA

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def expected_bands(self) -> tuple[str, ...]:
        """The bands a complete product of this kind holds (`--bands all` requires them): L1C all 13, L2A 12 (no
        B10). A STAC item holds what its catalogue publishes: every band it lists."""
        if self.kind.startswith("Sentinel-2 L1C"):
            return SENTINEL2_BANDS
        if self.kind.startswith("Sentinel-2 L2A"):
            return tuple(name for name in SENTINEL2_BANDS if name != "B10")
        return self.names

    def select(self, wanted: Optional[Sequence[int | str]]) -> tuple[StackBand, ...]:
        """The bands asked for, in the order asked: names (B04, b8a, red, nir08), 1-based numbers in product
        order, or 'all'. None: the four 10 m bands (DEFAULT_PRODUCT_BANDS)."""
        if wanted is None or tuple(wanted) == DEFAULT_PRODUCT_BANDS:  # the default: a band missing is the input's fault
            missing = [name for name in DEFAULT_PRODUCT_BANDS if name not in self.names]
            if missing:
                raise InputError(
                    f"{self.source} lacks {', '.join(missing)} of the default bands {','.join(DEFAULT_PRODUCT_BANDS)}; "
                    f"it has {', '.join(self.names)} (choose with --bands)"
                )
            wanted = DEFAULT_PRODUCT_BANDS
        if len(wanted) == 1 and isinstance(wanted[0], str) and wanted[0].lower() == "all":
            missing = [name for name in self.expected_bands if name not in self.names]
            if missing:  # a copy in progress, a partial download: fewer bands, in another order than the next product's
                raise InputError(
                    f"{self.source} lacks {', '.join(missing)} of the {len(self.expected_bands)} bands of a {self.kind} "
                    f"product; --bands all takes every band, so name the ones to use with --bands"
                )
            return self.bands
        picked = []
        for item in wanted:
            band = self._find(item)
            if band in picked:
                raise UsageError(f"--bands lists {band.name} twice")
            picked.append(band)
        return tuple(picked)

    def _find(self, item: int | str) -> StackBand:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            number = int(item)
            if not 1 <= number <= len(self.bands):
                raise UsageError(
                    f"band {number} is out of range: {self.source} has bands 1..{len(self.bands)} ({', '.join(self.names)})"
                )
            return self.bands[number - 1]
        name = canonical_band_name(item)
        for band in self.bands:
            if band.name.upper() == name.upper():
                return band
        raise UsageError(f"{self.source} has no band {item!r}; it has {', '.join(self.names)}")


# ------------------------------------------------------------------------------------------ recognising


def _is_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


def _name_part(text: str) -> str:
    """What a name's kind is read from, lower case: a URL's path (a signed URL's `?X-Amz-Signature=...` and a
    `user:password@` are no part of it), a local name as given."""
    return urllib.parse.urlsplit(text).path.rstrip("/").lower() if _is_url(text) else text.lower()


def _urlopen(url: str, method: str = "GET", headers: Optional[dict[str, str]] = None, timeout: float = 60):
    """urllib.request.urlopen of the user's own URL; a `user:password@` in it becomes a Basic Authorization
    header (urllib would take it for a host and port), as GDAL's curl sends it."""
    parts = urllib.parse.urlsplit(url)
    headers = dict(headers or {})
    if parts.username is not None or parts.password is not None:
        credentials = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    request = urllib.request.Request(url, method=method, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (the user's own URL)


def is_band_stack(name: str | os.PathLike) -> bool:
    """A .SAFE folder, a .SAFE.zip (or a zip holding one .SAFE), a STAC item JSON (file or URL), or a band folder."""
    text = str(name).rstrip("/")
    lower = _name_part(text)
    if lower.endswith(".safe"):
        return _is_url(text) or Path(text).is_dir()
    if not _is_url(text) and not text.startswith("/vsi") and os.path.isdir(text):
        return band_folder_files(Path(text)) is not None
    if lower.endswith(".safe.zip"):
        return True
    if lower.endswith(".json"):
        return True
    if lower.endswith(".zip") and not _is_url(text) and Path(text).is_file():
        return is_product_zip(Path(text))
    return False


def is_product_name(name: str | os.PathLike) -> bool:
    """A .SAFE, .SAFE.zip or STAC item .json by its name alone (a URL's query string aside)."""
    return _name_part(str(name).rstrip("/")).endswith((".safe", ".safe.zip", ".json"))


def is_product_dir(path: Path) -> bool:
    """A folder that is one scene (a .SAFE or a band folder), not a folder of scenes to scan."""
    return path.is_dir() and (path.name.lower().endswith(".safe") or band_folder_files(path) is not None)


def band_folder_files(folder: Path) -> Optional[dict[str, dict[int, list[str]]]]:
    """The band files of a band folder, band -> resolution (m) -> file names; None when the folder is not one.

    The one rule of what a plain folder of band files is (upscale, info and evaluate --wald all ask it): its files
    named <scene>B??[_NNm].jp2|tif name at least two Sentinel-2 bands, all with one <scene> part, and every other
    raster in it (a TCI, an SCL layer) starts with that non-empty <scene> part. Otherwise it is a folder of scenes."""
    try:
        names = [p.name for p in folder.iterdir() if p.suffix.lower() in FOLDER_RASTER_SUFFIXES and not p.is_dir()]
    except OSError:
        return None
    candidates: dict[str, dict[int, list[str]]] = {}
    scenes, others = set(), []
    for name in names:
        match = _BAND_FILE.match(name)
        if match is None:
            others.append(name)
            continue
        band = canonical_band_name(match.group("band"))
        resolution = int(match.group("res")) if match.group("res") else SENTINEL2_NATIVE_M[band]
        scenes.add(match.group("scene"))
        candidates.setdefault(band, {}).setdefault(resolution, []).append(name)
    if len(scenes) != 1 or len(candidates) < 2:
        return None
    scene = scenes.pop()
    if others and (not scene or not all(name.startswith(scene) for name in others)):
        return None
    return candidates


def is_product_file(path: Path) -> bool:
    """A file a batch folder scan takes as a scene besides rasters: a .SAFE.zip, or a product zip named without
    .SAFE (the older download name S2B_MSIL1C_..._T33UUU_....zip)."""
    return path.is_file() and (
        path.name.lower().endswith(".safe.zip") or (path.suffix.lower() == ".zip" and is_product_zip(path))
    )


_PRODUCT_NAME = re.compile(r"^S2[A-D]_MSIL(1C|2A)_", re.IGNORECASE)


def is_product_zip(path: Path) -> bool:
    """A zip holding a .SAFE, or named like a Sentinel-2 product: one still being copied is then a scene that fails
    with its reason (and is retried by the next run), never skipped without a word."""
    return bool(_PRODUCT_NAME.match(path.name)) or _zip_holds_safe(path)


def scene_stem(name: str | os.PathLike) -> str:
    """The scene's name for output files: X.SAFE, X.SAFE.zip, X.zip, X.json, X.tif -> X; a band folder's own name."""
    text = str(name).rstrip("/")
    base = (
        (urllib.parse.urlsplit(text).path if _is_url(text) else text).rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    )
    lower = base.lower()
    if not _is_url(text) and not lower.endswith(".safe") and os.path.isdir(text):
        return base
    for suffix in (".safe.zip", ".safe", ".zip", ".json"):
        if lower.endswith(suffix):
            return base[: -len(suffix)]
    return Path(base).stem


_TILE_IN_NAME = re.compile(r"(?<![A-Za-z0-9])T?(?P<tile>[0-6][0-9][C-X][A-HJ-NP-Z][A-HJ-NP-V])(?![A-Za-z0-9])")
_DATE_IN_NAME = re.compile(
    r"(?<![0-9])(?P<date>(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01]))(?:T[0-9]{6})?(?![0-9])"
)


def product_name_fields(name: str | os.PathLike) -> dict[str, str]:
    """{'tile': 'T33UUU', 'date': '20240612'} as far as the scene's name tells them: the first date (the sensing date
    of S2B_MSIL2A_20240612T103629_..._T33UUU_20240612T142521, S2B_33UUU_20240612_0_L2A, T33UUU_20240612T103629_B04)
    and the MGRS tile. A band folder named otherwise is read by its band files' names. Nothing is opened."""
    texts = [scene_stem(name)]
    text = str(name)
    if not _is_url(text) and not text.startswith("/vsi") and os.path.isdir(text):
        candidates = band_folder_files(Path(text))
        if candidates:
            texts += [files[0] for by_resolution in candidates.values() for files in by_resolution.values()][:1]
    fields: dict[str, str] = {}
    for candidate in texts:
        tile, date = _TILE_IN_NAME.search(candidate), _DATE_IN_NAME.search(candidate)
        if tile and "tile" not in fields:
            fields["tile"] = "T" + tile.group("tile")
        if date and "date" not in fields:
            fields["date"] = date.group("date")
    return fields


def _zip_holds_safe(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(".SAFE/" in n.upper() for n in archive.namelist()[:50])
    except (OSError, zipfile.BadZipFile):
        return False


# --------------------------------------------------------------------------------------------- opening


def open_band_stack(name: str | os.PathLike) -> BandStack:
    """List a product's or STAC item's bands with their native grids (headers only). One InputError line when
    it is not readable or holds no band."""
    text = str(name).rstrip("/")
    lower = _name_part(text)
    if lower.endswith(".json"):
        return _stac_stack(text)
    if _is_url(text) and not lower.endswith((".json", ".zip")):
        raise InputError(f"{text}: a remote .SAFE folder cannot be listed; give its .SAFE.zip or its STAC item")
    if lower.endswith(".zip"):
        return _safe_stack(text, _zip_members(text), zipped=True)
    if lower.endswith(".safe"):
        root = Path(text)
        if not root.is_dir():
            raise InputError(f"no such product folder: {text}")
        members = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in BAND_FILE_SUFFIXES]
        return _safe_stack(text, members, zipped=False)
    if not _is_url(text) and os.path.isdir(text):
        return _folder_stack(text)
    raise InputError(f"{text} is not a Sentinel-2 product (.SAFE, .SAFE.zip, a band folder) or a STAC item (.json)")


def _zip_members(path: str) -> list[str]:
    """The zip's member names; a remote zip is listed by HTTP range requests (its central directory only)."""
    if not _is_url(path) and not Path(path).is_file():
        raise InputError(f"no such file: {path}")
    try:
        with _HttpRangeFile(path) if _is_url(path) else open(path, "rb") as raw, zipfile.ZipFile(raw) as archive:
            return archive.namelist()
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read {path} as a zip: {exc}") from exc


class _HttpRangeFile(io.RawIOBase):
    """A read-only, seekable view of a file served over HTTP(S) with Range support: zipfile reads only the end
    of the archive (its central directory) to list it."""

    def __init__(self, url: str) -> None:
        self.url, self.position = url, 0
        with _urlopen(url, method="HEAD") as response:
            length = response.headers.get("Content-Length")
        self.size = int(length) if length is not None and length.isdigit() else self._size_from_a_range()

    def _size_from_a_range(self) -> int:
        """No Content-Length on HEAD (some servers, chunked answers): the total of a one-byte range's Content-Range."""
        with _urlopen(self.url, headers={"Range": "bytes=0-0"}) as response:
            total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        if response.status != 206 or not total.isdigit():
            raise OSError("the server gives neither its size (Content-Length) nor range requests")
        return int(total)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        if end <= self.position:
            return b""
        with _urlopen(self.url, headers={"Range": f"bytes={self.position}-{end - 1}"}) as response:
            if response.status != 206:
                raise OSError(f"the server does not answer range requests (HTTP {response.status})")
            data = response.read()
        self.position += len(data)
        return data


def _safe_stack(source: str, members: Sequence[str], *, zipped: bool) -> BandStack:
    """Band files by layout; L2A takes each band at its native resolution (R60m for B01/B09, whose R20m file is
    Sen2Cor's resampled copy), else the finest present. Two files for one band at that resolution (a .tif beside
    a .jp2) are refused with both named: which one a run reads must never depend on listing order."""
    candidates: dict[str, dict[int, list[str]]] = {}  # band -> resolution -> members
    granules, level = set(), "L1C"
    for member in members:
        match = _BAND_PATH.search(member)
        if not match:
            continue
        band = canonical_band_name(match.group("band"))
        resolution = match.group("folder_res") or match.group("res")
        if resolution is not None:
            level = "L2A"
        resolution_m = int(resolution) if resolution else SENTINEL2_NATIVE_M[band]
        granules.add(match.group("granule"))
        candidates.setdefault(band, {}).setdefault(resolution_m, []).append(member)
    if len(granules) > 1:  # before the per-band check: each band is then in several granules, the real reason
        raise InputError(
            f"{source} holds {len(granules)} granules ({', '.join(sorted(granules))}); rssr reads one tile per product"
        )
    found = _band_files(candidates, source)
    if not found:
        raise InputError(f"{source} holds no Sentinel-2 band file (GRANULE/*/IMG_DATA/*_B??[_10m].jp2|tif)")
    if zipped:
        archive = f"/vsicurl/{source}" if _is_url(source) else os.path.abspath(source)
        # GDAL finds the archive's end by its .zip suffix; a signed URL's query string follows it: braces then
        prefix = f"/vsizip/{archive}/" if archive.lower().endswith(".zip") else f"/vsizip/{{{archive}}}/"
    else:
        prefix = f"{source}/"
    bands = tuple(_describe_band(band, prefix + found[band]) for band in SENTINEL2_BANDS if band in found)
    return BandStack(source, f"Sentinel-2 {level} (.SAFE{' zip' if zipped else ''})", bands)


def _band_files(candidates: dict[str, dict[int, list[str]]], source: str) -> dict[str, str]:
    """band -> its one file: at its native resolution, else the finest present; two files there are refused."""
    found: dict[str, str] = {}
    for band, by_resolution in candidates.items():
        native = SENTINEL2_NATIVE_M[band]
        resolution_m = native if native in by_resolution else min(by_resolution)
        files = sorted(by_resolution[resolution_m])
        if len(files) > 1:
            raise InputError(f"{source}: band {band} is in {len(files)} files ({', '.join(files)}); keep one")
        found[band] = files[0]
    return found


def _holds_band_files(folder: Path) -> bool:
    """Whether any entry is named like a band file; one that is no regular file (a FIFO would block a read forever, a
    device never end) is refused here, by name."""
    try:
        named = [p for p in folder.iterdir() if _BAND_FILE.match(p.name)]
    except OSError:
        return False
    for path in named:
        if not path.is_file():
            raise InputError(f"{path} is not a regular file (a FIFO, device or folder); a band file must be one")
    return bool(named)


def _folder_stack(source: str) -> BandStack:
    """A band folder's bands (band_folder_files), in Sentinel-2 order; nodata 0 unless the files declare one."""
    candidates = band_folder_files(Path(source))
    holds_bands = _holds_band_files(Path(source))
    if candidates is None and not holds_bands:
        raise InputError(f"{source} holds no Sentinel-2 band files (<scene>B02.jp2, <scene>B03.jp2, ...)")
    if candidates is None:
        raise InputError(
            f"{source} is a folder of scenes, not one product: a band folder holds one scene's band files "
            "(<scene>B02.jp2, <scene>B03.jp2, ...)"
        )
    found = _band_files(candidates, source)
    bands = tuple(_describe_band(band, os.path.join(source, found[band])) for band in SENTINEL2_BANDS if band in found)
    return BandStack(source, "Sentinel-2 band folder", bands)


def _describe_band(name: str, dataset: str, index: int = 1) -> StackBand:
    try:
        with open_raster(dataset) as ds:
            if ds.count < index:
                raise InputError(f"{dataset} has {ds.count} band(s), no band {index}")
            return StackBand(
                name=name,
                dataset=dataset,
                index=index,
                width=ds.width,
                height=ds.height,
                transform=ds.transform,
                crs=ds.crs,
                dtype=ds.dtypes[index - 1],
                nodata=ds.nodata,
            )
    except GDAL_ERRORS as exc:
        raise InputError(f"cannot read band {name} ({dataset}): {gdal_message(exc)}") from exc


# ------------------------------------------------------------------------------------------------- STAC


MAX_STAC_ITEM_BYTES = 16 * 2**20  # a Sentinel-2 item is ~20 KB; a catalogue's richest items stay far below this


def _read_json(source: str) -> dict:
    """The STAC item's JSON: a local regular file or an http(s) body of at most MAX_STAC_ITEM_BYTES (a FIFO would
    hang, /dev/zero or an endless body exhaust memory); deep nesting is refused, not a RecursionError."""
    try:
        data = _read_remote_json(source) if _is_url(source) else _read_local_json(source)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"no such file: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    except RecursionError:
        raise InputError(f"{source} is not a STAC item: its JSON is nested too deeply") from None
    if not isinstance(item, dict) or item.get("type") != "Feature" or not isinstance(item.get("assets"), dict):
        raise InputError(f"{source} is not a STAC item (a GeoJSON Feature with assets)")
    return item


def _too_big(source: str) -> InputError:
    return InputError(
        f"{source} is larger than {MAX_STAC_ITEM_BYTES // 2**20} MiB; a STAC item is a small JSON document"
    )


def _read_local_json(source: str) -> bytes:
    info = os.stat(source)  # follows links: one to /dev/zero is a device
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{source} is not a regular file (a device, FIFO or socket); give a STAC item file")
    if info.st_size > MAX_STAC_ITEM_BYTES:
        raise _too_big(source)
    with open(source, "rb") as file:
        data = file.read(MAX_STAC_ITEM_BYTES + 1)
    if len(data) > MAX_STAC_ITEM_BYTES:
        raise _too_big(source)
    return data


def _read_remote_json(source: str) -> bytes:
    with _urlopen(source) as response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_STAC_ITEM_BYTES:
            raise _too_big(source)
        data = response.read(MAX_STAC_ITEM_BYTES + 1)
    if len(data) > MAX_STAC_ITEM_BYTES:
        raise _too_big(source)
    return data


REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://")


def _resolve_href(href: str, item_source: str) -> str:
    """An asset href as a GDAL dataset name: relative hrefs against the item; s3:// and URLs kept as strings.

    A remote item is someone else's document: its hrefs resolve to remote URLs only (a `file://` URL, a local
    path or a /vsi path such as /vsisubfile/ would publish this machine's files in the output). A local item
    may name local files anywhere, URLs and /vsi paths. No item may read standard input (/vsistdin/)."""
    if any(not char.isprintable() for char in href):
        raise InputError(f"{item_source}: an asset href holds a control character or NUL byte: {href!r}")
    if "/vsistdin" in href.lower():
        raise InputError(f"{item_source}: an asset href reads standard input ({href}); refusing it")
    if _is_url(item_source):
        resolved = urllib.parse.urljoin(item_source, href) if not href.startswith("/vsi") else href
        if not resolved.lower().startswith(REMOTE_SCHEMES):
            raise InputError(
                f"{item_source}: the asset href {href} is not a remote URL; a remote STAC item may only reference "
                "http(s)://, s3:// or gs:// URLs"
            )
        return resolved
    if "://" in href or href.startswith("/vsi"):
        return href
    if os.path.isabs(href):
        return href
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(item_source)), href))


def _asset_band_name(key: str, asset: dict) -> Optional[str]:
    """A single-band asset's name: its Sentinel-2 id when any of its names gives one, else its eo:bands name."""
    bands = asset.get("eo:bands") or asset.get("bands")
    if not isinstance(bands, list) or len(bands) != 1 or not isinstance(bands[0], dict):
        return None
    band = bands[0]
    candidates = [band.get("name"), key, band.get("common_name"), band.get("eo:common_name")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip() and candidate.lower() != "rededge":  # 3 bands share it
            canonical = canonical_band_name(candidate)
            if canonical in SENTINEL2_BANDS:
                return canonical
    return str(band.get("name") or key)


def _is_raster_asset(asset: dict) -> bool:
    media = str(asset.get("type", "")).lower()
    href = str(asset.get("href", "")).lower().split("?")[0]
    roles = asset.get("roles") or []
    if "thumbnail" in roles or "overview" in roles:
        return False
    return "image/tiff" in media or "image/jp2" in media or href.endswith(BAND_FILE_SUFFIXES)


def _stac_stack(source: str) -> BandStack:
    item = _read_json(source)
    chosen: dict[str, tuple[str, bool]] = {}  # name -> (href, is GeoTIFF)
    keys: dict[str, str] = {}  # name -> the asset key chosen
    for key, asset in item["assets"].items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str) or not _is_raster_asset(asset):
            continue
        name = _asset_band_name(key, asset)
        if name is None:
            continue
        is_tiff = "tiff" in str(asset.get("type", "")).lower() or asset["href"].lower().split("?")[0].endswith(
            (".tif", ".tiff")
        )
        href = _resolve_href(asset["href"], source)
        if name in chosen and is_tiff == chosen[name][1] and href != chosen[name][0]:
            # which one a run reads must not depend on the order of the JSON's keys
            raise InputError(
                f"{source}: band {name} is named by two assets ({keys[name]}, {key}); rssr cannot choose between them"
            )
        if name not in chosen or (is_tiff and not chosen[name][1]):  # the COG copy over a JP2 copy of one band
            chosen[name], keys[name] = (href, is_tiff), key
    if not chosen:
        raise InputError(f"{source}: no asset of this STAC item is a single band with eo:bands")
    order = {name: i for i, name in enumerate(SENTINEL2_BANDS)}
    names = sorted(chosen, key=lambda n: (order.get(n, len(order)), list(chosen).index(n)))
    bands = tuple(_describe_band(name, chosen[name][0]) for name in names)
    sentinel2 = any(n in order for n in names)
    return BandStack(source, "STAC item", bands, SENTINEL2_NODATA if sentinel2 else None)


# ------------------------------------------------------------------------------------------ what a run reads


def input_paths(src: str | os.PathLike) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The local files and folders a run of `src` reads, resolved (links followed): a raster or a .SAFE.zip is
    itself; a .SAFE folder (or any folder) is everything inside it; a STAC item is its JSON and every local band
    file it names. Nothing for a URL or /vsi name. Headers only: no band is opened."""
    text = str(src)
    if not is_local(text) or not exists_locally(text):
        return (), ()
    real = Path(os.path.realpath(text))
    if real.is_dir():
        return (), (real,)
    files = [real]
    if text.lower().endswith(".json"):
        try:
            assets = _read_json(text)["assets"].values()
            hrefs = [
                _resolve_href(a["href"], text) for a in assets if isinstance(a, dict) and isinstance(a.get("href"), str)
            ]
        except InputError:  # the run itself will say what is wrong with the item
            hrefs = []
        files += [Path(os.path.realpath(h)) for h in hrefs if is_local(h)]
    return tuple(files), ()


def is_input_path(path: str | os.PathLike, src: str | os.PathLike) -> bool:
    """`path` is a file the run of `src` reads, or lies inside a folder it reads (hard links count)."""
    files, folders = input_paths(src)
    real = Path(os.path.realpath(path))
    if any(real == folder or real.is_relative_to(folder) for folder in folders):
        return True
    for file in files:
        if real == file:
            return True
        try:
            if os.path.samefile(real, file):
                return True
        except OSError:
            continue
    return False


# ----------------------------------------------------------------------------------------------- checks


def check_compatible(bands: Sequence[StackBand], source: str) -> None:
    """One CRS, one data type, north-up grids: what one output raster needs."""
    crs = {b.crs.to_string() if b.crs else "none" for b in bands}
    if len(crs) > 1:
        raise InputError(f"{source}: the bands are in different CRSs ({', '.join(sorted(crs))})")
    dtypes = {b.dtype for b in bands}
    if len(dtypes) > 1:
        raise InputError(f"{source}: the bands mix data types ({', '.join(sorted(dtypes))}); rssr needs one type")
    for b in bands:
        t = b.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0 or not all(math.isfinite(v) for v in t[:6]):
            raise InputError(f"{source}: band {b.name} is not on a north-up grid")
