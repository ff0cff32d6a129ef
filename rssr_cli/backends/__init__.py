"""Registry of SR backends: `get_backend(name, **options)`; unknown names list the registered ones."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import UsageError
from .base import SRBackend, SRRequest
from .classical import ClassicalBackend

CLASSICAL_METHODS = ("nearest", "bicubic", "lanczos")
MODEL_OPTIONS = ("model", "steps", "strength", "precision")  # options only a model backend uses


def check_method_options(method: str, options: Mapping[str, Any]) -> None:
    """A classical resampler has no model, steps, strength or precision: refuse them rather than ignore them
    (a cron line with `-m bicubic --steps 5` was not doing what its author thought)."""
    if method not in CLASSICAL_METHODS:
        return
    given = [f"--{name}" for name in MODEL_OPTIONS if options.get(name) is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(f"{', '.join(given)} only {verb} to the diffusion model, not to the {method} method")


def _classical(method: str) -> Callable[..., SRBackend]:
    def factory(**options: Any) -> SRBackend:
        check_method_options(method, options)
        return ClassicalBackend(method)

    return factory


_FACTORIES: dict[str, Callable[..., SRBackend]] = {name: _classical(name) for name in CLASSICAL_METHODS}


def register_backend(name: str, factory: Callable[..., SRBackend]) -> None:
    _FACTORIES[name] = factory


def default_model_path() -> Path:
    """The diffusion model used without --model: $RSSR_MODEL, else the repository's models/default.safetensors."""
    env = os.environ.get("RSSR_MODEL")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "models" / "default.safetensors"


def _diffusion_backend(**options: Any) -> SRBackend:
    from .diffusion import DiffusionBackend  # torch is imported only when the model is actually used

    return DiffusionBackend(**options)


# Import-guarded: without torch/safetensors installed the classical backends still work.
if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("safetensors") is not None:
    register_backend("diffusion", _diffusion_backend)


def backend_names() -> list[str]:
    return sorted(_FACTORIES)


def get_backend(name: str, **options: Any) -> SRBackend:
    if name not in _FACTORIES:
        raise UsageError(f"unknown method {name!r}; choose one of: {', '.join(backend_names())}")
    return _FACTORIES[name](**options)


__all__ = [
    "SRBackend", "SRRequest", "get_backend", "register_backend", "backend_names", "default_model_path", "check_method_options",
    "CLASSICAL_METHODS",
]  # fmt: skip
