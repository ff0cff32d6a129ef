"""Named COG profiles and GDAL creation options (--profile, --co): copies of a registry, checked against the data
(a probe write on a tiny raster), so a bad option is a usage error before any pixel is computed."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
import warnings
from typing import Final, Mapping, Optional, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from rssr_cli.core.errors import UsageError
from rssr_cli.io.raster_io import GDAL_ERRORS, gdal_config, gdal_message

log = logging.getLogger(__name__)


_COG_BASE = {
    "driver": "GTiff",
    "interleave": "pixel",
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "num_threads": "ALL_CPUS",  # GDAL compresses blocks in parallel; the output bytes are the same
}
PROFILES: dict[str, dict] = {
    "deflate": {**_COG_BASE, "compress": "DEFLATE"},
    "zstd": {**_COG_BASE, "compress": "ZSTD"},
    "lzw": {**_COG_BASE, "compress": "LZW"},
}
DEFAULT_PROFILE = "deflate"
OVERVIEW_RESAMPLING: Final = "average"


def get_profile(name: str) -> dict:
    """A copy of a named profile, so callers can change it freely."""
    if name not in PROFILES:
        raise UsageError(f"unknown output profile {name!r}; choose one of: {', '.join(sorted(PROFILES))}")
    return dict(PROFILES[name])


# Options rssr decides itself: a user value would break the COG layout or the build (a traceback, once).
RESERVED_CREATION_OPTIONS = {
    "copy_src_overviews": "rssr builds the overviews itself",
    "driver": "the output is always a Cloud-Optimized GeoTIFF",
    "tiled": "a Cloud-Optimized GeoTIFF is always tiled",
}


def parse_creation_options(items: Sequence[str]) -> dict[str, str]:
    """['NAME=VAL', ...] -> {'name': 'VAL'} (lower-case keys, as rio-cogeo reads them).

    Refuses what GDAL would ignore with a warning (an unknown option, a value it does not recognise such as
    a codec missing from this build) and the options rssr sets itself; whether a codec suits the data type
    is checked once the input is known (check_creation_options)."""
    options: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"creation option {item!r} is not NAME=VALUE")
        key = name.strip().lower()
        if key in RESERVED_CREATION_OPTIONS:
            raise UsageError(
                f"creation option {name.strip().upper()} is not accepted: {RESERVED_CREATION_OPTIONS[key]}"
            )
        options[key] = value.strip()
    if options:
        _probe_creation_options(options, "uint8", 3, data_errors=False)
    return options


def check_options_for_data(options: Mapping[str, str], dtype: str, count: int, *, asked: Mapping[str, str]) -> None:
    """Refuse (UsageError) final COG `options` GDAL rejects for this data type and band count (JPEG on uint16,
    a float predictor on integers, a block size not a multiple of 16), before any work instead of after the
    whole scene. `asked`: the user's own options, named in the message."""
    _probe_creation_options(options, dtype, count, data_errors=True, asked=asked)


_PROBE_SIZE = 16


def _probe_creation_options(
    options: Mapping[str, str], dtype: str, count: int, *, data_errors: bool, asked: Optional[Mapping[str, str]] = None
) -> None:
    """Copy a tiny raster to an in-memory GTiff with these options: GDAL's own verdict, whatever its version
    and build (a CreateCopy, as the COG is made, so codec errors surface here and not at a later flush).

    GDAL only warns about an unknown option or value and writes without it (a COMPRESS=NOTACODEC output is
    silently uncompressed), so its warnings count as refusals. Errors (a codec that cannot hold this data
    type) count only when `data_errors`: parsing does not know the input's type yet."""
    complaints = _GdalComplaints()
    target = f"/vsimem/rssr-options-probe-{uuid.uuid4().hex}.tif"
    tiled = {k: v for k, v in options.items() if k != "driver"}
    # First in strips, which the copy writes whole (a codec that cannot hold the data fails inside it), then
    # tiled (block sizes are checked when the file is made; a partial tile would only fail at its flush).
    striped = {k: v for k, v in tiled.items() if k not in ("tiled", "blockxsize", "blockysize", "num_threads")}
    try:
        with complaints, rasterio.Env(**gdal_config()), MemoryFile() as source, warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with source.open(driver="GTiff", width=_PROBE_SIZE, height=_PROBE_SIZE, count=count, dtype=dtype) as tiny:
                tiny.write(np.zeros((count, _PROBE_SIZE, _PROBE_SIZE), dtype=dtype))
            for copy_options in (striped, tiled):
                try:
                    rasterio.shutil.copy(source.name, target, driver="GTiff", **copy_options)
                finally:
                    with contextlib.suppress(*GDAL_ERRORS):
                        rasterio.shutil.delete(target)
    except (*GDAL_ERRORS, TypeError, ValueError) as exc:
        if data_errors:
            reason = re.sub(r"\S*rssr-options-probe-\w+\.tif:\s*", "", gdal_message(exc))
            raise UsageError(
                f"GDAL refuses the creation options {_spell(asked or options)} for {count} band(s) of {dtype}: {reason}"
            ) from None
    if complaints.messages:
        raise UsageError(
            f"GDAL does not accept the creation options {_spell(asked or options)}: {complaints.messages[0]}"
        )


def _spell(options: Mapping[str, str]) -> str:
    return " ".join(f"{k.upper()}={v}" for k, v in options.items())


class _GdalComplaints(logging.Handler):
    """Collects GDAL's warnings about creation options (rasterio logs them as 'CPLE_NotSupported in ...' or
    'CPLE_IllegalArg in ...'; other warnings, e.g. about cache sizes, are not about the options)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._logger = logging.getLogger("rasterio")

    def emit(self, record: logging.LogRecord) -> None:
        kind, _, text = record.getMessage().partition(" in ")
        if kind in ("CPLE_NotSupported", "CPLE_IllegalArg") and text:
            self.messages.append(text)

    def __enter__(self) -> "_GdalComplaints":
        self._level = self._logger.level
        self._logger.setLevel(min(self._level or logging.WARNING, logging.WARNING))
        self._logger.addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


def cog_options(profile: str, dtype: str, overrides: Mapping[str, str]) -> dict:
    """Creation options for the final COG: the profile, the predictor that suits the dtype, then user overrides."""
    options = get_profile(profile)
    options["predictor"] = 3 if np.issubdtype(np.dtype(dtype), np.floating) else 2
    options.update({k.lower(): v for k, v in overrides.items()})
    return options
