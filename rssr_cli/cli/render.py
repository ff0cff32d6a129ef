"""Rendering what the library returns: the one-scene summary, batch scene lines and table, `rssr info`'s reports
(as text, or as JSON with --json). Pure functions from values to strings (rich markup) or JSON-ready dicts."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from pathlib import Path
from typing import Any, Optional

from affine import Affine
from rich.table import Table

from rssr_cli.cli.common import shown
from rssr_cli.core.messages import redact
from rssr_cli.io import sources
from rssr_cli.pipeline.info import ModelReport, RasterReport, ShippedModelsReport
from rssr_cli.pipeline.model_rule import ModelChoice
from rssr_cli.pipeline.scenes import BUSY, DONE, FAILED, SKIPPED, SceneResult
from rssr_cli.pipeline.settings import BandMade, UpscaleResult
from rssr_cli.pipeline.stack_plan import StackReport

STATUS_STYLE = {DONE: "green", SKIPPED: "dim", BUSY: "yellow", FAILED: "bold red"}


def render_scene_line(scene: SceneResult) -> str:
    style = STATUS_STYLE.get(scene.status, "")
    detail = f" {shown(scene.error)}" if scene.error else ""
    if scene.note:  # why an existing output was redone
        detail += f" redone: {shown(scene.note)}"
    windows = f", {scene.windows} windows ({scene.skipped_windows} empty)" if scene.status == DONE else ""
    return f"[{style}]{scene.status:>7}[/] {shown(sources.base_name(scene.input))} -> {shown(scene.output)} ({scene.seconds:.1f} s{windows}){detail}"


def render_batch_summary(results: list[SceneResult]) -> Table:
    counts = {status: sum(r.status == status for r in results) for status in (DONE, SKIPPED, BUSY, FAILED)}
    table = Table(title=f"{len(results)} scene(s)", show_edge=False)
    for column in ("status", "scenes", "seconds", "windows", "empty windows"):
        table.add_column(column, justify="right" if column != "status" else "left")
    for status, count in counts.items():
        rows = [r for r in results if r.status == status]
        table.add_row(
            f"[{STATUS_STYLE[status]}]{status}[/]",
            str(count),
            f"{sum(r.seconds for r in rows):.1f}",
            str(sum(r.windows for r in rows)),
            str(sum(r.skipped_windows for r in rows)),
        )
    return table


def summarize(result: UpscaleResult) -> str:
    return (
        f"wrote {shown(str(result.dst))}: {result.width}x{result.height} px, {result.bands} band(s) {result.dtype}, "
        f"{_how_made(result)}, {result.windows} windows in {result.seconds:.1f} s "
        f"({result.megapixels_per_second:.2f} Mpix/s)"
        + (f"; {result.skipped_windows} all-nodata windows skipped" if result.skipped_windows else "")
        + (f"; {result.outside_aoi_windows} windows outside the AOI not read" if result.outside_aoi_windows else "")
        + (f"\nspread: {shown(str(result.spread))}" if result.spread is not None else "")
        + (f"\nfidelity: {result.fidelity.summary()}" if result.fidelity is not None else "")
    )


def _how_made(result: UpscaleResult) -> str:
    """`diffusion x4` for one raster; per band for a band stack, bands made alike grouped in the order written:
    `B04 copied; B8A,B11 guided x4; B01 guided x12; B02,B03 read as guides only (not output)`."""
    if not result.bands_made:
        return f"{result.method} x{result.scale_x:.4g}"
    said = _grouped(result.bands_made)
    if result.guides_only:
        guides = _grouped(result.guides_only)
        said.append(", ".join(guides) + " as guides only (not output)")
    return shown("; ".join(said))


def _grouped(bands: tuple[BandMade, ...]) -> list[str]:
    """`B05,B11 guided x2`: bands made alike (method, scale, model), in the order first seen."""
    groups: dict[tuple[str, str], list[str]] = {}
    for made in bands:
        groups.setdefault((made.summary().split(" ", 1)[1], made.model or ""), []).append(made.band)
    return [f"{','.join(names)} {how}" for (how, _), names in groups.items()]


def render_report(report: RasterReport) -> list[str]:
    t = report.transform
    w, s, e, n = report.bounds
    lines = [
        f"[bold]{shown(report.path)}[/]",
        f"  size        {report.width} x {report.height} px, {len(report.bands)} band(s), {report.dtype}",
        f"  crs         {shown(report.crs) if report.crs else 'none (pixel grid only)'}",
        f"  transform   ({t.a:.10g}, {t.b:.10g}, {t.c:.10g}, {t.d:.10g}, {t.e:.10g}, {t.f:.10g})",
        f"  pixel size  {report.pixel_size[0]:.10g} x {report.pixel_size[1]:.10g}",
        f"  bounds      west {w:.10g}, south {s:.10g}, east {e:.10g}, north {n:.10g}",
        f"  invalid px  {shown(report.validity)}",
        *_model_choice_line(report.model),
        "  bands",
    ]
    for band in report.bands:
        extra = f", scale {band.scale:g} offset {band.offset:g}" if (band.scale, band.offset) != (1.0, 0.0) else ""
        lines.append(
            f"    {band.index:>3}  {shown(band.description or '-'):<16} {band.colorinterp}{extra}{_band_made(band.made)}"
        )
    if report.provenance:  # an rssr output: how it was made, and its fidelity figures when measured
        lines.append("[bold]made by rssr[/]")
        width = max(len(k) for k in report.provenance)
        lines += [f"  {k:<{width}}  {shown(v)}" for k, v in report.provenance.items()]
    if report.preview is not None:
        p = report.preview
        lines += [
            "[bold]upscale would write[/]",
            f"  size        {p.width} x {p.height} px (x{p.scale_x:.6g}, x{p.scale_y:.6g}), {p.bands} band(s), {p.dtype}",
            f"  pixel size  {p.pixel_size[0]:.10g} x {p.pixel_size[1]:.10g}",
            f"  data        {_human_bytes(p.uncompressed_bytes)} uncompressed (+~1/3 overviews, before compression)",
        ]
    if report.estimate is not None:
        cost = report.estimate
        cal = cost.calibration
        lines += [
            f"[bold]estimated cost on this machine[/] ({shown(cost.model)}, {cost.mode}, {cost.threads} thread(s))",
            f"  windows     {cost.windows} (tile {cost.tile} + {cost.overlap} px halo): {cost.computed_band_px / 1e6:.3g} M HR band-px computed,"
            f" {cost.computed_band_px / max(1, cost.output_band_px):.2f}x the output",
            f"  time        ~{_human_seconds(cost.seconds)} wall as loaded now, {cost.cpu_hours:.3g} CPU-hours",
            f"  peak memory ~{_human_bytes(cost.peak_rss_bytes)}",
            f"  calibrated  on {cal.hr_side[0]}² and {cal.hr_side[1]}² HR windows: {cal.cpu_microseconds_per_band_px:.3g} µs CPU per HR band-px,"
            f" {cal.bytes_per_window_px:.0f} B per window px",
        ]
    return lines


def _band_made(made: dict[str, str]) -> str:
    """How an rssr output's band was made, from its tags: `  guided x2 by B02,B03,B04,B08 (rssr-sharpen)`."""
    method = made.get("band_method")
    if method is None:
        return ""
    scale = made.get("scale_xy", "").split(",")[0]
    how = "copied" if method == "copy" else f"{method} x{float(scale):.4g}" if scale else method
    guides = f" by {made['guided_by']}" if "guided_by" in made else ""
    model = f" ({made['band_model']})" if "band_model" in made else ""
    return f"  {shown(how + guides + model)}"


