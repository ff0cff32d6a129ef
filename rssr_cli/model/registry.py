"""Model parts are built from {"name", "args"} specs through this registry (LIIF-style `models.make`)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from torch import nn

from rssr_cli.core.errors import CheckpointError

_PARTS: dict[str, Callable[..., nn.Module]] = {}
Factory = TypeVar("Factory", bound=Callable[..., nn.Module])


def register(name: str) -> Callable[[Factory], Factory]:
    """Class decorator: make `name` buildable from a spec."""

    def add(factory: Factory) -> Factory:
        _PARTS[name] = factory
        return factory

    return add


def registered() -> list[str]:
    return sorted(_PARTS)


def build(spec: dict[str, Any], **derived: Any) -> Any:  # an nn.Module whose class the spec's name chooses
    """Instantiate {"name", "args"}; `derived` sizes (known only at build time) override the spec's args."""
    name = spec.get("name") if isinstance(spec, dict) else None
    if name not in _PARTS:
        raise CheckpointError(f"unknown model part {name!r}; registered: {', '.join(registered())}")
    args = {**spec.get("args", {}), **derived}
    try:
        return _PARTS[name](**args)
    except TypeError as exc:  # wrong/missing keyword in a hand-edited card
        raise CheckpointError(f"cannot build model part {name!r} from its spec: {exc}") from None
