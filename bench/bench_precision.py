"""bf16 vs fp32 inference on the README demo (sample_data, default model, prior only): is bf16 exact enough?

Runs `rssr upscale SAMPLE --scale S --precision P` once per precision as a child process (OMP_NUM_THREADS=1 unless
set) and reports its wall/user/sys time and peak RSS (os.wait4), then the outputs' mean/max |bf16 - fp32| in DN and
each output's fidelity PSNR (the SR averaged back onto the LR grid vs the input, data range 10000 DN), against
issue 19's bar for a bf16 default: mean |diff| <= 0.5 DN, max <= 4 DN, fidelity PSNR within 0.01 dB.

    python bench/bench_precision.py           # the whole 256 px sample at x4.5 (two demo runs)
    python bench/bench_precision.py --quick   # a 64 px crop
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from bench_threads import RSSR, SAMPLE, crop

from rssr_cli.scoring.metrics import degrade_back, psnr

from benchlib import write_result

BAR = {"mean_dn": 0.5, "max_dn": 4.0, "psnr_db": 0.01}


def run(src: Path, dst: Path, scale: float, precision: str) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(RSSR),
            "upscale",
            str(src),
            "--scale",
            str(scale),
            "--precision",
            precision,
            "-o",
            str(dst),
            "-q",
            "--overwrite",
        ],
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        sys.exit(f"rssr failed ({status})")
    return {
        "wall_s": time.perf_counter() - start,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=4.5)
    ap.add_argument("--quick", action="store_true", help="a 64 px crop")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = crop(Path(tmp) / "crop.tif", 64) if args.quick else SAMPLE
        runs = {p: run(src, Path(tmp) / f"{p}.tif", args.scale, p) for p in ("fp32", "bf16")}
        with rasterio.open(src) as s:
            lr = s.read().astype(np.float64)
        out = {}
        for p in runs:
            with rasterio.open(Path(tmp) / f"{p}.tif") as o:
                out[p] = o.read().astype(np.float64)
    diff = np.abs(out["bf16"] - out["fp32"])
    fidelity = {p: psnr(degrade_back(sr, lr.shape[-2:]), lr, 10000.0) for p, sr in out.items()}
    figures = {
        "runs": runs,
        "mean_abs_diff_dn": float(diff.mean()),
        "max_abs_diff_dn": float(diff.max()),
        "fidelity_psnr_db": fidelity,
        "psnr_change_db": fidelity["bf16"] - fidelity["fp32"],
        "bar": BAR,
    }
    figures["bf16_default_ok"] = bool(
        figures["mean_abs_diff_dn"] <= BAR["mean_dn"]
        and figures["max_abs_diff_dn"] <= BAR["max_dn"]
        and figures["psnr_change_db"] >= -BAR["psnr_db"]
    )
    print(
        "| precision | wall (s) | user (s) | sys (s) | peak RSS (MB) | fidelity PSNR (dB) |\n|---|---|---|---|---|---|"
    )
    for p, r in runs.items():
        print(
            f"| {p} | {r['wall_s']:.1f} | {r['user_s']:.1f} | {r['sys_s']:.1f} | {r['peak_rss_mb']:.0f} | {fidelity[p]:.3f} |"
        )
    print(
        f"bf16 vs fp32: mean |diff| {figures['mean_abs_diff_dn']:.3f} DN, max {figures['max_abs_diff_dn']:.0f} DN, "
        f"PSNR change {figures['psnr_change_db']:+.4f} dB -> bf16 default: {'yes' if figures['bf16_default_ok'] else 'no'}"
    )
    write_result("precision", figures, quick=args.quick)


if __name__ == "__main__":
    main()
