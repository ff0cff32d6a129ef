"""Registry of SR backends: `get_backend(name, **options)`; unknown names list the registered ones."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from rssr_cli.backends.base import SpreadBackend, SRBackend, SRRequest, writes_spread
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.core.errors import CheckpointError, UsageError
from rssr_cli.model.shipped_models import AERIAL, package_model_dirs, resolve_model, shipped_models

CLASSICAL_METHODS = ("nearest", "bicubic", "lanczos")
MODEL_OPTIONS = (
    "model",
    "steps",
    "strength",
    "precision",
    "tta",
    "style",
    "samples",
)  # options only a model backend uses


def check_method_options(method: str, options: Mapping[str, Any]) -> None:
    """A classical resampler has no model, steps, strength, precision or self-ensemble: refuse them rather than ignore them
    (a cron line with `-m bicubic --steps 5` was not doing what its author thought)."""
    if method not in CLASSICAL_METHODS:
        return
    given = [f"--{name}" for name in MODEL_OPTIONS if options.get(name) is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(f"{', '.join(given)} only {verb} to the diffusion model, not to the {method} method")


STYLES = ("faithful", "realistic")  # --mode: the posterior mean (the prior alone) | a sample of the model's chain


def check_sampler_options(
    steps: Optional[int], strength: Optional[float], style: Optional[str] = None, samples: int = 1
) -> None:
    """The sampler's --steps, --strength, --mode and --samples, whatever the model: a bad value is a usage error before
    any model loads."""
    if style is not None and style not in STYLES:
        raise UsageError(f"unknown --mode {style!r}; choose one of: {', '.join(STYLES)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 64:
        raise UsageError(f"--samples must be an integer in 1..64, got {samples!r}")
    if samples > 1 and style == "faithful":
        raise UsageError(
            "--samples K averages K samples of the chain: it needs --mode realistic (faithful is one deterministic output)"
        )
    if steps is not None and steps < 0:
        raise UsageError(f"--steps must be >= 0 (0: the operator's estimate only), got {steps}")
    if strength is not None and not 0.0 < strength <= 1.0:
        raise UsageError(f"--strength must be in (0, 1], got {strength}")


def _classical(method: str) -> Callable[..., SRBackend]:
    def factory(**options: Any) -> SRBackend:
        check_method_options(method, options)
        return ClassicalBackend(method)

    return factory


_FACTORIES: dict[str, Callable[..., SRBackend]] = {name: _classical(name) for name in CLASSICAL_METHODS}


def register_backend(name: str, factory: Callable[..., SRBackend]) -> None:
    _FACTORIES[name] = factory


MODEL_ENV = "RSSR_MODEL"
NO_MODEL_HINT = "pass --model PATH, set RSSR_MODEL=PATH, or choose a classical method with --method bicubic"


def bundled_model_paths() -> list[Path]:
    """Where the fallback shipped model (aerial) may be, in order: installed with the package (a wheel carries the
    repository's models/ as rssr_cli/models/, see setup.py), then the repository's models/ (an editable install)."""
    return [folder / f"{AERIAL}.safetensors" for folder in package_model_dirs()]


def default_model_path() -> Path:
    """The diffusion model used when neither --model nor an input decides: $RSSR_MODEL (a path or a shipped model's
    name), else the shipped aerial model (the pipeline picks per input by model_rule's rule; this is its fallback).

    Never silently nothing: without RSSR_MODEL and without a shipped model this raises CheckpointError
    naming the ways out (a missing RSSR_MODEL file is reported when the model is loaded)."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return resolve_model(env)
    models = shipped_models()
    if AERIAL in models:
        return models[AERIAL].weights
    raise CheckpointError(f"no diffusion model found (none installed with rssr, {MODEL_ENV} not set); {NO_MODEL_HINT}")


def _diffusion_backend(**options: Any) -> SRBackend:
    from rssr_cli.backends.diffusion import DiffusionBackend  # lazy: torch loads only when the model is used

    return DiffusionBackend(**options)


# Import-guarded: without torch/safetensors installed the classical backends still work.
if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("safetensors") is not None:
    register_backend("diffusion", _diffusion_backend)


def backend_names() -> list[str]:
    return sorted(_FACTORIES)


def get_backend(name: str, **options: Any) -> SRBackend:
    if name == "diffusion" and name not in _FACTORIES:
        raise UsageError("the diffusion method needs torch and safetensors installed; or choose --method bicubic")
    if name not in _FACTORIES:
        raise UsageError(f"unknown method {name!r}; choose one of: {', '.join(backend_names())}")
    return _FACTORIES[name](**options)


__all__ = [
    "SRBackend",
    "SRRequest",
    "SpreadBackend",
    "writes_spread",
    "get_backend",
    "register_backend",
    "backend_names",
    "default_model_path",
    "NO_MODEL_HINT",
    "check_method_options",
    "check_sampler_options",
    "CLASSICAL_METHODS",
]
