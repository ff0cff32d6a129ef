"""Resuming an interrupted scene at the tile-row level (issue 23, item 24b): a multi-hour scene stopped by SIGTERM,
Ctrl-C or a processing failure (a full disk) starts again where its output rows stop, not from zero.

The scene is built in a staging folder with a fixed name per output, `.NAME.rssr-resume/` (destination.py's random
`.NAME.rssr-XXXXXXXX` is removed on every exit): the streamed intermediates and a side-car, `resume.json`, holding
the run's key, which intermediates hold work, and how far they are known to be on disk. The key is every tag the
output records (the request, the source's identity, the grid, the AOI; a band stack's per-band tags too) plus the
tiling and batch size: any difference (another `--seed`, scale or model, the input replaced) discards the folder
and the scene is computed from the start.

What "how far" means is the run's state: a raster's StreamState (the output rows written), a band stack's
StackState (the bands finished, in the output's order, and how far the band being streamed is). Rows are on disk
before the side-car says so: rasterio has no flush, so at a checkpoint (once CHECKPOINT_SECONDS have passed, looked
at after each tile row and each band, and when an intermediate is complete) the intermediate being written is
closed, fsynced and reopened in update mode, then the
side-car is replaced atomically; a run stopped by an interrupt or a failure closes it and saves the side-car. A
kill -9 loses at most the work since the last checkpoint. Windows carry their own seeds
(grid.tile_seed) and a resumed stream adds the same patches in the same order, so a resumed output is
byte-identical to an uninterrupted one.

Only runs whose source has a local identity resume (resume_key): a single raster that is a local file, and a band
stack (a .SAFE folder or zip, a local STAC item, a band folder) whose every band read is a local file or a member of
a local zip. A URL's content cannot be compared, so a raster URL, and a stack reading any remote band (a remote STAC
item), start from zero, as do split rows and `--samples K` runs (rasters and band stacks: stack_spread.py).
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
from typing import Any, Generic, Iterable, Iterator, Optional, TypeVar

import rasterio
from rasterio.windows import Window

from rssr_cli.core.errors import Interrupted, OutputError, RssrError
from rssr_cli.io.cog import OutputSpec
from rssr_cli.io.destination import RESUME_MARK, remove_tree, staging_dir
from rssr_cli.io.raster_io import gdal_config
from rssr_cli.io.source_identity import FINGERPRINT_TAG, is_local_band
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

    @property
    def progressed(self) -> bool:
        return self.rows_written > 0

    def where(self) -> str:
        return f"output row {self.rows_written}"

    def record(self) -> dict[str, Any]:
        return {"rows_written": self.rows_written, "skipped": list(self.skipped)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "StreamState":
        return cls(int(record["rows_written"]), [int(n) for n in record["skipped"]])


@dataclass
class StackState:
    """How far a band stack's run got: its first `bands_done` bands (in the output's order) are written, with
    `skipped` all-nodata windows each, and `band` is how far the next one is."""

    bands_done: int = 0
    skipped: list[int] = field(default_factory=list)
    band: StreamState = field(default_factory=StreamState)

    @property
    def progressed(self) -> bool:
        return self.bands_done > 0 or self.band.progressed

    def where(self) -> str:
        return f"band {self.bands_done + 1} of the run, {self.band.where()}"

    def finish_band(self, skipped: int) -> None:
        """The current band is written (its rows reach the disk at the next checkpoint, before the side-car says so)."""
        self.bands_done += 1
        self.skipped.append(skipped)
        self.band = StreamState()

    def record(self) -> dict[str, Any]:
        return {"bands_done": self.bands_done, "skipped": list(self.skipped), "band": self.band.record()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "StackState":
        band = StreamState.from_record(record["band"])
        return cls(int(record["bands_done"]), [int(n) for n in record["skipped"]], band)


State = TypeVar("State", StreamState, StackState)


def resume_key(
    plan_tags: dict[str, str],
    spec: OutputSpec,
    settings: UpscaleSettings,
    region_window: Window,
    *,
    band_files: Iterable[str] = (),
) -> Optional[str]:
    """The key a resume folder must match (module doc); None when the source has no local identity (nothing
    resumes): no RSSR_SOURCE_FINGERPRINT (a raster URL), or a band stack's `band_files` (the GDAL datasets it reads)
    holding a remote one."""
    if FINGERPRINT_TAG not in plan_tags or not all(is_local_band(dataset) for dataset in band_files):
        return None
    record = {
        "tags": dict(sorted(plan_tags.items())),
        "band_tags": [dict(sorted(tags.items())) for tags in spec.band_tags],
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
    in update mode; write_rows, write_blended and write_band use it as the dataset itself."""

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


