"""How faithful a written SR raster is to its own LR input (no HR reference): the one fidelity engine, behind
`upscale --report` (pipeline) and `evaluate --fidelity` (fidelity_files). Result types: fidelity_report.py.

Everything is computed on stored values: the written output (the intermediate, before it becomes the COG)
against the source's selected bands, over the LR pixels whose whole SR footprint lies in the written region
and is valid. The scene is walked in LR blocks, so memory does not grow with it.

- consistency: mean |degrade_back(SR) - LR| per band (exact area average of the SR pixels over each LR
  pixel, DESIGN.md's degrade-back rule: the output's radiometry matches the input's), in stored units and
  relative to the band's range (p1..p99 of the LR values).
- deviating fraction: LR pixels whose degrade-back error exceeds DEVIATION_SIGMAS x the LR's noise level
  (Immerkaer estimate on NOISE_CELL cells, a low percentile over them, floored at the quantization step for
  integer data).
- spectral angle (>= 2 bands): mean angle between the degrade-back and the LR band vectors (physical values).
- shift: median over textured, fully valid blocks of the shift between degrade-back and LR
  (metrics.measure_shift: phase correlation refined by Lucas-Kanade), in LR pixels; positive dy/dx = the SR content sits lower/further right than the input.
- uncertainty: per-pixel standard deviation over N samples (different seeds) on one textured crop; zero
  for deterministic methods. A crop, not the scene: N full runs would cost N times the upscale itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from rasterio.io import DatasetReader
from rasterio.windows import Window

from rssr_cli.evaluation.fidelity_report import (
    DEVIATION_SIGMAS,
    NOISE_CELL,
    NOISE_PERCENTILE,
    BandFidelity,
    FidelityOptions,
    FidelityReport,
    Shift,
    UncertaintyCrop,
)
from rssr_cli.geo.grid import OutputGrid, hr_grid_for
from rssr_cli.geo.windows import as_tuple, edges
from rssr_cli.io.raster_io import SourceInfo, read_window
from rssr_cli.scoring.metrics import area_weights, measure_shift, noise_sigma, spectral_angle

BLOCK = 128  # LR pixels per block side (also the shift is measured per block: a median needs several)
MIN_SHIFT_BLOCK = 32  # smaller blocks give unreliable phase correlation
PERCENTILE_SAMPLES = 200_000  # LR values per band kept for the range percentiles
CROP_HR_PX = 256  # side of the uncertainty crop in output pixels (about)

# (core LR window, seeds) -> one stored-value HR array [bands, h, w] per seed, on hr_grid_for(core)'s window
SampleCrop = Callable[[Window, Sequence[int]], list[np.ndarray]]


# ------------------------------------------------------------------------------------------ geometry


EDGE_EPS = 1e-9  # of a pixel: an edge this close to a pixel edge is on it (float noise must not drop a pixel)


@dataclass(frozen=True)
class Comparison:
    """Where the output lies on the source: the full grid, the written window, the LR pixels compared.

    Output pixel j spans [x0 + j*dx, x0 + (j+1)*dx) in LR pixels: the grid's placement (a band stack's common grid
    on a band's own grid), else x0 = 0 and dx = src_width / width (the grids share their bounds)."""

    grid: OutputGrid
    region: Window  # the written output's window in full-grid pixels
    lr_rows: tuple[int, int]  # [start, stop) of LR rows whose SR footprint lies entirely in the region
    lr_cols: tuple[int, int]

    @staticmethod
    def axes(grid: OutputGrid) -> tuple[float, float, float, float]:
        """(y0, dy, x0, dx): output pixel edges in LR pixels."""
        p = grid.placement
        if p is None:
            return 0.0, grid.src_height / grid.height, 0.0, grid.src_width / grid.width
        return p.y0, p.dy, p.x0, p.dx

    @classmethod
    def plan(cls, grid: OutputGrid, region: Window) -> "Comparison":
        r0, r1, c0, c1 = edges(region)
        y0, dy, x0, dx = cls.axes(grid)

        def inside(first: int, stop: int, origin: float, step: float, size: int) -> tuple[int, int]:
            lo = max(0, math.ceil(origin + first * step - EDGE_EPS))
            hi = min(size, math.floor(origin + stop * step + EDGE_EPS))
            return (lo, hi) if lo < hi else (lo, lo)

        return cls(grid, region, inside(r0, r1, y0, dy, grid.src_height), inside(c0, c1, x0, dx, grid.src_width))

    def blocks(self, size: int = BLOCK) -> Iterator[Window]:
        (y0, y1), (x0, x1) = self.lr_rows, self.lr_cols
        for r in range(y0, y1, size):
            for c in range(x0, x1, size):
                yield Window(c, r, min(size, x1 - c), min(size, y1 - r))

    def sr_window(self, lr: Window) -> Window:
        """Output pixels (in the written file) touching an LR window's footprint."""
        g = self.grid
        y0, dy, x0, dx = self.axes(g)
        a, b, c, d = edges(lr)
        j0 = max(0, math.floor((a - y0) / dy + EDGE_EPS))
        j1 = min(g.height, math.ceil((b - y0) / dy - EDGE_EPS))
        i0 = max(0, math.floor((c - x0) / dx + EDGE_EPS))
        i1 = min(g.width, math.ceil((d - x0) / dx - EDGE_EPS))
        return Window(i0 - int(self.region.col_off), j0 - int(self.region.row_off), i1 - i0, j1 - j0)

    def weights(self, lr: Window, sr: Window) -> tuple[np.ndarray, np.ndarray]:
        g, lr_e, sr_e, reg = self.grid, edges(lr), edges(sr), edges(self.region)
        y0, dy, x0, dx = self.axes(g)
        wy = area_weights(
            lr_e.top, lr_e.bottom, sr_e.top + reg.top, sr_e.bottom + reg.top, g.src_height, g.height, start=y0, step=dy
        )
        wx = area_weights(
            lr_e.left, lr_e.right, sr_e.left + reg.left, sr_e.right + reg.left, g.src_width, g.width, start=x0, step=dx
        )
        return wy, wx


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class _LrStats:
    """First pass over the LR: noise level, value range and the most textured fully valid block."""

    sigmas: list[list[float]]
    samples: list[list[np.ndarray]]
    best_block: Optional[Window] = None
    best_texture: float = -1.0


