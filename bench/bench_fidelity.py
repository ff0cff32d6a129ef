"""Fidelity figures (`upscale --report`) of each method on one raster, and what the report costs.

    python bench/bench_fidelity.py [SRC] [--scale 4] [--methods nearest,bicubic,lanczos,diffusion]

For every method: one upscale without the report and one with it (the difference is the report's cost:
a pass over the output plus --report-samples runs of the backend on one crop), then the figures.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rssr_cli.evaluation.fidelity_report import FidelityOptions
from rssr_cli.pipeline import UpscaleSettings, upscale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", nargs="?", default="sample_data/s2_b2348_256.tif")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--methods", default="nearest,bicubic,lanczos,diffusion")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()

    print("| method | upscale s | with --report s | consistency (worst band, % of range) | deviating (worst band) "
          "| spectral angle (deg) | shift (LR px) | uncertainty mean (DN, per band) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            settings = UpscaleSettings(scale=args.scale, method=method, overwrite=True)
            start = time.perf_counter()
            upscale(args.src, Path(tmp) / "plain.tif", settings)
            plain = time.perf_counter() - start
            start = time.perf_counter()
            result = upscale(args.src, Path(tmp) / "report.tif", settings, fidelity=FidelityOptions(write_report=True, samples=args.samples))
            reported = time.perf_counter() - start
            f = result.fidelity
            shift = "n/a" if f.shift is None else f"{f.shift.dy:+.3f}, {f.shift.dx:+.3f}"
            sam = "n/a" if f.spectral_angle_deg is None else f"{f.spectral_angle_deg:.3f}"
            print(
                f"| {method} | {plain:.1f} | {reported:.1f} | {100 * f.worst_consistency:.2f} "
                f"| {max(b.deviating_fraction for b in f.bands):.1%} | {sam} | {shift} "
                f"| {', '.join(f'{b.uncertainty_mean:.1f}' for b in f.bands)} |"
            )


if __name__ == "__main__":
    main()
