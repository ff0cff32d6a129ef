"""CPU-hours and peak memory per full Sentinel-2 tile (10980 x 10980 px at 10 m) for the common jobs, from
`rssr info --estimate`'s model (cost.py: the planned windows + a calibration of the default model on this machine).

  4 bands at 5 m      B02 B03 B04 B08, 10 m -> 5 m (x2)
  10 m bands at 2.5 m the same 4 bands, x4
  all bands at 10 m   6 bands at 20 m (x2) and 3 at 60 m (x6) onto the 10 m grid (the 10 m bands need nothing)

    python bench/bench_tile_cost.py      # ~1 min (calibrations only; nothing runs at full size)
"""

from __future__ import annotations

import argparse

from affine import Affine

from rssr_cli.geo.grid import plan_output_grid
from rssr_cli.pipeline.cost import estimate_cost

from benchlib import write_result

JOBS = {  # name -> [(bands, LR side px, LR pixel size m, scale)]
    "4 bands at 5 m (x2)": [(4, 10980, 10, 2.0)],
    "10 m bands at 2.5 m (x4)": [(4, 10980, 10, 4.0)],
    "all bands at 10 m (20 m x2, 60 m x6)": [(6, 5490, 20, 2.0), (3, 1830, 60, 6.0)],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="(the same: this benchmark is short)")
    args = ap.parse_args()
    rows = []
    print("| job | windows | HR band-px computed | CPU-hours | peak RSS |\n|---|---|---|---|---|")
    for name, parts in JOBS.items():
        cpu_h, windows, px, peak = 0.0, 0, 0, 0
        for bands, side, size, scale in parts:
            grid = plan_output_grid(side, side, Affine(size, 0, 300000, 0, -size, 5000000), scale=scale)
            est = estimate_cost(grid, bands)
            cpu_h += est.cpu_hours
            windows += est.windows
            px += est.computed_band_px
            peak = max(peak, est.peak_rss_bytes)
        rows.append(
            {
                "job": name,
                "windows": windows,
                "computed_band_px": px,
                "cpu_hours": cpu_h,
                "peak_rss_bytes": peak,
                "model": est.model,
                "mode": est.mode,
            }
        )
        print(f"| {name} | {windows} | {px / 1e9:.2f} G | {cpu_h:.2f} | {peak / 2**30:.2f} GB |", flush=True)
    write_result("tile_cost", {"rows": rows}, quick=args.quick)


if __name__ == "__main__":
    main()
