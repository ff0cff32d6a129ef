"""`estimate_cost`: the time and peak memory an upscale with the model would take on this machine, from the run's
planned windows and a short calibration of the model at the run's scale (two synthetic windows, a few seconds).

Wall and CPU time are linear in the HR pixels the model computes (halos included: a window's operator and UNet run on its whole
HR patch) plus a cost per window, fitted on the two calibration windows. Peak memory = this process's resident set
after the model has run (interpreter, libraries, weights) + the calibrated bytes per HR window pixel times the
largest window + the blend accumulator (one row of windows at full output width: float32 sums and weights, validity flags).
Not counted: reading and decoding the source and writing the COG (small next to the model on a CPU).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from rssr_cli.backends import get_backend
from rssr_cli.backends.base import SRRequest
from rssr_cli.geo.grid import HRGrid, OutputGrid, iter_tiles, plan_tiles
from rssr_cli.pipeline.settings import auto_tiling

CALIBRATION_HR_SIDES = (128, 384)  # HR sides of the two calibration windows (their LR side follows the scale)


@dataclass(frozen=True)
class Calibration:
    hr_side: tuple[int, int]  # HR side of the two calibration windows
    seconds: tuple[float, float]  # their wall time (after a warm-up run)
    cpu_seconds: tuple[float, float]  # their CPU time (this process, all threads)
    seconds_per_window: float
    microseconds_per_band_px: float  # wall
    cpu_microseconds_per_band_px: float
    bytes_per_window_px: float  # resident memory growth per HR pixel of a window (all bands)
    base_rss_bytes: int


@dataclass(frozen=True)
class CostEstimate:
    method: str
    model: str
    mode: str  # what runs per window: "prior" (the operator) or "diffusion, k steps"
    threads: int
    windows: int
    tile: int
    overlap: int
    output_band_px: int
    computed_band_px: int  # HR band-pixels the model computes, halos included
    seconds: float  # wall time, with this machine as loaded as during the calibration
    cpu_hours: float  # CPU time (all threads), from the calibration's CPU time per pixel
    peak_rss_bytes: int
    calibration: Calibration


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


def _request(bands: int, hr_side: int, scale: float):
    lr_side = max(4, round(hr_side / scale))
    rng = np.random.default_rng(0)
    grid = HRGrid(height=hr_side, width=hr_side, y0=0.0, x0=0.0, dy=lr_side / hr_side, dx=lr_side / hr_side)
    return SRRequest(lr=rng.random((bands, lr_side, lr_side), dtype=np.float32), grid=grid, seed=0)


def calibrate(backend, bands: int, scale: float, hr_sides: Optional[tuple[int, int]] = None) -> Calibration:
    """Run the backend on two synthetic windows of `bands` bands at `scale`: time and memory per HR pixel."""
    hr_sides = hr_sides or CALIBRATION_HR_SIDES
    small, large = (_request(bands, side, scale) for side in hr_sides)
    backend.upsample([small])  # warm-up: lazy initialisation, first-call allocations
    base = _max_rss_bytes()
    seconds, cpu = [], []
    for request in (small, large):
        start, start_cpu = time.perf_counter(), time.process_time()
        backend.upsample([request])
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    grown = _max_rss_bytes() - base
    px = [side * side for side in hr_sides]
    per_px = max(0.0, (seconds[1] - seconds[0]) / (px[1] - px[0]))
    cpu_per_px = max(0.0, (cpu[1] - cpu[0]) / (px[1] - px[0]))
    return Calibration(
        hr_side=hr_sides,
        seconds=(seconds[0], seconds[1]),
        cpu_seconds=(cpu[0], cpu[1]),
        seconds_per_window=max(0.0, seconds[0] - per_px * px[0]),
        microseconds_per_band_px=per_px / bands * 1e6,
        cpu_microseconds_per_band_px=cpu_per_px / bands * 1e6,
        bytes_per_window_px=max(0.0, grown / (px[1] - px[0])),
        base_rss_bytes=base,
    )


def estimate_cost(
    grid: OutputGrid, bands: int, *, model: Optional[str] = None, threads: Optional[int] = None
) -> CostEstimate:
    """The cost of `rssr upscale` onto `grid` with `bands` bands, the default method (the model) and its defaults."""
    scale = max(grid.scale_x, grid.scale_y)
    tile, overlap = auto_tiling("diffusion", scale, None, None)
    rows = plan_tiles(grid, tile=tile, overlap=overlap)
    tiles = list(iter_tiles(rows))
    window_px = [t.hr.height * t.hr.width for t in tiles]
    backend = get_backend("diffusion", model=model, device="cpu", threads=threads)
    cal = calibrate(backend, bands, scale)
    import torch  # lazy: torch loads only when a cost is estimated (rssr info imports this module)

    per_band_px = cal.microseconds_per_band_px * 1e-6
    seconds = len(tiles) * cal.seconds_per_window + per_band_px * bands * sum(window_px)
    row_height = max(max(t.hr.height for t in row) for row in rows)
    accumulator = (
        (5 * bands + 4) * row_height * grid.width
    )  # blend.py: float32 sum + bool validity per band, float32 weight
    peak = cal.base_rss_bytes + cal.bytes_per_window_px * max(window_px) + accumulator
    n_threads = torch.get_num_threads()
    steps = int(getattr(backend, "steps", 0))
    mode = "prior" if getattr(backend, "mode", "prior") == "prior" or steps == 0 else f"diffusion, {steps} steps"
    return CostEstimate(
        method="diffusion",
        model=str(backend.provenance().get("model", "")),
        mode=mode,
        threads=n_threads,
        windows=len(tiles),
        tile=tile,
        overlap=overlap,
        output_band_px=grid.width * grid.height * bands,
        computed_band_px=sum(window_px) * bands,
        seconds=seconds,
        cpu_hours=cal.cpu_microseconds_per_band_px * 1e-6 * bands * sum(window_px) / 3600,
        peak_rss_bytes=int(peak),
        calibration=cal,
    )
