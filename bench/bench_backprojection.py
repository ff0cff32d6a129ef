"""Which back-projection is best across the degradation family (issue 20): the guided output's last step but one.

    python bench/bench_backprojection.py --cities hongkong,bercy --bands B05,B11,B12,B01,B09 [--cache runs/bp]

The network runs once per (city, band, degradation) and once per real native band (its outputs are cached as .npy
under --cache); every candidate back-projection (none; a Gaussian PSF of MTF m at the native Nyquist, times a gain
lambda, one or two steps) is applied to the same output, followed by the shipped bound (bounds.py); `raw` is the
network alone (no back-projection, no bound). Per band:
- Wald psf and box: RMSE(guided) / RMSE(bicubic) on the whole image (wald_inputs, --wald-split all), r = 2 for the
  20 m bands and 6 for the 60 m ones, what `rssr evaluate --wald --degradation psf|box` computes;
- real native bands (no degradation, 10 m guides, as bench_rings.py): the ring share (bounds.ring_share with
  RING_MARGIN) and the PSF consistency (consistency.psf_consistency_error, DN).
Prints one table per city group: candidate x band x {psf ratio, box ratio, ring share}, medians over the cities.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from rssr_cli.degradation.sensor_degradation import psf_weights
from rssr_cli.geo.grid import Placement
from rssr_cli.sharpen.bands import BAND_RESOLUTION_M, GUIDE_BANDS
from rssr_cli.sharpen.bounds import BOUND_MARGIN, RING_MARGIN, band_range, bound_to_native, ring_share
from rssr_cli.sharpen.consistency import psf_consistency_error
from rssr_cli.sharpen.degrade import resample_for_sharpener, sample_at, seen_by_native_pixels
from rssr_cli.sharpen.model import load_sharpener
from rssr_cli.sharpen.predict import back_project, sharpen_array
from rssr_cli.sharpen.scene import load_stack_bands, stats_of
from rssr_cli.sharpen.wald import DEGRADATIONS, GROUP_RATIO, rmse
from rssr_cli.sharpen.wald_inputs import wald_inputs

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/s2_oscd"

# (label, mtf, gain, steps). "none": no back-projection; "m...": the residual of a Gaussian of MTF `mtf` at the
# native Nyquist sampled at the native pixel centres (the shipped rule before issue 20's measurement: m0.25 g1.00);
# "box...": the exact pixel aggregate (box), after a Gaussian of MTF `mtf` (1.0: the box alone, the shipped rule now,
# predict.back_project). Each step adds `gain` times the residual, resampled onto the output.
CANDIDATES = (
    [("raw", 1.0, 0.0, 1), ("none", 1.0, 0.0, 1)]
    + [(f"m{m:.2f} g{g:.2f}", m, g, 1) for m in (0.25, 0.33, 0.45, 0.64) for g in (0.25, 0.5, 0.75, 1.0)]
    + [(f"m{m:.2f} g1.00 x2", m, 1.0, 2) for m in (0.45, 0.64)]
    + [(f"m{m:.2f} g{g:.2f}", m, g, 1) for m in (0.75, 0.85) for g in (0.5, 0.75, 1.0)]
    + [(f"box g{g:.2f}", 1.0, g, 1) for g in (0.5, 0.75, 1.0)]
    + [("box g1.00 x2", 1.0, 1.0, 2)]
    + [(f"box+m0.70 g{g:.2f}", 0.70, g, 1) for g in (0.5, 1.0)]
)


def _resampled(residual: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return resample_for_sharpener(
        torch.from_numpy(residual.astype(np.float32))[None, None],
        torch.from_numpy(ys).float()[None],
        torch.from_numpy(xs).float()[None],
    )[0, 0].numpy()


def correction(out, native, valid, ys, xs, ratio, label: str, mtf: float) -> np.ndarray:
    """The residual of one back-projection step of the candidate, resampled onto the output (gain 1)."""
    if label.startswith("box") and mtf >= 1.0:  # the shipped rule
        return back_project(out, native, valid, ys, xs, ratio) - out
    dy, dx = float(ys[1] - ys[0]), float(xs[1] - xs[0])
    y0, x0 = float(ys[0]) - 0.5 * dy, float(xs[0]) - 0.5 * dx
    if label.startswith("box"):  # Gaussian then the box, as sensor_degradation.degrade applies them
        wy = psf_weights(native.shape[0], 1 / dy, -y0 / dy, out.shape[0], mtf)
        wx = psf_weights(native.shape[1], 1 / dx, -x0 / dx, out.shape[1], mtf)
        at_native = (wy @ torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)) @ wx.T).numpy()
    else:
        at_native = seen_by_native_pixels(out, ratio, (y0, x0), (dy, dx), native.shape, mtf=mtf)
    return _resampled(np.where(valid, native - at_native, 0.0), ys, xs)


def finish(out, native, valid, ys, xs, ratio, candidate, guides, guide_std, guide_valid) -> np.ndarray:
    label, mtf, gain, steps = candidate
    if label == "raw":  # the network alone: no back-projection, no bound
        return out
    for _ in range(steps if gain else 0):
        out = out + gain * correction(out, native, valid, ys, xs, ratio, label, mtf)
    rows = np.clip(np.floor(ys).astype(int), 0, native.shape[0] - 1)
    cols = np.clip(np.floor(xs).astype(int), 0, native.shape[1] - 1)
    margin = BOUND_MARGIN * band_range(native, valid)
    return bound_to_native(out, native, valid, rows, cols, margin, guides, guide_valid, guide_std)


def cached(path: Path, compute) -> np.ndarray:
    if path.is_file():
        return np.load(path)
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def wald_city(model, city: str, bands: list[str], cache: Path) -> dict:
    scene = load_stack_bands(sorted((DATA / city).glob("imgs_*"))[0])
    stats = {name: stats_of(b.values, b.valid) for name, b in scene.items()}
    guide_stats = np.array([stats[g] for g in GUIDE_BANDS], dtype=np.float32)
    guides = [scene[g] for g in GUIDE_BANDS]
    figures: dict = {}
    for degradation, member in DEGRADATIONS.items():
        for name in bands:
            resolution = BAND_RESOLUTION_M[name]
            ratio = GROUP_RATIO[resolution]
            band = scene[name]
            inputs = wald_inputs(band, guides, ratio, (0, 0, *band.values.shape), member=member)
            out = cached(
                cache / f"{city}_{degradation}_{name}.npy",
                lambda: sharpen_array(
                    model,
                    name,
                    inputs.band_up,
                    inputs.guides,
                    scale=ratio,
                    guide_ratio=ratio * 10.0 / resolution,
                    band_stats=stats[name],
                    guide_stats=guide_stats,
                ),
            )
            y0, x0, dy, dx = inputs.lr_window
            ys = y0 + (np.arange(out.shape[0]) + 0.5) * dy
            xs = x0 + (np.arange(out.shape[1]) + 0.5) * dx
            native_valid = np.ones(inputs.lr.shape, bool)
            base = rmse(inputs.bicubic, inputs.truth, inputs.valid)
            for c in CANDIDATES:
                done = finish(
                    out,
                    inputs.lr,
                    native_valid,
                    ys,
                    xs,
                    ratio,
                    c,
                    inputs.guides,
                    guide_stats[:, 1],
                    np.ones(out.shape, bool),
                )
                figures.setdefault(c[0], {}).setdefault(name, {})[degradation] = (
                    rmse(done, inputs.truth, inputs.valid) / base
                )
            print(city, degradation, name, "done", flush=True)
    return figures


def rings_city(model, city: str, bands: list[str], cache: Path) -> dict:
    scene = load_stack_bands(sorted((DATA / city).glob("imgs_*"))[0])
    guides_native = [scene[g] for g in GUIDE_BANDS]
    H, W = guides_native[0].values.shape
    guides = np.stack([g.values for g in guides_native]).astype(np.float32)
    guide_stats = np.array([stats_of(g.values, g.valid) for g in guides_native], dtype=np.float32)
    figures: dict = {}
    for name in bands:
        band = scene[name]
        ratio = BAND_RESOLUTION_M[name] / 10.0
        native, valid = band.values.astype(np.float32), band.valid
        ys, xs = (np.arange(H) + 0.5) / ratio, (np.arange(W) + 0.5) / ratio
        up = sample_at(
            torch.from_numpy(native)[None, None], torch.from_numpy(ys).float()[None], torch.from_numpy(xs).float()[None]
        )[0, 0].numpy()
        out = cached(
            cache / f"{city}_native_{name}.npy",
            lambda: sharpen_array(
                model,
                name,
                up,
                guides,
                scale=ratio,
                guide_ratio=1.0,
                band_stats=stats_of(native, valid),
                guide_stats=guide_stats,
            ),
        )
        r = np.clip(np.floor(ys).astype(int), 0, native.shape[0] - 1)
        c = np.clip(np.floor(xs).astype(int), 0, native.shape[1] - 1)
        measure = RING_MARGIN * band_range(native, valid)
        placement = Placement(0.0, 0.0, 1 / ratio, 1 / ratio)
        n64 = native.astype(np.float64)
        figures.setdefault("bicubic", {})[name] = {
            "ring": ring_share(up, native, valid, r, c, measure),
            "psf_consistency": psf_consistency_error(up.astype(np.float64), n64, placement, valid),
        }
        for cand in CANDIDATES:
            done = finish(
                out,
                native,
                valid,
                ys,
                xs,
                ratio,
                cand,
                guides,
                guide_stats[:, 1],
                np.logical_and.reduce([g.valid for g in guides_native]),
            )
            figures.setdefault(cand[0], {})[name] = {
                "ring": ring_share(done, native, valid, r, c, measure),
                "psf_consistency": psf_consistency_error(done.astype(np.float64), n64, placement, valid),
            }
        print(city, "native", name, "done", flush=True)
    return figures


def table(wald: dict, rings: dict, bands: list[str]) -> None:
    cities = list(wald)
    print("| candidate | " + " | ".join(f"{b} psf / box / ring % / cons" for b in bands) + " | worst ratio |")
    print("|---" * (len(bands) + 2) + "|")
    for label, *_ in CANDIDATES:
        cells, worst = [], 0.0
        for b in bands:
            psf = statistics.median(wald[c][label][b]["psf"] for c in cities)
            box = statistics.median(wald[c][label][b]["box"] for c in cities)
            ring = statistics.median(rings[c][label][b]["ring"] for c in cities)
            cons = statistics.median(rings[c][label][b]["psf_consistency"] for c in cities)
            worst = max(worst, psf, box)
            cells.append(f"{psf:.3f} / {box:.3f} / {100 * ring:.2f} / {cons:.1f}")
        print(f"| {label} | " + " | ".join(cells) + f" | {worst:.3f} |")
    cells = []
    for b in bands:
        ring = statistics.median(rings[c]["bicubic"][b]["ring"] for c in cities)
        cons = statistics.median(rings[c]["bicubic"][b]["psf_consistency"] for c in cities)
        cells.append(f"1 / 1 / {100 * ring:.2f} / {cons:.1f}")
    print("| bicubic | " + " | ".join(cells) + " | 1 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sharpener", type=Path, default=REPO / "models/sharpen.safetensors")
    parser.add_argument("--cities", default="hongkong,bercy")
    parser.add_argument("--bands", default="B05,B11,B12,B01,B09")
    parser.add_argument("--cache", type=Path, default=REPO / "runs/backprojection")
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/backprojection.json")
    args = parser.parse_args()
    model = load_sharpener(args.sharpener)
    bands = args.bands.split(",")
    cities = args.cities.split(",")
    wald = {c: wald_city(model, c, bands, args.cache) for c in cities}
    rings = {c: rings_city(model, c, bands, args.cache) for c in cities}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cities": cities, "bands": bands, "wald": wald, "rings": rings}, indent=1))
    table(wald, rings, bands)


if __name__ == "__main__":
    main()
