"""How many CPU threads a run uses: --threads N, else OMP_NUM_THREADS when set, else the CPUs this process may use
(its affinity mask, capped by its cgroup's CPU quota); and how idle OpenMP threads wait (passively).

OMP_NUM_THREADS is how a scheduler says "this process gets N cores" (Dask's nanny sets it to 1 for
single-threaded workers, batch systems set it per job): overriding it with all cores oversubscribes the machine.
A container limited to 2 CPUs by a quota (docker --cpus 2, Kubernetes limits) still sees every core of the host
in its affinity mask: more threads than the quota only get throttled, so the quota caps the default too.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, MutableMapping, Optional

OMP_ENV = "OMP_NUM_THREADS"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def set_passive_wait_policy(environ: MutableMapping[str, str] = os.environ) -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the user chose one. With the default (spin, then sleep) a thread waiting at an
    OpenMP barrier burns its core while the thread it waits for is descheduled by another job: on a shared box two
    threads ran a denoiser step 10x slower than one. libgomp reads the variable once, when torch loads it, so this
    runs at `import rssr_cli` (rssr_cli/__init__.py), before any torch import; child processes inherit it."""
    environ.setdefault(WAIT_POLICY_ENV, "PASSIVE")


def _dirs_up(start: Path, root: Path) -> Iterator[Path]:
    """start, its parents, ..., root (a nested cgroup is bounded by every ancestor's quota)."""
    d = start
    while True:
        yield d
        if d == root or d.parent == d:
            return
        d = d.parent


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota(text: Optional[str], period_text: Optional[str] = None) -> Optional[float]:
    """CPUs from 'QUOTA PERIOD' (v2 cpu.max) or QUOTA and PERIOD files (v1); None for 'max', -1 or garbage."""
    if text is None:
        return None
    parts = text.split()
    if period_text is not None:
        parts = parts[:1] + period_text.split()[:1]
    try:
        quota, period = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None  # "max" (v2) or unreadable: no quota
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> Optional[float]:
    """The CPUs this process's cgroup may use (cgroup v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), the
    tightest along its path up to the root; None when no quota is set or the files are not there."""
    limits: list[float] = []
    for line in (_read(proc_self_cgroup) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        rel = path.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":  # v2 unified hierarchy
            for d in _dirs_up(root / rel, root):
                limits.append(_quota(_read(d / "cpu.max")) or math.inf)
        elif "cpu" in controllers.split(","):  # v1: mounted as cpu,cpuacct (often with a cpu symlink)
            for base in dict.fromkeys((root / controllers, root / "cpu")):
                for d in _dirs_up(base / rel, base):
                    limits.append(_quota(_read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")) or math.inf)
    tightest = min(limits, default=math.inf)
    return None if tightest == math.inf else tightest


def available_cores(*, cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """CPUs this process may use: its affinity mask (taskset, cpusets), capped by its cgroup CPU quota rounded down
    (a 1.5-CPU quota gives 1 thread: a second would be throttled), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root, proc_self_cgroup)
    if quota is not None:
        cores = min(cores, math.floor(quota))
    return max(1, cores)


def omp_threads() -> Optional[int]:
    """OMP_NUM_THREADS as a count (its first level when it lists nested levels, '4,2'); None if unset or not a count."""
    first = os.environ.get(OMP_ENV, "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def cpu_threads(requested: Optional[int] = None) -> int:
    """The thread count to use: the one requested, else OMP_NUM_THREADS, else the CPUs this process may use."""
    if requested is not None:
        return requested
    return omp_threads() or available_cores()
