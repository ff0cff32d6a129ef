"""Naming bands: 1-based band lists, Sentinel-2 band ids and the STAC common names that stand for them (no I/O)."""

from __future__ import annotations

import re

from rssr_cli.core.errors import UsageError

SENTINEL2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
SENTINEL2_NATIVE_M = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
# STAC eo common names (and the asset keys of the public Sentinel-2 catalogues) -> band id
COMMON_NAMES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}


def canonical_band_name(name: str) -> str:
    """'b4' / 'B04' -> 'B04', 'b8a' -> 'B8A', 'red' -> 'B04', 'nir08' -> 'B8A'; anything else unchanged."""
    text = name.strip()
    match = re.fullmatch(r"[Bb]0?([1-9]|1[0-2]|8[Aa])", text)
    if match:
        number = match.group(1).upper()
        return "B8A" if number == "8A" else f"B{int(number):02d}"
    return COMMON_NAMES.get(text.lower(), text)


def parse_band_numbers(text: str) -> tuple[int, ...]:
    """'4,3,2' -> (4, 3, 2): 1-based band numbers like GDAL's -b (the one parser of band lists)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise UsageError("no band given")
    try:
        bands = tuple(int(part) for part in parts)
    except ValueError:
        raise UsageError(f"bands must be comma-separated band numbers like 4,3,2, got {text!r}") from None
    if min(bands) < 1:
        raise UsageError(f"bands must be 1-based band numbers, got {text!r}")
    return bands
