"""The registry of shipped models: `models/<name>.safetensors` + its card `<name>.json`, found by name.

The folder is the one installed with the package (a wheel carries the repository's models/ as rssr_cli/models/,
see setup.py), else the repository's models/ (an editable install), or $RSSR_MODELS_DIR when set (another folder of
models in the same layout: a site's own, or a test's). Only the cards are read here (JSON, no torch): a card's
`domain` section says what the model was trained for (sensor, input pixel sizes, bands, data types) and its key
figures, for `rssr info --models`; loading and validating the weights is model.checkpoint's job.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rssr_cli.core.errors import CheckpointError, UsageError

MODELS_DIR_ENV = "RSSR_MODELS_DIR"
CARD_FORMAT = "rssr-model/1"
AERIAL = "aerial"  # the default for every input the rule (model_rule.py) does not send elsewhere
SENTINEL2_10M = "s2-10m"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
MODEL_SUFFIXES = (".safetensors", ".json")


@dataclass(frozen=True)
class Domain:
    """What a model was trained for (its card's `domain` section)."""

    sensor: str
    resolution_m: tuple[float, float]  # input pixel sizes it was trained on, in metres (min, max)
    bands: tuple[str, ...]
    dtypes: tuple[str, ...]
    figures: str  # the key quality figures, one line


@dataclass(frozen=True)
class ShippedModel:
    name: str
    weights: Path
    card: Path
    id: str
    sha256: str
    domain: Optional[Domain]  # None: the card states none


def package_model_dirs() -> list[Path]:
    """Where the package's models may be, in order: installed with it, then the repository's models/."""
    installed = importlib.resources.files("rssr_cli") / "models"
    candidates = [Path(str(installed))] if isinstance(installed, Path) else []  # a zipped install has no file path
    return candidates + [Path(__file__).resolve().parents[2] / "models"]


def models_dir() -> Optional[Path]:
    """The registry's folder: $RSSR_MODELS_DIR, else the first package folder that exists (None: no models installed)."""
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override)
    return next((d for d in package_model_dirs() if d.is_dir()), None)


def parse_domain(value: Any, card: Path) -> Domain:
    """A card's `domain` section, checked field by field (one CheckpointError line naming the card)."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"model card {card} has a bad domain section: {what}")

    if not isinstance(value, dict):
        raise bad("not an object")
    for key in ("sensor", "figures"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise bad(f"{key!r} must be a non-empty string")
    low_high = value.get("resolution_m")
    if not (
        isinstance(low_high, list)
        and len(low_high) == 2
        and all(isinstance(v, (int, float)) and v > 0 for v in low_high)
    ):
        raise bad("'resolution_m' must be [min, max] pixel sizes in metres, both > 0")
    if low_high[0] > low_high[1]:
        raise bad(f"'resolution_m' min {low_high[0]} is above max {low_high[1]}")
    for key in ("bands", "dtypes"):
        items = value.get(key)
        if not (isinstance(items, list) and items and all(isinstance(v, str) and v for v in items)):
            raise bad(f"{key!r} must be a non-empty list of strings")
    return Domain(
        sensor=value["sensor"],
        resolution_m=(float(low_high[0]), float(low_high[1])),
        bands=tuple(value["bands"]),
        dtypes=tuple(value["dtypes"]),
        figures=value["figures"],
    )


def read_entry(card: Path) -> Optional[ShippedModel]:
    """The registry entry of one card (None: not a model card, e.g. another JSON file, or its weights are missing)."""
    name = card.stem
    weights = card.with_suffix(".safetensors")
    if not NAME_PATTERN.fullmatch(name) or not weights.is_file():
        return None
    try:
        data = json.loads(card.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"model card {card} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
        return None
    domain = parse_domain(data["domain"], card) if "domain" in data else None
    return ShippedModel(name, weights, card, str(data.get("id", name)), str(data.get("sha256", "")), domain)


def shipped_models(folder: Optional[Path] = None) -> dict[str, ShippedModel]:
    """Every shipped model by name (sorted), from `folder` (default: models_dir())."""
    folder = folder if folder is not None else models_dir()
    if folder is None or not folder.is_dir():
        return {}
    entries = (read_entry(card) for card in sorted(folder.glob("*.json")))
    return {entry.name: entry for entry in entries if entry is not None}


def is_model_name(value: str | os.PathLike) -> bool:
    """`--model aerial` names a shipped model; a value with a folder in it or a model file suffix is a path."""
    text = os.fspath(value)
    return "/" not in text and os.sep not in text and not text.endswith(MODEL_SUFFIXES)


def shipped_model(name: str) -> ShippedModel:
    """The shipped model called `name`; an unknown name is a usage error listing the names."""
    models = shipped_models()
    if name in models:
        return models[name]
    known = ", ".join(models) if models else f"none installed (folder {models_dir()})"
    raise UsageError(
        f"unknown model {name!r}; shipped models: {known} (a model file: give its path, e.g. ./{name}.safetensors)"
    )


def resolve_model(value: str | os.PathLike) -> Path:
    """A --model / $RSSR_MODEL value as the weights' path: a shipped model's name, or a path taken as given."""
    return shipped_model(os.fspath(value)).weights if is_model_name(value) else Path(value)


def model_name(value: Optional[str | os.PathLike]) -> Optional[str]:
    """The shipped name a --model value stands for (a name, or a path to a shipped model's weights); None: another file."""
    if value is None:
        return None
    if is_model_name(value):
        return os.fspath(value)
    try:
        target = Path(value).resolve()
    except OSError:
        return None
    return next((m.name for m in shipped_models().values() if m.weights.resolve() == target), None)
