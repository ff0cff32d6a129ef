"""Where a chain's top-octave cross-power with the truth goes (issue 21, bar 2): the draws' mean deviation from the
prior, in the 0.25-0.5 cyc/px band, against the truth and against the prior's own content there.

    OMP_NUM_THREADS=1 python bench/chain_cross_power.py runs/rs-s2/calibrated.safetensors \\
        --tiles 'runs/s2corpus/eval_tiles/*/*_1.tif' --count 8 --samples 6

Tiles: uint16 Sentinel-2 10 m bands (bench_s2.make_tiles), degraded at x4 by the sensor family's evaluation member and
stored as DN. Prints, pooled over the tiles, C(d̄, x) / C(m, x) (bar 2's ratio minus 1, for the mean deviation d̄ of K
draws), <d̄, m> / <m, m> (how much of the prior's own top octave the draws take back or add), C(m, x) / <m, m> (the
gain of the prior's top octave with the least error: below 1, the prior's top octave is too strong and taking some back
is right), and the per-tile ratios.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import rasterio
import torch

from rssr_cli.degradation import sensor_degradation
from rssr_cli.model.checkpoint import load_model
from rssr_cli.model.operator import grid_tensors
from rssr_cli.scoring.posterior import cross_power

DN = 10000.0  # L1C reflectance scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a chain's model file (calibrated: its card's sampler settings)")
    parser.add_argument("--tiles", default="runs/s2corpus/eval_tiles/*/*_1.tif")
    parser.add_argument("--count", type=int, default=8, help="every other tile of the sorted list, up to this many")
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    model = load_model(args.model).eval()
    files = sorted(glob.glob(args.tiles))[::2][: args.count]
    if not files:
        raise SystemExit(f"no tiles match {args.tiles}")
    rows = []
    for path in files:
        with rasterio.open(path) as src:
            x = src.read(1).astype(np.float32) / DN
        s = args.scale
        h, w = x.shape[0] // s, x.shape[1] // s
        x = x[: h * s, : w * s]
        lr = torch.round(sensor_degradation.degrade(torch.from_numpy(x)[None, None], float(s), (h, w)) * DN) / DN
        ys, xs, cell = grid_tensors(h * s, w * s, 0.0, 0.0, 1.0 / s, 1.0 / s)
        with torch.no_grad():
            m = model.sample(lr, ys, xs, cell, mode="prior")[0, 0].numpy()
            draws = model.sample_draws(lr, ys, xs, cell, args.samples, generator=torch.Generator().manual_seed(0))
        mean_deviation = np.mean([d[0, 0].numpy() - m for d in draws], axis=0)
        rows.append(
            (
                cross_power(m, x),
                cross_power(mean_deviation, x),
                cross_power(mean_deviation, m),
                cross_power(m, m),
            )
        )
    c_mx, c_dx, c_dm, c_mm = np.array(rows).sum(0)
    print(f"{len(files)} tiles, K = {args.samples}: C(mean deviation, x) / C(m, x) = {c_dx / c_mx:+.3f}")
    print(f"<mean deviation, m> / <m, m> in the top octave = {c_dm / c_mm:+.3f}")
    print(f"the gain of the prior's own top octave that fits the truth best, C(m, x) / <m, m> = {c_mx / c_mm:.3f}")
    print("per tile C(m, x):", [round(r[0], 1) for r in rows])
    print("per tile C(mean deviation, x) / C(m, x):", [round(r[1] / r[0], 2) for r in rows])


if __name__ == "__main__":
    main()
