"""Sentinel-2 10 m bands on cities never trained or selected on (issue 20): gain over bicubic and top-octave energy.

    python bench/bench_s2.py [--quick] [--model models/s2-10m.safetensors] [--baseline models/aerial.safetensors]

Protocol: `rssr evaluate --degradation sentinel2` (the sensor model's evaluation member: Gaussian PSF with MTF 0.3 at
the LR Nyquist, then the pixel's box aggregate; LR stored as uint16) on tiles of the evaluation cities' 10 m bands
(bench/s2_corpus.py: EVAL_CITIES; both dates, B02 B03 B04 B08, up to 3 tiles of 256 x 256 per band file along its
diagonal, written under runs/s2corpus/eval_tiles/). Per city and scale: mean PSNR of each method and its gain over
bicubic, and the top-octave (0.25-0.5 cyc/px) energy ratio SR/truth (evaluation/detail.py). --quick: one tile per
band file, x4 only.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import rasterio
from s2_corpus import BANDS_10M, EVAL_CITIES

from rssr_cli.evaluation.compare import CompareSettings, compare_on_folder

from benchlib import write_result

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/s2_oscd"
TILE = 256


def make_tiles(data: Path, out: Path, per_file: int) -> dict[str, Path]:
    """runs/s2corpus/eval_tiles/<city>/<date>_<band>_<k>.tif: uint16 tiles along each band file's diagonal."""
    folders = {}
    for city in EVAL_CITIES:
        folder = out / city
        folder.mkdir(parents=True, exist_ok=True)
        for date in sorted((data / city).glob("imgs_*")):
            for band in BANDS_10M:
                for src_path in sorted(date.glob(f"*_{band}.tif")):
                    with rasterio.open(src_path) as src:
                        pixels = src.read(1)
                    h, w = pixels.shape
                    for k in range(per_file):
                        f = (k + 1) / (per_file + 1)
                        y0, x0 = int(f * (h - TILE)), int(f * (w - TILE))
                        tile = pixels[y0 : y0 + TILE, x0 : x0 + TILE]
                        path = folder / f"{date.name}_{band}_{k}.tif"
                        if not path.exists():
                            with rasterio.open(
                                path,
                                "w",
                                driver="GTiff",
                                width=TILE,
                                height=TILE,
                                count=1,
                                dtype="uint16",
                                crs="EPSG:32631",
                                transform=rasterio.transform.from_origin(0.0, TILE * 10.0, 10.0, 10.0),
                            ) as dst:
                                dst.write(tile[None])
        folders[city] = folder
    return folders


def city_figures(report, scales) -> dict:
    rows = report.rows
    figures: dict = {}
    for scale in scales:
        at = [r for r in rows if r.scale == scale]
        bicubic = {r.image: r.psnr for r in at if r.backend == "bicubic"}
        cell: dict = {}
        for name in dict.fromkeys(r.backend for r in at):
            mine = [r for r in at if r.backend == name]
            energy = [r.detail["hf_energy_ratio"] for r in mine if r.detail]
            cell[name] = {
                "psnr": float(np.mean([r.psnr for r in mine])),
                "gain_db": float(np.mean([r.psnr - bicubic[r.image] for r in mine])),
                "hf_energy_ratio": float(np.mean(energy)) if energy else None,
                "images": len(mine),
            }
        figures[f"x{scale:g}"] = cell
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", type=Path, default=REPO / "models/s2-10m.safetensors")
    parser.add_argument(
        "--baseline", type=Path, default=REPO / "models/aerial.safetensors", help="the aerial model, for comparison"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    scales = (4.0,) if args.quick else (2.0, 4.0)
    folders = make_tiles(DATA, REPO / "runs/s2corpus/eval_tiles", 1 if args.quick else 3)
    figures: dict = {"protocol": __doc__.split("\n\n")[2].replace("\n", " "), "cities": {}}
    for city, folder in folders.items():
        per_model = {}
        for label, model in (("s2", args.model), ("aerial", args.baseline)):
            if not model.exists():
                continue
            methods = ("bicubic", "lanczos") if label == "s2" else ("bicubic",)
            settings = CompareSettings(
                model=model, steps=(0,), methods=methods, device="cpu", threads=args.threads, degradation="sentinel2"
            )
            report = compare_on_folder(folder, settings, scales, limit=8 if args.quick else None)
            for scale, cell in city_figures(report, scales).items():
                for name, values in cell.items():
                    key = name.replace("model-prior", f"{label}-prior")
                    per_model.setdefault(scale, {})[key] = values
        figures["cities"][city] = per_model
        for scale, cell in per_model.items():
            print(
                city,
                scale,
                {k: (round(v["gain_db"], 3), round(v["hf_energy_ratio"] or 0, 3)) for k, v in cell.items()},
                flush=True,
            )
    figures["mean_over_cities"] = {}
    for scale in (f"x{s:g}" for s in scales):
        names = set.intersection(*(set(c[scale]) for c in figures["cities"].values()))
        figures["mean_over_cities"][scale] = {
            name: {
                "gain_db": statistics.mean(c[scale][name]["gain_db"] for c in figures["cities"].values()),
                "median_gain_db": statistics.median(c[scale][name]["gain_db"] for c in figures["cities"].values()),
                "hf_energy_ratio": statistics.mean(
                    c[scale][name]["hf_energy_ratio"] or 0 for c in figures["cities"].values()
                ),
            }
            for name in sorted(names)
        }
        print("mean", scale, figures["mean_over_cities"][scale], flush=True)
    write_result("bench_s2", figures, quick=args.quick)


if __name__ == "__main__":
    main()
