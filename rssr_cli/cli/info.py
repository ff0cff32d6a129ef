"""`rssr info`: a raster's grid, bands and nodata and what `upscale` would write, a product's bands, or a model's card."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Optional

import typer

from rssr_cli.cli.common import Verbose, cli_session, parse_band_selection, stdout
from rssr_cli.cli.render import render_model_report, render_models_report, render_report, render_stack_report, to_json
from rssr_cli.core.errors import UsageError
from rssr_cli.geo.grid import parse_resolution
from rssr_cli.io.products import is_band_stack
from rssr_cli.pipeline.info import describe_model, describe_models, describe_raster
from rssr_cli.pipeline.stack_plan import describe_stack


def info_command(
    src: Annotated[
        Optional[str],
        typer.Argument(
            help="Raster to describe: a file, URL, /vsi path, GDAL connection string, Sentinel-2 product (.SAFE, .SAFE.zip) or STAC item (with --model: the model's .safetensors).",
            show_default=False,
        ),
    ] = None,
    scale: Annotated[
        Optional[float], typer.Option("--scale", "-s", help="Preview the output at this scale.", show_default=False)
    ] = None,
    resolution: Annotated[
        Optional[str],
        typer.Option("--resolution", "-r", help="Preview the output at this pixel size: X or X,Y.", show_default=False),
    ] = None,
    bands: Annotated[
        Optional[list[str]],
        typer.Option(
            "--bands", "-b", help="Bands the preview counts: 1,3,4 or B04,B8A (repeatable).", show_default=False
        ),
    ] = None,
    model: Annotated[
        bool,
        typer.Option(
            "--model",
            help="Describe a model instead: SRC is a shipped model's name or a .safetensors path (default: $RSSR_MODEL, else aerial).",
        ),
    ] = False,
    models: Annotated[
        bool,
        typer.Option(
            "--models",
            help="List the shipped models (name, id, domain: sensor, pixel sizes, bands, data types; figures) and the rule that picks one per input.",
        ),
    ] = False,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="Also estimate the default model's time and peak memory for this output on this machine (a few seconds: loads and calibrates the model).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for scripts) instead of text.")
    ] = False,
    verbose: Verbose = 0,
) -> None:
    """Print a raster's grid, bands and nodata, what `upscale` would produce and which model it would use (and why);
    or a model's card (--model), or the shipped models (--models)."""
    with cli_session(verbose):
        if models:
            if src is not None or model or scale is not None or resolution is not None or bands is not None:
                raise UsageError(
                    "--models lists the shipped models; it takes no SRC, --model, --scale, --resolution or --bands"
                )
            emit(describe_models(), render_models_report, as_json)
            return
        if model:
            if scale is not None or resolution is not None or bands is not None or estimate:
                raise UsageError(
                    "--scale, --resolution, --bands and --estimate preview a raster's output; not with --model"
                )
            emit(describe_model(src), render_model_report, as_json)
            return
        if src is None:
            raise UsageError(
                "give a raster to describe: rssr info SRC [--scale S], or a model: rssr info --model [PATH]"
            )
        pixel_size = parse_resolution(resolution) if resolution is not None else None
        if is_band_stack(str(src)):
            if estimate:
                raise UsageError("--estimate describes one raster, not a product's band stack")
            emit(
                describe_stack(str(src), scale=scale, resolution=pixel_size, bands=parse_band_selection(bands)),
                render_stack_report,
                as_json,
            )
            return
        report = describe_raster(
            src, scale=scale, resolution=pixel_size, bands=parse_band_selection(bands), estimate=estimate
        )
        emit(report, render_report, as_json)


def emit(report: Any, render: Callable[[Any], list[str]], as_json: bool) -> None:
    """The report as text lines (rich markup) or, with --json, as one JSON document (plain, no markup)."""
    if as_json:
        typer.echo(to_json(report))
        return
    for line in render(report):
        stdout.print(line)
