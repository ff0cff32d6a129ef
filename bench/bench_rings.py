"""Rings and consistency of guided sharpening on REAL native bands (issue 20 item 4), evaluation cities only.

    python bench/bench_rings.py [--sharpener models/sharpen.safetensors] [--cities aguasclaras,nantes]

No degradation: each city's first date, its 20 m bands sharpened to 10 m (x2) and 60 m bands to 10 m (x6) with
the four native 10 m bands as guides (the grids are taken as sharing their top-left corner, as the dataset's
resampled files do), by the library steps `rssr upscale` runs (sharpen_array, then consistent_and_bounded), and
by bicubic. Per band:
- ring share: output pixels outside their native 3x3 neighbourhood's [min, max] widened by 10 % of the band's
  1-99 % range (bounds.ring_share); reference: the native 10 m B02 and B08 against their own 2x2 and 6x6 means (what
  the truth shows at x2 and x6);
- PSF consistency: mean |output seen through the band's PSF at its native pixel centres - native| (DN);
- the guided output before the bound (back-projected only), to show what the bound removes.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from s2_corpus import EVAL_CITIES

from rssr_cli.geo.grid import Placement
from rssr_cli.sharpen.bands import BAND_RESOLUTION_M, GUIDE_BANDS
from rssr_cli.sharpen.bounds import BOUND_MARGIN, RING_MARGIN, band_range, ring_share
from rssr_cli.sharpen.consistency import psf_consistency_error
from rssr_cli.sharpen.degrade import sample_at
from rssr_cli.sharpen.model import load_sharpener
from rssr_cli.sharpen.predict import back_project, consistent_and_bounded, sharpen_array
from rssr_cli.sharpen.scene import load_stack_bands, stats_of

from benchlib import write_result

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/s2_oscd"


def truth_ring_share(values: np.ndarray, k: int) -> float:
    """The ring share a real band shows against its own k x k block mean: what a faithful x k output would show (issue
    20 quotes 0.04-0.17 % at k = 2 on a rural scene; on these cities it is 10x that, and 5-10x more again at k = 6)."""
    reference = values.astype(np.float64)
    h, w = reference.shape[0] // k, reference.shape[1] // k
    mean = reference[: k * h, : k * w].reshape(h, k, w, k).mean(axis=(1, 3))
    valid = np.ones(mean.shape, bool)
    rows, cols = np.arange(k * h) // k, np.arange(k * w) // k
    return ring_share(reference[: k * h, : k * w], mean, valid, rows, cols, RING_MARGIN * band_range(mean, valid))


def one_city(city: str, model) -> dict:
    scene = load_stack_bands(sorted((DATA / city).glob("imgs_*"))[0])
    guides_native = [scene[g] for g in GUIDE_BANDS]
    H, W = guides_native[0].values.shape
    guides = np.stack([g.values for g in guides_native]).astype(np.float32)
    guide_stats = np.array([stats_of(g.values, g.valid) for g in guides_native], dtype=np.float32)
    rows: dict = {}
    for name in ("B02", "B08"):  # the truth's own figure: a 10 m band against its own 2x2 (x2) and 6x6 (x6) mean
        for k in (2, 6):
            rows[f"{name} (10 m truth vs its {k}x{k} mean)"] = {"ring_truth": truth_ring_share(scene[name].values, k)}
    for name, band in scene.items():
        if name in GUIDE_BANDS or name not in BAND_RESOLUTION_M:
            continue
        ratio = BAND_RESOLUTION_M[name] / 10.0
        native, valid = band.values.astype(np.float32), band.valid
        ys = (np.arange(H) + 0.5) / ratio
        xs = (np.arange(W) + 0.5) / ratio
        up = sample_at(
            torch.from_numpy(native)[None, None], torch.from_numpy(ys).float()[None], torch.from_numpy(xs).float()[None]
        )[0, 0].numpy()
        out = sharpen_array(
            model,
            name,
            up,
            guides,
            scale=ratio,
            guide_ratio=1.0,
            band_stats=stats_of(native, valid),
            guide_stats=guide_stats,
        )
        margin = BOUND_MARGIN * band_range(native, valid)
        projected = back_project(out, native, valid, ys, xs, ratio)
        bounded = consistent_and_bounded(out, native, valid, ys, xs, ratio, margin, guides, guide_stats[:, 1])
        r = np.clip(np.floor(ys).astype(int), 0, native.shape[0] - 1)
        c = np.clip(np.floor(xs).astype(int), 0, native.shape[1] - 1)
        measure = RING_MARGIN * band_range(native, valid)
        placement = Placement(0.0, 0.0, 1 / ratio, 1 / ratio)
        rows[name] = {
            "ratio": ratio,
            "ring_bicubic": ring_share(up, native, valid, r, c, measure),
            "ring_guided_unbounded": ring_share(projected, native, valid, r, c, measure),
            "ring_guided": ring_share(bounded, native, valid, r, c, measure),
            "max_guided_unbounded": float(projected.max()),
            "max_guided": float(bounded.max()),
            "native_max": float(native[valid].max()),
            "psf_consistency_bicubic": psf_consistency_error(
                up.astype(np.float64), native.astype(np.float64), placement, valid
            ),
            "psf_consistency_guided": psf_consistency_error(
                bounded.astype(np.float64), native.astype(np.float64), placement, valid
            ),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sharpener", type=Path, default=REPO / "models/sharpen.safetensors")
    parser.add_argument("--cities", default=",".join(EVAL_CITIES))
    args = parser.parse_args()
    model = load_sharpener(args.sharpener)
    cities = args.cities.split(",")[:1] if args.quick else args.cities.split(",")
    figures = {city: one_city(city, model) for city in cities}
    for city, rows in figures.items():
        for band, row in rows.items():
            print(city, band, {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    bands = list(next(iter(figures.values())))
    median = {
        b: {k: statistics.median(figures[c][b][k] for c in figures) for k in figures[cities[0]][b]} for b in bands
    }
    print("median", median)
    write_result("bench_rings", {"cities": figures, "median": median}, quick=args.quick)


if __name__ == "__main__":
    main()
