"""`describe_raster`: what a raster is and what `upscale` would make of it, as data (the CLI renders it)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from affine import Affine

from rssr_cli.backends import MODEL_ENV, default_model_path
from rssr_cli.core.errors import CheckpointError, UsageError
from rssr_cli.core.interrupts import interruptible
from rssr_cli.geo.grid import OutputGrid, plan_output_grid
from rssr_cli.io.raster_io import MaskKind, SourceInfo, gdal_env, inspect_source, open_raster, select_bands
from rssr_cli.model.shipped_models import ShippedModel, model_name, models_dir, resolve_model, shipped_models
from rssr_cli.pipeline.cost import CostEstimate, estimate_cost
from rssr_cli.pipeline.model_choice import input_model_choice
from rssr_cli.pipeline.model_rule import RULE, ModelChoice, source_facts


@dataclass(frozen=True)
class BandReport:
    index: int
    description: Optional[str]
    colorinterp: str
    scale: float
    offset: float
    made: dict[str, str] = field(
        default_factory=dict
    )  # an rssr output band's RSSR_* tags (how it was made), prefix dropped


@dataclass(frozen=True)
class UpscalePreview:
    """The output `upscale` would write, computed from the grid alone (nothing is run)."""

    width: int
    height: int
    scale_x: float
    scale_y: float
    pixel_size: tuple[float, float]
    bands: int
    dtype: str
    uncompressed_bytes: int  # full resolution only; overviews add about a third, compression takes a lot off


@dataclass(frozen=True)
class RasterReport:
    path: str
    width: int
    height: int
    dtype: str
    crs: Optional[str]
    transform: Affine
    pixel_size: tuple[float, float]
    bounds: tuple[float, float, float, float]
    validity: str  # how invalid pixels are marked
    bands: tuple[BandReport, ...]
    preview: Optional[UpscalePreview]
    provenance: dict[str, str] = field(default_factory=dict)  # RSSR_* tags of an rssr output, prefix dropped
    model: Optional[ModelChoice] = None  # the model `upscale` uses without --model, and why (model_rule.RULE)
    estimate: Optional[CostEstimate] = None  # the model's time and memory on this machine (cost.py), when asked


@interruptible  # a hung URL: SIGTERM still ends `rssr info` (interrupts.py)
def describe_raster(
    src: str | Path,
    *,
    scale: Optional[float] = None,
    resolution: Optional[float | tuple[float, float]] = None,
    bands: Optional[Sequence[int | str]] = None,
    estimate: bool = False,
) -> RasterReport:
    """Read a raster's header (no pixels) and, given a scale or resolution, preview the upscale output.

    estimate: also estimate the default model's time and peak memory on this machine (loads and calibrates the
    model: a few seconds; cost.py)."""
    if estimate and scale is None and resolution is None:
        raise UsageError("--estimate needs the output: give --scale or --resolution")
    with gdal_env(), open_raster(src) as dataset:  # gdal_env: the HTTP timeouts
        source = inspect_source(dataset)
        band_tags = [rssr_tags(dataset.tags(b)) for b in range(1, source.count + 1)]
    selected = select_bands(source, bands)
    choice = input_model_choice(source_facts(source))
    preview = cost = None
    if scale is not None or resolution is not None:
        grid = plan_output_grid(source.width, source.height, source.transform, scale=scale, resolution=resolution)
        preview = _preview(grid, len(selected), source.dtype)
        if estimate:  # the model this input gets (the rule, or $RSSR_MODEL)
            model = str(resolve_model(choice.name)) if choice.name else os.environ.get(MODEL_ENV)
            cost = estimate_cost(grid, len(selected), model=model)
    return RasterReport(
        path=source.path,
        width=source.width,
        height=source.height,
        dtype=source.dtype,
        crs=source.crs.to_string() if source.crs else None,
        transform=source.transform,
        pixel_size=source.pixel_size,
        bounds=source.bounds,
        validity=describe_validity(source),
        bands=tuple(_band_report(source, b, band_tags[b - 1]) for b in range(1, source.count + 1)),
        preview=preview,
        provenance=rssr_tags(source.tags),
        model=choice,
        estimate=cost,
    )


def _preview(grid: OutputGrid, n_bands: int, dtype: str) -> UpscalePreview:
    t = grid.transform
    return UpscalePreview(
        width=grid.width,
        height=grid.height,
        scale_x=grid.scale_x,
        scale_y=grid.scale_y,
        pixel_size=(math.hypot(t.a, t.d), math.hypot(t.b, t.e)),
        bands=n_bands,
        dtype=dtype,
        uncompressed_bytes=grid.width * grid.height * n_bands * np.dtype(dtype).itemsize,
    )


def _band_report(source: SourceInfo, band: int, made: dict[str, str]) -> BandReport:
    i = band - 1
    return BandReport(
        band, source.descriptions[i], source.colorinterp[i].name, source.scales[i], source.offsets[i], made
    )


def rssr_tags(tags: dict[str, str]) -> dict[str, str]:
    """The RSSR_* tags of an rssr output (or of one of its bands), prefix dropped, lower case."""
    return {k.removeprefix("RSSR_").lower(): v for k, v in sorted(tags.items()) if k.startswith("RSSR_")}


def describe_validity(source: SourceInfo) -> str:
    if source.mask_kind == MaskKind.NODATA:
        return f"nodata = {source.nodata:g}"
    if source.mask_kind == MaskKind.MASK:
        return f"alpha band {source.alpha_band}" if source.alpha_band else "internal mask"
    if source.mask_kind == MaskKind.NAN:
        return "NaN (float without a nodata value)"
    return "none (every pixel valid)"


# ------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelPart:
    role: str  # operator, prior_features, denoiser
    name: str  # registry name
    args: dict
    parameters: int


@dataclass(frozen=True)
class ModelReport:
    """A checkpoint's card (or, without a card, its embedded description), validated by loading the weights."""

    weights: str
    card: Optional[str]  # None: no card beside the weights (no training/metrics record)
    id: str
    name: Optional[str]  # the shipped model's name (--model NAME); None: another file
    sha256: str
    size_bytes: int
    rssr_version: Optional[str]
    parts: tuple[ModelPart, ...]
    channels: int
    band_rule: str
    normalization: dict
    diffusion: dict
    sampler: dict
    training: dict
    metrics: dict
    domain: Optional[dict] = None  # what it was trained for (the card's domain section)

    @property
    def parameters(self) -> int:
        return sum(p.parameters for p in self.parts)


