"""Many scenes, safely: expand inputs into jobs, skip what is done, lock each output, isolate failures, log each scene.

A scene is `done` when DST exists and its RSSR_* tags contain the request's (pipeline.request_tags: method,
model hash, sampler, scale, bands, seed, AOI), so re-running a cron job redoes nothing; `force` redoes it.
Every scene runs under its output's lock (locks.py): two runs over the same folder never process the same
scene at once; the second reports it `busy` and moves on. A failing scene is recorded and the batch goes on;
an interrupt (SIGINT/SIGTERM) stops the batch. The same `process_scene` runs in-process and on Dask workers
(distributed.py), so skip rules and results are identical either way.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import stat
import string
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TextIO

import rasterio

from . import sources
from .backends import SRBackend
from .cog import check_output_name, staging_prefix
from .errors import Interrupted, OutputError, RssrError, UsageError
from .grid import format_resolution
from .locks import OutputBusy, lock_path, output_lock
from .pipeline import (
    DEFAULT_METHOD,
    Progress,
    UpscaleResult,
    UpscaleSettings,
    build_backend,
    request_tags,
    sidecar_paths,
    upscale,
)
from .products import is_product_dir, is_product_file, scene_stem
from .source_identity import same_source
from .stack_pipeline import request_settings

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
DEFAULT_NAME_TEMPLATE = "{stem}_x{scale}.tif"

# Scene statuses (the JSON log's "status" field)
DONE, SKIPPED, BUSY, FAILED = "done", "skipped", "busy", "failed"


@dataclass(frozen=True)
class SceneJob:
    src: str  # a local path or any GDAL dataset name (sources.py); a Path given here becomes its string
    dst: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", os.fspath(self.src))


@dataclass(frozen=True)
class SceneResult:
    """One line of the JSON log."""

    input: str
    output: str
    status: str  # done | skipped (already done with the same request) | busy (locked by another run) | failed
    seconds: float
    windows: int = 0
    skipped_windows: int = 0  # entirely nodata: no model time spent
    outside_aoi_windows: int = 0  # never read: their patch misses the --aoi polygon
    error: Optional[str] = None
    fidelity: Optional[dict] = None  # key figures when measured (--report, --max-*): FidelityReport.figures()

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "seconds": round(self.seconds, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Existing files as given (even with * ? [ in their names), directories -> their raster files and
    Sentinel-2 products (not recursive; a .SAFE folder is one scene, never a folder to scan), a local name
    that does not exist but has * ? [ -> a glob (** recursive); remote and GDAL dataset names (URLs, /vsi
    paths, connection strings) as given, never globbed. Order kept, duplicates dropped; a pattern that
    matches nothing is a usage error."""
    found: dict[str, None] = {}
    for item in inputs:
        if not sources.is_local(item) or os.path.isfile(item) or is_product_dir(Path(item)):
            matches = [item]
        elif os.path.isdir(item):
            matches = sorted(
                str(p) for p in Path(item).iterdir()
                if (p.is_file() and p.suffix.lower() in RASTER_SUFFIXES) or is_product_dir(p) or is_product_file(p)
            )  # fmt: skip
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p) or is_product_dir(Path(p)))
        else:
            matches = [item]  # a missing file is reported as that scene's failure, like any bad input
        if not matches:
            raise UsageError(f"no raster matches {item!r}")
        if len(matches) > 1 or matches[0] != item:
            # Expanded, not named: never feed on rssr's own outputs (-o equal to the input folder would
            # otherwise make a_x2_x2.tif on the next cron run). Naming an output explicitly still works.
            kept = [p for p in matches if not is_rssr_output(p)]
            if not kept:
                raise UsageError(f"only rssr outputs match {item!r}; name one explicitly to upscale an output again")
            matches = kept
        found.update(dict.fromkeys(matches))
    return list(found)


def is_rssr_output(path: str | Path) -> bool:
    """The file is a raster written by rssr (it carries RSSR_* provenance tags)."""
    if not os.path.isfile(path):  # a .SAFE folder, a URL: not one of our outputs
        return False
    try:
        with rasterio.open(path) as dataset:
            return "RSSR_VERSION" in dataset.tags() or "RSSR_METHOD" in dataset.tags()
    except (rasterio.errors.RasterioError, OSError, ValueError):
        return False  # not readable: it stays an input and fails as that scene, as before


def refuse_stray_numbers(inputs: Sequence[str]) -> None:
    """`-r 10 20` (gdalwarp's -tr spelling) leaves `20` as an input: refuse a number that is not a file,
    before it turns a single run into a batch or a failed scene."""
    for item in inputs:
        try:
            float(item)
        except ValueError:
            continue
        if not os.path.exists(item):
            raise UsageError(f"input {item!r} is a number, not a raster; for an x and a y pixel size write -r X,Y (e.g. -r 10,20)")


