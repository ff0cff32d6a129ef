"""Provenance as a value: what a run records in its output's RSSR_* tags (version, grid, tiling, the request, and
the backend's own tags such as the model hash), and what a batch compares to decide that a scene is done."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from rssr_cli.backends import SRBackend, writes_spread
from rssr_cli.core.version import __version__
from rssr_cli.geo.grid import OutputGrid, format_resolution
from rssr_cli.geo.region import OutputRegion
from rssr_cli.io.aoi import aoi_tag
from rssr_cli.io.radiometry import Radiometry
from rssr_cli.pipeline.settings import UpscaleSettings


@dataclass(frozen=True)
class Provenance:
    """The method and its backend's tags (model id + hash, sampler): all a run needs of a backend to tag its output,
    so assembling a split scene or checking a batch's skip rule needs no model. `spread`: the backend draws K >= 2
    samples per window, so the output comes with a spread side-car (spread.py). `guidance`: a band stack's guided
    pass, its sharpener's tags (stack_guidance.Guidance.tags; empty when no band is guided)."""

    method: str
    backend_tags: Mapping[str, str] = field(default_factory=dict)
    spread: bool = False
    guidance: Mapping[str, str] = field(default_factory=dict)

    @property
    def sharpener(self) -> Optional[str]:
        """The guided sharpener's name, when the run guides bands."""
        return self.guidance.get("RSSR_SHARPENER")

    @classmethod
    def of(cls, method: str, backend: SRBackend) -> "Provenance":
        return cls(method, dict(backend.provenance()), writes_spread(backend))


def provenance_tags(
    settings: UpscaleSettings, grid: OutputGrid, radiometry: Radiometry, provenance: Provenance
) -> dict[str, str]:
    """RSSR_* tags recording how the output was made (the backend adds its own, e.g. model id and hash)."""
    return {
        "RSSR_VERSION": __version__,
        "RSSR_SCALE_XY": f"{grid.scale_x:.10g},{grid.scale_y:.10g}",
        "RSSR_TILE": str(settings.tile),
        "RSSR_OVERLAP": str(settings.overlap),
        "RSSR_RADIOMETRY": radiometry.rule,
        **request_tags(settings, provenance),
        **model_choice_tags(settings, provenance.method),
    }


def request_tags(settings: UpscaleSettings, provenance: Provenance) -> dict[str, str]:
    """The tags that identify what was asked for (method, model hash, sampler, scale, bands, seed, AOI, declared
    nodata): an output whose tags contain these was made by an equivalent request, so a batch can skip it."""
    requested = (
        f"{settings.scale:g}"
        if settings.scale is not None
        else f"resolution {format_resolution(settings.target_resolution())}"
    )
    tags = {
        "RSSR_METHOD": provenance.method,
        "RSSR_SCALE": requested,
        "RSSR_BANDS": "all" if settings.bands is None else ",".join(map(str, settings.bands)),
        "RSSR_SEED": str(settings.seed),
        "RSSR_AOI_ID": settings.aoi.fingerprint if settings.aoi is not None else "none",
        "RSSR_NODATA": "file" if settings.nodata is None else f"{settings.nodata:g}",  # "file": the file's own
    }
    if settings.guidance is not None:  # band stacks only (stack_plan.request_settings sets it)
        tags["RSSR_GUIDANCE"] = "on" if settings.guidance else "off"
    tags.update({f"RSSR_{key.upper()}": str(value) for key, value in provenance.backend_tags.items()})
    return tags


def model_choice_tags(settings: UpscaleSettings, method: str) -> dict[str, str]:
    """RSSR_MODEL_NAME (a shipped model's name) and RSSR_MODEL_CHOICE (rule: why / --model / RSSR_MODEL). Not part of
    the request a batch compares (outputs made before they existed stay done)."""
    choice = settings.model_choice
    if choice is None or not method.startswith("diffusion"):
        return {}
    return {**({"RSSR_MODEL_NAME": choice.name} if choice.name else {}), "RSSR_MODEL_CHOICE": choice.tag()}


def region_tags(region: OutputRegion, grid: OutputGrid) -> dict[str, str]:
    """RSSR_AOI (WKT in the raster CRS) and its bounds, when the output is cut to an AOI."""
    if region.aoi is None:
        return {}
    resolution = min(abs(grid.transform.a), abs(grid.transform.e))
    return {
        "RSSR_AOI": aoi_tag(region.aoi, resolution),
        "RSSR_AOI_BOUNDS": ",".join(f"{v:.10g}" for v in region.aoi.bounds),
    }