def _human_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def render_stack_report(report: StackReport) -> list[str]:
    """A product's or STAC item's bands (name, pixel size, size, file) and, with -s/-r, the output upscale would write."""
    nodata = "none" if report.nodata is None else f"{report.nodata:g}"
    lines = [
        f"[bold]{shown(report.source)}[/]",
        f"  kind        {shown(report.kind)}, nodata {nodata}",
        *_model_choice_line(report.model),
        "  bands",
    ]
    for band in report.bands:
        crs = band.crs.to_string() if band.crs else "no CRS"
        lines.append(
            f"    {shown(band.name):<5} {band.resolution:>6g} m  {band.width} x {band.height} px  {band.dtype}  {shown(crs)}  {shown(band.dataset.rsplit('/', 1)[-1])}"
        )
    if report.grid is not None:
        t = report.grid.transform
        lines += [
            "[bold]upscale would write[/]",
            f"  bands       {', '.join(report.selected)}",
            f"  size        {report.grid.width} x {report.grid.height} px, pixel size {abs(t.a):.10g} x {abs(t.e):.10g}",
        ]
        for i, made in enumerate(report.band_methods):
            how = (
                f"{made.band} guided by {','.join(made.guided_by)} x{made.scale:.4g}"
                if made.guided_by
                else made.summary()
            )
            lines.append(
                f"  {'per band' if i == 0 else '':<11} {shown(how)}" + (f" ({shown(made.model)})" if made.model else "")
            )
        if report.guides_only:
            guides = ", ".join(_grouped(report.guides_only))
            lines.append(f"  guides      {shown(guides)} as guides only (not output)")
        partial = [(name, f) for name, f in report.coverage if f < 1.0]
        if partial:
            said = [
                f"{name} misses the grid (upscale refuses it)" if f == 0 else f"{name} {f * 100:.0f} % (nodata beyond)"
                for name, f in partial
            ]
            lines.append(f"  coverage    {shown(', '.join(said))}")
    else:
        lines.append(f"  default     --bands {','.join(report.selected)}")
    return lines