def output_name(template: str, src: str, settings: UpscaleSettings) -> str:
    """Fill the name template: {stem} {name} {scale} {resolution} {method} {seed}; '/' makes subfolders of -o.
    A URL's name is its last path component without the query string (sources.base_name)."""
    fields = {
        "stem": scene_stem(src) if _is_product_name(src) else sources.stem(src),
        "name": sources.base_name(src),
        "scale": f"{settings.scale:g}" if settings.scale is not None else f"r{format_resolution(settings.resolution)}",
        "resolution": format_resolution(settings.resolution) if settings.resolution is not None else "",
        "method": settings.method or DEFAULT_METHOD,
        "seed": str(settings.seed),
    }
    check_name_template(template, fields)
    try:
        name = template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"bad name template {template!r}: use fields {', '.join('{' + k + '}' for k in fields)}") from exc
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or name.endswith("/"):
        raise UsageError(f"name template {template!r} must give a file name inside -o (subfolders allowed), got {name!r}")
    return name


def _is_product_name(src: str) -> bool:
    return src.rstrip("/").lower().endswith((".safe", ".safe.zip", ".json"))


def check_name_template(template: str, fields: Mapping[str, str]) -> None:
    """Only plain fields: '{stem.__class__}' or '{name[0]}' would reach into Python objects from a command line."""
    allowed = ", ".join("{" + k + "}" for k in fields)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"bad name template {template!r} ({exc}): use fields {allowed}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in fields or conversion or "{" in (spec or ""):
            raise UsageError(f"bad name template {template!r}: only the plain fields {allowed} are allowed")


def plan_jobs(inputs: Sequence[str | os.PathLike], outdir: Path, settings: UpscaleSettings, template: str = DEFAULT_NAME_TEMPLATE) -> list[SceneJob]:
    """One job per input; two inputs that would write the same output are refused before any work."""
    jobs, claimed = [], {}
    for src in map(os.fspath, inputs):
        dst = outdir / output_name(template, src, settings)
        check_output_name(dst)
        if dst in claimed:
            raise UsageError(f"{claimed[dst]} and {src} would both write {dst}; use a template with {{name}} or separate runs")
        if sources.is_local(src) and dst.resolve() == Path(src).resolve():
            raise UsageError(f"output {dst} would overwrite its input")
        claimed[dst] = src
        jobs.append(SceneJob(src, dst))
    return jobs


def batch_backend(settings: UpscaleSettings) -> tuple[str, SRBackend]:
    """The method and its backend, built once for every scene of a batch (a model loads once)."""
    method = settings.method or DEFAULT_METHOD
    return method, build_backend(method, settings)


SAME, SOURCE_CHANGED, DIFFERENT_REQUEST = "same", "source changed", "different request"


def existing_output(dst: Path, wanted: dict[str, str], src: str | Path) -> str:
    """How an existing DST relates to this job: made by the same request from this very source (SAME), by the
    same request from another or an older source (SOURCE_CHANGED: redo it), or otherwise (DIFFERENT_REQUEST,
    also when unreadable or not a regular file)."""
    try:
        if not stat.S_ISREG(os.stat(dst).st_mode):  # a FIFO at DST would block rasterio.open
            return DIFFERENT_REQUEST
        with rasterio.open(dst) as dataset:
            tags = dataset.tags()
    except (rasterio.errors.RasterioIOError, OSError):
        return DIFFERENT_REQUEST
    if not all(tags.get(key) == value for key, value in wanted.items()):
        return DIFFERENT_REQUEST
    return SAME if same_source(tags, src) else SOURCE_CHANGED


def process_scene(
    job: SceneJob,
    settings: UpscaleSettings,
    method: str,
    backend: SRBackend,
    *,
    force: bool = False,
    progress: Optional[Progress] = None,
    runner: Optional[Callable[[SceneJob, UpscaleSettings], UpscaleResult]] = None,
) -> SceneResult:
    """Run one scene under its output's lock; every outcome but an interrupt becomes a SceneResult.

    `runner(job, settings)` produces the output (default: upscale in this process with `backend`); a scene
    split by rows across Dask workers passes its own, and `backend` then only supplies the provenance tags."""
    started = time.perf_counter()

    def result(status: str, error: Optional[str] = None, **fields: Any) -> SceneResult:
        return SceneResult(str(job.src), str(job.dst), status, time.perf_counter() - started, error=error, **fields)

    settings = request_settings(job.src, settings)  # a product's default bands, as its output records them
    wanted = request_tags(replace(settings, method=method), method, backend)
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        with output_lock(job.dst):
            if job.dst.exists() and not force:
                state = existing_output(job.dst, wanted, job.src)
                if state == SAME:
                    return result(SKIPPED)
                if state == SOURCE_CHANGED:
                    log.info("%s: the input changed since %s was made; redoing it", job.src, job.dst)
                elif not settings.overwrite:
                    raise OutputError(f"{job.dst} exists but was made by a different request; --force to redo it")
            run_settings = replace(settings, method=method, overwrite=True)
            if runner is not None:
                done = runner(job, run_settings)
            else:
                done = upscale(job.src, job.dst, run_settings, progress=progress, backend=backend)
        return result(DONE, **scene_fields(done))
    except OutputBusy as busy:
        return result(BUSY, str(busy))
    except Interrupted:
        raise
    except RssrError as error:
        done = {"windows": error.windows, "skipped_windows": error.skipped_windows}
        return result(FAILED, str(error), fidelity=getattr(error, "figures", None), **done)
    except OSError as error:
        return result(FAILED, f"{error.strerror or error}: {error.filename or job.dst}")
    except Exception as error:  # a bug or a library surprise in one scene must not stop the batch
        log.debug("scene %s failed:\n%s", job.src, traceback.format_exc())
        return result(FAILED, f"{type(error).__name__}: {error}")


def scene_fields(done: UpscaleResult) -> dict[str, Any]:
    """What a finished upscale adds to its SceneResult."""
    return {
        "windows": done.windows,
        "skipped_windows": done.skipped_windows,
        "outside_aoi_windows": done.outside_aoi_windows,
        "fidelity": done.fidelity.figures() if done.fidelity is not None else None,
    }


SceneCallback = Callable[[SceneResult], None]


def run_batch(
    jobs: Sequence[SceneJob],
    settings: UpscaleSettings,
    *,
    force: bool = False,
    on_scene: Optional[SceneCallback] = None,
    progress_for: Optional[Callable[[SceneJob], Optional[Progress]]] = None,
) -> list[SceneResult]:
    """Process jobs in order in this process; `on_scene` sees each result as soon as it is known."""
    method, backend = batch_backend(settings)
    results = []
    for job in jobs:
        scene = process_scene(job, settings, method, backend, force=force, progress=progress_for(job) if progress_for else None)
        results.append(scene)
        if on_scene is not None:
            on_scene(scene)
    return results


class JsonLog:
    """Appends one JSON line per scene to a file, flushed at once (monitoring tails it during the batch)."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self._file: Optional[TextIO] = None
        self._failed = False

    def __enter__(self) -> "JsonLog":
        if self.path is not None:
            # Never through a symlink (one planted in a shared output folder would aim the log at a victim);
            # O_NONBLOCK so that a FIFO without a reader is refused instead of hanging the cron job.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            try:
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UsageError(f"--log-json {self.path} is a symbolic link; give the file itself") from None
                raise UsageError(f"cannot open --log-json {self.path}: {exc.strerror or exc}") from exc
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
                os.close(fd)
                raise UsageError(f"--log-json {self.path} is not a regular file")
            os.set_blocking(fd, True)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        return self

    def write(self, scene: SceneResult) -> None:
        """Append and flush one line; a log that cannot take it (a full disk, /dev/full) is an OutputError
        that says what happened to the scene, since its output may well have been written."""
        if self._file is None:
            return
        try:
            self._file.write(scene.to_json() + "\n")
            self._file.flush()
        except OSError as exc:
            self._failed = True
            raise OutputError(
                f"cannot append to --log-json {self.path}: {exc.strerror or exc} "
                f"(scene {scene.input} -> {scene.output}: {scene.status})"
            ) from None

    def __exit__(self, exc_type: Optional[type], *_: object) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as exc:  # already reported (a failed write), or another error is on its way out
            if exc_type is None and not self._failed:
                raise OutputError(f"cannot write --log-json {self.path}: {exc.strerror or exc}") from None


def check_log_path(log: Optional[Path], jobs: Sequence[SceneJob]) -> None:
    """The JSON log may never be an input, an output, or a file rssr keeps beside an output (its lock, its
    staging directories, its fidelity sidecars): appending JSON there would corrupt an input or leave a
    stray file at the destination. Refused (usage error) before any work."""
    if log is None:
        return
    real_log = Path(os.path.realpath(log))
    for job in jobs:
        if _same_file(real_log, job.src):
            raise UsageError(f"--log-json {log} is the input {job.src}; give a separate log file")
        folder = Path(os.path.realpath(job.dst.parent))
        beside = {job.dst.name: "the output", lock_path(job.dst).name: "the output's lock file"}
        beside.update({sidecar.name: "a fidelity report of the output" for sidecar in sidecar_paths(job.dst)})
        if real_log.parent == folder and real_log.name in beside:
            raise UsageError(f"--log-json {log} is {beside[real_log.name]} {job.dst}; give a separate log file")
        inside = real_log.relative_to(folder).parts if real_log.is_relative_to(folder) else ()
        if len(inside) > 1 and inside[0].startswith(staging_prefix(job.dst)):
            raise UsageError(f"--log-json {log} is inside the staging area of {job.dst}; give a separate log file")


def _same_file(real_log: Path, src: Path) -> bool:
    if real_log == Path(os.path.realpath(src)):
        return True
    try:
        return os.path.samefile(real_log, src)  # hard links too
    except OSError:
        return False


def failed(results: Iterable[SceneResult]) -> list[SceneResult]:
    return [r for r in results if r.status == FAILED]
