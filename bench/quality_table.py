"""Render `rssr evaluate --json` results as Markdown tables (for BENCHMARKS.md and the README).

    python bench/quality_table.py bench/out/quality_bar.json [more.json ...]

One table per file: a row per backend, a column per scale with PSNR / SSIM, and the PSNR gain over
bicubic; time per image (s) is the mean over scales.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(path: Path) -> str:
    result = json.loads(path.read_text())
    result = result.get("figures", result)  # bench/out/*.json wrap the `rssr evaluate --json` report
    rows = result["summary"]
    scales = sorted({r["scale"] for r in rows})
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    cell = {(r["backend"], r["scale"]): r for r in rows}
    images = max(r["images"] for r in rows)
    head = f"{images} images of {result['meta']['hr_dir']}, border {result['border_rule']}, model {result['meta'].get('model')}\n\n"
    lines = [
        "| method | " + " | ".join(f"x{s:g} PSNR / SSIM (Δ bicubic)" for s in scales) + " | s / image |",
        "|---|" + "---|" * (len(scales) + 1),
    ]
    for backend in backends:
        cells, seconds = [], []
        for s in scales:
            r = cell.get((backend, s))
            if r is None:
                cells.append("–")
                continue
            bicubic = cell.get(("bicubic", s))
            delta = f" ({r['psnr'] - bicubic['psnr']:+.2f})" if bicubic and backend != "bicubic" else ""
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.4f}{delta}")
            seconds.append(r["seconds"])
        lines.append(f"| {backend} | " + " | ".join(cells) + f" | {sum(seconds) / len(seconds):.2f} |")
    return head + "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(table(Path(name)), end="\n\n")
