"""`rssr evaluate --fidelity SR LR`: the streamed fidelity engine (fidelity.measure_fidelity, the one behind
`upscale --report`) run on an SR raster and the LR raster it was made from. Memory does not grow with the
scene; the figures, units and JSON are those of the `--report` sidecar (format rssr-fidelity/1)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from rasterio.windows import Window

from rssr_cli.core.errors import InputError
from rssr_cli.core.interrupts import interruptible
from rssr_cli.evaluation.fidelity import Comparison, measure_fidelity
from rssr_cli.evaluation.fidelity_bands import OutputBand, measure_bands
from rssr_cli.evaluation.fidelity_report import FidelityOptions, FidelityReport, check
from rssr_cli.geo.grid import OutputGrid, placed_grid
from rssr_cli.io.products import DEFAULT_PRODUCT_BANDS, is_band_stack, open_band_stack
from rssr_cli.io.raster_io import SourceInfo, gdal_env, inspect_source, open_raster, select_bands

FIDELITY_COLUMNS = ("LR band", "consistency L1", "% of range", "deviating %", "noise sigma")


def check_same_area(sr: SourceInfo, lr: SourceInfo) -> None:
    """Refuse rasters that are not an rssr output and its input (same CRS and bounds, SR at least as fine)."""
    if sr.crs is not None and lr.crs is not None and sr.crs != lr.crs:
        raise InputError(f"CRS differ: {sr.crs} vs {lr.crs}; give the SR made from this LR")
    tolerance = 0.01 * max(lr.pixel_size)
    if any(abs(a - b) > tolerance for a, b in zip(sr.bounds, lr.bounds)):
        raise InputError(
            f"{sr.path} and {lr.path} do not cover the same area (bounds {sr.bounds} vs {lr.bounds}); "
            "fidelity compares an rssr output with the very raster it was made from"
        )
    if sr.width < lr.width or sr.height < lr.height:
        raise InputError(
            f"{sr.path} ({sr.width}x{sr.height}) is smaller than {lr.path} ({lr.width}x{lr.height}); pass SR first"
        )


@interruptible
def fidelity_of_files(sr_path: Path, lr_path: Path, *, lr_bands: Optional[Sequence[int]] = None) -> FidelityReport:
    """Degrade-back consistency, deviating pixels, spectral angle and shift of an SR raster vs its LR input.

    Both rasters must cover the same area (rssr's output grid keeps the input's bounds). SR bands are all
    of the SR's data bands, paired in order with `lr_bands` (1-based; default all LR data bands). Nodata
    pixels of either raster are left out of the comparison. No uncertainty: that needs the method itself.
    """
    if is_band_stack(str(lr_path)):
        return fidelity_of_stack(sr_path, str(lr_path), lr_bands=lr_bands)
    with gdal_env(), open_raster(sr_path) as sr_ds, open_raster(lr_path) as lr_ds:
        sr_info, lr_info = inspect_source(sr_ds), inspect_source(lr_ds)
        check_same_area(sr_info, lr_info)
        lr_idx, sr_idx = select_bands(lr_info, lr_bands), select_bands(sr_info, None)
        if len(lr_idx) != len(sr_idx):
            raise InputError(
                f"{sr_info.path} has {len(sr_idx)} band(s), the LR selection {len(lr_idx)}; pass the LR bands the SR was made from"
            )
        grid = OutputGrid(lr_info.width, lr_info.height, sr_info.width, sr_info.height, sr_ds.transform)
        comparison = Comparison.plan(grid, Window(0, 0, sr_info.width, sr_info.height))
        method = sr_ds.tags().get("RSSR_METHOD", "unknown")
        report, _ = measure_fidelity(
            lr_ds, lr_info, lr_idx, sr_ds, comparison, method=method, options=FidelityOptions(), output_bands=sr_idx
        )
    return check(report, str(sr_path))


def fidelity_of_stack(sr_path: Path, product: str, *, lr_bands: Optional[Sequence[int]] = None) -> FidelityReport:
    """An rssr output of a band stack (Sentinel-2 product, STAC item, band folder) against the stack: each SR band
    against the native band it was made from, found by the SR's band names (its descriptions, as upscale writes
    them; `lr_bands`: product band numbers instead), through the SR grid placed on that band's own grid."""
    with gdal_env():
        stack = open_band_stack(product)
        with open_raster(sr_path) as sr_ds:
            sr_info = inspect_source(sr_ds)
            sr_idx = select_bands(sr_info, None)
            names = [sr_info.descriptions[i - 1] for i in sr_idx]
            if lr_bands is not None:
                selected = stack.select(list(lr_bands))
            elif all(names):
                selected = stack.select([str(n) for n in names])
            else:
                selected = stack.select(DEFAULT_PRODUCT_BANDS if len(sr_idx) == len(DEFAULT_PRODUCT_BANDS) else None)
            if len(selected) != len(sr_idx):
                raise InputError(
                    f"{sr_info.path} has {len(sr_idx)} band(s), the product selection {len(selected)}; pass the bands the SR was made from"
                )
            crs = {b.crs for b in selected if b.crs is not None}
            if sr_info.crs is not None and crs and sr_info.crs not in crs:
                raise InputError(f"CRS differ: {sr_info.crs} vs {crs.pop()}; give the SR made from this product")
            finest = min(selected, key=lambda b: b.resolution)
            common = OutputGrid(finest.width, finest.height, sr_info.width, sr_info.height, sr_ds.transform)
            bands = [
                OutputBand(slot, band, placed_grid(band.width, band.height, band.transform, common))
                for slot, band in zip(sr_idx, selected)
            ]
            for item in bands:
                col0, col1, row0, row1 = item.grid.footprint()
                if col0 == col1 or row0 == row1:
                    raise InputError(
                        f"{sr_info.path} does not overlap band {item.band.name} of {product}; give the SR made from this product"
                    )
            report = measure_bands(
                sr_ds,
                bands,
                Window(0, 0, sr_info.width, sr_info.height),
                source=stack.source,
                method=sr_ds.tags().get("RSSR_METHOD", "unknown"),
                options=FidelityOptions(),
                nodata=stack.default_nodata,
                scale_xy=(common.scale_x, common.scale_y),
            )
    return check(report, str(sr_path))


def fidelity_rows(report: FidelityReport) -> list[tuple[str, ...]]:
    """Formatted cells matching FIDELITY_COLUMNS, one row per band."""
    return [
        (
            str(b.band),
            f"{b.consistency_l1:.4g}",
            f"{100 * b.consistency_relative:.3f}",
            f"{100 * b.deviating_fraction:.2f}",
            f"{b.noise_sigma:.4g}",
        )
        for b in report.bands
    ]
