"""Checkpoints: `model.safetensors` (weights only, never pickle) + `model.json` (the model card) beside it.

The card says what the weights are (spec of each part, bands, normalization, diffusion schedule, default
sampler settings, training and metrics) and holds the sha256 of the weights file. The same description,
minus training/metrics/sha256, is also in the safetensors metadata (key "rssr"), so the file runs alone.
`load_model` validates both and fails with one clear CheckpointError line on any mismatch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from rssr_cli.core.errors import CheckpointError
from rssr_cli.core.version import __version__
from rssr_cli.io.safefiles import write_atomic
from rssr_cli.model.normalize import MIN_STD
from rssr_cli.model.registry import build, registered  # noqa: F401  (re-exported: `build(spec)` for {name, args})
from rssr_cli.model.samplers import DEFAULT_SAMPLER
from rssr_cli.model.sr_model import SRModel, band_rule
from rssr_cli.model.validation import check_weights_match, read_safetensors_header, validate_spec

FORMAT = "rssr-model/1"
PARTS = ("operator", "prior_features", "denoiser")
OPTIONAL_PARTS = ("error_head",)  # written where the model has one (sr_model.SRModel.error_head)
METADATA_KEY = "rssr"
# Entries that define the computation: card and embedded metadata must agree on these.
BINDING = ("format", "spec", "channels", "diffusion")

NORMALIZATION = {
    "input": "radiometry.to_model_units, in training and inference alike: uint8 / 255; uint16/int16 / 10000 (Sentinel-2 "
    "L1C/L2A reflectance) or the declared scale/offset; other types their robust p2..p98 range per band; nodata filled",
    "model": "per window, sample and band: z = (x - mean) / max(std, min_std) on the LR window; output mapped back",
    "min_std": MIN_STD,
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe(model: SRModel, *, model_id: str) -> dict[str, Any]:
    """The self-description stored in both the card and the weights' metadata."""
    spec = model.spec
    return {
        "format": FORMAT,
        "id": model_id,
        "spec": {part: copy.deepcopy(spec[part]) for part in (*PARTS, *OPTIONAL_PARTS) if spec.get(part)},
        "channels": model.in_channels,
        "band_rule": band_rule(model.in_channels),
        "normalization": dict(NORMALIZATION),
        "diffusion": copy.deepcopy(spec["diffusion"]),
        "sampler": dict(model.sampler_defaults),
    }


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, card) for 'x.safetensors', 'x.json' or 'x'."""
    p = Path(path)
    weights = p.with_suffix(".safetensors") if p.suffix in ("", ".json") else p
    return weights, weights.with_suffix(".json")


_paths = checkpoint_paths


def save_model(
    model: SRModel,
    path: str | os.PathLike,
    *,
    training: Optional[dict[str, Any]] = None,
    metrics: Optional[dict[str, Any]] = None,
    model_id: Optional[str] = None,
) -> Path:
    """Write <path>.safetensors and its card <path>.json (atomically); returns the weights path."""
    weights, card_path = _paths(path)
    header = describe(model, model_id=model_id or weights.stem)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write_atomic(weights, lambda p: save_file(tensors, str(p), metadata={METADATA_KEY: json.dumps(header)}))
    card = {
        **header,
        "rssr_version": __version__,
        "training": dict(training or {}),
        "metrics": dict(metrics or {}),
        "sha256": sha256_file(weights),
    }
    write_atomic(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    return weights


def _read_card(card_path: Path) -> dict[str, Any]:
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"model card {card_path} is not readable JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        got = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise CheckpointError(f"model card {card_path} has format {got!r}, expected {FORMAT!r}")
    return card


def _read_weights(weights: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise CheckpointError(f"{weights} is not a readable safetensors file (truncated or corrupt: {exc})") from None


def _embedded_description(weights: Path, metadata: dict[str, str]) -> dict[str, Any]:
    try:
        header = json.loads(metadata[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{weights} carries no rssr model description in its metadata") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{weights} carries a malformed rssr model description in its metadata")
    return header


def _spec_from(desc: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = {part: desc["spec"][part] for part in PARTS}
        spec.update({part: desc["spec"][part] for part in OPTIONAL_PARTS if desc["spec"].get(part)})
        spec["diffusion"] = desc["diffusion"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"model description lacks {exc}") from None
    spec["sampler"] = desc.get("sampler", dict(DEFAULT_SAMPLER))
    return spec


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> SRModel:
    """Validate card + weights and return the SRModel in eval mode; one CheckpointError line on any problem."""
    weights, card_path = _paths(path)
    if not weights.is_file():
        raise CheckpointError(f"model file not found: {weights}")
    card = _read_card(card_path) if card_path.exists() else None
    sha = sha256_file(weights)
    if card is not None and card.get("sha256") != sha:
        raise CheckpointError(
            f"{weights.name} does not match its card (sha256 {sha[:12]}, card says {str(card.get('sha256'))[:12]}): "
            "truncated, corrupt or replaced"
        )
    # Everything below is checked from the header and the card before a single tensor is read or allocated.
    shapes, metadata = read_safetensors_header(weights)
    header = _embedded_description(weights, metadata)
    desc = card if card is not None else header
    source = "model card" if card is not None else "embedded spec"
    spec = _spec_from(desc)
    validate_spec(spec)
    in_channels = spec["operator"].get("args", {}).get("in_channels", 1)
    if desc.get("channels", in_channels) != in_channels:
        raise CheckpointError(f"the {source} says {desc.get('channels')!r} channels, its operator takes {in_channels}")
    check_weights_match(spec, shapes, source)
    if card is not None:
        for key in BINDING:
            if card.get(key) != header.get(key):
                raise CheckpointError(
                    f"model card {card_path.name} and the weights' embedded description disagree on {key!r}"
                )
    tensors = _read_weights(weights)
    try:
        model = SRModel(spec)
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError) as exc:  # validate_spec should have caught it; still one line
        raise CheckpointError(f"cannot build the model from its {source}: {exc}") from None
    model.load_state_dict(tensors)
    model.card = {**desc, "sha256": sha}
    return model.to(device).eval()


def check_bands(model: SRModel, n_bands: int) -> None:
    """Band rule: a single-band model takes any count (bands one by one); a C-band model exactly C."""
    if model.in_channels != 1 and model.in_channels != n_bands:
        raise CheckpointError(f"the model takes {model.in_channels} bands together; the input has {n_bands}")


def model_id(model: SRModel) -> str:
    card = getattr(model, "card", None) or {}
    return str(card.get("id", "untrained"))
