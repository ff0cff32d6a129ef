"""`rssr evaluate`: parses options into CompareSettings, calls rssr_cli.evaluation, renders tables (registered in cli/app.py).

Three modes, exactly one per call: HR_DIR (degrade, super-resolve, score vs the HR), --pairs LR HR (a real
cross-resolution pair), --fidelity SR LR (an SR against its own input, no HR needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Optional, TypeVar

import typer
from rich.table import Table

from rssr_cli.cli.common import (
    Device,
    Quiet,
    Verbose,
    cli_session,
    comma_list,
    parse_bands,
    progress_bar,
    shown,
    stderr,
    stdout,
)
from rssr_cli.core.errors import UsageError
from rssr_cli.evaluation.compare import (
    COMPARISON_COLUMNS,
    DEFAULT_METHODS,
    DETAIL_COLUMNS,
    PAIR_COLUMNS,
    PAIRED_COLUMNS,
    POSTERIOR_COLUMNS,
    CompareSettings,
    PairComparison,
    compare_on_folder,
    compare_on_pair,
    comparison_rows,
    detail_rows,
    find_model,
    posterior_legend,
    posterior_rows,
)
from rssr_cli.evaluation.fidelity_files import FIDELITY_COLUMNS, fidelity_of_files, fidelity_rows
from rssr_cli.evaluation.fidelity_report import FidelityReport
from rssr_cli.evaluation.protocol import DEFAULT_SCALES, EvaluationReport
from rssr_cli.io.products import is_input_path

if TYPE_CHECKING:  # the run-time import is the --wald branch's (torch)
    from rssr_cli.sharpen.wald import WaldReport

T = TypeVar("T")
DEFAULT_SCALES_TEXT = ",".join(f"{s:g}" for s in DEFAULT_SCALES)


def parse_list(values: Optional[list[str]], convert: Callable[[str], T], what: str) -> tuple[T, ...]:
    """Repeatable and/or comma-separated option values: ['0,1', '5'] -> (0, 1, 5)."""
    try:
        return tuple(convert(p) for p in comma_list(values))
    except ValueError:
        raise typer.BadParameter(f"expected a comma-separated list of {what}, got {','.join(values or [])!r}") from None


def evaluate_command(
    hr_dir: Annotated[
        Optional[Path],
        typer.Argument(
            help="Folder of HR images (PNG, JPEG, TIFF; recursive) to degrade and restore.", show_default=False
        ),
    ] = None,
    pairs: Annotated[
        Optional[tuple[Path, Path]],
        typer.Option(
            "--pairs",
            metavar="LR HR",
            help="Score SR of a real LR raster against a real HR raster of the same area.",
            show_default=False,
        ),
    ] = None,
    fidelity: Annotated[
        Optional[tuple[Path, Path]],
        typer.Option(
            "--fidelity",
            metavar="SR LR",
            help="Consistency and shift of an SR raster vs the LR it was made from (no HR).",
            show_default=False,
        ),
    ] = None,
    wald: Annotated[
        Optional[str],
        typer.Option(
            "--wald",
            metavar="PRODUCT_OR_STACK",
            help="Wald's protocol on a Sentinel-2 product, STAC item or folder of band files: every band degraded (20 m by 2, 60 m by 6) and restored; RMSE, SRE, SAM, ERGAS for bicubic, the unguided model and the guided model.",
            show_default=False,
        ),
    ] = None,
    wald_split: Annotated[
        str,
        typer.Option(
            "--wald-split",
            help="--wald rows scored: test (the bottom eighth, never trained on) or all (a scene never trained on).",
        ),
    ] = "test",
    scales: Annotated[
        list[str],
        typer.Option("--scales", "-s", metavar="S,S,...", help="Scales (folder mode), comma list or repeated."),
    ] = [DEFAULT_SCALES_TEXT],  # noqa: B006
    model: Annotated[
        Optional[Path],
        typer.Option(
            help="Model: a shipped model's name (rssr info --models) or a checkpoint path (default: $RSSR_MODEL, else aerial, if present).",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="K,K,...",
            help="LR-start step counts: 0,1,5,10 (0 = prior only; default: the card's).",
            show_default=False,
        ),
    ] = None,
    strength: Annotated[
        Optional[float], typer.Option(help="LR-start strength t0/T (default: the card's).", show_default=False)
    ] = None,
    full_chain: Annotated[
        Optional[list[str]],
        typer.Option(
            "--full-chain",
            metavar="N,N,...",
            help="Also the full chain from pure noise at these step counts: 50,200.",
            show_default=False,
        ),
    ] = None,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta", help="Also each model variant with the 8-way self-ensemble (flips/transposes; 8x the cost)."
        ),
    ] = False,
    methods: Annotated[
        list[str],
        typer.Option(
            "--methods",
            "--method",
            "-m",
            metavar="NAME,...",
            help="Classical methods to compare, comma list or repeated.",
        ),
    ] = [",".join(DEFAULT_METHODS)],  # noqa: B006
    limit: Annotated[
        Optional[int],
        typer.Option(
            help="Only N images, evenly spaced over the sorted paths (spans every class folder).", show_default=False
        ),
    ] = None,
    lr_bands: Annotated[
        Optional[str],
        typer.Option(
            "--lr-bands", metavar="B,B,...", help="LR bands, 1-based (--pairs, --fidelity).", show_default=False
        ),
    ] = None,
    hr_bands: Annotated[
        Optional[str],
        typer.Option(
            "--hr-bands", metavar="B,B,...", help="HR bands paired with --lr-bands (--pairs).", show_default=False
        ),
    ] = None,
    json_out: Annotated[
        Optional[Path], typer.Option("--json", help="Write the full results as JSON here.", show_default=False)
    ] = None,
    device: Annotated[Device, typer.Option(help="Where the model runs.")] = Device.auto,
    threads: Annotated[
        Optional[int], typer.Option(help="CPU threads (default: all cores).", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the stochastic samplers (per image).")] = 0,
    degradation: Annotated[
        Optional[str],
        typer.Option(
            help="How the truth is degraded. HR_DIR mode: bicubic (anti-aliased resize; default) | sentinel2 (the sensor model's evaluation member: Gaussian PSF with MTF 0.3 at the LR Nyquist, then the pixel's box aggregate). --wald: psf (the matched Gaussian, MTF 0.25 at the coarse Nyquist; default) | box (a plain block mean).",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            metavar="K",
            help="Also judge each model variant as a posterior sampler: K >= 2 samples per image, seven bars (spectral realism, cross-power, distortion, energy score vs a Gaussian null, kurtosis, consistency, spread) with 95 % CIs (HR_DIR mode).",
        ),
    ] = 0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Measure SR quality: PSNR/SSIM on a folder of HR images, on a real LR/HR pair, or fidelity to the input."""
    with cli_session(verbose):
        modes = [
            m
            for m, given in (("HR_DIR", hr_dir), ("--pairs", pairs), ("--fidelity", fidelity), ("--wald", wald))
            if given is not None
        ]
        if len(modes) != 1:
            raise UsageError(
                "give exactly one of: HR_DIR, --pairs LR HR, --fidelity SR LR, --wald PRODUCT"
                + (f" (got {', '.join(modes)})" if modes else "")
            )
        if samples and (wald is not None or fidelity is not None):
            raise UsageError(
                "--samples needs HR_DIR mode (the truth and the degradation of every image are known there)"
            )
        inputs = [wald, *(pairs or ()), *(fidelity or ())]
        if json_out is not None and any(is_input_path(json_out, src) for src in inputs if src is not None):
            raise UsageError(f"--json {json_out} is a file this evaluation reads; give a separate file")
        if wald is not None:
            if wald_split not in ("test", "all"):
                raise UsageError(f"--wald-split must be test or all, got {wald_split!r}")
            # lazy: Wald's protocol runs the model and the sharpener (torch); `rssr` starts without it (issue 22)
            from rssr_cli.sharpen.wald import DEGRADATIONS as WALD_DEGRADATIONS
            from rssr_cli.sharpen.wald import evaluate_wald

            wald_degradation = degradation or "psf"
            if wald_degradation not in WALD_DEGRADATIONS:
                raise UsageError(
                    f"--degradation with --wald must be {' or '.join(WALD_DEGRADATIONS)}, got {wald_degradation!r}"
                )
            wald_result = evaluate_wald(
                wald,
                split=wald_split,
                model=str(model) if model else None,
                device=device.value,
                threads=threads,
                degradation=wald_degradation,
            )
            _emit(json.dumps(wald_result.as_dict(), indent=1), json_out, quiet, lambda: _print_wald(wald_result))
            return
        if fidelity is not None:
            result = fidelity_of_files(*fidelity, lr_bands=parse_bands(lr_bands))
            _emit(result.to_json(), json_out, quiet, lambda: _print_fidelity(result))
            return
        settings = CompareSettings(
            model=find_model(model),
            steps=parse_list(steps, int, "integers"),
            strength=strength,
            full_chain=parse_list(full_chain, int, "integers"),
            tta=tta,
            methods=parse_list(methods, str, "method names"),
            device=device.value,
            threads=threads,
            seed=seed,
            degradation=degradation or "bicubic",
            samples=samples,
        )
        if settings.model is None and not quiet:
            stderr.print("no model found (no --model, no default model): evaluating classical methods only")
        if pairs is not None:
            comparison = compare_on_pair(
                *pairs, settings, lr_bands=parse_bands(lr_bands), hr_bands=parse_bands(hr_bands)
            )
            _emit(comparison.to_json(), json_out, quiet, lambda: _print_pairs(comparison))
            return
        assert hr_dir is not None, "the one mode left is HR_DIR"
        with progress_bar(not quiet, "evaluating", finishing="evaluating") as progress:
            report = compare_on_folder(
                hr_dir, settings, parse_list(scales, float, "numbers"), limit=limit, progress=progress
            )
        _emit(report.to_json(), json_out, quiet, lambda: _print_folder(report))


