"""`rssr upscale`: flags -> UpscaleSettings and a RunRequest -> pipeline.run -> rendered results (every run mode)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import typer
from rich.progress import Progress, TaskID

from rssr_cli.cli.common import (
    EXIT_PROCESSING,
    Device,
    Precision,
    Quiet,
    Verbose,
    check_creation_options,
    cli_session,
    line_progress,
    parse_band_selection,
    progress_bar,
    progress_columns,
    stderr,
    window_progress,
)
from rssr_cli.cli.render import render_batch_summary, render_scene_line, summarize
from rssr_cli.core.errors import UsageError
from rssr_cli.evaluation.fidelity_report import DEFAULT_SAMPLES, FidelityChecks, FidelityOptions
from rssr_cli.geo.grid import parse_resolution
from rssr_cli.io import sources
from rssr_cli.io.aoi import load_aoi
from rssr_cli.io.cog_profiles import DEFAULT_PROFILE, PROFILES, parse_creation_options
from rssr_cli.pipeline.api import RunRequest, run
from rssr_cli.pipeline.distributed import SCHEDULER_ENV
from rssr_cli.pipeline.jobs import SceneJob
from rssr_cli.pipeline.model_rule import RULE
from rssr_cli.pipeline.scenes import FAILED, SceneResult
from rssr_cli.pipeline.settings import DEFAULT_BATCH_SIZE, ModelOptions, UpscaleSettings

BATCH_EXIT_HELP = "In batch mode 1 means at least one scene failed (busy and skipped scenes are not failures)."


def upscale_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Input raster(s): files, directories, quoted globs, URLs (http(s)://, s3://, gs://), /vsi paths or GDAL connection strings (SENTINEL2_L2A:..., GTIFF_DIR:...).",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Output COG path; a directory (or DIR/) in batch mode.", show_default=False
        ),
    ],
    scale: Annotated[
        Optional[float],
        typer.Option(
            "--scale",
            "-s",
            help="Scale factor, any real > 1 (e.g. 4.5); give this or --resolution.",
            show_default=False,
        ),
    ] = None,
    resolution: Annotated[
        Optional[str],
        typer.Option(
            "--resolution",
            "-r",
            help="Target pixel size in CRS units: X, or X,Y for x and y (like gdalwarp -tr X Y).",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        Optional[str],
        typer.Option(
            "--method",
            "-m",
            help="SR method: diffusion (the model), bicubic, lanczos, nearest (default: diffusion; an error if no model is found).",
            show_default=False,
        ),
    ] = None,
    bands: Annotated[
        Optional[list[str]],
        typer.Option(
            "--bands",
            "-b",
            help="Bands to process, in output order: 1-based numbers (1,3,4, or -b 1 -b 3 -b 4) or names (B04,B03,B02,B08; a band's description, or for Sentinel-2 products also red, nir08, ...); 'all'. Default: all bands; for products the four 10 m bands.",
            show_default=False,
        ),
    ] = None,
    aoi: Annotated[
        Optional[str],
        typer.Option(
            "--aoi",
            help="Area of interest: a GeoJSON file (EPSG:4326 unless it says) or a WKT polygon (in the raster's CRS unless --aoi-crs). Only its windows run; pixels outside are nodata.",
            show_default=False,
        ),
    ] = None,
    aoi_crs: Annotated[
        Optional[str],
        typer.Option("--aoi-crs", help="CRS of --aoi, e.g. EPSG:4326 (overrides the file's).", show_default=False),
    ] = None,
    nodata: Annotated[
        Optional[float],
        typer.Option(
            "--nodata",
            help="Declare a nodata value the input files do not carry (Sentinel-2: 0): those pixels are invalid, and nodata in the output, which carries this value. Replaces the file's own nodata or mask.",
            show_default=False,
        ),
    ] = None,
    guidance: Annotated[
        bool,
        typer.Option(
            "--guidance/--no-guidance",
            help="Sentinel-2 stacks: sharpen the 20 m and 60 m bands with the 10 m bands' detail (guided model); off: every band on its own.",
        ),
    ] = True,
    tile: Annotated[
        Optional[int],
        typer.Option(
            help="LR window core size in px (default: 256 for classical methods; ~512/scale for the model).",
            show_default=False,
        ),
    ] = None,
    overlap: Annotated[
        Optional[int],
        typer.Option(help="LR halo around each window in px, blended (default: min(32, tile/4)).", show_default=False),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per backend call.")] = DEFAULT_BATCH_SIZE,
    device: Annotated[Device, typer.Option(help="Where the model runs (classical methods ignore it).")] = Device.auto,
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            help="CPU threads for the model and for GDAL (GDAL_NUM_THREADS) (default: $OMP_NUM_THREADS, else all cores).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            help="Model (diffusion): a shipped model's name (aerial, s2-10m: rssr info --models) or a checkpoint path (default: $RSSR_MODEL, else chosen by the input: see below).",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        Optional[int], typer.Option(help="Denoising steps (diffusion) (default: the model card's).", show_default=False)
    ] = None,
    strength: Annotated[
        Optional[float],
        typer.Option(help="Noise strength t0/T (diffusion) (default: the model card's).", show_default=False),
    ] = None,
    precision: Annotated[
        Optional[Precision],
        typer.Option(
            help="Compute precision (diffusion) (default: bf16 on CUDA, else fp32; bf16 on CPU: mean 0.4 DN, max 40 DN from fp32 on the demo, BENCHMARKS.md).",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        Optional[str],
        typer.Option(
            "--mode",
            help="faithful: the prior alone, the posterior mean (best PSNR, smooth top octave); realistic: a sample of the model's residual-shifting chain (the truth's texture statistics; needs a model with a trained chain). Default: the model card's.",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            metavar="K",
            help="--mode realistic: write the mean of K samples (K x the cost) and, for K >= 2, their per-pixel standard deviation as a side-car COG OUT.spread.tif (an uncertainty layer; a band stack's copied bands hold 0 and its guided bands NaN).",
        ),
    ] = 1,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            help="Self-ensemble (diffusion): average the model over the 8 flips/transposes of each window; 8x the cost (gain: BENCHMARKS.md).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for stochastic methods (per window, order independent).")] = 0,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace OUTPUT if it exists (batch: outputs made by a different request)."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Batch: redo scenes already done with the same request.")
    ] = False,
    name: Annotated[
        Optional[str],
        typer.Option(
            "--name",
            help="Batch: output file name template; fields {stem} {name} {scale} {resolution} {method} {seed} {bands} (B02-B03-B04-B08, or all) {date} (YYYYMMDD) {tile} (T33UUU; date and tile from the input's name). Default: {stem}_x{scale}.tif; for products {stem}_{bands}_x{scale}.tif, so two band sets are two outputs.",
            show_default=False,
        ),
    ] = None,
    log_json: Annotated[
        Optional[Path],
        typer.Option(
            "--log-json",
            help="Append one JSON line per scene (input, output, status, seconds, windows, error).",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        Optional[str],
        typer.Option(
            "--scheduler",
            envvar=SCHEDULER_ENV,
            show_envvar=True,
            help="Batch: run the scenes on a Dask cluster: tcp://host:8786, or local:N for N local worker processes.",
            show_default=False,
        ),
    ] = None,
    split_rows: Annotated[
        Optional[int],
        typer.Option(
            "--split-rows",
            help="With --scheduler: split each scene (a raster or a band stack: every band) into N row bands run by different workers, assembled into one COG (byte-identical to an unsplit run; guided bands within 1 DN). For scenes too big for one worker.",
            show_default=False,
        ),
    ] = None,
    profile: Annotated[str, typer.Option(help=f"COG profile: {', '.join(sorted(PROFILES))}.")] = DEFAULT_PROFILE,
    co: Annotated[
        Optional[list[str]],
        typer.Option("--co", help="GDAL creation option NAME=VALUE (repeatable).", callback=check_creation_options),
    ] = None,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Fidelity report: OUT.fidelity.json (degrade-back consistency per band, spectral angle, shift, deviating pixels, uncertainty) and OUT.fidelity.png (LR | SR | uncertainty). Key figures also go in the COG's RSSR_FIDELITY_* tags.",
        ),
    ] = False,
    report_samples: Annotated[
        int, typer.Option("--report-samples", help="Samples (seeds) for the uncertainty map.")
    ] = DEFAULT_SAMPLES,
    max_shift: Annotated[
        Optional[float],
        typer.Option(
            "--max-shift",
            help="Refuse the output (exit 1, nothing written) if the SR content is shifted more than this, in input pixels.",
            show_default=False,
        ),
    ] = None,
    max_consistency_error: Annotated[
        Optional[float],
        typer.Option(
            "--max-consistency-error",
            help="Refuse the output (exit 1, nothing written) if the SR, averaged back onto the input grid, differs from the input by more than this fraction of a band's range (mean, worst band), e.g. 0.01.",
            show_default=False,
        ),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Super-resolve rasters by --scale (or to --resolution) into COGs aligned with their inputs.

    Several inputs (files, directories, globs like 'tiles/*.tif') or a directory -o: batch mode. Each scene goes to
    OUTDIR/--name; a scene whose output already records the same request (model hash, scale, steps, seed, bands) is
    skipped, so re-running a cron job redoes nothing. Each output is locked while written: a second run reports it
    'busy' and goes on. A failing scene is reported and the rest go on.

    MODEL_RULE_HELP
    """
    with cli_session(verbose):
        if aoi is None and aoi_crs is not None:
            raise UsageError("--aoi-crs gives the CRS of --aoi; there is no --aoi")
        settings = UpscaleSettings(
            scale=scale,
            resolution=parse_resolution(resolution) if resolution is not None else None,
            method=method,
            model=ModelOptions(
                device=device.value,
                model=model,
                steps=steps,
                strength=strength,
                precision=precision and precision.value,
                tta=tta,
                style=mode,
                samples=samples,
            ),
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            bands=parse_band_selection(bands),
            aoi=load_aoi(aoi, aoi_crs) if aoi is not None else None,
            seed=seed,
            overwrite=overwrite,
            profile=profile,
            creation_options=parse_creation_options(co or []),
            fidelity=fidelity_options(report, report_samples, max_shift, max_consistency_error),
            threads=threads,
            nodata=nodata,
            guidance=None if guidance else False,
        )
        request = RunRequest(
            tuple(inputs),
            output,
            settings,
            name=name,
            force=force,
            log_json=log_json,
            scheduler=scheduler,
            split_rows=split_rows,
        )
        batch, show = request.is_batch, not quiet
        with (
            scene_bars(show and batch and stderr.is_terminal) as bars,
            progress_bar(show and not batch, "upscaling") as progress,
        ):

            def on_scene(scene: SceneResult) -> None:
                if bars is not None:
                    bars.finish(scene)
                if not quiet or scene.status == FAILED:  # -q hides progress, never errors
                    stderr.print(render_scene_line(scene))

            progress_for: Callable[[SceneJob], Any]
            if bars is not None:
                progress_for = bars.progress_for
            elif show and batch:  # no terminal (a cron log): each scene's lines per 10 %
                progress_for = lambda job: line_progress(sources.base_name(job.src))  # noqa: E731
            else:
                progress_for = lambda _: progress  # noqa: E731
            outcome = run(request, on_scene=on_scene, progress_for=progress_for)
    if not quiet and outcome.result is not None:
        stderr.print(summarize(outcome.result))
    if not quiet and outcome.batch:
        stderr.print(render_batch_summary(list(outcome.scenes)))
    if outcome.failed:
        raise typer.Exit(EXIT_PROCESSING)