def _model_choice_line(choice: Optional[ModelChoice]) -> list[str]:
    """`model  s2-10m (rule: Sentinel-2 input: ...)`: what upscale runs on this input without --model."""
    if choice is None:
        return []
    name = choice.name or ("none installed" if choice.by == "rule" else "a model file")
    return [f"  model       {shown(name)} ({shown(choice.tag() if choice.by == 'rule' else choice.reason)})"]


def render_models_report(report: ShippedModelsReport) -> list[str]:
    """`rssr info --models`: one block per shipped model, then the rule."""
    lines = [f"[bold]shipped models[/] in {shown(report.folder or 'no folder (none installed)')}"]
    if not report.models:
        lines.append("  none")
    for model in report.models:
        lines.append(f"  [bold]{shown(model.name)}[/]  {shown(model.id)}  sha256 {model.sha256[:12]}")
        domain = model.domain
        if domain is None:
            lines.append("    domain      not stated in its card")
            continue
        low, high = domain.resolution_m
        lines += [
            f"    sensor      {shown(domain.sensor)}",
            f"    pixels      {low:g}" + (f"-{high:g}" if high != low else "") + " m",
            f"    bands       {shown(', '.join(domain.bands))}",
            f"    data types  {shown(', '.join(domain.dtypes))}",
            f"    figures     {shown(domain.figures)}",
        ]
    lines.append(f"[bold]default[/] {shown(report.rule)}")
    return lines


def render_model_report(report: ModelReport) -> list[str]:
    lines = [
        f"[bold]{shown(report.id)}[/]  {shown(report.weights)}"
        + (f"  (shipped as {shown(report.name)})" if report.name else ""),
        f"  sha256         {report.sha256}",
        f"  size           {_human_bytes(report.size_bytes)}, {report.parameters:,} parameters"
        + (f", rssr {shown(report.rssr_version)}" if report.rssr_version else ""),
        f"  card           {shown(report.card) if report.card else 'none (description embedded in the weights only)'}",
        "  architecture",
    ]
    for part in report.parts:
        args = ", ".join(f"{k}={v}" for k, v in part.args.items())
        lines.append(f"    {part.role:<15}{shown(part.name)} ({part.parameters:,} params): {shown(args)}")
    lines += [f"  bands          {report.channels} channel(s); {shown(report.band_rule)}", "  normalization"]
    lines += _render_mapping(report.normalization, 4)
    lines.append("  diffusion")
    lines += _render_mapping(report.diffusion, 4)
    lines.append("  sampler        " + ", ".join(f"{k} {v}" for k, v in report.sampler.items()))
    lines.append("  domain" + ("" if report.domain else "         not stated"))
    lines += _render_mapping(report.domain or {}, 4)
    for title, mapping in (("training", report.training), ("metrics", report.metrics)):
        lines.append(f"  {title}" + ("" if mapping else "       none recorded"))
        lines += _render_mapping(mapping, 4)
    return lines


def _render_mapping(mapping: dict, indent: int) -> list[str]:
    """Nested dicts as indented `key  value` lines; other values inline (lists as comma lists)."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            lines.append(" " * indent + shown(str(key)))
            lines += _render_mapping(value, indent + 2)
            continue
        if isinstance(value, (list, tuple)):
            text = ", ".join(map(str, value))
        elif isinstance(value, float):
            text = f"{value:.6g}"
        else:
            text = str(value)
        lines.append(" " * indent + f"{shown(str(key)):<{max(1, 15 - indent + 2)}} {shown(text)}")
    return lines


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def to_json(report: RasterReport | StackReport | ModelReport | ShippedModelsReport) -> str:
    """`rssr info --json`: the report's fields as JSON (transforms as their 6 coefficients, CRSs as strings)."""
    return redact(json.dumps(_plain(report), indent=2, allow_nan=False))


def _plain(value: Any) -> Any:
    """A report value as plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Affine):
        return [value.a, value.b, value.c, value.d, value.e, value.f]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_string"):  # a CRS
        return value.to_string()
    return str(value)