class Resume(Generic[State]):
    """A scene's resume folder while it runs: where it stands (`state`), the intermediates that hold its work, and
    its checkpoints."""

    def __init__(
        self, folder: Path, key: Optional[str], state: State, files: Iterable[str] = (), *, durable: bool = True
    ) -> None:
        self.folder, self.key, self.durable = folder, key, durable
        self.state: State = state
        self.files: list[str] = list(files)  # the intermediates written so far, which a resumed run updates in place
        self.resumed = state.progressed
        self.streamed = False  # every row is written: what fails now (a fidelity check) fails again on a rerun
        self._writer: Optional[ResumableWriter] = None
        self._last = time.monotonic()

    def intermediate(self, name: str) -> tuple[Path, bool]:
        """The path of the intermediate `name` in the folder, and whether it holds an interrupted run's work (then
        opened in update mode, else created)."""
        held = name in self.files
        if not held:
            self.files.append(name)
        return self.folder / name, held

    def track(self, writer: Optional[ResumableWriter]) -> None:
        """The writer a checkpoint flushes (None: the one written last is closed, its rows on disk); none for a run
        that cannot resume (run_staging)."""
        self._writer = writer if self.durable else None

    def after_row(self) -> None:
        """Called after each finished tile row (and band): checkpoint when CHECKPOINT_SECONDS have passed since the
        last one."""
        if time.monotonic() - self._last >= CHECKPOINT_SECONDS:
            self.checkpoint()

    def checkpoint(self) -> None:
        """The rows written so far onto the disk, then the side-car saying so."""
        if self._writer is not None:
            self._writer.checkpoint()
            self.save()

    def save(self) -> None:
        """Replace the side-car atomically (temp + rename) with the current state."""
        text = json.dumps({"key": self.key, "files": self.files, **self.state.record()})
        temporary = self.folder / f"{SIDECAR}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.folder / SIDECAR)
        self._last = time.monotonic()


@contextmanager
def run_staging(dst: Path, key: Optional[str], state_type: type[State]) -> Iterator[Resume[State]]:
    """resumable_staging when the run has a key, else destination.staging_dir's throwaway folder with a Resume that
    never checkpoints: one body of code writes a scene either way."""
    if key is not None:
        with resumable_staging(dst, key, state_type) as resume:
            yield resume
    else:
        with staging_dir(dst) as folder:
            yield Resume(folder, None, state_type(), durable=False)


@contextmanager
def resumable_staging(dst: Path, key: str, state_type: type[State]) -> Iterator[Resume[State]]:
    """The resume folder of `dst` for a run of `key` (the caller holds dst's lock), its state a `state_type`:
    reused when its side-car records the same key, else made anew (--overwrite does not discard it: the same
    command, rerun, resumes; a batch always replaces its outputs). Removed when the block ends normally; kept,
    with its side-car saved, when it ends on an interrupt, or on a processing failure during the stream
    (not a failed write: a full disk), after some work was written."""
    folder = resume_dir(dst)
    reusable = _reusable_state(folder, key, state_type)
    if reusable is None:
        _discard(folder)
        try:
            os.mkdir(folder, 0o700)
        except OSError as exc:
            raise OutputError(f"cannot write to {dst.parent}: {exc.strerror or exc}") from exc
        resume = Resume(folder, key, state_type())
    else:
        state, kept = reusable
        log.info("%s: resuming from %s (%s)", dst.name, state.where(), folder.name)
        for leftover in os.scandir(folder):  # a killed COG build's files (rio-cogeo's temporary, the staged COG)
            if leftover.name == SIDECAR or leftover.name in kept:
                continue
            if leftover.is_dir(follow_symlinks=False):
                remove_tree(Path(leftover.path))
            else:
                os.unlink(leftover.path)
        resume = Resume(folder, key, state, kept)
    try:
        yield resume
    except (Interrupted, KeyboardInterrupt, RssrError) as error:
        # A failure to write (a full disk: the rows are in doubt and hold the space) or after the stream (a failed
        # fidelity check: a rerun would fail alike) keeps nothing.
        worth = isinstance(error, (Interrupted, KeyboardInterrupt)) or not (
            isinstance(error, OutputError) or resume.streamed
        )
        if resume.state.progressed and worth:  # the writer was closed on the way out: its rows are on disk
            try:
                resume.save()
                log.info("%s: kept %s to resume from %s", dst.name, folder.name, resume.state.where())
            except OSError:
                remove_tree(folder)
        else:
            remove_tree(folder)
        raise
    except BaseException:
        remove_tree(folder)
        raise
    remove_tree(folder)


def _reusable_state(folder: Path, key: str, state_type: type[State]) -> Optional[tuple[State, list[str]]]:
    """The state and intermediates recorded in `folder` when it is ours (a real directory of this user, not a
    planted link) and its side-car records `key` and intermediates that are there; None otherwise (the folder is
    then discarded, saying why when it held a run)."""
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
        state = state_type.from_record(recorded)
        files = [str(name) for name in recorded["files"]]
        intact = all(_plain_name(name) and (folder / name).is_file() for name in files)
        same = recorded["key"] == key and intact
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not same:
        log.info("discarding %s: the request, the input or the tiling changed since it was interrupted", folder.name)
        return None
    return state, files


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..", SIDECAR) and "/" not in name and "\0" not in name


def _discard(folder: Path) -> None:
    if os.path.lexists(folder):
        remove_tree(folder)
        if os.path.lexists(folder):
            raise OutputError(f"cannot remove the stale resume folder {folder}")
