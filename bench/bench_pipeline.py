"""Peak RSS and output Mpix/s of `rssr upscale --method bicubic` vs scene size (issue 2).

Synthetic uint16 4-band rasters (tiled 512, DEFLATE) of 1000², 4000² and 8000² px are upscaled at S=2.
Each upscale runs in its own process; that process's peak RSS is read by a fresh parent with
resource.getrusage(RUSAGE_CHILDREN).ru_maxrss, so generation and other sizes never pollute the figure.
Peak RSS must stay flat with the scene size (streaming): <= 2 GB at 8000².

    python bench/bench_pipeline.py [--sizes 1000 4000 8000] [--scale 2] [--workdir bench/out/data]
    python bench/bench_pipeline.py --quick     # 500² and 1000² only (make bench)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchlib import write_result

HERE = Path(__file__).resolve().parent
BLOCK = 512


def generate(path: Path, size: int, bands: int = 4) -> None:
    """Write a size² uint16 raster block by block (smooth field + texture, reflectance-like DNs)."""
    import rasterio
    from affine import Affine

    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=bands,
        dtype="uint16",
        crs="EPSG:32633",
        transform=Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 5_000_000.0),
        tiled=True,
        blockxsize=BLOCK,
        blockysize=BLOCK,
        compress="DEFLATE",
        predictor=2,
        bigtiff="IF_SAFER",
    )
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for _, window in dst.block_windows(1):
            y, x = np.mgrid[window.toslices()].astype(np.float32)
            block = np.empty((bands, window.height, window.width), dtype=np.uint16)
            for b in range(bands):
                smooth = 2500 + 1500 * np.sin(x / (40 + 7 * b)) * np.cos(y / (55 + 5 * b))
                block[b] = (smooth + rng.normal(0, 150, smooth.shape)).clip(0, 10_000)
            dst.write(block, window=window)


def run_upscale(src: Path, dst: Path, scale: float) -> dict:
    """The measured child: one upscale call, its own timing on stdout as JSON."""
    from rssr_cli.pipeline import upscale

    started = time.perf_counter()
    result = upscale(src, dst, scale=scale, method="bicubic", overwrite=True)
    return {
        "out_width": result.width,
        "out_height": result.height,
        "windows": result.windows,
        "seconds": time.perf_counter() - started,
    }


def measure(src: Path, dst: Path, scale: float) -> dict:
    """A fresh parent whose only child is the upscale: RUSAGE_CHILDREN is exactly that child's peak."""
    cmd = [sys.executable, __file__, "--child", str(src), str(dst), str(scale)]
    started = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - started
    figures = json.loads(out.strip().splitlines()[-1])
    figures["process_seconds"] = wall
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    return figures


def bench(sizes: list[int], scale: float, workdir: Path, keep: bool) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in sizes:
        src = workdir / f"synthetic_{size}.tif"
        dst = workdir / f"synthetic_{size}_x{scale:g}.tif"
        if not src.exists():
            t = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--generate", str(src), str(size)], check=True)
            print(f"generated {src.name} in {time.perf_counter() - t:.0f} s", flush=True)
        cmd = [sys.executable, __file__, "--measure", str(src), str(dst), str(scale)]
        figures = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        figures.update(size=size, scale=scale, dst_mb=dst.stat().st_size / 2**20)
        figures["mpix_per_s"] = figures["out_width"] * figures["out_height"] / 1e6 / figures["seconds"]
        rows.append(figures)
        print(
            f"{size:>5}² -> {figures['out_width']}²: peak RSS {figures['peak_rss_mb']:7.0f} MB, "
            f"{figures['seconds']:7.1f} s, {figures['mpix_per_s']:6.2f} Mpix/s out, COG {figures['dst_mb']:.0f} MB",
            flush=True,
        )
        if not keep:
            dst.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default 1000 4000 8000 (--quick: 500 1000)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a 2-core box")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "data")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (inputs are always kept for reruns)")
    parser.add_argument("--clean", action="store_true", help="remove the workdir afterwards")
    parser.add_argument("--generate", nargs=2, metavar=("PATH", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=3, metavar=("SRC", "DST", "SCALE"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, metavar=("SRC", "DST", "SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]))
    elif args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]), float(args.measure[2]))))
    elif args.child:
        print(json.dumps(run_upscale(Path(args.child[0]), Path(args.child[1]), float(args.child[2]))))
    else:
        print(
            f"# pipeline benchmark, {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}"
        )
        sizes = args.sizes or ([500, 1000] if args.quick else [1000, 4000, 8000])
        rows = bench(sizes, args.scale, args.workdir, args.keep)
        write_result("pipeline", rows, quick=args.quick)
        if args.clean:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