def describe_model(path: Optional[str | Path] = None) -> ModelReport:
    """Load a model (a shipped model's name or a path; default: $RSSR_MODEL, else aerial) to validate it, and describe
    it from its card.

    Missing, truncated or corrupt files raise CheckpointError (one line); torch is imported here only.
    """
    # lazy: torch loads only when a model is described (the rest of `rssr info` reads headers)
    from rssr_cli.model.checkpoint import OPTIONAL_PARTS, PARTS, checkpoint_paths, load_model
    from rssr_cli.model.sr_model import band_rule

    weights, card_path = checkpoint_paths(resolve_model(path) if path is not None else default_model_path())
    if not weights.is_file():
        hint = (
            "pass the model's .safetensors" if path is not None else "the default model; pass a PATH or set RSSR_MODEL"
        )
        raise CheckpointError(f"no model at {weights} ({hint})")
    model = load_model(weights, device="cpu")
    card = model.card
    parts = tuple(
        ModelPart(
            role,
            str(card["spec"][role]["name"]),
            dict(card["spec"][role].get("args", {})),
            sum(p.numel() for p in getattr(model, role).parameters()),
        )
        for role in (*PARTS, *(part for part in OPTIONAL_PARTS if card["spec"].get(part)))
    )
    return ModelReport(
        weights=str(weights),
        card=str(card_path) if card_path.is_file() else None,
        id=str(card.get("id", weights.stem)),
        name=model_name(weights),
        sha256=str(card["sha256"]),
        size_bytes=weights.stat().st_size,
        rssr_version=card.get("rssr_version"),
        parts=parts,
        channels=int(model.in_channels),
        band_rule=str(card.get("band_rule") or band_rule(model.in_channels)),
        normalization=dict(card.get("normalization", {})),
        diffusion=dict(card.get("diffusion", {})),
        sampler=dict(model.sampler_defaults),
        training=dict(card.get("training", {})),
        metrics=dict(card.get("metrics", {})),
        domain=dict(card["domain"]) if isinstance(card.get("domain"), dict) else None,
    )


@dataclass(frozen=True)
class ShippedModelsReport:
    """`rssr info --models`: the shipped models (their cards, not loaded) and the rule that picks one per input."""

    folder: Optional[str]
    rule: str
    models: tuple[ShippedModel, ...]


def describe_models() -> ShippedModelsReport:
    folder = models_dir()
    return ShippedModelsReport(str(folder) if folder else None, RULE, tuple(shipped_models().values()))
