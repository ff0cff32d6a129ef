"""How many CPU threads a run uses: --threads N, else OMP_NUM_THREADS when set, else every core it may use.

OMP_NUM_THREADS is how a scheduler says "this process gets N cores" (Dask's nanny sets it to 1 for
single-threaded workers, batch systems set it per job): overriding it with all cores oversubscribes the machine.
"""

from __future__ import annotations

import os
from typing import Optional

OMP_ENV = "OMP_NUM_THREADS"


def available_cores() -> int:
    """Cores this process may run on (sched_getaffinity respects container/cgroup pinning)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def omp_threads() -> Optional[int]:
    """OMP_NUM_THREADS as a count (its first level when it lists nested levels, '4,2'); None if unset or not a count."""
    first = os.environ.get(OMP_ENV, "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def cpu_threads(requested: Optional[int] = None) -> int:
    """The thread count to use: the one requested, else OMP_NUM_THREADS, else every available core."""
    if requested is not None:
        return requested
    return omp_threads() or available_cores()
