"""Paired comparison of `rssr evaluate --json` results, also across runs of different models.

    python bench/compare_runs.py new=bench/out/new.json old=bench/out/old.json --scale 4 \
        --versus old/model-k2 --versus new/model-prior [--markdown]

Every backend of every run becomes `label/backend`; the table gives each one's mean PSNR / SSIM and detail figures
(95 % bootstrap CIs over images) and, per --versus reference, the paired difference on the images both scored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rssr_cli.scoring.detail import bootstrap_ci, paired_differences  # noqa: E402

FIGURES = ("psnr", "ssim", "hf_energy_ratio", "hf_error_ratio", "hf_correlation", "improvement", "hallucination")


def load(runs: list[str], scale: float) -> dict[str, dict[str, dict]]:
    """{label/backend: {image: {figure: value, "seconds": s}}} at `scale`."""
    table: dict[str, dict[str, dict]] = {}
    for spec in runs:
        label, _, path = spec.partition("=")
        for row in json.loads(Path(path).read_text())["rows"]:
            if abs(row["scale"] - scale) > 1e-9:
                continue
            values = {"psnr": row["psnr"], "ssim": row["ssim"], "seconds": row["seconds"], **(row.get("detail") or {})}
            table.setdefault(f"{label}/{row['backend']}", {})[row["image"]] = values
    return table


def interval(values: list) -> str:
    ci = bootstrap_ci(values)
    return f"{ci.mean:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=evaluate.json")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--versus", action="append", default=[], help="label/backend to take paired differences against")
    args = ap.parse_args()
    table = load(args.runs, args.scale)
    print(f"x{args.scale:g}: " + ", ".join(f"{name} ({len(rows)} images)" for name, rows in table.items()))
    print("| method | " + " | ".join(FIGURES) + " | s / image |")
    print("|---" * (len(FIGURES) + 2) + "|")
    for name, rows in table.items():
        cells = [interval([r.get(f) for r in rows.values()]) for f in FIGURES]
        seconds = sum(r["seconds"] for r in rows.values()) / len(rows)
        print(f"| {name} | " + " | ".join(cells) + f" | {seconds:.2f} |")
    for ref in args.versus:
        print(f"\npaired vs {ref}:")
        print("| method | " + " | ".join(f"Δ {f}" for f in FIGURES) + " |")
        print("|---" * (len(FIGURES) + 1) + "|")
        for name, rows in table.items():
            if name == ref:
                continue
            common = sorted(set(rows) & set(table[ref]))
            cells = []
            for f in FIGURES:
                diffs = paired_differences([rows[i].get(f) for i in common], [table[ref][i].get(f) for i in common])
                cells.append(interval(diffs) if diffs else "–")
            print(f"| {name} − {ref} ({len(common)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
