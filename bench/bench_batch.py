"""Batch wall time: 8 small scenes in-process vs on a Dask LocalCluster (issue 6).

The scenes are 8 windows of the shipped Sentinel-2 sample (sample_data/, 4 bands uint16) written as
separate GeoTIFFs; each is upscaled by the CLI exactly as a cron job would: `rssr upscale DIR -o OUT`,
once in-process and once with `--scheduler local:N`. Wall time includes process start, model load
(once in-process, once per worker on the cluster) and COG writing. Results go to bench/out/batch.json.

    python bench/bench_batch.py [--method diffusion] [--scale 4] [--size 96] [--workers 2]
    python bench/bench_batch.py --quick     # 4 scenes of 48 px, bicubic (make bench)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import rasterio
from rasterio.windows import Window

from benchlib import write_result

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "sample_data" / "s2_b2348_256.tif"


def make_scenes(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with rasterio.open(SAMPLE) as src:
        step = (src.width - size) // max(1, count // 2 - 1)
        for i in range(count):
            window = Window((i % (count // 2)) * step, (i // (count // 2)) * (src.height - size), size, size)
            profile = {**src.profile, "width": size, "height": size, "transform": src.window_transform(window)}
            path = folder / f"scene{i}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(window=window))
            paths.append(path)
    return paths


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--method", default=None, help="default diffusion (--quick: bicubic, the batch machinery alone)"
    )
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--size", type=int, default=None, help="LR side of each scene, px (default 96; --quick: 48)")
    parser.add_argument("--count", type=int, default=None, help="scenes (default 8; --quick: 4)")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller scenes for a 2-core box")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "batch")
    args = parser.parse_args()
    args.method = args.method or ("bicubic" if args.quick else "diffusion")
    args.size = args.size or (48 if args.quick else 96)
    args.count = args.count or (4 if args.quick else 8)

    shutil.rmtree(args.workdir, ignore_errors=True)
    scenes = make_scenes(args.workdir / "in", args.count, args.size)
    rssr = [
        sys.executable,
        "-m",
        "rssr_cli",
        "upscale",
        str(args.workdir / "in"),
        "-s",
        f"{args.scale:g}",
        "-m",
        args.method,
        "-q",
    ]
    figures = {}
    for label, extra in (
        ("in-process", []),
        (f"LocalCluster({args.workers})", ["--scheduler", f"local:{args.workers}"]),
    ):
        out = args.workdir / label.replace("(", "_").replace(")", "")
        log = args.workdir / f"{out.name}.jsonl"
        seconds = timed([*rssr, "-o", str(out), "--log-json", str(log), *extra])
        scenes_done = [json.loads(line) for line in log.read_text().splitlines()]
        figures[label] = {
            "wall_s": round(seconds, 1),
            "scene_s_sum": round(sum(s["seconds"] for s in scenes_done), 1),
            "statuses": sorted({s["status"] for s in scenes_done}),
        }
        print(f"{label:>18}: {seconds:6.1f} s wall, {figures[label]['scene_s_sum']:.1f} s of scene work")
        # the re-run is the cron case: everything is skipped
        rerun = timed([*rssr, "-o", str(out), *extra])
        figures[label]["rerun_all_skipped_s"] = round(rerun, 1)
        print(f"{'':>18}  re-run (all skipped): {rerun:.1f} s")
    result = {
        "scenes": len(scenes),
        "lr_px": args.size,
        "scale": args.scale,
        "method": args.method,
        "workers": args.workers,
        "runs": figures,
    }
    write_result("batch", result, quick=args.quick)


if __name__ == "__main__":
    main()
