"""The output side: the streamed intermediate file and the atomic COG finalize (profiles: cog_profiles.py; the
destination and staging directory: destination.py).

Nothing ever appears at the destination path until the COG is complete: rows stream into an
intermediate striped GTiff inside a hidden staging directory beside DST, rio-cogeo translates it into
a second file in that directory, and only then does os.replace move it onto DST (atomic on one
filesystem). The staging directory is removed whatever happens.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetWriter
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_translate

from rssr_cli.core.errors import OutputError
from rssr_cli.io.cog_profiles import OVERVIEW_RESAMPLING
from rssr_cli.io.destination import STAGING_MARK
from rssr_cli.io.raster_io import GDAL_ERRORS, gdal_config, gdal_message

log = logging.getLogger(__name__)


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
def open_optional_intermediate(path: Path, spec: Optional[OutputSpec]) -> Iterator[Optional[DatasetWriter]]:
    """open_intermediate when there is a spec, else None (an optional layer such as a spread side-car)."""
    if spec is None:
        yield None
        return
    with open_intermediate(path, spec) as writer:
        yield writer


@contextmanager
def open_intermediate(path: Path, spec: OutputSpec, *, resume: bool = False) -> Iterator[DatasetWriter]:
    """A striped, uncompressed GTiff on disk that rows are streamed into (fast to write, never held in memory).
    `resume`: the file exists from an interrupted run of the same request (pipeline/resume.py): update it in place."""
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
                writer = rasterio.open(path, "r+") if resume else rasterio.open(path, "w", **profile)
            if not resume:
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
        raise write_error(
            f"cannot write {path}", path, None, detail=f"only {size} of {expected} bytes reached the disk"
        )


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


def write_rows(
    writer: DatasetWriter, spec: OutputSpec, row_off: int, data: np.ndarray, mask: Optional[np.ndarray]
) -> None:
    """Write [bands, h, width] rows (and the per-dataset mask rows when the output uses one)."""
    window = Window(0, row_off, spec.width, data.shape[1])
    try:
        writer.write(data, window=window)
        if spec.internal_mask and mask is not None:
            writer.write_mask(np.where(mask, 255, 0).astype(np.uint8), window=window)
    except GDAL_ERRORS as exc:
        raise write_error(f"cannot write rows {row_off}..{row_off + data.shape[1]}", Path(writer.name), exc) from exc


def write_band(writer: DatasetWriter, slot: int, data: np.ndarray, window: Window) -> None:
    """Write a [1, h, w] block into one band of a band-interleaved output (band stacks), a failure named as
    write_rows names it (a full disk is the README's line, not rasterio's "Write failed")."""
    try:
        writer.write(data, indexes=[slot], window=window)
    except GDAL_ERRORS as exc:
        raise write_error(f"cannot write band {slot}", Path(writer.name), exc) from exc


@dataclass(frozen=True)
class CogLayer:
    """One file a run publishes: its streamed intermediate (in the staging directory), where it goes, its COG options."""

    intermediate: Path
    dst: Path
    options: Mapping


def finalize_cog(intermediate: Path, dst: Path, options: Mapping, *, overwrite: bool) -> None:
    """Translate the intermediate into a COG in the staging directory, then move it onto DST in one rename."""
    finalize_cogs([CogLayer(intermediate, dst, options)], overwrite=overwrite)


def finalize_cogs(layers: Sequence[CogLayer], *, overwrite: bool) -> None:
    """The output (layers[0]) and its side-car layers (a spread) published together: every COG is built in the
    staging directory first, then the side-cars are moved into place and the output last. A failure or an
    interrupt before the output's rename removes the side-cars already moved, so a run leaves both or neither
    (with --overwrite, an older output then stays without its old side-car: a batch redoes such an output)."""
    staged = [_build_staged(layer) for layer in layers]
    for layer in layers:
        if layer.dst.exists() and not overwrite:  # appeared while we worked: still never clobber it
            raise OutputError(f"{layer.dst} already exists; pass --overwrite to replace it")
    placed: list[Path] = []
    try:
        for layer, built in [*zip(layers[1:], staged[1:]), (layers[0], staged[0])]:
            try:
                os.replace(built, layer.dst)
            except OSError as exc:
                raise OutputError(f"cannot move the finished COG onto {layer.dst}: {exc.strerror or exc}") from exc
            placed.append(layer.dst)
    except BaseException:  # Interrupted (a signal) included: never a side-car without its output
        if staged[0].exists():  # the output was not moved (a signal right after its rename leaves both in place)
            for path in placed:
                path.unlink(missing_ok=True)
        raise


def _build_staged(layer: CogLayer) -> Path:
    """Build one layer's COG beside its intermediate in the staging directory."""
    intermediate, dst = layer.intermediate, layer.dst
    staged = intermediate.with_name(f"{intermediate.stem}.cog.tif")
    log.info("building COG (overviews: %s) from %s", OVERVIEW_RESAMPLING, intermediate)
    if intermediate.stat().st_size >= CHILD_PROCESS_BYTES:
        _build_cog_in_child(intermediate, staged, layer.options, dst)
    else:
        try:
            build_cog(intermediate, staged, layer.options)
        except GDAL_ERRORS as exc:
            raise write_error(f"cannot write the COG for {dst}", staged, exc) from exc
    return staged


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
            [sys.executable, "-m", "rssr_cli.io.cog"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )
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
    """`python -m rssr_cli.io.cog`: build one COG from the JSON request on stdin; the error as the last stderr line."""
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
