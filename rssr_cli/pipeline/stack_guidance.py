"""The guided pass of a band-stack run: the sharpener and the guided bands' tags.

Which bands are guided, and by which guides, is the plan's (stack_plan.plan_jobs, by the band rule in
sharpen.bands). The sharpener reads each guide's native pixels itself (sharpen.apply.read_on_output), within the
run's region plus the sharpener's halo (clamped to the grid): a guided pixel at the edge of an AOI sees the guides a
run over the whole grid sees, so the output does not depend on the AOI. A requested guide band is an ordinary band,
run by the run's method like any other; a guide that is not requested is only read.

The sharpener runs in sharpen/apply.py (torch): plan_guidance imports it only when the plan guides a band, so a run
without guided bands (any plain raster, any classical method) and `import rssr_cli.pipeline` never load torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from rssr_cli.geo.windows import grow
from rssr_cli.io.cog import write_band
from rssr_cli.pipeline.stack_plan import BandJob, StackPlan
from rssr_cli.sharpen.bands import GUIDED_WITH_TAG, guided_with, sharpener_name

if TYPE_CHECKING:  # the run-time import is plan_guidance's (torch)
    from rssr_cli.sharpen.apply import GuidedPass

log = logging.getLogger(__name__)

COPY_ROWS = 256  # rows per read/write when a band is copied unchanged from its band file (or filled)


@dataclass
class Guidance:
    sharpener: GuidedPass
    plan: StackPlan
    context: Window  # the window of the common grid the sharpener reads the guides within: the region and its halo

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
            context=self.context,
            nodata=nodata,
            dtype=plan.dtype,
            write=write,
            progress=progress,
        )

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
    return Guidance(sharpener, plan, grow(plan.region.window, halo, plan.common.height, plan.common.width))
