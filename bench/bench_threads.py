"""The thread policy under a competing CPU load: a small default upscale with the default thread count vs --threads 1.

Starts its own bounded load (N busy Python processes, killed at the end whatever happens), then times the `rssr`
command end to end (process start included, the same for every variant) on a crop of sample_data:
  default   no --threads, no OMP_NUM_THREADS: the CPUs this process may use (threads.py), passive OpenMP waits
  threads1  --threads 1
  active    the default count with OMP_WAIT_POLICY=ACTIVE (spinning waits: what collapsed before issue 19)
and the default and --threads 1 once more without the bench's load. Prints a Markdown table, writes
bench/out/threads.json.

    python bench/bench_threads.py            # ~1-2 min on a 2-core box
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rasterio
from rasterio.windows import Window

from benchlib import write_result

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "s2_b2348_256.tif"
RSSR = Path(sys.executable).with_name("rssr")


def crop(dst: Path, size: int) -> Path:
    with rasterio.open(SAMPLE) as src:
        window = Window(0, 0, size, size)
        profile = src.profile | {"width": size, "height": size, "transform": src.window_transform(window)}
        with rasterio.open(dst, "w", **profile) as out:
            out.write(src.read(window=window))
    return dst


def timed_run(src: Path, dst: Path, scale: float, threads: int | None, wait_policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    cmd = [str(RSSR), "upscale", str(src), "--scale", str(scale), "-o", str(dst), "-q", "--overwrite"]
    cmd += ["--threads", str(threads)] if threads else []
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def busy_load(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=48, help="LR crop side (px)")
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--load", type=int, default=2, help="busy processes competing for the CPUs")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1 repeat")
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed bench still kills its load (the finally below)
    variants = {"default": (None, None), "threads1": (1, None), "active": (None, "ACTIVE")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = crop(Path(tmp) / "crop.tif", args.size)
        dst = Path(tmp) / "out.tif"
        timed_run(src, dst, args.scale, 1, None)  # warm the file cache and the model file
        for load in (args.load, 0):
            procs = busy_load(load)
            try:
                for name, (threads, policy) in variants.items():
                    if load == 0 and name == "active":
                        continue
                    times = [timed_run(src, dst, args.scale, threads, policy) for _ in range(repeats)]
                    rows.append({"load": load, "variant": name, "seconds": times, "median_s": statistics.median(times)})
                    print(f"load {load}  {name:9s} {' '.join(f'{t:.1f}' for t in times)} s", flush=True)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    print("\n| competing busy processes | variant | wall (s), median |\n|---|---|---|")
    for r in rows:
        print(f"| {r['load']} | {r['variant']} | {r['median_s']:.1f} |")
    write_result(
        "threads",
        {"size": args.size, "scale": args.scale, "cpus": len(os.sched_getaffinity(0)), "rows": rows},
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
