"""Which bands of a band-stack run are guided, and the guided pass's plumbing (staged guides, slots, tags).

The band rule (sharpen.model): the four 10 m bands guide every coarser Sentinel-2 band whose scale the guided
model was trained for, when the request holds a band finer than it and the method is a model (classical
resamplers stay what they are). The guides are staged on the common grid first; requested guide bands are then
copied from the staged file, so they are computed once.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from .backends import CLASSICAL_METHODS
from .cog import OutputSpec
from .errors import RssrWarning
from .grid import OutputGrid
from .pipeline.settings import UpscaleSettings
from .products import StackBand
from .sharpen.apply import GuidedJob, find_sharpener, guide_bands, guide_statistics, is_guided, sharpen_band, tiles_of
from .sharpen.model import GUIDE_BANDS, GuidedSharpener
from .stack_plan import BandJob

log = logging.getLogger(__name__)

COPY_ROWS = 256  # rows per read/write when a band is copied unchanged (from a band file or the staged guides)


@dataclass
class Guidance:
    model: GuidedSharpener
    guides: tuple[StackBand, ...]
    guided_slots: frozenset[int]
    guide_stats: np.ndarray

    def guide_jobs(self, plan: Any, make_job: Callable[[int, StackBand, OutputGrid], Any]) -> list:
        return [make_job(k + 1, band, plan.common) for k, band in enumerate(self.guides)]

    def is_guided(self, job: BandJob) -> bool:
        return job.slot in self.guided_slots

    def guide_slot(self, job: BandJob) -> Optional[int]:
        """The job's slot in the staged guides file when the job is a guide band (same band of the same file)."""
        return next((k for k, g in enumerate(self.guides, start=1) if g.dataset == job.band.dataset and g.index == job.band.index), None)

    def replaces(self, job: BandJob) -> bool:
        """The job's own run is not executed: it is guided, or copied from the staged guides."""
        return self.is_guided(job) or self.guide_slot(job) is not None

    def tiles(self, plan: Any) -> int:
        return tiles_of(plan.region.window) * len(self.guided_slots)

    def sharpen(self, job: BandJob, plan: Any, guides_path: Path, writer: DatasetWriter, progress: Callable[..., None]) -> int:
        region = plan.region
        assert job.grid.placement is not None
        nodata = plan.nodata

        def write(data: np.ndarray, window: Window) -> None:
            inside = region.inside(int(region.window.row_off) + int(window.row_off), int(window.height))
            if inside is not None and nodata is not None:
                cut = inside[:, int(window.col_off) : int(window.col_off + window.width)]
                data[0][~cut] = nodata
            writer.write(data, indexes=[job.slot], window=window)

        guided = GuidedJob(job.band, job.grid.placement, job.scale, abs(plan.common.transform.a))
        log.info("band %s: guided by %s at x%.4g", job.band.name, ",".join(g.name for g in self.guides), job.scale)
        return sharpen_band(self.model, guided, guides_path, self.guide_stats, region=region.window, nodata=nodata,
                            dtype=plan.dtype, write=write, progress=progress)  # fmt: skip

    def tags(self, plan: Any) -> dict[str, str]:
        card = getattr(self.model, "card", {})
        names = [job.band.name for job in plan.jobs if job.slot in self.guided_slots]
        return {
            "RSSR_GUIDED_BANDS": ",".join(names),
            "RSSR_GUIDE_BANDS": ",".join(g.name for g in self.guides),
            "RSSR_SHARPENER": str(card.get("name", "rssr-sharpen")),
            "RSSR_SHARPENER_SHA256": str(card.get("sha256", "")),
        }

    def band_tags(self, job: BandJob) -> dict[str, str]:
        if not self.is_guided(job):
            return {}
        return {"RSSR_BAND_METHOD": "guided", "RSSR_GUIDED_BY": ",".join(g.name for g in self.guides)}


def plan_guidance(plan: Any, settings: UpscaleSettings, method: str) -> Optional[Guidance]:
    """The guidance of a stack run, or None (turned off, classical method, no guides, nothing to guide)."""
    if settings.guidance is False or method in CLASSICAL_METHODS:
        return None
    guides = guide_bands(plan.stack.bands)
    finest = min(job.band.resolution for job in plan.jobs)
    slots = frozenset(job.slot for job in plan.jobs if not job.copy and is_guided(job.band, job.scale, finest, True))
    if not slots:
        return None
    if guides is None:  # never silently unguided: say which guide is missing and which bands it leaves unguided
        missing = [name for name in GUIDE_BANDS if name not in plan.stack.names]
        unguided = ", ".join(job.band.name for job in plan.jobs if job.slot in slots)
        warnings.warn(
            f"{plan.stack.source} lacks {', '.join(missing)} of the 10 m bands that guide the coarser bands: {unguided} "
            "super-resolved unguided (--no-guidance says so and silences this)", RssrWarning, stacklevel=2,
        )  # fmt: skip
        return None
    model = find_sharpener()
    if model is None:
        log.warning("no guided sharpening model found: coarse bands are super-resolved unguided")
        return None
    return Guidance(model, guides, slots, guide_statistics(guides, plan.nodata))


def guides_spec(plan: Any) -> OutputSpec:
    """The staged guides: the four 10 m bands on the region of the common grid, in the output's dtype."""
    window = plan.region.window
    n = len(GUIDE_BANDS)
    return OutputSpec(
        width=int(window.width), height=int(window.height), transform=plan.region.transform(plan.common), crs=None,
        dtype=plan.dtype, nodata=plan.nodata, internal_mask=False, descriptions=(None,) * n,
        colorinterp=(ColorInterp.gray,) + (ColorInterp.undefined,) * (n - 1), scales=(1.0,) * n, offsets=(0.0,) * n,
        tags={}, band_tags=({},) * n, interleave="band",
    )  # fmt: skip


def copy_slot(path: Path, index: int, writer: DatasetWriter, slot: int) -> None:
    """One band of a staged file into the output's slot, as stored (same grid, same dtype)."""
    with rasterio.open(path) as src:
        for row in range(0, src.height, COPY_ROWS):
            window = Window(0, row, src.width, min(COPY_ROWS, src.height - row))
            writer.write(src.read(index, window=window)[None], indexes=[slot], window=window)
