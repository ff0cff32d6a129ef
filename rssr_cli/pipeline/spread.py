"""The spread layer (`--samples K`, K >= 2): the per-pixel standard deviation of the K draws behind each output
pixel, written as a side-car COG `<output stem>.spread.tif` beside the output.

It lies on the output's grid (CRS, transform, size), one float32 band per output band ('<band> spread'), in the
output's stored units: the std divided by the radiometry's gain, no offset (the bands keep the output's scales, so
a reader that applies scale gets the spread in physical units, and offsets are 0). NaN marks the pixels the output
marks invalid. The output names it in its RSSR_SPREAD tag; both are published together (cog.finalize_cogs), and a
batch counts an output whose side-car is missing as not done (`spread_complete`). A band stack's side-car (what
its copied and guided bands' spread holds) is stack_spread.py's.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from rasterio.enums import ColorInterp

from rssr_cli.io.cog import OutputSpec

SPREAD_TAG = "RSSR_SPREAD"  # on the output: the side-car's file name
SPREAD_OF_TAG = "RSSR_SPREAD_OF"  # on the side-car: the output's file name
SPREAD_SUFFIX = ".spread.tif"
SPREAD_DTYPE = "float32"


def spread_path(dst: Path) -> Path:
    """Where the spread side-car of DST goes: OUT.tif -> OUT.spread.tif."""
    return dst.with_name(dst.stem + SPREAD_SUFFIX)


def spread_tags(dst: Path) -> dict[str, str]:
    """The output's tag naming its side-car."""
    return {SPREAD_TAG: spread_path(dst).name}


@dataclass(frozen=True)
class SpreadLayer:
    """The side-car of one output: where it goes, its raster spec and its COG creation options."""

    path: Path
    spec: OutputSpec
    creation_options: dict

    @classmethod
    def of(cls, dst: Path, output: OutputSpec, creation_options: Mapping[str, object]) -> "SpreadLayer":
        return cls(spread_path(dst), spread_spec(output, dst), dict(creation_options))


def spread_spec(output: OutputSpec, dst: Path) -> OutputSpec:
    """The side-car's spec from the output's: same grid, float32, NaN nodata, '<band> spread' descriptions."""
    names = [description or f"band {i}" for i, description in enumerate(output.descriptions, start=1)]
    tags = {k: v for k, v in output.tags.items() if k != SPREAD_TAG}  # how it was made, as the output records it
    return replace(
        output,
        dtype=SPREAD_DTYPE,
        nodata=math.nan,
        internal_mask=False,
        descriptions=tuple(f"{name} spread" for name in names),
        colorinterp=(ColorInterp.gray,) + (ColorInterp.undefined,) * (output.count - 1),
        offsets=(0.0,) * output.count,
        tags={**tags, SPREAD_OF_TAG: dst.name},
        band_tags=({},) * output.count,
        interleave="pixel",
    )


def spread_complete(dst: Path, tags: Mapping[str, str], wanted: bool) -> bool:
    """An existing output is complete as far as its spread goes: none was asked, or its tag names the side-car
    this request writes and that side-car is a regular file beside it (a run interrupted between the two
    renames, or a side-car deleted since, must be redone)."""
    if not wanted:
        return True
    side_car = spread_path(dst)
    if tags.get(SPREAD_TAG) != side_car.name:
        return False
    try:
        return stat.S_ISREG(os.stat(side_car).st_mode)
    except OSError:
        return False
