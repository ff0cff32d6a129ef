"""Model throughput by device, precision and batch size, through the product's own backend (default sampler).

Output megapixels per second (HR band-pixels: the model runs each band as its own sample), and the time this
projects for a full Sentinel-2 tile (10980 x 10980 px, 4 bands) at x4 with the pipeline's default tiling
(the halo of each window is computed and thrown away: the projection multiplies by that overhead).
Writes a Markdown table to stdout and JSON (machine, date, rows) to bench/out/throughput.json (or --json).

    python bench/bench_throughput.py --device cuda
    python bench/bench_throughput.py --quick     # = --device cpu --size 64 --batches 1 2 --precisions fp32 --repeats 1 (make bench)
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rssr_cli.backends import default_model_path
from rssr_cli.backends.base import SRRequest
from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.geo.grid import HRGrid
from rssr_cli.pipeline.settings import auto_tiling

from benchlib import write_result

TILE_SIDE, TILE_BANDS, SCALE = 10_980, 4, 4.0


def requests(batch: int, hr: int, scale: float) -> list[SRRequest]:
    lr = max(1, round(hr / scale))
    grid = HRGrid(height=hr, width=hr, y0=0.0, x0=0.0, dy=lr / hr, dx=lr / hr)
    rng = np.random.default_rng(0)
    return [SRRequest(lr=rng.random((1, lr, lr), dtype=np.float32), grid=grid, seed=i) for i in range(batch)]


def timed(backend: DiffusionBackend, reqs: list[SRRequest], repeats: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    backend.upsample(reqs)  # warm-up (kernels, allocator)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        backend.upsample(reqs)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def halo_overhead(scale: float) -> float:
    """Computed / kept LR pixels of one interior window with the default model tiling at this scale."""
    tile, overlap = auto_tiling("diffusion", scale, None, None)
    return ((tile + 2 * overlap) / tile) ** 2


def machine(device: torch.device) -> dict:
    info = {
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default=None, help="checkpoint (default: the default model)")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--size", type=int, default=128, help="HR window side (x4: LR side size/4)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="default bench/out/throughput.json")
    ap.add_argument("--quick", action="store_true", help="CPU smoke sizes for a 2-core box")
    args = ap.parse_args()
    if args.quick:
        args.device, args.size, args.batches, args.precisions, args.repeats = "cpu", 64, [1, 2], ["fp32"], 1
    device = torch.device(args.device)
    model = args.model or str(default_model_path())
    overhead = halo_overhead(SCALE)
    tile_band_px = (TILE_SIDE * SCALE) ** 2 * TILE_BANDS
    rows = []
    print(
        f"# Throughput — {device}, {json.dumps(machine(device))}, model {Path(model).name}, HR window {args.size}², x{SCALE:g}\n"
    )
    print("| precision | batch | NFE / window | s / call | output Mpix/s | projected S2 tile 10980², 4 bands, x4 (h) |")
    print("|---|---|---|---|---|---|")
    for precision in args.precisions:
        if precision == "fp16" and device.type == "cpu":
            continue  # fp16 on the CPU is emulated and says nothing about a GPU
        backend = DiffusionBackend(model=model, device=args.device, precision=precision, batch_size=max(args.batches))
        for batch in args.batches:
            seconds = timed(backend, requests(batch, args.size, SCALE), args.repeats, device)
            mpix_s = batch * args.size**2 / 1e6 / seconds
            hours = tile_band_px * overhead / (mpix_s * 1e6) / 3600
            nfe = backend.steps if backend.mode == "diffusion" else 0
            rows.append(
                {
                    "precision": precision,
                    "batch": batch,
                    "nfe": nfe,
                    "seconds": seconds,
                    "mpix_s": mpix_s,
                    "tile_hours": hours,
                }
            )
            print(f"| {precision} | {batch} | {nfe} + prior | {seconds:.4f} | {mpix_s:.3f} | {hours:.2f} |")
    print(
        f"\nProjection: {tile_band_px / 1e9:.2f} G output band-pixels x {overhead:.2f} (halo of the default x4 tiling) / rate; "
        "reading, blending and the COG build not included."
    )
    figures = {
        "device": str(device),
        "model": model,
        "hr_window": args.size,
        "scale": SCALE,
        "halo_overhead": overhead,
        "rows": rows,
    }
    if args.json is None:
        write_result("throughput", figures, quick=args.quick)
        return
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "bench": "throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(device),
        **figures,
    }
    args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
