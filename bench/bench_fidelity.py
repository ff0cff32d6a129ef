"""Fidelity figures (`upscale --report`) of each method on one raster, and what the report costs.

    python bench/bench_fidelity.py [SRC] [--scale 4] [--methods nearest,bicubic,lanczos,diffusion]
    python bench/bench_fidelity.py --quick     # a 48 px crop of SRC at x2, bicubic and diffusion, 2 samples (make bench)

For every method: one upscale without the report and one with it (the difference is the report's cost:
a pass over the output plus --report-samples runs of the backend on one crop), then the figures.
Prints a Markdown table for BENCHMARKS.md and writes bench/out/fidelity.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import rasterio
from rasterio.windows import Window

from rssr_cli.evaluation.fidelity_report import FidelityOptions
from rssr_cli.pipeline import UpscaleSettings, upscale

QUICK_CROP = 48  # px: the diffusion model on a 2-core CPU in seconds

from benchlib import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", nargs="?", default="sample_data/s2_b2348_256.tif")
    parser.add_argument("--scale", type=float, default=None, help="default 4 (--quick: 2)")
    parser.add_argument(
        "--methods", default=None, help="default nearest,bicubic,lanczos,diffusion (--quick: bicubic,diffusion)"
    )
    parser.add_argument("--samples", type=int, default=None, help="default 4 (--quick: 2, the least)")
    parser.add_argument("--quick", action="store_true", help="a 48 px crop at x2, two methods, for a 2-core box")
    args = parser.parse_args()
    methods = args.methods or ("bicubic,diffusion" if args.quick else "nearest,bicubic,lanczos,diffusion")
    samples = args.samples or (2 if args.quick else 4)
    args.scale = args.scale or (2.0 if args.quick else 4.0)
    rows = []

    print(
        "| method | upscale s | with --report s | consistency (worst band, % of range) | deviating (worst band) "
        "| spectral angle (deg) | shift (LR px) | uncertainty mean (DN, per band) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        src = crop(Path(args.src), Path(tmp) / "crop.tif", QUICK_CROP) if args.quick else args.src
        for method in methods.split(","):
            settings = UpscaleSettings(scale=args.scale, method=method, overwrite=True)
            start = time.perf_counter()
            upscale(src, Path(tmp) / "plain.tif", settings)
            plain = time.perf_counter() - start
            start = time.perf_counter()
            result = upscale(
                src, Path(tmp) / "report.tif", settings, fidelity=FidelityOptions(write_report=True, samples=samples)
            )
            reported = time.perf_counter() - start
            f = result.fidelity
            shift = "n/a" if f.shift is None else f"{f.shift.dy:+.3f}, {f.shift.dx:+.3f}"
            sam = "n/a" if f.spectral_angle_deg is None else f"{f.spectral_angle_deg:.3f}"
            print(
                f"| {method} | {plain:.1f} | {reported:.1f} | {100 * f.worst_consistency:.2f} "
                f"| {max(b.deviating_fraction for b in f.bands):.1%} | {sam} | {shift} "
                f"| {', '.join(f'{b.uncertainty_mean:.1f}' for b in f.bands)} |"
            )
            rows.append(
                {
                    "method": method,
                    "upscale_s": plain,
                    "with_report_s": reported,
                    "worst_consistency": f.worst_consistency,
                    "worst_deviating_fraction": max(b.deviating_fraction for b in f.bands),
                    "spectral_angle_deg": f.spectral_angle_deg,
                    "shift_lr_px": None if f.shift is None else [f.shift.dy, f.shift.dx],
                    "uncertainty_mean": [b.uncertainty_mean for b in f.bands],
                }
            )
    write_result(
        "fidelity",
        {
            "src": str(args.src),
            "crop_px": QUICK_CROP if args.quick else None,
            "scale": args.scale,
            "samples": samples,
            "rows": rows,
        },
        quick=args.quick,
    )


def crop(src: Path, dst: Path, size: int) -> Path:
    """The top-left size x size window of src as its own GeoTIFF (quick mode)."""
    with rasterio.open(src) as ds:
        window = Window(0, 0, min(size, ds.width), min(size, ds.height))
        profile = {
            **ds.profile,
            "width": int(window.width),
            "height": int(window.height),
            "transform": ds.window_transform(window),
        }
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read(window=window))
    return dst


if __name__ == "__main__":
    main()
