"""Wald's protocol of the guided sharpener on the evaluation cities (issue 20 item 3): never trained or selected on.

    python bench/bench_wald_cities.py --model shipped=models/sharpen.safetensors --model s2=runs/sharpen-s2/best.safetensors
    python bench/bench_wald_cities.py --table bench/out/wald_cities_shipped.json bench/out/wald_cities_s2.json

What `rssr evaluate --wald CITY/imgs_1 --wald-split all --degradation psf|box` computes (wald_report: bicubic and
the guided model, the unguided diffusion model left out), for every city of s2_corpus.EVAL_CITIES (first date) and
both degradations (psf: the matched Gaussian, MTF 0.25; box: the plain block mean), 20 m bands at r = 2 and 60 m
bands at r = 6. Each --model writes bench/out/wald_cities_<label>.json; --table prints RMSE(guided) / RMSE(bicubic)
per band and city, and the median over cities, for every file given.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from s2_corpus import EVAL_CITIES

from rssr_cli.sharpen.model import load_sharpener
from rssr_cli.sharpen.scene import stats_of
from rssr_cli.sharpen.train import load_scene
from rssr_cli.sharpen.wald import DEGRADATIONS, bicubic_method, guided_method, wald_report

from benchlib import write_result

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/s2_oscd"


def measure(path: str, cities: tuple[str, ...]) -> dict:
    """{city: {degradation: WaldReport.as_dict()}} for bicubic and the guided model at `path`."""
    model = load_sharpener(path)
    figures: dict = {"model": path, "sha256": model.card.get("sha256"), "cities": {}}
    for city in cities:
        scene = load_scene(str(DATA / city / "imgs_1"))
        stats = {name: stats_of(b.values, b.valid) for name, b in scene.items()}
        methods = {"bicubic": bicubic_method, "guided": guided_method(model, stats)}
        figures["cities"][city] = {
            d: wald_report(scene, source=city, methods=methods, split="all", degradation=d).as_dict()
            for d in DEGRADATIONS
        }
        print(city, "done", flush=True)
    return figures


def ratios(figures: dict, degradation: str) -> dict[str, dict[str, float]]:
    """{band: {city: RMSE guided / bicubic}}."""
    table: dict[str, dict[str, float]] = {}
    for city, by_degradation in figures["cities"].items():
        for group in by_degradation[degradation]["groups"]:
            for band, scores in group["bands"].items():
                table.setdefault(band, {})[city] = scores["guided"]["rmse"] / scores["bicubic"]["rmse"]
    return table


def print_table(label: str, figures: dict) -> None:
    cities = list(figures["cities"])
    for degradation in DEGRADATIONS:
        print(f"\n{label} ({figures['model']}), {degradation}: RMSE guided / bicubic (20 m at r = 2, 60 m at r = 6)")
        print("| band | " + " | ".join(cities) + " | median |")
        print("|---" * (len(cities) + 2) + "|")
        for band, by_city in ratios(figures, degradation).items():
            values = [by_city[c] for c in cities if c in by_city]
            print(
                f"| {band} | "
                + " | ".join(f"{by_city[c]:.3f}" for c in cities)
                + f" | {statistics.median(values):.3f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--table", nargs="*", default=[], metavar="JSON")
    parser.add_argument("--cities", default=",".join(EVAL_CITIES))
    args = parser.parse_args()
    for spec in args.model:
        label, path = spec.split("=", 1)
        out = write_result(f"wald_cities_{label}", measure(path, tuple(args.cities.split(","))), quick=False)
        print(f"written: {out}")
        print_table(label, json.loads(out.read_text())["figures"])
    for path in args.table:
        print_table(Path(path).stem, json.loads(Path(path).read_text())["figures"])


if __name__ == "__main__":
    main()
