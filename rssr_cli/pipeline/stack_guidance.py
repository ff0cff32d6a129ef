"""The guided pass of a band-stack run: the sharpener, the staged guides and the guided bands' tags.

Which bands are guided, and by which guides, is the plan's (stack_plan.plan_jobs, by the band rule in
sharpen.bands). The guides are staged on the common grid first, over the run's region plus the sharpener's halo
(clamped to the grid): a guided pixel at the edge of an AOI sees the guides a run over the whole grid sees, so the
output does not depend on the AOI. Requested guide bands are then copied from the staged file (computed once).

The sharpener runs in sharpen/apply.py (torch): plan_guidance imports it only when the plan guides a band, so a run
without guided bands (any plain raster, any classical method) and `import rssr_cli.pipeline` never load torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from rssr_cli.geo.region import OutputRegion
from rssr_cli.geo.windows import grow
from rssr_cli.io.cog import OutputSpec, write_band
from rssr_cli.pipeline.stack_plan import BandJob, StackPlan
from rssr_cli.sharpen.bands import GUIDED_WITH_TAG, guided_with, sharpener_name

if TYPE_CHECKING:  # the run-time import is plan_guidance's (torch)
    from rssr_cli.sharpen.apply import GuidedPass

log = logging.getLogger(__name__)

COPY_ROWS = 256  # rows per read/write when a band is copied unchanged (from a band file or the staged guides)


@dataclass
class Guidance:
    sharpener: GuidedPass
    plan: StackPlan
    staged: Window  # the window of the common grid the staged guides cover: the region and the sharpener's halo

    @property
    def staged_region(self) -> OutputRegion:
        """Where the guides are staged: a rectangle, no AOI mask (context, not output)."""
        return OutputRegion(self.staged)

    @property
    def name(self) -> str:
        return sharpener_name(self.sharpener.card)

    def tiles(self) -> int:
        return self.band_tiles() * sum(1 for job in self.plan.jobs if job.guided_by)

    def band_tiles(self) -> int:
        """The sharpener's tiles over one guided band."""
        return self.sharpener.tiles(self.plan.region.window)

    def sharpen(self, job: BandJob, writer: DatasetWriter, progress: Callable[..., None]) -> int:
        plan = self.plan
        region = plan.region
        assert job.grid.placement is not None
        nodata = plan.nodata

        def write(data: np.ndarray, window: Window) -> None:
            inside = region.inside(int(region.window.row_off) + int(window.row_off), int(window.height))
            if inside is not None and nodata is not None:
                cut = inside[:, int(window.col_off) : int(window.col_off + window.width)]
                data[0][~cut] = nodata
            write_band(writer, job.slot, data, window)

        log.info("band %s: guided by %s at x%.4g", job.band.name, ",".join(job.guided_by), job.scale)
        return self.sharpener.sharpen(
            job.band,
            job.grid.placement,
            job.scale,
            abs(plan.common.transform.a),
            [(g.band, g.grid.placement) for g in plan.guides],
            region=region.window,
            context=self.staged,
            nodata=nodata,
            dtype=plan.dtype,
            write=write,
            progress=progress,
        )

    def copy_guide(self, guides_path: Path, job: BandJob, writer: DatasetWriter) -> None:
        """A requested guide band into its output slot, from the staged guides: the region's part, the AOI applied."""
        slot = self.plan.guide_slot(job)
        assert slot is not None
        region, nodata = self.plan.region, self.plan.nodata
        top, left = int(region.window.row_off), int(region.window.col_off)
        height, width = int(region.window.height), int(region.window.width)
        with rasterio.open(guides_path) as src:
            for row in range(top, top + height, COPY_ROWS):
                rows = min(COPY_ROWS, top + height - row)
                window = Window(left - int(self.staged.col_off), row - int(self.staged.row_off), width, rows)
                data = src.read(slot, window=window)[None]
                inside = region.inside(row, rows)
                if inside is not None and nodata is not None:  # the staged values are the output's already
                    data[0][~inside] = nodata
                write_band(writer, job.slot, data, Window(0, row - top, width, rows))

    def tags(self) -> dict[str, str]:
        card = self.sharpener.card
        return {
            "RSSR_GUIDED_BANDS": ",".join(job.band.name for job in self.plan.jobs if job.guided_by),
            "RSSR_GUIDE_BANDS": ",".join(g.band.name for g in self.plan.guides),
            "RSSR_SHARPENER": self.name,
            "RSSR_SHARPENER_SHA256": str(card.get("sha256", "")),
            GUIDED_WITH_TAG: guided_with(card),
        }


def plan_guidance(plan: StackPlan) -> Guidance | None:
    """The guided pass of a planned run, or None when the plan guides no band."""
    guided = [job for job in plan.jobs if job.guided_by]
    if not guided:
        return None
    # lazy: torch loads only here, when a band is guided (the sharpener runs); documented in CONTRIBUTING.md
    from rssr_cli.sharpen.apply import load_guided_pass

    sharpener = load_guided_pass([g.band for g in plan.guides], plan.nodata)
    halo = max(sharpener.halo(job.scale) for job in guided)
    staged = grow(plan.region.window, halo, plan.common.height, plan.common.width)
    return Guidance(sharpener, plan, staged)


def guides_spec(plan: StackPlan, staged: Window) -> OutputSpec:
    """The staged guides: the guide bands on the `staged` window of the common grid, in the output's dtype."""
    n = len(plan.guides)
    return OutputSpec(
        width=int(staged.width),
        height=int(staged.height),
        transform=OutputRegion(staged).transform(plan.common),
        crs=None,
        dtype=plan.dtype,
        nodata=plan.nodata,
        internal_mask=False,
        descriptions=(None,) * n,
        colorinterp=(ColorInterp.gray,) + (ColorInterp.undefined,) * (n - 1),
        scales=(1.0,) * n,
        offsets=(0.0,) * n,
        tags={},
        band_tags=({},) * n,
        interleave="band",
    )
