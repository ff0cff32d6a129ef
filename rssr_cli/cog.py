"""The output side: named COG profiles, the destination checks, the streamed intermediate file, the atomic COG finalize.

Nothing ever appears at the destination path until the COG is complete: rows stream into an
intermediate striped GTiff inside a hidden staging directory beside DST, rio-cogeo translates it into
a second file in that directory, and only then does os.replace move it onto DST (atomic on one
filesystem). The staging directory is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Iterator, Mapping, Optional, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetWriter, MemoryFile
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_translate

from .errors import OutputError, UsageError
from .raster_io import GDAL_ERRORS, gdal_config, gdal_message

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
            raise UsageError(f"creation option {name.strip().upper()} is not accepted: {RESERVED_CREATION_OPTIONS[key]}")
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
            raise UsageError(f"GDAL refuses the creation options {_spell(asked or options)} for {count} band(s) of {dtype}: {reason}") from None
    if complaints.messages:
        raise UsageError(f"GDAL does not accept the creation options {_spell(asked or options)}: {complaints.messages[0]}")


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


OUTPUT_SUFFIXES = (".tif", ".tiff")
_MKDTEMP_RANDOM_CHARS = 8
_DEFAULT_NAME_MAX = 255


def check_output_name(dst: Path) -> None:
    """Refuse, before any work, an output name rssr cannot honour: not .tif/.tiff (the file is a GeoTIFF
    whatever it is called: `-o x.png` would be a TIFF in disguise), or too long for the hidden staging
    folder made beside it (`.NAME.rssr-XXXXXXXX` must fit the filesystem's NAME_MAX)."""
    if dst.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"output {dst} must end in .tif or .tiff: rssr writes Cloud-Optimized GeoTIFFs")
    name_bytes = len(os.fsencode(dst.name))
    overhead = len(os.fsencode(staging_prefix(dst))) + _MKDTEMP_RANDOM_CHARS - name_bytes
    limit = _name_max(dst.parent)
    if name_bytes + overhead > limit:
        raise UsageError(
            f"output file name is {name_bytes} bytes long; at most {limit - overhead} fit "
            f"(the filesystem allows {limit} and rssr stages the output under a longer hidden name)"
        )


def _name_max(directory: Path) -> int:
    """The longest file name (bytes) the filesystem of `directory` (or of its nearest existing parent) allows."""
    for candidate in (directory, *directory.parents):
        try:
            if candidate.is_dir():
                return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError):
            break
    return _DEFAULT_NAME_MAX


def check_destination(dst: Path, *, overwrite: bool, src: str) -> None:
    """Refuse early (before any work) what would fail or destroy something at the end."""
    check_output_name(dst)
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"output directory {parent} does not exist")
    if dst.is_dir():
        raise OutputError(f"{dst} is a directory")
    if dst.exists() and Path(src).exists() and os.path.samefile(dst, src):
        raise UsageError(f"{dst} is the input file; write the output elsewhere")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} already exists; pass --overwrite to replace it")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output directory {parent} is not writable")


STAGING_MARK = ".rssr-"


def staging_prefix(dst: Path) -> str:
    """Name prefix of DST's staging directories (a run killed with -9 leaves one; locks.py removes it later)."""
    return f".{dst.name}{STAGING_MARK}"


STAGING_OWNER = ".owner"  # flocked by the run using the directory: a sweep removes only directories nobody holds