def _lr_stats(dataset: DatasetReader, info: SourceInfo, bands: Sequence[int], cmp: Comparison) -> _LrStats:
    stats = _LrStats([[] for _ in bands], [[] for _ in bands])
    blocks = list(cmp.blocks())
    total = sum(int(w.width * w.height) for w in blocks)
    stride = max(1, total // PERCENTILE_SAMPLES)
    for win in blocks:
        lr, valid = read_window(dataset, info, bands, win)
        lr = lr.astype(np.float64)
        for b in range(len(bands)):
            for r in range(0, lr.shape[1], NOISE_CELL):
                for c in range(0, lr.shape[2], NOISE_CELL):
                    cell = (b, slice(r, r + NOISE_CELL), slice(c, c + NOISE_CELL))
                    sigma = noise_sigma(lr[cell], valid[cell])
                    if math.isfinite(sigma):
                        stats.sigmas[b].append(sigma)
            stats.samples[b].append(lr[b][valid[b]][::stride])
        if valid.all() and min(win.width, win.height) >= 16:
            texture = float(np.mean(np.std(lr, axis=(-2, -1))))
            if texture > stats.best_texture:
                stats.best_block, stats.best_texture = win, texture
    return stats


def measure_fidelity(
    dataset: DatasetReader,
    info: SourceInfo,
    bands: Sequence[int],
    output: DatasetReader,
    comparison: Comparison,
    *,
    method: str,
    options: FidelityOptions,
    sample_crop: Optional[SampleCrop] = None,
    seed: int = 0,
    output_bands: Optional[Sequence[int]] = None,
) -> tuple[FidelityReport, Optional["CropSamples"]]:
    """Measure an output against its source (see the module docstring); returns the report and the crop samples.

    output_bands: the output's bands paired in order with `bands` (1-based; default all of them)."""
    n = len(bands)
    stats = _lr_stats(dataset, info, bands, comparison)
    integer = np.issubdtype(np.dtype(info.dtype), np.integer)
    sigma = np.array([np.percentile(s, NOISE_PERCENTILE) if s else 0.0 for s in stats.sigmas])
    sigma = np.maximum(sigma, 0.5 if integer else 0.0)
    ranges = []
    for b in range(n):
        values = np.concatenate(stats.samples[b]) if stats.samples[b] else np.zeros(0)
        ranges.append(tuple(float(v) for v in np.percentile(values, [1, 99])) if values.size else (0.0, 0.0))
    scales = np.array([info.scales[i - 1] for i in bands], dtype=np.float64)[:, None, None]
    offsets = np.array([info.offsets[i - 1] for i in bands], dtype=np.float64)[:, None, None]

    abs_sum, deviating, compared = np.zeros(n), np.zeros(n), 0
    angle_sum, angle_count = 0.0, 0
    shifts: list[tuple[float, float]] = []
    for win in comparison.blocks():
        lr, lr_valid = read_window(dataset, info, bands, win)
        lr = lr.astype(np.float64)
        sr_win = comparison.sr_window(win)
        sr = output.read(output_bands, window=sr_win).astype(np.float64)
        sr_valid = (output.read_masks(output_bands, window=sr_win) > 0).all(axis=0)
        sr[:, ~sr_valid] = 0.0  # nodata values (or NaN) must not leak through zero weights
        wy, wx = comparison.weights(win, sr_win)
        back = np.einsum("yh,bhw,xw->byx", wy, sr, wx, optimize=True)
        touched_invalid = np.einsum("yh,hw,xw->yx", wy, (~sr_valid).astype(np.float64), wx, optimize=True) > 1e-9
        ok = lr_valid.all(axis=0) & ~touched_invalid
        if not ok.any():
            continue
        error = np.abs(back - lr)[:, ok]
        abs_sum += error.sum(axis=1)
        deviating += (error > DEVIATION_SIGMAS * sigma[:, None]).sum(axis=1)
        compared += int(ok.sum())
        if n >= 2:
            angles = spectral_angle(back * scales + offsets, lr * scales + offsets)[ok]
            angles = angles[np.isfinite(angles)]
            angle_sum, angle_count = angle_sum + float(angles.sum()), angle_count + angles.size
        textured = np.all(np.std(lr, axis=(-2, -1)) > 2.0 * sigma)
        if ok.all() and min(win.width, win.height) >= MIN_SHIFT_BLOCK and textured:
            shifts.append(measure_shift(back, lr))

    crop = None
    if sample_crop is not None and stats.best_block is not None:
        crop = _sample_uncertainty(stats.best_block, comparison, sample_crop, options.samples, seed)
    band_reports = []
    for b, band in enumerate(bands):
        l1 = abs_sum[b] / compared if compared else math.nan
        span = ranges[b][1] - ranges[b][0]
        unc_mean = unc_p95 = math.nan
        if crop is not None:
            unc_mean, unc_p95 = float(crop.std[b].mean()), float(np.percentile(crop.std[b], 95))
        band_reports.append(
            BandFidelity(
                band=band,
                description=info.descriptions[band - 1],
                consistency_l1=float(l1),
                consistency_relative=float(l1 / span) if span > 0 else (0.0 if l1 == 0 else math.inf),
                value_range=(ranges[b][0], ranges[b][1]),
                noise_sigma=float(sigma[b]),
                deviating_fraction=float(deviating[b] / compared) if compared else math.nan,
                uncertainty_mean=unc_mean,
                uncertainty_p95=unc_p95,
            )
        )
    shift = None
    if shifts:
        arr = np.array(shifts)
        shift = Shift(float(np.median(arr[:, 0])), float(np.median(arr[:, 1])), len(shifts))
    report = FidelityReport(
        source=info.path,
        output="",
        method=method,
        scale_xy=(comparison.grid.scale_x, comparison.grid.scale_y),
        lr_pixels_compared=compared,
        bands=tuple(band_reports),
        spectral_angle_deg=angle_sum / angle_count if angle_count else None,
        shift=shift,
        uncertainty=crop.describe() if crop is not None else None,
        checks=options.checks,
        failures=(),
    )
    return report, crop


# ---------------------------------------------------------------------------------------- uncertainty


@dataclass(frozen=True)
class CropSamples:
    """The SR samples of the uncertainty crop, for the numbers and the quick-look."""

    lr_window: Window
    out_window: Window  # in the written output
    samples: np.ndarray  # [n, bands, h, w] stored values

    @property
    def std(self) -> np.ndarray:
        return self.samples.std(axis=0, ddof=1)

    def describe(self) -> UncertaintyCrop:
        w, o = self.lr_window, self.out_window
        return UncertaintyCrop(
            lr_window=as_tuple(w),
            out_window=as_tuple(o),
            samples=len(self.samples),
            deterministic=bool(np.all(self.samples == self.samples[0])),
        )


def crop_window(block: Window, grid: OutputGrid) -> Window:
    """A centred LR square of `block` whose output is about CROP_HR_PX px across (at least 8 LR px)."""
    side = max(8, round(CROP_HR_PX / max(grid.scale_x, grid.scale_y)))
    w, h = min(side, int(block.width)), min(side, int(block.height))
    return Window(
        int(block.col_off) + (int(block.width) - w) // 2, int(block.row_off) + (int(block.height) - h) // 2, w, h
    )


def _sample_uncertainty(block: Window, cmp: Comparison, sample_crop: SampleCrop, n: int, seed: int) -> CropSamples:
    core = crop_window(block, cmp.grid)
    out, _ = hr_grid_for(core, cmp.grid)
    seeds = [seed * 1000 + 7919 * (k + 1) for k in range(n)]  # not the output's own seeds: fresh draws
    samples = np.stack([s.astype(np.float64) for s in sample_crop(core, seeds)])
    local = Window(int(out.col_off - cmp.region.col_off), int(out.row_off - cmp.region.row_off), out.width, out.height)
    return CropSamples(core, local, samples)
