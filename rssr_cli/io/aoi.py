"""Areas of interest: read a polygon (GeoJSON file or WKT) with its CRS, and place it in a raster's CRS.

What an AOI does to a run (which part of the output grid is written, which tiles run, which pixels are
masked) lives in region.py; this module only answers "which polygon, in which CRS".
"""

from __future__ import annotations

import hashlib
import json
import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from rssr_cli.core.errors import UsageError
from rssr_cli.io.raster_io import GDAL_ERRORS

GEOJSON_CRS = CRS.from_epsg(4326)  # RFC 7946: GeoJSON coordinates are WGS 84 longitude, latitude
WKT_KEYWORDS = ("POLYGON", "MULTIPOLYGON", "GEOMETRYCOLLECTION", "POINT", "MULTIPOINT", "LINESTRING", "MULTILINESTRING")
REPROJECT_SEGMENTS = 64  # vertices added per bounding-box side before reprojecting (see aoi_in_raster_crs)
MAX_AOI_BYTES = 100 * 10**6  # a GeoJSON of a few fields is kilobytes; a country's coastline a few MB
MAX_TAG_CHARS = 4000  # the RSSR_AOI tag stays readable in gdalinfo; RSSR_AOI_ID identifies the exact polygon


@dataclass(frozen=True)
class AreaOfInterest:
    """A (multi)polygon and its CRS; crs None means "in the raster's own CRS" (WKT given without a CRS)."""

    geometry: BaseGeometry
    crs: Optional[CRS] = None

    @property
    def fingerprint(self) -> str:
        """A short stable id of the polygon and its CRS (the same AOI gives the same id in any process)."""
        digest = hashlib.sha256(shapely.to_wkb(shapely.normalize(self.geometry)))
        digest.update((self.crs.to_wkt() if self.crs is not None else "raster CRS").encode())
        return digest.hexdigest()[:16]


def load_aoi(value: str, crs: Optional[str] = None) -> AreaOfInterest:
    """An AOI from a GeoJSON file (FeatureCollection, Feature or geometry) or a WKT (MULTI)POLYGON string.

    GeoJSON is EPSG:4326 unless it carries a legacy top-level "crs" member; WKT has no CRS of its own, so
    it is in the raster's CRS unless `crs` is given. `crs` (anything rasterio's CRS.from_user_input reads)
    overrides both. Every problem is one UsageError line.
    """
    override = parse_crs(crs) if crs is not None else None
    text = value.strip()
    if text.upper().startswith(WKT_KEYWORDS):
        return AreaOfInterest(polygonal(parse_wkt(text), source="the AOI WKT"), override)
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"the AOI {value} is a directory, not a GeoJSON file")
    if not path.exists():
        raise UsageError(f"no such AOI file: {value} (give a GeoJSON file or a WKT POLYGON/MULTIPOLYGON)")
    check_aoi_file(path)
    geometry, file_crs = read_geojson(path)
    return AreaOfInterest(polygonal(geometry, source=str(path)), override or file_crs or GEOJSON_CRS)


def check_aoi_file(path: Path) -> None:
    """A device (/dev/zero reads forever), a FIFO (blocks until a writer comes) or a huge file is no AOI."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"the AOI {path} is not a regular file (a device, FIFO or socket); give a GeoJSON file")
    if info.st_size > MAX_AOI_BYTES:
        raise UsageError(
            f"the AOI file {path} is {info.st_size / 1e6:.0f} MB; an AOI file may be at most {MAX_AOI_BYTES // 10**6} MB"
        )


def parse_crs(text: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise UsageError(f"AOI CRS {text!r} is not a CRS: {first_line(exc)}") from exc


def parse_wkt(text: str) -> BaseGeometry:
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # 1e400 reads as inf: polygonal() says so in one line
            return shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise UsageError(f"the AOI is not valid WKT: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def read_geojson(path: Path) -> tuple[BaseGeometry, Optional[CRS]]:
    """The union of a GeoJSON file's geometries, and its legacy named CRS if it has one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the AOI file {path}: {first_line(exc)}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"the AOI file {path} is not GeoJSON: {first_line(exc)}") from exc
    try:
        geometries = [shape(g) for g in _geojson_geometries(document)]
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as exc:
        raise UsageError(f"the AOI file {path} holds a malformed GeoJSON geometry: {first_line(exc)}") from exc
    if not geometries:
        raise UsageError(f"the AOI file {path} holds no geometry")
    return shapely.GeometryCollection(geometries), _legacy_crs(document, path)


