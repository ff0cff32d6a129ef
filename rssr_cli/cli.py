"""`rssr` command line: parses options, builds one settings value, calls the API, renders results.

Exit codes: 0 ok, 1 processing error (bad input file, unwritable output), 2 usage error, 130/143 interrupted (SIGINT/SIGTERM).
Errors are one red line on stderr, never a traceback: RssrError subclasses are translated here and
nowhere else. To add a command: write its API function, then a thin `@app.command()` that calls it
inside `with cli_session(verbose):`.
"""

from __future__ import annotations

import glob
import logging
import os
import signal
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import sources
from .aoi import load_aoi
from .band_names import parse_band_numbers
from .batch import (
    DEFAULT_NAME_TEMPLATE,
    DONE,
    BUSY,
    FAILED,
    SKIPPED,
    JsonLog,
    SceneJob,
    SceneResult,
    check_log_path,
    expand_inputs,
    failed,
    refuse_stray_numbers,
    plan_jobs,
    run_batch,
    scene_fields,
)
from .cog import DEFAULT_PROFILE, PROFILES, check_output_name, parse_creation_options
from .errors import Interrupted, OutputError, RssrError, RssrWarning, UsageError
from .grid import parse_resolution
from .evaluation.fidelity_report import DEFAULT_SAMPLES, FidelityChecks, FidelityOptions
from .distributed import SCHEDULER_ENV, check_split_rows, dask_client, run_batch_on_dask, run_split_batch_on_dask
from .info import ModelReport, RasterReport, describe_model, describe_raster
from .interrupts import raise_on_signals
from .locks import output_lock, sweep_stale
from .raster_io import silence_libtiff
from .pipeline import DEFAULT_BATCH_SIZE, UpscaleResult, UpscaleSettings, upscale
from .products import is_band_stack, is_product_dir
from .stack_pipeline import StackReport, describe_stack

EXIT_PROCESSING, EXIT_USAGE = 1, 2  # and 0 for success
EXIT_CODES_HELP = "Exit codes: 0 ok, 1 processing error (input, output), 2 usage error, 130/143 interrupted by SIGINT/SIGTERM."

# Click's exception base: typer >= 0.20 vendors its own click, older versions re-export click's.
ClickException = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