def _print_wald(report: WaldReport) -> None:
    for group in report.groups:
        title = f"Wald's protocol, {group.resolution} m bands at r = {group.ratio:g}, {report.degradation} degradation ({report.split} rows of {report.source})"
        columns = ("band", "metric", *report.methods)
        rows = []
        for band, scores in group.bands.items():
            rows.append((band, "RMSE", *(f"{scores[m]['rmse']:.2f}" for m in report.methods)))
            rows.append((band, "SRE dB", *(f"{scores[m]['sre']:.2f}" for m in report.methods)))
        for metric, fmt in (("rmse", "{:.2f}"), ("sam", "{:.3f}"), ("ergas", "{:.3f}")):
            label = {"rmse": "RMSE", "sam": "SAM deg", "ergas": "ERGAS"}[metric]
            rows.append(("group", label, *(fmt.format(group.group[m][metric]) for m in report.methods)))
        stdout.print(_table(columns, rows, shown(title)))


def _emit(text: str, json_out: Optional[Path], quiet: bool, render: Callable[[], None]) -> None:
    if json_out is not None:
        json_out.write_text(text + "\n")
    if not quiet:
        render()
        if json_out is not None:
            stderr.print(f"wrote {shown(str(json_out))}")


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]], title: str, *, labels: int = 2) -> Table:
    """The first `labels` columns are names (left-aligned), the rest numbers (right-aligned, headers unwrapped)."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(
            column, justify="left" if i < labels else "right", min_width=len(column) if i >= labels else None
        )
    for row in rows:
        table.add_row(*map(shown, row))
    return table


def _print_folder(report: EvaluationReport) -> None:
    title = (
        f"{report.meta['images']} image(s) from {report.meta['hr_dir']}; border {report.border_rule}; "
        f"degradation {report.degradation}"
    )
    stdout.print(_table(COMPARISON_COLUMNS, comparison_rows(report), shown(title)))
    means, paired = detail_rows(report)
    if means:
        band = "0.25-0.5 cycles/px, luminance"
        stdout.print(_table(DETAIL_COLUMNS, means, f"detail ({band}); mean [95 % CI] over images"))
    if paired:
        stdout.print(
            _table(PAIRED_COLUMNS, paired, "paired differences, same images: method - vs; mean [95 % CI]", labels=3)
        )
    posterior = posterior_rows(report)
    if posterior:
        title = f"posterior bars, K = {report.meta.get('samples')} samples per image, vs model-prior"
        stdout.print(_table(POSTERIOR_COLUMNS, posterior, shown(title), labels=4))
        stdout.print(shown(posterior_legend(report)))


def _print_pairs(comparison: PairComparison) -> None:
    g = comparison.geometry
    title = (
        f"{comparison.lr} -> {comparison.hr}: x{g.scale[0]:.4g} (x{g.scale[1]:.4g}), LR window {g.lr_window}, "
        f"HR window {g.hr_window}, border {g.shave} px, data range {g.data_range:g}; SR fitted to HR per band"
    )
    stdout.print(_table(PAIR_COLUMNS, comparison.rows(), shown(title), labels=1))


def _print_fidelity(result: FidelityReport) -> None:
    sx, sy = result.scale_xy
    title = f"{result.output} vs {result.source} (x{sx:.4g}, x{sy:.4g}; stored units; {result.lr_pixels_compared} LR px compared)"
    stdout.print(_table(FIDELITY_COLUMNS, fidelity_rows(result), shown(title), labels=1))
    if result.spectral_angle_deg is not None:
        stdout.print(f"spectral angle  {result.spectral_angle_deg:.4f} deg (mean over pixels)")
    shift = (
        "not measured (no textured block)"
        if result.shift is None
        else (f"dy {result.shift.dy:+.3f}, dx {result.shift.dx:+.3f} LR px (SR content vs the input; + = down/right)")
    )
    stdout.print(f"shift           {shift}")
