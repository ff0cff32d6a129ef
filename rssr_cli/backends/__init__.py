"""Registry of SR backends: `get_backend(name, **options)`; unknown names list the registered ones."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError
from .base import SRBackend, SRRequest
from .classical import ClassicalBackend

_FACTORIES: dict[str, Callable[..., SRBackend]] = {
    "nearest": lambda **_: ClassicalBackend("nearest"),
    "bicubic": lambda **_: ClassicalBackend("bicubic"),
    "lanczos": lambda **_: ClassicalBackend("lanczos"),
}


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


__all__ = ["SRBackend", "SRRequest", "get_backend", "register_backend", "backend_names", "default_model_path"]