class OneLineUsageErrors(typer.core.TyperGroup):
    """Click's usage errors (a missing or unparseable option) as the one `error:` line and exit 2 that every
    other refusal gives, instead of Typer's boxed usage text: a cron log greps one line per failure."""

    def main(self, args: Any = None, prog_name: Optional[str] = None, complete_var: Optional[str] = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ClickException as error:
            if type(error).__name__ != "NoArgsIsHelpError":  # bare `rssr`: the help was printed already
                report_error(usage_error_line(error))
            code = error.exit_code
        except typer.Abort:
            stderr.print("[bold red]error:[/] aborted")
            code = EXIT_PROCESSING
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


def usage_error_line(error: Exception) -> str:
    """Click's message on one line, with where to read the options."""
    message = " ".join(error.format_message().split())
    ctx = getattr(error, "ctx", None)
    return f"{message} (see '{ctx.command_path} --help')" if ctx is not None else message


app = typer.Typer(
    name="rssr",
    cls=OneLineUsageErrors,
    help=f"Super-resolve georeferenced rasters into Cloud-Optimized GeoTIFFs.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)


# ---- shared options and plumbing (reuse these in new commands) --------------------------------------

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, per-scene lines or summary (for cron); errors and failed scenes are still shown.")]
Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log details (-vv for debug).")]


def exit_code_for(error: RssrError) -> int:
    if isinstance(error, Interrupted):
        return 128 + error.signum  # 130 (SIGINT), 143 (SIGTERM): what shells and supervisors expect
    return EXIT_USAGE if isinstance(error, UsageError) else EXIT_PROCESSING


def report_error(error: BaseException) -> None:
    stderr.print(f"[bold red]error:[/] {escape(str(error))}")


@contextmanager
def cli_session(verbose: int = 0) -> Iterator[None]:
    """Logging and warnings set up for one command; RssrError -> one red line + exit code."""
    silence_libtiff()  # its raw "_tiffWriteProc: ..." lines would precede our one-line error
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("rssr_cli")
    previous_level = logger.level
    if verbose:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    try:
        # Every stage of every command (expanding inputs, sweeping, training) turns SIGINT/SIGTERM into one line and
        # exit 130/143; the pipeline installs its own handler, which also says that no output was written.
        with raise_on_signals(outcome=""), warnings.catch_warnings():
            warnings.simplefilter("default" if verbose else "ignore")  # third-party chatter only with -v
            warnings.simplefilter("always", RssrWarning)
            warnings.showwarning = _show_warning
            yield
    except RssrError as error:
        report_error(error)
        raise typer.Exit(exit_code_for(error)) from None
    except OSError as error:
        # Last resort for an OS error no layer put in words, e.g. a path component longer than NAME_MAX that
        # any stat() raises on: an I/O failure (exit 1) in one line, never a traceback.
        report_error(os_error_line(error))
        raise typer.Exit(EXIT_PROCESSING) from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def os_error_line(error: OSError) -> str:
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename is not None else reason


def _show_warning(message: Any, category: type, *_: Any, **__: Any) -> None:
    label = "warning" if issubclass(category, RssrWarning) else category.__name__
    stderr.print(f"[yellow]{label}:[/] {escape(str(message))}")


def parse_bands(value: Optional[str]) -> Optional[tuple[int, ...]]:
    """'1,3,4' -> (1, 3, 4); 1-based like GDAL."""
    if value is None:
        return None
    try:
        return parse_band_numbers(value)
    except UsageError as error:
        raise typer.BadParameter(str(error)) from None


def parse_band_selection(value: Optional[str]) -> Optional[tuple[int | str, ...]]:
    """upscale/info --bands: '1,3,4' -> (1, 3, 4) (1-based like GDAL); 'B04,B08' -> ('B04', 'B08') (band names:
    descriptions, or Sentinel-2 ids and common names for products); 'all' -> ('all',)."""
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise typer.BadParameter("no band given")
    if any(part.lower() == "all" for part in parts) and len(parts) > 1:
        raise typer.BadParameter(f"'all' stands alone, got {value!r}")
    return tuple(int(part) if part.isdigit() else part for part in parts)


def check_creation_options(values: Optional[list[str]]) -> Optional[list[str]]:
    """Shared --co callback: reject a malformed NAME=VALUE as a usage error before anything runs."""
    try:
        parse_creation_options(values or [])
    except UsageError as error:
        raise typer.BadParameter(str(error)) from None
    return values


@contextmanager
def progress_bar(enabled: bool, label: str, finishing: str = "writing COG") -> Iterator[Any]:
    """A rich progress bar on stderr fed by the API's progress(done, total) callback; a no-op when disabled.

    `finishing` replaces the label once done == total (the API may still be working: e.g. building the COG)."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()
    )  # fmt: skip
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            # after the last window the API still builds the COG (overviews, compression): say so
            bar.update(task, completed=done, total=total, description=label if done < total else finishing)

        yield update


# ---- rssr upscale --------------------------------------------------------------------------------------


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def backend_options(
    device: Device, model: Optional[Path], steps: Optional[int], strength: Optional[float], precision: Optional[Precision]
) -> dict[str, Any]:
    """Options for the backend factory; model options only when given, so classical methods never see them."""
    given = {"model": model, "steps": steps, "strength": strength, "precision": precision and precision.value}
    return {"device": device.value, **{k: v for k, v in given.items() if v is not None}}


BATCH_HELP = (
    "Several inputs (files, directories, globs like 'tiles/*.tif') or a directory -o: batch mode. Each scene goes to "
    "OUTDIR/--name; a scene whose output already records the same request (model hash, scale, steps, seed, bands) is "
    "skipped, so re-running a cron job redoes nothing. Each output is locked while written: a second run reports it "
    "'busy' and goes on. A failing scene is reported and the rest go on."
)
BATCH_EXIT_HELP = f"{EXIT_CODES_HELP} In batch mode 1 means at least one scene failed (busy and skipped scenes are not failures)."


@app.command("upscale", epilog=BATCH_EXIT_HELP)
def upscale_command(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Input raster(s): files, directories, quoted globs, URLs (http(s)://, s3://, gs://), /vsi paths or GDAL connection strings (SENTINEL2_L2A:..., GTIFF_DIR:...).", show_default=False),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output COG path; a directory (or DIR/) in batch mode.", show_default=False)
    ],
    scale: Annotated[Optional[float], typer.Option("--scale", "-s", help="Scale factor, any real > 1 (e.g. 4.5).")] = None,
    resolution: Annotated[
        Optional[str],
        typer.Option("--resolution", "-r", help="Target pixel size in CRS units: X, or X,Y for x and y (like gdalwarp -tr X Y).", show_default=False),
    ] = None,
    method: Annotated[
        Optional[str],
        typer.Option("--method", "-m", help="SR method: diffusion (the model), bicubic, lanczos, nearest (default: diffusion; an error if no model is found)."),
    ] = None,
    bands: Annotated[
        Optional[str],
        typer.Option("--bands", "-b", help="Bands to process, in output order: 1-based numbers (1,3,4) or names (B04,B03,B02,B08; a band's description, or for Sentinel-2 products also red, nir08, ...); 'all'. Default: all bands; for products the four 10 m bands."),
    ] = None,
    aoi: Annotated[
        Optional[str],
        typer.Option("--aoi", help="Area of interest: a GeoJSON file (EPSG:4326 unless it says) or a WKT polygon (in the raster's CRS unless --aoi-crs). Only its windows run; pixels outside are nodata.", show_default=False),
    ] = None,
    aoi_crs: Annotated[Optional[str], typer.Option("--aoi-crs", help="CRS of --aoi, e.g. EPSG:4326 (overrides the file's).", show_default=False)] = None,
    nodata: Annotated[
        Optional[float],
        typer.Option("--nodata", help="Declare a nodata value the input files do not carry (Sentinel-2: 0): those pixels are invalid, and nodata in the output, which carries this value. Replaces the file's own nodata or mask.", show_default=False),
    ] = None,
    guidance: Annotated[
        bool,
        typer.Option("--guidance/--no-guidance", help="Sentinel-2 stacks: sharpen the 20 m and 60 m bands with the 10 m bands' detail (guided model); off: every band on its own."),
    ] = True,
    tile: Annotated[Optional[int], typer.Option(help="LR window core size in px [default: 256 for classical methods; ~512/scale for the model]", show_default=False)] = None,
    overlap: Annotated[Optional[int], typer.Option(help="LR halo around each window in px, blended [default: min(32, tile/4)]", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per backend call.")] = DEFAULT_BATCH_SIZE,
    device: Annotated[Device, typer.Option(help="Where the model runs (classical methods ignore it).")] = Device.auto,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", help="CPU threads for the model and for GDAL (GDAL_NUM_THREADS) (default: $OMP_NUM_THREADS, else all cores).", show_default=False),
    ] = None,
    model: Annotated[Optional[Path], typer.Option(help="Model checkpoint (diffusion) (default: $RSSR_MODEL, else the model installed with rssr).", show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option(help="Denoising steps (diffusion).", show_default=False)] = None,
    strength: Annotated[Optional[float], typer.Option(help="Noise strength t0/T (diffusion).", show_default=False)] = None,
    precision: Annotated[Optional[Precision], typer.Option(help="Compute precision (diffusion).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed for stochastic methods (per window, order independent).")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists (batch: outputs made by a different request).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Batch: redo scenes already done with the same request.")] = False,
    name: Annotated[str, typer.Option("--name", help="Batch: output file name template; fields {stem} {name} {scale} {resolution} {method} {seed}.")] = DEFAULT_NAME_TEMPLATE,
    log_json: Annotated[Optional[Path], typer.Option("--log-json", help="Append one JSON line per scene (input, output, status, seconds, windows, error).", show_default=False)] = None,
    scheduler: Annotated[
        Optional[str],
        typer.Option("--scheduler", envvar=SCHEDULER_ENV, help="Batch: run the scenes on a Dask cluster: tcp://host:8786, or local:N for N local worker processes.", show_default=False),
    ] = None,
    split_rows: Annotated[
        Optional[int],
        typer.Option("--split-rows", help="With --scheduler: split each scene into N row bands run by different workers, assembled into one COG (byte-identical to an unsplit run). For scenes too big for one worker.", show_default=False),
    ] = None,
    profile: Annotated[str, typer.Option(help=f"COG profile: {', '.join(sorted(PROFILES))}.")] = DEFAULT_PROFILE,
    co: Annotated[
        Optional[list[str]],
        typer.Option("--co", help="GDAL creation option NAME=VALUE (repeatable).", callback=check_creation_options),
    ] = None,
    report: Annotated[
        bool,
        typer.Option("--report", help="Fidelity report: OUT.fidelity.json (degrade-back consistency per band, spectral angle, shift, deviating pixels, uncertainty) and OUT.fidelity.png (LR | SR | uncertainty). Key figures also go in the COG's RSSR_FIDELITY_* tags."),
    ] = False,
    report_samples: Annotated[int, typer.Option("--report-samples", help="Samples (seeds) for the uncertainty map.")] = DEFAULT_SAMPLES,
    max_shift: Annotated[
        Optional[float],
        typer.Option("--max-shift", help="Refuse the output (exit 1, nothing written) if the SR content is shifted more than this, in input pixels.", show_default=False),
    ] = None,
    max_consistency_error: Annotated[
        Optional[float],
        typer.Option("--max-consistency-error", help="Refuse the output (exit 1, nothing written) if the SR, averaged back onto the input grid, differs from the input by more than this fraction of a band's range (mean, worst band), e.g. 0.01.", show_default=False),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Super-resolve rasters by --scale (or to --resolution) into COGs aligned with their inputs."""
    with cli_session(verbose):
        refuse_stray_numbers(inputs)
        settings = UpscaleSettings(
            scale=scale,
            resolution=parse_resolution(resolution) if resolution is not None else None,
            method=method,
            backend_options=backend_options(device, model, steps, strength, precision),
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
        if aoi is None and aoi_crs is not None:
            raise UsageError("--aoi-crs gives the CRS of --aoi; there is no --aoi")
        if split_rows is not None:
            check_split_rows(split_rows)
        if split_rows is not None and not scheduler:
            raise UsageError("--split-rows runs the row bands on a Dask cluster: give --scheduler too (e.g. local:2)")
        if not is_batch(inputs, output):
            check_output_name(Path(output))  # before the lock file beside it is made
            if scheduler and split_rows is None:
                raise UsageError("--scheduler distributes the scenes of a batch: give several inputs or a directory -o, or --split-rows")
            job = SceneJob(inputs[0], Path(output))
            check_log_path(log_json, [job])
            if split_rows is None:
                upscale_one(job.src, job.dst, settings, force=force, log_json=log_json, quiet=quiet)
                return
            results = upscale_many([job], settings, force=force, log_json=log_json, scheduler=scheduler, quiet=quiet, split_rows=split_rows)
            if failed(results):
                raise typer.Exit(EXIT_PROCESSING)
            return
        sources = expand_inputs(inputs)
        output = Path(output)
        if output.exists() and not output.is_dir():
            raise UsageError(f"-o {output} must be a directory when several scenes are written")
        jobs = plan_jobs(sources, output, settings, name)
        check_log_path(log_json, jobs)
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output directory {output}: {exc.strerror or exc}") from None
        results = upscale_many(jobs, settings, force=force, log_json=log_json, scheduler=scheduler, quiet=quiet, split_rows=split_rows)
        if not quiet:
            stderr.print(render_batch_summary(results))
        if failed(results):
            raise typer.Exit(EXIT_PROCESSING)


def fidelity_options(
    report: bool, samples: int, max_shift: Optional[float], max_consistency_error: Optional[float]
) -> Optional[FidelityOptions]:
    """Fidelity is measured when a report or a threshold is asked for (it costs a pass over the output)."""
    checks = FidelityChecks(max_shift=max_shift, max_consistency_error=max_consistency_error)
    options = FidelityOptions(write_report=report, samples=samples, checks=checks)  # validates even when unused
    return options if report or max_shift is not None or max_consistency_error is not None else None


def is_batch(inputs: list[str], output: str) -> bool:
    """Batch mode: several inputs, a local directory (not a .SAFE product: one scene), a glob (a local name that
    does not exist and has * ? [), or an output that is (or is spelled as) a directory. A URL's query string is
    never a glob."""
    if len(inputs) != 1:
        return True
    src = inputs[0]
    if sources.is_local(src) and (
        (os.path.isdir(src) and not is_product_dir(Path(src))) or (glob.has_magic(src) and not os.path.exists(src))
    ):
        return True
    return Path(output).is_dir() or output.endswith(("/", os.sep))


def upscale_one(src: str, dst: Path, settings: UpscaleSettings, *, force: bool, log_json: Optional[Path], quiet: bool) -> None:
    """One scene to one path, as before batches existed: an existing DST needs --overwrite (or --force)."""
    if force:
        settings = replace(settings, overwrite=True)
    with JsonLog(log_json) as log:
        started = time.perf_counter()
        try:
            with output_lock(dst), progress_bar(not quiet and stderr.is_terminal, "upscaling") as progress:
                result = upscale(src, dst, settings, progress=progress)
        except RssrError as error:
            figures = getattr(error, "figures", None)
            seconds = time.perf_counter() - started
            log.write(SceneResult(
                str(src), str(dst), FAILED, seconds, error.windows, error.skipped_windows, error=str(error), fidelity=figures,
            ))  # fmt: skip
            raise
        log.write(SceneResult(str(src), str(dst), DONE, result.seconds, **scene_fields(result)))
    if not quiet:
        stderr.print(summarize(result))


def upscale_many(
    jobs: list[SceneJob],
    settings: UpscaleSettings,
    *,
    force: bool,
    log_json: Optional[Path],
    scheduler: Optional[str],
    quiet: bool,
    split_rows: Optional[int] = None,
) -> list[SceneResult]:
    """Run a batch in-process or on Dask; each scene's result goes to the JSON log (and a line, unless -q) at once.
    First, what killed runs left in the output folders (staging directories, lock files) is removed."""
    for folder in dict.fromkeys(job.dst.parent for job in jobs):
        for path in sweep_stale(folder):
            logging.getLogger("rssr_cli.locks").info("removed %s, left by a run that is gone", path)
    finished: list[SceneResult] = []
    with JsonLog(log_json) as log:

        def on_scene(scene: SceneResult) -> None:
            finished.append(scene)
            log.write(scene)
            if not quiet or scene.status == FAILED:  # -q hides progress, never errors
                stderr.print(render_scene_line(scene))

        # An interrupt stops the batch between (or inside) scenes, never mid-write; it says what was completed.
        try:
            with raise_on_signals():
                if scheduler:
                    gpu = settings.backend_options.get("device") == Device.cuda.value
                    with dask_client(scheduler, gpu=gpu) as client:
                        if split_rows is not None:
                            return run_split_batch_on_dask(jobs, settings, client, split_rows, force=force, on_scene=on_scene)
                        return run_batch_on_dask(jobs, settings, client, force=force, on_scene=on_scene)
                return run_batch(jobs, settings, force=force, on_scene=on_scene, progress_for=lambda job: None)
        except Interrupted as interrupt:
            name = signal.Signals(interrupt.signum).name
            counts = ", ".join(f"{sum(s.status == status for s in finished)} {status}" for status in (DONE, SKIPPED, BUSY, FAILED))
            raise Interrupted(
                f"interrupted by {name} after {len(finished)} of {len(jobs)} scene(s) ({counts}); the scene in progress "
                "was not written", interrupt.signum,
            ) from None


STATUS_STYLE = {DONE: "green", SKIPPED: "dim", BUSY: "yellow", FAILED: "bold red"}


def render_scene_line(scene: SceneResult) -> str:
    style = STATUS_STYLE.get(scene.status, "")
    detail = f" {escape(scene.error)}" if scene.error else ""
    windows = f", {scene.windows} windows ({scene.skipped_windows} empty)" if scene.status == DONE else ""
    return f"[{style}]{scene.status:>7}[/] {escape(sources.base_name(scene.input))} -> {escape(scene.output)} ({scene.seconds:.1f} s{windows}){detail}"


def render_batch_summary(results: list[SceneResult]) -> Table:
    counts = {status: sum(r.status == status for r in results) for status in (DONE, SKIPPED, BUSY, FAILED)}
    table = Table(title=f"{len(results)} scene(s)", show_edge=False)
    for column in ("status", "scenes", "seconds", "windows", "empty windows"):
        table.add_column(column, justify="right" if column != "status" else "left")
    for status, count in counts.items():
        rows = [r for r in results if r.status == status]
        table.add_row(
            f"[{STATUS_STYLE[status]}]{status}[/]", str(count), f"{sum(r.seconds for r in rows):.1f}",
            str(sum(r.windows for r in rows)), str(sum(r.skipped_windows for r in rows)),
        )  # fmt: skip
    return table


def summarize(result: UpscaleResult) -> str:
    return (
        f"wrote {escape(str(result.dst))}: {result.width}x{result.height} px, {result.bands} band(s) {result.dtype}, "
        f"{result.method} x{result.scale_x:.4g}, {result.windows} windows in {result.seconds:.1f} s "
        f"({result.megapixels_per_second:.2f} Mpix/s)"
        + (f"; {result.skipped_windows} all-nodata windows skipped" if result.skipped_windows else "")
        + (f"; {result.outside_aoi_windows} windows outside the AOI not read" if result.outside_aoi_windows else "")
        + (f"\nfidelity: {result.fidelity.summary()}" if result.fidelity is not None else "")
    )


# ---- rssr info -----------------------------------------------------------------------------------------


@app.command("info", epilog=EXIT_CODES_HELP)
def info_command(
    src: Annotated[
        Optional[str],
        typer.Argument(help="Raster to describe: a file, URL, /vsi path, GDAL connection string, Sentinel-2 product (.SAFE, .SAFE.zip) or STAC item (with --model: the model's .safetensors).", show_default=False),
    ] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", "-s", help="Preview the output at this scale.")] = None,
    resolution: Annotated[
        Optional[str], typer.Option("--resolution", "-r", help="Preview the output at this pixel size: X or X,Y.", show_default=False)
    ] = None,
    bands: Annotated[Optional[str], typer.Option("--bands", "-b", help="Bands the preview counts: 1,3,4 or B04,B8A")] = None,
    model: Annotated[
        bool, typer.Option("--model", help="Describe a model instead: SRC is its .safetensors (default: the default model).")
    ] = False,
    verbose: Verbose = 0,
) -> None:
    """Print a raster's grid, bands and nodata, and what `upscale` would produce; or a model's card (--model)."""
    with cli_session(verbose):
        if model:
            if scale is not None or resolution is not None or bands is not None:
                raise UsageError("--scale, --resolution and --bands preview a raster's output; not with --model")
            for line in render_model_report(describe_model(src)):
                stdout.print(line)
            return
        if src is None:
            raise UsageError("give a raster to describe: rssr info SRC [--scale S], or a model: rssr info --model [PATH]")
        pixel_size = parse_resolution(resolution) if resolution is not None else None
        if is_band_stack(str(src)):
            stack = describe_stack(str(src), scale=scale, resolution=pixel_size, bands=parse_band_selection(bands))
            for line in render_stack_report(stack):
                stdout.print(line)
            return
        report = describe_raster(src, scale=scale, resolution=pixel_size, bands=parse_band_selection(bands))
        for line in render_report(report):
            stdout.print(line)


def render_report(report: RasterReport) -> list[str]:
    t = report.transform
    w, s, e, n = report.bounds
    lines = [
        f"[bold]{escape(report.path)}[/]",
        f"  size        {report.width} x {report.height} px, {len(report.bands)} band(s), {report.dtype}",
        f"  crs         {escape(report.crs) if report.crs else 'none (pixel grid only)'}",
        f"  transform   ({t.a:.10g}, {t.b:.10g}, {t.c:.10g}, {t.d:.10g}, {t.e:.10g}, {t.f:.10g})",
        f"  pixel size  {report.pixel_size[0]:.10g} x {report.pixel_size[1]:.10g}",
        f"  bounds      west {w:.10g}, south {s:.10g}, east {e:.10g}, north {n:.10g}",
        f"  invalid px  {escape(report.validity)}",
        "  bands",
    ]
    for band in report.bands:
        extra = f", scale {band.scale:g} offset {band.offset:g}" if (band.scale, band.offset) != (1.0, 0.0) else ""
        lines.append(f"    {band.index:>3}  {escape(band.description or '-'):<16} {band.colorinterp}{extra}")
    if report.provenance:  # an rssr output: how it was made, and its fidelity figures when measured
        lines.append("[bold]made by rssr[/]")
        width = max(len(k) for k in report.provenance)
        lines += [f"  {k:<{width}}  {escape(v)}" for k, v in report.provenance.items()]
    if report.preview is not None:
        p = report.preview
        lines += [
            "[bold]upscale would write[/]",
            f"  size        {p.width} x {p.height} px (x{p.scale_x:.6g}, x{p.scale_y:.6g}), {p.bands} band(s), {p.dtype}",
            f"  pixel size  {p.pixel_size[0]:.10g} x {p.pixel_size[1]:.10g}",
            f"  data        {_human_bytes(p.uncompressed_bytes)} uncompressed (+~1/3 overviews, before compression)",
        ]
    return lines


def render_stack_report(report: StackReport) -> list[str]:
    """A product's or STAC item's bands (name, pixel size, size, file) and, with -s/-r, the output upscale would write."""
    nodata = "none" if report.nodata is None else f"{report.nodata:g}"
    lines = [f"[bold]{escape(report.source)}[/]", f"  kind        {escape(report.kind)}, nodata {nodata}", "  bands"]
    for band in report.bands:
        crs = band.crs.to_string() if band.crs else "no CRS"
        lines.append(
            f"    {escape(band.name):<5} {band.resolution:>6g} m  {band.width} x {band.height} px  {band.dtype}  {escape(crs)}  {escape(band.dataset.rsplit('/', 1)[-1])}"
        )
    if report.grid is not None:
        t = report.grid.transform
        scales = ", ".join(f"{name} {'copied' if s is None else f'x{s:.4g}'}" for name, s in report.band_scales)
        lines += [
            "[bold]upscale would write[/]",
            f"  bands       {', '.join(report.selected)}",
            f"  size        {report.grid.width} x {report.grid.height} px, pixel size {abs(t.a):.10g} x {abs(t.e):.10g}",
            f"  per band    {escape(scales)}",
        ]
    else:
        lines.append(f"  default     --bands {','.join(report.selected)}")
    return lines


def render_model_report(report: ModelReport) -> list[str]:
    lines = [
        f"[bold]{escape(report.id)}[/]  {escape(report.weights)}",
        f"  sha256         {report.sha256}",
        f"  size           {_human_bytes(report.size_bytes)}, {report.parameters:,} parameters"
        + (f", rssr {escape(report.rssr_version)}" if report.rssr_version else ""),
        f"  card           {escape(report.card) if report.card else 'none (description embedded in the weights only)'}",
        "  architecture",
    ]
    for part in report.parts:
        args = ", ".join(f"{k}={v}" for k, v in part.args.items())
        lines.append(f"    {part.role:<15}{escape(part.name)} ({part.parameters:,} params): {escape(args)}")
    lines += [f"  bands          {report.channels} channel(s); {escape(report.band_rule)}", "  normalization"]
    lines += _render_mapping(report.normalization, 4)
    lines.append("  diffusion")
    lines += _render_mapping(report.diffusion, 4)
    lines.append("  sampler        " + ", ".join(f"{k} {v}" for k, v in report.sampler.items()))
    for title, mapping in (("training", report.training), ("metrics", report.metrics)):
        lines.append(f"  {title}" + ("" if mapping else "       none recorded"))
        lines += _render_mapping(mapping, 4)
    return lines


def _render_mapping(mapping: dict, indent: int) -> list[str]:
    """Nested dicts as indented `key  value` lines; other values inline (lists as comma lists)."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            lines.append(" " * indent + escape(str(key)))
            lines += _render_mapping(value, indent + 2)
            continue
        if isinstance(value, (list, tuple)):
            text = ", ".join(map(str, value))
        elif isinstance(value, float):
            text = f"{value:.6g}"
        else:
            text = str(value)
        lines.append(" " * indent + f"{escape(str(key)):<{max(1, 15 - indent + 2)}} {escape(text)}")
    return lines


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _register_late_commands() -> None:
    from .cli_evaluate import evaluate_command
    from .cli_train import train_command  # these modules import this one: register after app exists

    app.command("train", epilog=EXIT_CODES_HELP)(train_command)
    app.command("evaluate", epilog=EXIT_CODES_HELP)(evaluate_command)


_register_late_commands()


def main() -> None:
    """Console entry point; RssrError raised outside a command body still becomes one line + exit code."""
    try:
        app(prog_name="rssr")
    except RssrError as error:
        report_error(error)
        sys.exit(exit_code_for(error))


if __name__ == "__main__":
    main()
