"""What every benchmark writes: bench/out/<name>.json = {benchmark, machine, date, quick, command, figures}.

Scripts run as `python bench/<script>.py` (this folder is then on sys.path). `--quick` sizes each benchmark for a
2-core CPU box (`make bench`); without it they run at the sizes BENCHMARKS.md reports (`make bench BENCH_ARGS=`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU, cores this process may use, Python, torch and GPU when present."""
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "os": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def write_result(name: str, figures: Any, *, quick: bool) -> Path:
    """bench/out/<name>.json with the machine, the UTC date and the command line beside the figures."""
    OUT.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "figures": figures,
    }
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}", flush=True)
    return path


if __name__ == "__main__":  # for shell benchmarks: python bench/benchlib.py NAME REPORT.json [--quick]
    report = Path(sys.argv[2])
    write_result(sys.argv[1], json.loads(report.read_text()), quick="--quick" in sys.argv[3:])
    report.unlink()