@contextmanager
def staging_dir(dst: Path) -> Iterator[Path]:
    """A hidden temporary directory beside DST (same filesystem, so the final rename is atomic), always removed.

    mkdtemp creates it with mkdir (0700, never through a planted symlink); it is checked with lstat before
    use, and its `.owner` file stays flocked while the run lives, so locks.sweep_stale can tell a dead run's
    leftovers (hundreds of MB after a kill -9) from a live run's, whatever output they belong to."""
    try:
        path = Path(tempfile.mkdtemp(prefix=staging_prefix(dst), dir=dst.parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {dst.parent}: {exc.strerror or exc}") from exc
    owner = None
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise OutputError(f"staging directory {path} was replaced by something else; refusing to use it")
        try:
            owner = os.open(path / STAGING_OWNER, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            fcntl.flock(owner, fcntl.LOCK_EX)
        except OSError as exc:
            raise OutputError(f"cannot write to {path}: {exc.strerror or exc}") from exc
        yield path
    finally:
        _remove_tree(path)
        if owner is not None:
            os.close(owner)


def _remove_tree(path: Path) -> None:
    """rmtree that never follows a symlink (shutil.rmtree refuses a symlinked top; inner links are unlinked)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class OutputSpec:
    """What the output raster is: grid, dtype, how invalid pixels are marked, and the metadata it carries."""

    width: int
    height: int
    transform: Affine
    crs: Optional[CRS]
    dtype: str
    nodata: Optional[float]
    internal_mask: bool
    descriptions: tuple[Optional[str], ...]
    colorinterp: tuple[ColorInterp, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    tags: dict[str, str]
    band_tags: tuple[dict[str, str], ...]
    interleave: str = "pixel"  # of the intermediate; "band" when bands are written one after another (band stacks)

    @property
    def count(self) -> int:
        return len(self.descriptions)


@contextmanager
def open_intermediate(path: Path, spec: OutputSpec) -> Iterator[DatasetWriter]:
    """A striped, uncompressed GTiff on disk that rows are streamed into (fast to write, never held in memory)."""
    profile = dict(
        driver="GTiff",
        width=spec.width,
        height=spec.height,
        count=spec.count,
        dtype=spec.dtype,
        crs=spec.crs,
        transform=spec.transform,
        nodata=spec.nodata,
        tiled=False,
        blockysize=min(spec.height, 64),
        interleave=spec.interleave,
        bigtiff="IF_SAFER",
    )
    with rasterio.Env(**gdal_config()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                writer = rasterio.open(path, "w", **profile)
            _write_metadata(writer, spec)
        except GDAL_ERRORS as exc:
            raise write_error(f"cannot create {path}", path, exc) from exc
        with writer:
            yield writer
    check_complete(path, spec)


def check_complete(path: Path, spec: OutputSpec) -> None:
    """GDAL reports a block it fails to flush (disk full) only on stderr, and rasterio's close() raises nothing:
    an uncompressed striped file shorter than its pixels was not completely written, so it must not become a COG."""
    expected = spec.width * spec.height * spec.count * np.dtype(spec.dtype).itemsize
    size = path.stat().st_size
    if size < expected:
        raise write_error(f"cannot write {path}", path, None, detail=f"only {size} of {expected} bytes reached the disk")


def disk_full(path: Path, reserve: int = 1 << 20) -> bool:
    """The filesystem holding `path` has (almost) no space left for this user."""
    try:
        info = os.statvfs(path if path.is_dir() else path.parent)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < reserve


def write_error(what: str, path: Path, exc: Optional[BaseException], *, detail: Optional[str] = None) -> OutputError:
    """One line for a failed write; a full disk is named as such, with the output it was for (libtiff only says
    "TIFFAppendToStrip: Write error at scanline 0", and the file is a temporary one in a staging directory)."""
    text = detail or (gdal_message(exc) if exc is not None else "write failed")
    if "No space left" in text or disk_full(path):
        folder = path.parent
        if STAGING_MARK in folder.name:  # DIR/.NAME.rssr-xxxx/stream.tif belongs to DIR/NAME
            folder, path = folder.parent, folder.parent / folder.name[1 : folder.name.rindex(STAGING_MARK)]
        return OutputError(f"cannot write {path}: no space left on device in {folder}")
    return OutputError(f"{what}: {text}")


def _write_metadata(writer: DatasetWriter, spec: OutputSpec) -> None:
    writer.colorinterp = spec.colorinterp
    writer.scales = spec.scales
    writer.offsets = spec.offsets
    writer.update_tags(**spec.tags)
    for band, (description, tags) in enumerate(zip(spec.descriptions, spec.band_tags), start=1):
        if description:
            writer.set_band_description(band, description)
        if tags:
            writer.update_tags(band, **tags)


def write_rows(writer: DatasetWriter, spec: OutputSpec, row_off: int, data: np.ndarray, mask: Optional[np.ndarray]) -> None:
    """Write [bands, h, width] rows (and the per-dataset mask rows when the output uses one)."""
    window = Window(0, row_off, spec.width, data.shape[1])
    try:
        writer.write(data, window=window)
        if spec.internal_mask and mask is not None:
            writer.write_mask(np.where(mask, 255, 0).astype(np.uint8), window=window)
    except GDAL_ERRORS as exc:
        raise write_error(f"cannot write rows {row_off}..{row_off + data.shape[1]}", Path(writer.name), exc) from exc


def finalize_cog(intermediate: Path, dst: Path, options: Mapping, *, overwrite: bool) -> None:
    """Translate the intermediate into a COG in the staging directory, then move it onto DST in one rename."""
    staged = intermediate.with_name("cog.tif")
    log.info("building COG (overviews: %s) from %s", OVERVIEW_RESAMPLING, intermediate)
    if intermediate.stat().st_size >= CHILD_PROCESS_BYTES:
        _build_cog_in_child(intermediate, staged, options, dst)
    else:
        try:
            build_cog(intermediate, staged, options)
        except GDAL_ERRORS as exc:
            raise write_error(f"cannot write the COG for {dst}", staged, exc) from exc
    if dst.exists() and not overwrite:  # appeared while we worked: still never clobber it
        raise OutputError(f"{dst} already exists; pass --overwrite to replace it")
    try:
        os.replace(staged, dst)
    except OSError as exc:
        raise OutputError(f"cannot move the finished COG onto {dst}: {exc.strerror or exc}") from exc


# A COG build is one long GDAL call (35 s for a large scene) during which Python cannot act on SIGINT/SIGTERM.
# Above this size it runs in a child process the parent can abandon at once; below it, it is over within
# ~1.5 s even on a loaded 2-core machine (measured: 23 MB of noise took 3.2 s there), and a child's start-up
# (~1 s of imports) would cost more than it saves.
CHILD_PROCESS_BYTES = 16 * 1024 * 1024
CHILD_POLL_SECONDS = 0.05


def build_cog(intermediate: Path, staged: Path, options: Mapping) -> None:
    """rio-cogeo's translation (or GDAL's COG driver when rio-cogeo would drop the mask) of the intermediate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        if _mask_lost_by_rio_cogeo(intermediate):
            _gdal_cog_copy(intermediate, staged, options)
        else:
            cog_translate(
                str(intermediate),
                str(staged),
                dict(options),
                in_memory=False,
                quiet=True,
                overview_resampling=OVERVIEW_RESAMPLING,
                forward_band_tags=True,
                config=gdal_config(),
            )


def _build_cog_in_child(intermediate: Path, staged: Path, options: Mapping, dst: Path) -> None:
    """build_cog in a child process, polled so that a signal handler (interrupts.py) runs within 50 ms; on any
    exception (Interrupted) the child is killed before the staging directory is removed."""
    request = json.dumps({"intermediate": str(intermediate), "staged": str(staged), "options": dict(options)})
    # Its own session: a terminal's Ctrl-C reaches the parent only, which decides; stdout/stderr captured so that
    # GDAL's raw messages never reach the user's terminal (the error comes back as one line).
    # (stderr to a file, not a pipe: a chatty child must never block on a full pipe the parent is not reading)
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "rssr_cli.cog"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
            start_new_session=True,
        )  # fmt: skip
        assert child.stdin is not None  # stdin=PIPE
        try:
            child.stdin.write(request.encode())
            child.stdin.close()
            while child.poll() is None:
                time.sleep(CHILD_POLL_SECONDS)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip().splitlines()
    if child.returncode != 0:
        detail = message[-1] if message else f"the COG builder exited with status {child.returncode}"
        raise write_error(f"cannot write the COG for {dst}", staged, None, detail=detail)


def _child_main() -> int:
    """`python -m rssr_cli.cog`: build one COG from the JSON request on stdin; the error as the last stderr line."""
    request = json.loads(sys.stdin.read())
    try:
        build_cog(Path(request["intermediate"]), Path(request["staged"]), request["options"])
    except GDAL_ERRORS as exc:
        print(gdal_message(exc), file=sys.stderr)
        return 1
    return 0


def _mask_lost_by_rio_cogeo(intermediate: Path) -> bool:
    """rio-cogeo routes an internal mask through WarpedVRT(add_alpha=True), which drops it (every pixel
    valid) for band counts other than 1 and 3: a 4-band RGBN scene with an AOI or a mask lost its nodata."""
    with rasterio.open(intermediate) as dataset:
        per_dataset = all(MaskFlags.per_dataset in flags for flags in dataset.mask_flag_enums)
        return per_dataset and dataset.count not in (1, 3)


_COG_DRIVER_NAMES = {"blockxsize": "BLOCKSIZE", "zlevel": "LEVEL", "zstd_level": "LEVEL"}
_GTIFF_ONLY = {"driver", "interleave", "tiled", "blockysize", "photometric"}


def _gdal_cog_copy(intermediate: Path, staged: Path, options: Mapping) -> None:
    """GDAL's own COG driver: same layout rules (tiles, overviews, ghost header) and it keeps the internal
    mask for any band count. GTiff-style option names are mapped to the COG driver's."""
    cog = {_COG_DRIVER_NAMES.get(k, k.upper()): v for k, v in options.items() if k not in _GTIFF_ONLY}
    cog["PREDICTOR"] = "YES" if str(cog.get("PREDICTOR", "")) in ("2", "3") else cog.get("PREDICTOR", "NO")
    cog["OVERVIEW_RESAMPLING"] = OVERVIEW_RESAMPLING.upper()
    with rasterio.Env(**gdal_config()):
        rasterio.shutil.copy(str(intermediate), str(staged), driver="COG", **cog)


if __name__ == "__main__":
    sys.exit(_child_main())
