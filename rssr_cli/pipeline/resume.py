"""Resuming an interrupted scene at the tile-row level (issue 23, item 24b): a multi-hour scene stopped by SIGTERM,
Ctrl-C or a processing failure (a full disk) starts again where its output rows stop, not from zero.

The scene is built in a staging folder with a fixed name per output, `.NAME.rssr-resume/` (destination.py's random
`.NAME.rssr-XXXXXXXX` is removed on every exit): the streamed intermediate and a side-car, `resume.json`, holding
the run's key and how far the intermediate is known to be on disk. The key is every tag the output records (the
request, the source's identity, the grid, the AOI) plus the tiling and batch size: any difference (another
`--seed`, scale or model, the input replaced) discards the folder and the scene is computed from the start.

Rows are on disk before the side-car says so: rasterio has no flush, so at a checkpoint (every CHECKPOINT_SECONDS,
and when the run stops on an interrupt or a failure) the intermediate is closed, fsynced and reopened in update
mode, then the side-car is replaced atomically. A kill -9 loses at most the work since the last checkpoint.
Windows carry their own seeds (grid.tile_seed) and a resumed stream adds the same patches in the same order, so a
resumed output is byte-identical to an uninterrupted one. Only single rasters whose source has a local identity
resume (a URL's content cannot be compared); band stacks and split rows do not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import rasterio
from rasterio.windows import Window

from rssr_cli.core.errors import Interrupted, OutputError, RssrError
from rssr_cli.io.cog import OutputSpec
from rssr_cli.io.destination import RESUME_MARK, remove_tree
from rssr_cli.io.raster_io import gdal_config
from rssr_cli.io.source_identity import FINGERPRINT_TAG
from rssr_cli.pipeline.settings import UpscaleSettings

log = logging.getLogger(__name__)

SIDECAR = "resume.json"
INTERMEDIATE = "stream.tif"
CHECKPOINT_SECONDS = 60.0  # at most this much work is lost to a kill -9 (a signal or a failure loses none)


def resume_dir(dst: Path) -> Path:
    return dst.parent / f".{dst.name}{RESUME_MARK}"  # left alone by locks.remove_stale_staging


@dataclass
class StreamState:
    """How far a scene's stream got: every output row above `rows_written` (full-grid rows) has been handed to the
    writer, and `skipped` holds the all-nodata window count of each tile row finished so far."""

    rows_written: int = 0
    skipped: list[int] = field(default_factory=list)


def resume_key(
    plan_tags: dict[str, str], spec: OutputSpec, settings: UpscaleSettings, region_window: Window
) -> Optional[str]:
    """The key a resume folder must match (module doc); None when the source has no identity (nothing resumes)."""
    if FINGERPRINT_TAG not in plan_tags:
        return None
    record = {
        "tags": dict(sorted(plan_tags.items())),
        "grid": [
            spec.width,
            spec.height,
            spec.count,
            spec.dtype,
            repr(spec.nodata),
            spec.internal_mask,
            list(spec.transform)[:6],
        ],
        "region": [
            int(region_window.col_off),
            int(region_window.row_off),
            int(region_window.width),
            int(region_window.height),
        ],
        "tiling": [settings.tile, settings.overlap, settings.batch_size],
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


class ResumableWriter:
    """The intermediate's rasterio dataset, which a checkpoint closes (GDAL flushes every block), fsyncs and reopens
    in update mode; write_rows and write_blended use it as the dataset itself."""

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset
        self._path = Path(dataset.name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)

    def checkpoint(self) -> None:
        self._dataset.close()
        fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with rasterio.Env(**gdal_config()):
            self._dataset = rasterio.open(self._path, "r+")

    def close(self) -> None:
        self._dataset.close()


class Resume:
    """A scene's resume folder while it runs: where it stands (`state`) and its checkpoints."""

    def __init__(self, folder: Path, key: str, state: StreamState) -> None:
        self.folder, self.key, self.state = folder, key, state
        self.resumed = state.rows_written > 0
        self.streamed = False  # every row is written: what fails now (a fidelity check) fails again on a rerun
        self._writer: Optional[ResumableWriter] = None
        self._last = time.monotonic()

    def track(self, writer: ResumableWriter) -> None:
        self._writer = writer

    def after_row(self) -> None:
        """Called after each finished tile row: checkpoint when CHECKPOINT_SECONDS have passed since the last one."""
        if time.monotonic() - self._last >= CHECKPOINT_SECONDS:
            self.checkpoint()

    def checkpoint(self) -> None:
        """The rows written so far onto the disk, then the side-car saying so."""
        if self._writer is not None:
            self._writer.checkpoint()
            self.save()

    def save(self) -> None:
        """Replace the side-car atomically (temp + rename) with the current state."""
        text = json.dumps({"key": self.key, "rows_written": self.state.rows_written, "skipped": self.state.skipped})
        temporary = self.folder / f"{SIDECAR}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.folder / SIDECAR)
        self._last = time.monotonic()


