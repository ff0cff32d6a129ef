"""Classical baselines (PSNR/SSIM per scale) on a folder of HR images, e.g. UC Merced val.

    python bench/bench_baselines.py /work/shared/data/ucmerced/val --methods bicubic lanczos \
        --json bench/baselines_ucmerced_val.json

Prints a Markdown table (mean over images) and the machine it ran on; writes the full report as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch

from rssr_cli.backends import get_backend
from rssr_cli.evaluation.protocol import DEFAULT_SCALES, SUMMARY_COLUMNS, evaluate_folder


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch thread(s), Python {platform.python_version()}, torch {torch.__version__}"


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hr_dir", type=Path)
    parser.add_argument("--methods", nargs="+", default=["bicubic", "lanczos"])
    parser.add_argument("--scales", nargs="+", type=float, default=list(DEFAULT_SCALES))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the degradation only)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends = {name: get_backend(name) for name in args.methods}
    report = evaluate_folder(
        args.hr_dir, backends, args.scales, limit=args.limit,
        progress=lambda done, total: print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    report.meta.update({"machine": machine(), "date": datetime.date.today().isoformat()})
    if args.json:
        args.json.write_text(report.to_json())
    print(f"{report.meta['images']} images from {args.hr_dir}; border: {report.border_rule}; "
          f"degradation: {report.degradation}; {report.meta['machine']}; {report.meta['date']}")
    print(markdown_table(report.summary_rows()))


if __name__ == "__main__":
    main()