upscale_command.__doc__ = (upscale_command.__doc__ or "").replace("MODEL_RULE_HELP", "Which model: " + RULE)


class SceneBars:
    """Batch mode: one progress bar per scene while it runs, removed when its result (and line) arrives."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def progress_for(self, job: SceneJob) -> Callable[[int, int], None]:
        label = sources.base_name(job.src)
        self.tasks[(job.src, str(job.dst))] = task = self.bars.add_task(label, total=None)
        return window_progress(self.bars, task, label, f"{label}: writing COG")

    def finish(self, scene: SceneResult) -> None:
        task = self.tasks.pop((scene.input, scene.output), None)
        if task is not None:
            self.bars.remove_task(task)


@contextmanager
def scene_bars(enabled: bool) -> Iterator[Optional[SceneBars]]:
    if not enabled:
        yield None
        return
    with Progress(*progress_columns(), console=stderr, transient=True) as bars:
        yield SceneBars(bars)


def fidelity_options(
    report: bool, samples: int, max_shift: Optional[float], max_consistency_error: Optional[float]
) -> Optional[FidelityOptions]:
    """Fidelity is measured when a report or a threshold is asked for (it costs a pass over the output)."""
    checks = FidelityChecks(max_shift=max_shift, max_consistency_error=max_consistency_error)
    options = FidelityOptions(write_report=report, samples=samples, checks=checks)  # validates even when unused
    return options if report or max_shift is not None or max_consistency_error is not None else None
