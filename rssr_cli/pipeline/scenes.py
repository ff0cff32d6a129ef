"""Many scenes, safely: skip what is done, lock each output, isolate failures, one SceneResult per scene.

A scene is `done` when DST exists and its RSSR_* tags contain the request's (provenance.request_tags: method,
model hash, sampler, scale, bands, seed, AOI), so re-running a cron job redoes nothing; `force` redoes it. It is
redone, and its result's `note` says why, when its input changed or when the rule (model_rule.py) now picks another
shipped model for it ("model changed: rssr-default-v2 -> rssr-s2-10m-v1"): once, since the new output records the new model.
Every scene runs under its output's lock (locks.py): two runs over the same folder never process the same
scene at once; the second reports it `busy` and moves on. A failing scene is recorded and the batch goes on;
an interrupt (SIGINT/SIGTERM) stops the batch. The same `process_scene` runs in-process and on Dask workers
(distributed.py), so skip rules and results are identical either way.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import rasterio

from rssr_cli.backends import SRBackend
from rssr_cli.core.errors import Interrupted, OutputError, RssrError
from rssr_cli.core.messages import redact
from rssr_cli.io.source_identity import same_source
from rssr_cli.pipeline.jobs import SceneJob
from rssr_cli.pipeline.locks import OutputBusy, output_lock
from rssr_cli.pipeline.model_choice import check_model_found, model_change, uses_model_rule, with_scene_model
from rssr_cli.pipeline.model_rule import ModelChoice
from rssr_cli.pipeline.provenance import Provenance, request_tags
from rssr_cli.pipeline.scene import render_scene
from rssr_cli.pipeline.settings import Progress, UpscaleResult, UpscaleSettings, build_backend, run_method
from rssr_cli.pipeline.spread import spread_complete, spread_path
from rssr_cli.pipeline.stack_plan import request_settings
from rssr_cli.sharpen.bands import GUIDED_WITH_TAG, default_sharpener_path, guided_with_file

log = logging.getLogger(__name__)

# Scene statuses (the JSON log's "status" field)
DONE, SKIPPED, BUSY, FAILED = "done", "skipped", "busy", "failed"


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
    note: Optional[str] = None  # why an existing output was redone: "input changed", "model changed: OLD -> NEW"
    bands: Optional[list] = (
        None  # a band stack's bands as made: {band, method, scale, guided_by, model} (UpscaleResult.bands_made)
    )
    guides_only: Optional[list] = (
        None  # a band stack's guide bands read (by the sharpener) but not output, as `bands` (method "read")
    )
    spread: Optional[str] = None  # the spread side-car written beside the output (--samples K >= 2)

    def to_json(self) -> str:
        fields = {**asdict(self), "seconds": round(self.seconds, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return redact(json.dumps(fields))  # a signed input URL's credentials never reach the log


def batch_backend(settings: UpscaleSettings) -> tuple[Provenance, SRBackend]:
    """The backend of settings (and what it records); SceneBackends builds each once for every scene of a batch."""
    method = run_method(settings)
    backend = build_backend(method, settings)
    return Provenance.of(method, backend), backend


BackendFor = Callable[[UpscaleSettings], "tuple[Provenance, Optional[SRBackend]]"]


def backend_key(settings: UpscaleSettings) -> str:
    """What decides a backend: the method, the model and how it runs, the threads (not the scene's other settings)."""
    return repr((settings.method, settings.threads, settings.model))


class SceneBackends:
    """A batch's backends, one per model: the rule may give scenes different models; each loads once, when first needed."""

    def __init__(self, build: BackendFor = batch_backend) -> None:
        self._build = build
        self._built: dict[str, tuple[Provenance, Optional[SRBackend]]] = {}

    def __call__(self, settings: UpscaleSettings) -> tuple[Provenance, Optional[SRBackend]]:
        key = backend_key(settings)
        if key not in self._built:
            self._built[key] = self._build(settings)
        return self._built[key]


SAME, SOURCE_CHANGED, MODEL_CHANGED, DIFFERENT_REQUEST = "same", "source changed", "model changed", "different request"
INCOMPLETE = "incomplete"
GUIDED_CHANGED = "guided method changed"


def existing_output(
    dst: Path,
    wanted: dict[str, str],
    src: str | Path,
    choice: Optional[ModelChoice] = None,
    *,
    spread: bool = False,
    guided_with: Optional[str] = None,
) -> tuple[str, Optional[str]]:
    """How an existing DST relates to this job, and why in words when it is redone: made by the same request from this
    very source (SAME), by the same request from another or an older source (SOURCE_CHANGED: redo it), by the same
    request but without the spread side-car it asks for (`spread`; INCOMPLETE: redo it), by the model the rule
    picked before a new shipped model took over this input (MODEL_CHANGED: redo it once), with guided bands made
    otherwise than this run's sharpener and steps make them (`guided_with`, sharpen.bands.guided_with;
    GUIDED_CHANGED: redo it once), or otherwise (DIFFERENT_REQUEST, also when unreadable or not a regular file)."""
    try:
        if not stat.S_ISREG(os.stat(dst).st_mode):  # a FIFO at DST would block rasterio.open
            return DIFFERENT_REQUEST, None
        with rasterio.open(dst) as dataset:
            tags = dataset.tags()
    except (rasterio.errors.RasterioIOError, OSError):
        return DIFFERENT_REQUEST, None
    if not all(tags.get(key) == value for key, value in wanted.items()):
        change = model_change(tags, wanted, choice)
        return (MODEL_CHANGED, change) if change else (DIFFERENT_REQUEST, None)
    if not same_source(tags, src):
        return SOURCE_CHANGED, "input changed"
    made_with = tags.get(GUIDED_WITH_TAG)
    if guided_with is not None and tags.get("RSSR_GUIDED_BANDS") and made_with != guided_with:
        return GUIDED_CHANGED, f"guided bands changed: {made_with or 'an older sharpener or steps'} -> {guided_with}"
    if not spread_complete(dst, tags, spread):
        return INCOMPLETE, f"its spread side-car {spread_path(dst).name} is missing"
    return SAME, None


def process_scene(
    job: SceneJob,
    settings: UpscaleSettings,
    backend_for: BackendFor,
    *,
    force: bool = False,
    progress: Optional[Progress] = None,
    runner: Optional[Callable[[SceneJob, UpscaleSettings], UpscaleResult]] = None,
) -> SceneResult:
    """Run one scene under its output's lock; every outcome but an interrupt becomes a SceneResult.

    The scene's model is chosen first (pipeline.model_choice: --model, $RSSR_MODEL, else the input's rule);
    `backend_for(settings)` gives its backend and what it records (a batch's SceneBackends; a split scene's
    runner builds its own, so only the Provenance is needed). `runner(job, settings)` produces the output
    (default: render the scene in this process with that backend)."""
    started = time.perf_counter()

    def result(status: str, error: Optional[str] = None, **fields: Any) -> SceneResult:
        return SceneResult(str(job.src), str(job.dst), status, time.perf_counter() - started, error=error, **fields)

    try:
        settings = with_scene_model(job.src, request_settings(job.src, settings))  # as the output records them
        provenance, backend = backend_for(settings)
        method = provenance.method
        wanted = request_tags(replace(settings, method=method), provenance)
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        with output_lock(job.dst):
            note = None
            if job.dst.exists() and not force:
                guided = guided_with_file(default_sharpener_path()) if settings.guidance else None
                state, note = existing_output(
                    job.dst, wanted, job.src, settings.model_choice, spread=provenance.spread, guided_with=guided
                )
                if state == SAME:
                    return result(SKIPPED)
                if state == DIFFERENT_REQUEST and not settings.overwrite:
                    raise OutputError(
                        f"{job.dst} exists but was made by a different request; pass --overwrite to replace it, "
                        "or give --name a field that tells the requests apart ({bands}, {method}, {seed})"
                    )
                if note is not None:
                    log.info("%s: %s since %s was made; redoing it", job.src, note, job.dst)
            run_settings = replace(settings, method=method, overwrite=True)
            if runner is not None:
                done = runner(job, run_settings)
            else:
                done = render_scene(job.src, job.dst, run_settings, progress=progress, backend=backend)
        return result(DONE, note=note, **scene_fields(done))
    except OutputBusy as busy:
        return result(BUSY, str(busy))
    except Interrupted:
        raise
    except RssrError as error:
        counts = {"windows": error.windows, "skipped_windows": error.skipped_windows}
        return result(FAILED, str(error), fidelity=getattr(error, "figures", None), **counts)
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
        "bands": [asdict(made) for made in done.bands_made] or None,
        "guides_only": [asdict(made) for made in done.guides_only] or None,
        "spread": str(done.spread) if done.spread is not None else None,
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
    """Process jobs in order in this process; `on_scene` sees each result as soon as it is known.
    Before any scene: a model named by --model or $RSSR_MODEL (and a classical method) is built, so a bad one stops
    the run at once; a rule-picked model only needs a shipped model to exist (each loads when a scene first needs it)."""
    backends = SceneBackends()
    check_model_found(settings)
    if not uses_model_rule(settings):
        backends(settings)
    results = []
    for job in jobs:
        scene = process_scene(
            job, settings, backends, force=force, progress=progress_for(job) if progress_for else None
        )
        results.append(scene)
        if on_scene is not None:
            on_scene(scene)
    return results


def failed(results: Iterable[SceneResult]) -> list[SceneResult]:
    return [r for r in results if r.status == FAILED]