def _geojson_geometries(document: Any) -> list[dict]:
    if not isinstance(document, dict):
        raise TypeError("the top level is not a JSON object")
    kind = document.get("type")
    if kind == "FeatureCollection":
        return [g for feature in document.get("features") or [] for g in _geojson_geometries(feature)]
    if kind == "Feature":
        return [document["geometry"]] if document.get("geometry") else []
    return [document]


def _legacy_crs(document: dict, path: Path) -> Optional[CRS]:
    """The pre-RFC 7946 member {"crs": {"type": "name", "properties": {"name": ...}}}, still written by some tools."""
    member = document.get("crs")
    if not member:
        return None
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not isinstance(name, str):
        raise UsageError(f'the AOI file {path} has a "crs" member without a name; remove it or give the AOI CRS')
    return parse_crs(name)


def polygonal(geometry: BaseGeometry, *, source: str) -> BaseGeometry:
    """The union of a geometry's polygons, each repaired if invalid (points and lines have no area to keep)."""
    if not np.isfinite(shapely.get_coordinates(geometry)).all():  # GEOS cannot even test their validity
        raise UsageError(f"{source} has coordinates that are not finite numbers")
    repaired = [p if p.is_valid else shapely.make_valid(p) for p in _polygons(geometry)]  # a bow-tie -> 2 triangles
    parts = [p for r in repaired for p in _polygons(r)]
    if not parts:
        raise UsageError(f"{source} holds no polygon (an AOI needs an area)")
    return shapely.union_all(parts)  # valid polygons: a positive area


def _polygons(geometry: BaseGeometry) -> list[BaseGeometry]:
    if geometry.geom_type == "Polygon":
        return [] if geometry.is_empty else [geometry]
    if geometry.geom_type in ("MultiPolygon", "GeometryCollection"):
        return [p for part in geometry.geoms for p in _polygons(part)]
    return []


def aoi_in_raster_crs(aoi: AreaOfInterest, raster_crs: Optional[CRS]) -> BaseGeometry:
    """The AOI's polygon in the raster's CRS (an AOI without a CRS is already in it)."""
    if aoi.crs is None or aoi.crs == raster_crs:
        return aoi.geometry
    if raster_crs is None:
        raise UsageError(
            "the raster has no CRS, so an AOI with a CRS cannot be placed on it; give WKT in its pixel-grid coordinates"
        )
    # Straight edges in one CRS are curves in another: add vertices first so that a long edge (e.g. a
    # parallel given in degrees) follows its true course in the raster CRS instead of the chord.
    west, south, east, north = aoi.geometry.bounds
    dense = shapely.segmentize(aoi.geometry, max(east - west, north - south) / REPROJECT_SEGMENTS)
    try:
        moved = shape(transform_geom(aoi.crs, raster_crs, mapping(dense)))
    except (CRSError, ValueError, *GDAL_ERRORS) as exc:
        raise UsageError(f"cannot reproject the AOI to the raster CRS: {first_line(exc)}") from exc
    return polygonal(moved, source="the AOI in the raster CRS")


def aoi_tag(geometry: BaseGeometry, resolution: float) -> str:
    """WKT of the AOI for a tag: coordinates rounded to 1/100 of an output pixel, simplified when too long."""
    decimals = max(0, 2 - math.floor(math.log10(resolution)))
    extent = max(geometry.bounds[2] - geometry.bounds[0], geometry.bounds[3] - geometry.bounds[1])
    tolerance = resolution / 100  # start at the rounding step, coarsen by doubling until the WKT fits
    candidate = geometry
    while True:
        text = shapely.to_wkt(candidate, rounding_precision=decimals, trim=True)
        if len(text) <= MAX_TAG_CHARS:
            return text
        if tolerance > extent:  # too many separate parts to simplify away: the envelope is still honest
            return shapely.to_wkt(geometry.envelope, rounding_precision=decimals, trim=True)
        candidate = geometry.simplify(tolerance, preserve_topology=True)
        tolerance *= 2