@contextmanager
def resumable_staging(dst: Path, key: str) -> Iterator[Resume]:
    """The resume folder of `dst` for a run of `key` (the caller holds dst's lock): reused when its side-car records
    the same key, else made anew (--overwrite does not discard it: the same command, rerun, resumes; a batch always
    replaces its outputs). Removed when the block ends normally; kept,
    with its side-car saved, when it ends on an interrupt, or on a processing failure during the stream
    (not a failed write: a full disk), after some rows were written."""
    folder = resume_dir(dst)
    state = _reusable_state(folder, key)
    if state is None:
        _discard(folder)
        try:
            os.mkdir(folder, 0o700)
        except OSError as exc:
            raise OutputError(f"cannot write to {dst.parent}: {exc.strerror or exc}") from exc
        state = StreamState()
    else:
        log.info("%s: resuming from output row %d (%s)", dst.name, state.rows_written, folder.name)
        for leftover in os.scandir(folder):  # a killed COG build's files (rio-cogeo's temporary, the staged COG)
            if leftover.name in (INTERMEDIATE, SIDECAR):
                continue
            if leftover.is_dir(follow_symlinks=False):
                remove_tree(Path(leftover.path))
            else:
                os.unlink(leftover.path)
    resume = Resume(folder, key, state)
    try:
        yield resume
    except (Interrupted, KeyboardInterrupt, RssrError) as error:
        # A failure to write (a full disk: the rows are in doubt and hold the space) or after the stream (a failed
        # fidelity check: a rerun would fail alike) keeps nothing.
        worth = isinstance(error, (Interrupted, KeyboardInterrupt)) or not (
            isinstance(error, OutputError) or resume.streamed
        )
        if resume.state.rows_written > 0 and worth:  # the writer was closed on the way out: its rows are on disk
            try:
                resume.save()
                log.info("%s: kept %s to resume from output row %d", dst.name, folder.name, resume.state.rows_written)
            except OSError:
                remove_tree(folder)
        else:
            remove_tree(folder)
        raise
    except BaseException:
        remove_tree(folder)
        raise
    remove_tree(folder)


def _reusable_state(folder: Path, key: str) -> Optional[StreamState]:
    """The state recorded in `folder` when it is ours (a real directory of this user, not a planted link) and its
    side-car records `key`; None otherwise (the folder is then discarded, saying why when it held a run)."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise OutputError(f"{folder} is not a resume folder of this user's; remove it")
    try:
        fd = os.open(folder / SIDECAR, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd) as file:
            recorded = json.loads(file.read(1 << 20))
        rows, skipped = int(recorded["rows_written"]), [int(n) for n in recorded["skipped"]]
        same = recorded["key"] == key and (folder / INTERMEDIATE).is_file()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not same:
        log.info("discarding %s: the request, the input or the tiling changed since it was interrupted", folder.name)
        return None
    return StreamState(rows, skipped)


def _discard(folder: Path) -> None:
    if os.path.lexists(folder):
        remove_tree(folder)
        if os.path.lexists(folder):
            raise OutputError(f"cannot remove the stale resume folder {folder}")
