"""Registry of SR backends: `get_backend(name, **options)`; unknown names list the registered ones."""

from __future__ import annotations

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


def backend_names() -> list[str]:
    return sorted(_FACTORIES)


def get_backend(name: str, **options: Any) -> SRBackend:
    if name not in _FACTORIES:
        raise UsageError(f"unknown method {name!r}; choose one of: {', '.join(backend_names())}")
    return _FACTORIES[name](**options)


__all__ = ["SRBackend", "SRRequest", "get_backend", "register_backend", "backend_names"]
