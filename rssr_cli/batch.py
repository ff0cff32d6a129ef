"""Many scenes, safely: expand inputs into jobs, skip what is done, lock each output, isolate failures, log each scene.

A scene is `done` when DST exists and its RSSR_* tags contain the request's (pipeline.request_tags: method,
model hash, sampler, scale, bands, seed, AOI), so re-running a cron job redoes nothing; `force` redoes it.
Every scene runs under its output's lock (locks.py): two runs over the same folder never process the same
scene at once; the second reports it `busy` and moves on. A failing scene is recorded and the batch goes on;
an interrupt (SIGINT/SIGTERM) stops the batch. The same `process_scene` runs in-process and on Dask workers
(distributed.py), so skip rules and results are identical either way.
"""

from __future__ import annotations

import glob
import json
import logging
import string
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TextIO

import rasterio

from .backends import SRBackend, get_backend
from .cog import check_output_name
from .errors import Interrupted, OutputError, RssrError, UsageError
from .grid import format_resolution
from .locks import OutputBusy, output_lock
from .pipeline import Progress, UpscaleResult, UpscaleSettings, default_method, request_tags, upscale

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
DEFAULT_NAME_TEMPLATE = "{stem}_x{scale}.tif"

# Scene statuses (the JSON log's "status" field)
DONE, SKIPPED, BUSY, FAILED = "done", "skipped", "busy", "failed"


@dataclass(frozen=True)
class SceneJob:
    src: Path
    dst: Path


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


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files as given, directories -> their raster files (not recursive), anything with * ? [ -> a glob
    (** recursive). Order kept, duplicates dropped; an input that matches nothing is a usage error."""
    found: dict[Path, None] = {}
    for item in inputs:
        if glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        elif Path(item).is_dir():
            matches = sorted(p for p in Path(item).iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
        else:
            matches = [Path(item)]  # a missing file is reported as that scene's failure, like any bad input
        if not matches:
            raise UsageError(f"no raster matches {item!r}")
        found.update(dict.fromkeys(matches))
    return list(found)


def refuse_stray_numbers(inputs: Sequence[str]) -> None:
    """`-r 10 20` (gdalwarp's -tr spelling) leaves `20` as an input: refuse a number that is not a file,
    before it turns a single run into a batch or a failed scene."""
    for item in inputs:
        try:
            float(item)
        except ValueError:
            continue
        if not Path(item).exists():
            raise UsageError(f"input {item!r} is a number, not a raster; for an x and a y pixel size write -r X,Y (e.g. -r 10,20)")


def output_name(template: str, src: Path, settings: UpscaleSettings) -> str:
    """Fill the name template: {stem} {name} {scale} {resolution} {method} {seed}; '/' makes subfolders of -o."""
    fields = {
        "stem": src.stem,
        "name": src.name,
        "scale": f"{settings.scale:g}" if settings.scale is not None else f"r{format_resolution(settings.resolution)}",
        "resolution": format_resolution(settings.resolution) if settings.resolution is not None else "",
        "method": settings.method or default_method(settings.backend_options),
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


def plan_jobs(sources: Sequence[Path], outdir: Path, settings: UpscaleSettings, template: str = DEFAULT_NAME_TEMPLATE) -> list[SceneJob]:
    """One job per source; two sources that would write the same output are refused before any work."""
    jobs, claimed = [], {}
    for src in sources:
        dst = outdir / output_name(template, src, settings)
        check_output_name(dst)
        if dst in claimed:
            raise UsageError(f"{claimed[dst]} and {src} would both write {dst}; use a template with {{name}} or separate runs")
        if dst.resolve() == src.resolve():
            raise UsageError(f"output {dst} would overwrite its input")
        claimed[dst] = src
        jobs.append(SceneJob(src, dst))
    return jobs


def batch_backend(settings: UpscaleSettings) -> tuple[str, SRBackend]:
    """The method and its backend, built once for every scene of a batch (a model loads once)."""
    method = settings.method or default_method(settings.backend_options)
    return method, get_backend(method, **dict(settings.backend_options))


def is_done(dst: Path, wanted: dict[str, str]) -> bool:
    """DST exists, is readable, and records the same request."""
    try:
        with rasterio.open(dst) as dataset:
            tags = dataset.tags()
    except (rasterio.errors.RasterioIOError, OSError):
        return False
    return all(tags.get(key) == value for key, value in wanted.items())


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

    wanted = request_tags(replace(settings, method=method), method, backend)
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        with output_lock(job.dst):
            if job.dst.exists():
                if not force and is_done(job.dst, wanted):
                    return result(SKIPPED)
                if not (force or settings.overwrite):
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
        return result(FAILED, str(error), fidelity=getattr(error, "figures", None))
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
            try:
                self._file = open(self.path, "a", encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot open --log-json {self.path}: {exc.strerror or exc}") from exc
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


def failed(results: Iterable[SceneResult]) -> list[SceneResult]:
    return [r for r in results if r.status == FAILED]
