"""Classical baselines (PSNR/SSIM per scale) on a folder of HR images, e.g. UC Merced val.

    python bench/bench_baselines.py ../shared/data/ucmerced/val --methods bicubic lanczos
    python bench/bench_baselines.py --quick     # 16 images, x2 and x4 (make bench)

Prints a Markdown table (mean over images) and the machine it ran on; writes the full report to
bench/out/baselines.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from rssr_cli.backends import get_backend
from rssr_cli.evaluation.protocol import DEFAULT_SCALES, SUMMARY_COLUMNS, evaluate_folder

from benchlib import machine, write_result

VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucmerced" / "val"


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hr_dir", type=Path, nargs="?", default=VAL)
    parser.add_argument("--methods", nargs="+", default=["bicubic", "lanczos"])
    parser.add_argument(
        "--scales",
        nargs="+",
        type=float,
        default=None,
        help=f"default {' '.join(map(str, DEFAULT_SCALES))} (--quick: 2 4)",
    )
    parser.add_argument("--limit", type=int, help="(--quick: 16)")
    parser.add_argument("--quick", action="store_true", help="few images and scales for a 2-core box")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the degradation only)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    scales = args.scales or ([2.0, 4.0] if args.quick else list(DEFAULT_SCALES))
    limit = args.limit or (16 if args.quick else None)
    torch.set_num_threads(args.threads)
    backends = {name: get_backend(name) for name in args.methods}
    report = evaluate_folder(
        args.hr_dir,
        backends,
        scales,
        limit=limit,
        progress=lambda done, total: print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    if args.json:
        args.json.write_text(report.to_json())
    print(
        f"{report.meta['images']} images from {args.hr_dir}; border: {report.border_rule}; "
        f"degradation: {report.degradation}; {machine()['cpu']}"
    )
    print(markdown_table(report.summary_rows()))
    write_result("baselines", json.loads(report.to_json()), quick=args.quick)


if __name__ == "__main__":
    main()
