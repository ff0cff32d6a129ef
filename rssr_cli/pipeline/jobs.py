"""Scenes of a run as jobs: inputs expanded (files, folders, globs, products, remote names), an output path per
scene from the name template, and the refusals that need no raster (clashing outputs, an input overwritten)."""

from __future__ import annotations

import glob
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import rasterio

from rssr_cli.core.errors import UsageError
from rssr_cli.geo.grid import format_resolution
from rssr_cli.io import sources
from rssr_cli.io.destination import check_output_name
from rssr_cli.io.products import (
    is_band_stack,
    is_product_dir,
    is_product_file,
    is_product_name,
    product_name_fields,
    scene_stem,
)
from rssr_cli.pipeline.settings import DEFAULT_METHOD, UpscaleSettings
from rssr_cli.pipeline.stack_plan import request_settings

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
DEFAULT_NAME_TEMPLATE = "{stem}_x{scale}.tif"  # a plain raster's output
DEFAULT_PRODUCT_NAME_TEMPLATE = "{stem}_{bands}_x{scale}.tif"  # a product's: two band sets are two outputs
NAME_FIELDS = ("stem", "name", "scale", "resolution", "method", "seed", "bands", "date", "tile")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class SceneJob:
    src: str  # a local path or any GDAL dataset name (sources.py); a Path given here becomes its string
    dst: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", os.fspath(self.src))


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Existing files as given (even with * ? [ in their names), directories -> their raster files and
    Sentinel-2 products (not recursive; a .SAFE folder is one scene, never a folder to scan), a local name
    that does not exist but has * ? [ -> a glob (** recursive); remote and GDAL dataset names (URLs, /vsi
    paths, connection strings) as given, never globbed. Order kept, duplicates dropped; a pattern that
    matches nothing is a usage error."""
    found: dict[str, None] = {}
    for item in inputs:
        if not sources.is_local(item) or os.path.isfile(item) or is_product_dir(Path(item)):
            matches = [item]
        elif os.path.isdir(item):
            matches = sorted(
                str(p)
                for p in Path(item).iterdir()
                if (p.is_file() and p.suffix.lower() in RASTER_SUFFIXES) or is_product_dir(p) or is_product_file(p)
            )
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p) or is_product_dir(Path(p)))
        else:
            matches = [item]  # a missing file is reported as that scene's failure, like any bad input
        if not matches:
            raise UsageError(f"no raster matches {item!r}")
        if len(matches) > 1 or matches[0] != item:
            # Expanded, not named: never feed on rssr's own outputs (-o equal to the input folder would
            # otherwise make a_x2_x2.tif on the next cron run). Naming an output explicitly still works.
            kept = [p for p in matches if not is_rssr_output(p)]
            if not kept:
                raise UsageError(f"only rssr outputs match {item!r}; name one explicitly to upscale an output again")
            matches = kept
        found.update(dict.fromkeys(matches))
    return list(found)


def is_rssr_output(path: str | Path) -> bool:
    """The file is a raster written by rssr (it carries RSSR_* provenance tags)."""
    if not os.path.isfile(path):  # a .SAFE folder, a URL: not one of our outputs
        return False
    try:
        with rasterio.open(path) as dataset:
            return "RSSR_VERSION" in dataset.tags() or "RSSR_METHOD" in dataset.tags()
    except (rasterio.errors.RasterioError, OSError, ValueError):
        return False  # not readable: it stays an input and fails as that scene, as before


def refuse_stray_numbers(inputs: Sequence[str]) -> None:
    """`-r 10 20` (gdalwarp's -tr spelling) leaves `20` as an input: refuse a number that is not a file,
    before it turns a single run into a batch or a failed scene."""
    for item in inputs:
        try:
            float(item)
        except ValueError:
            continue
        if not os.path.exists(item):
            raise UsageError(
                f"input {item!r} is a number, not a raster; for an x and a y pixel size write -r X,Y (e.g. -r 10,20)"
            )


def default_name_template(src: str) -> str:
    """The name an output gets without --name: a product's carries its band set (DEFAULT_PRODUCT_NAME_TEMPLATE)."""
    return DEFAULT_PRODUCT_NAME_TEMPLATE if is_band_stack(src) else DEFAULT_NAME_TEMPLATE


def bands_label(src: str, settings: UpscaleSettings) -> str:
    """{bands}: the band set as the output records it, joined by '-' (B02-B03-B04-B08; a product's default is its
    four 10 m bands, band names in one spelling: b4 and B04 are one set); 'all' for all bands (a plain raster
    without --bands, or --bands all)."""
    bands = request_settings(src, settings).bands
    if bands is None or (len(bands) == 1 and str(bands[0]).lower() == "all"):
        return "all"
    return "-".join(_UNSAFE_IN_NAME.sub("_", str(b)) for b in bands)


def output_name(template: Optional[str], src: str, settings: UpscaleSettings) -> str:
    """Fill the name template (None: default_name_template): {stem} {name} {scale} {resolution} {method} {seed}
    {bands} {date} {tile}; '/' makes subfolders of -o. A URL's name is its last path component without the query
    string (sources.base_name). {date} (YYYYMMDD) and {tile} (T33UUU) are read from the input's name (a product's,
    or a band file's); a template using one for an input whose name holds none is a usage error."""
    template = default_name_template(src) if template is None else template
    stem = scene_stem(src) if is_product_name(src) or is_product_dir(Path(src)) else sources.stem(src)
    named = product_name_fields(src)
    fields = {
        "stem": stem,
        "name": sources.base_name(src),
        "scale": f"{settings.scale:g}"
        if settings.scale is not None
        else f"r{format_resolution(settings.target_resolution())}",
        "resolution": format_resolution(settings.resolution) if settings.resolution is not None else "",
        "method": settings.method or DEFAULT_METHOD,
        "seed": str(settings.seed),
        "bands": bands_label(src, settings),
        "date": named.get("date", ""),
        "tile": named.get("tile", ""),
    }
    check_name_template(template, fields)
    used = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    for field in ("date", "tile"):
        if field in used and not fields[field]:
            what = "sensing date (YYYYMMDD)" if field == "date" else "Sentinel-2 tile id (T33UUU)"
            raise UsageError(f"--name uses {{{field}}} but the name of {src} holds no {what}")
    try:
        name = template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(
            f"bad name template {template!r}: use fields {', '.join('{' + k + '}' for k in fields)}"
        ) from exc
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or name.endswith("/"):
        raise UsageError(
            f"name template {template!r} must give a file name inside -o (subfolders allowed), got {name!r}"
        )
    return name


def check_name_template(template: str, fields: Mapping[str, str]) -> None:
    """Only plain fields: '{stem.__class__}' or '{name[0]}' would reach into Python objects from a command line."""
    allowed = ", ".join("{" + k + "}" for k in fields)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"bad name template {template!r} ({exc}): use fields {allowed}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in fields or conversion or "{" in (spec or ""):
            raise UsageError(f"bad name template {template!r}: only the plain fields {allowed} are allowed")


def plan_jobs(
    inputs: Sequence[str | os.PathLike], outdir: Path, settings: UpscaleSettings, template: Optional[str] = None
) -> list[SceneJob]:
    """One job per input (template None: each input's default name); two inputs that would write the same output
    are refused before any work."""
    jobs: list[SceneJob] = []
    claimed: dict[Path, str] = {}
    for src in (os.fspath(item) for item in inputs):
        dst = outdir / output_name(template, src, settings)
        check_output_name(dst)
        if dst in claimed:
            raise UsageError(
                f"{claimed[dst]} and {src} would both write {dst}; use a template with {{name}} or separate runs"
            )
        if sources.is_local(src) and dst.resolve() == Path(src).resolve():
            raise UsageError(f"output {dst} would overwrite its input")
        claimed[dst] = src
        jobs.append(SceneJob(src, dst))
    return jobs


def is_batch(inputs: Sequence[str], output: str | os.PathLike) -> bool:
    """Batch mode: several inputs, a local directory (not a .SAFE product: one scene), a glob (a local name that
    does not exist and has * ? [), or an output that is (or is spelled as) a directory. A URL's query string is
    never a glob."""
    if len(inputs) != 1:
        return True
    src, output = inputs[0], os.fspath(output)
    if sources.is_local(src) and (
        (os.path.isdir(src) and not is_product_dir(Path(src))) or (glob.has_magic(src) and not os.path.exists(src))
    ):
        return True
    return Path(output).is_dir() or output.endswith(("/", os.sep))
