"""Which shipped model runs an input when none is named: one rule, readable in `rssr upscale --help` and README.

`choose_default_model(facts, available)` is the rule, a pure function of a few facts about the input (InputFacts,
read from its header by `input_facts`), so it is tested as a table of cases. --model and $RSSR_MODEL override it
(pipeline/model_choice.py); `rssr info SRC` says which model it picks and why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Optional

from rasterio.errors import CRSError

from rssr_cli.core.errors import RssrWarning
from rssr_cli.geo.band_names import COMMON_NAMES, SENTINEL2_BANDS, canonical_band_name
from rssr_cli.io.products import is_band_stack
from rssr_cli.io.raster_io import SourceInfo, inspect_source, open_raster
from rssr_cli.model.shipped_models import AERIAL, SENTINEL2_10M

S2_PIXEL_M = (5.0, 20.0)  # pixel sizes (both axes, metres) that make a uint16 raster in a projected CRS Sentinel-2-like

RULE = (
    f"Without --model or $RSSR_MODEL the model is chosen by the input: {SENTINEL2_10M} for Sentinel-2 inputs (a .SAFE "
    f"product or STAC item; a raster whose band descriptions are all Sentinel-2 band ids such as B04 or B8A; a uint16 "
    f"raster in a projected CRS with {S2_PIXEL_M[0]:g}-{S2_PIXEL_M[1]:g} m pixels), {AERIAL} for every other input "
    f"(and for Sentinel-2 ones when {SENTINEL2_10M} is not installed). `rssr info SRC` shows the choice and why."
)

CHOSEN_BY_RULE, CHOSEN_BY_MODEL, CHOSEN_BY_ENV = "rule", "--model", "RSSR_MODEL"


@dataclass(frozen=True)
class InputFacts:
    """What the rule looks at, read from the input's header (no pixels)."""

    band_stack: bool = False  # a Sentinel-2 product (.SAFE, .SAFE.zip) or STAC item
    dtype: Optional[str] = None
    descriptions: tuple[Optional[str], ...] = ()
    crs: Optional[str] = None  # e.g. EPSG:32633 (for the reason only)
    projected: bool = False
    pixel_size_m: Optional[tuple[float, float]] = None  # in metres; None: no projected CRS with known units


@dataclass(frozen=True)
class ModelChoice:
    """The model a run uses and why: `by` is "rule", "--model" or "RSSR_MODEL"; name None: a file that is not shipped,
    or (by the rule) no shipped model installed at all."""

    name: Optional[str]
    reason: str
    by: str = CHOSEN_BY_RULE

    def tag(self) -> str:
        """RSSR_MODEL_CHOICE: 'rule: <reason>', '--model' or 'RSSR_MODEL'."""
        return f"{self.by}: {self.reason}" if self.by == CHOSEN_BY_RULE else self.by


def is_sentinel2_band_id(description: Optional[str]) -> bool:
    """B01..B12, B8A (any case, B4 or B04); not the common names (red, nir: aerial rasters use them too)."""
    if not description or description.strip().lower() in COMMON_NAMES:
        return False
    return canonical_band_name(description) in SENTINEL2_BANDS


def sentinel2_evidence(facts: InputFacts) -> tuple[bool, str]:
    """(is the input Sentinel-2 by the rule, the reason in words)."""
    if facts.band_stack:
        return True, "a Sentinel-2 product or STAC item"
    if facts.descriptions and all(is_sentinel2_band_id(d) for d in facts.descriptions):
        names = ",".join(canonical_band_name(d or "") for d in facts.descriptions)
        return True, f"band descriptions are Sentinel-2 band ids {names}"
    if facts.pixel_size_m is None:
        where = (
            "no CRS"
            if facts.crs is None
            else f"a geographic CRS ({facts.crs})"
            if not facts.projected
            else f"CRS {facts.crs} without metre units"
        )
        return False, f"{facts.dtype}, {where}, bands not described as Sentinel-2 band ids"
    low, high = S2_PIXEL_M
    size = "x".join(f"{v:.6g}" for v in dict.fromkeys(facts.pixel_size_m))
    in_range = all(low <= v <= high for v in facts.pixel_size_m)
    if facts.dtype == "uint16" and in_range:
        return True, f"uint16 with {size} m pixels in a projected CRS ({facts.crs})"
    return False, f"{facts.dtype} with {size} m pixels, bands not described as Sentinel-2 band ids"


def choose_default_model(facts: InputFacts, available: Collection[str]) -> ModelChoice:
    """The rule (RULE): Sentinel-2 inputs -> s2-10m, every other input -> aerial; a model that is not installed
    falls back to aerial and says so; with no shipped model at all the name is None (the run then says none is found)."""
    sentinel2, why = sentinel2_evidence(facts)
    if sentinel2 and SENTINEL2_10M in available:
        return ModelChoice(SENTINEL2_10M, f"Sentinel-2 input: {why}")
    if sentinel2:
        why = f"Sentinel-2 input: {why}; {SENTINEL2_10M} is not installed, so {AERIAL}"
    else:
        why = f"not Sentinel-2: {why}"
    return ModelChoice(AERIAL if AERIAL in available else None, why)


def input_facts(src: str | Path) -> InputFacts:
    """The rule's facts about an input, from its header (a product or STAC item is known by its name)."""
    if is_band_stack(str(src)):
        return InputFacts(band_stack=True)
    with warnings.catch_warnings(), open_raster(src) as dataset:
        warnings.simplefilter("ignore", RssrWarning)  # the run itself warns (no CRS, ...), once
        return source_facts(inspect_source(dataset))


def source_facts(source: SourceInfo) -> InputFacts:
    """The rule's facts from a raster's SourceInfo: data types, data bands' descriptions, pixel size in metres."""
    crs = source.crs
    pixel_size_m = None
    if crs is not None and crs.is_projected:
        try:
            factor = float(crs.linear_units_factor[1])  # metres per CRS unit
        except CRSError:  # a CRS without linear units
            factor = math.nan
        if math.isfinite(factor) and factor > 0:
            t = source.transform
            pixel_size_m = (math.hypot(t.a, t.d) * factor, math.hypot(t.b, t.e) * factor)
    data = [source.descriptions[b - 1] for b in source.data_bands]
    return InputFacts(
        dtype=source.dtype,
        descriptions=tuple(data),
        crs=crs.to_string() if crs is not None else None,
        projected=bool(crs is not None and crs.is_projected),
        pixel_size_m=pixel_size_m,
    )
