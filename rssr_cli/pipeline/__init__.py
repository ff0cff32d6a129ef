"""The upscale pipeline: settings as validated values, one scene (`upscale`), and every run mode through `run(RunRequest)`.

Modules, in the order data flows: settings (what decides a run), plan (one scene's RunPlan), provenance (its
tags), stream (tiles -> blended rows), report (fidelity), scene (upscale), split (--split-rows), jobs / scenes /
joblog (a batch: its jobs, skip rules and locks, the JSON log), distributed (Dask), api (run: every mode).
Imports are lazy so that `import rssr_cli.pipeline` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "upscale": "scene",
    "UpscaleSettings": "settings",
    "UpscaleResult": "settings",
    "ModelOptions": "settings",
    "run": "api",
    "RunRequest": "api",
    "RunReport": "api",
    "SceneJob": "jobs",
    "SceneResult": "scenes",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
