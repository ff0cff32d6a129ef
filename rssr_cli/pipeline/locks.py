"""One lock per output path, so two runs (two cron jobs, two Dask workers) never write the same scene at once.

The lock is an advisory `flock` on a hidden file beside DST. The kernel drops it when its process dies,
however it dies (kill -9, OOM, power loss on a local disk), so a crashed run never blocks the next one:
there is nothing to expire or to clean by hand. The file is unlinked on release; a run that locked a
file just unlinked by another checks the inode and retries, so at most one holder exists per path.
flock works on local filesystems and on NFSv4 (Linux emulates it with byte-range locks there).
"""

from __future__ import annotations

import errno
import fcntl
import glob
import os
import shutil
import socket
import stat
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from rssr_cli.core.errors import OutputError
from rssr_cli.core.interrupts import forced_exit_cleanups
from rssr_cli.io.destination import RESUME_MARK, STAGING_MARK, STAGING_OWNER, staging_prefix
from rssr_cli.io.safefiles import open_private_file


class OutputBusy(OutputError):
    """Another live process holds the lock of this output."""


class JobBusy(OutputError):
    """Another batch is running on this output folder (job_lock): this one did nothing. Exit 75 at the CLI."""


JOB_LOCK_NAME = "rssr-batch"  # the job lock is .rssr-batch.lock in the output folder (an output lock of that name)


def lock_path(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.lock"


@contextmanager
def output_lock(dst: Path, *, on_stale: Optional[Callable[[list[Path]], None]] = None) -> Iterator[None]:
    """Hold the lock of `dst` for the block; OutputBusy at once (no waiting) if another process holds it.

    While it is held, staging directories left beside DST by a crashed run are removed: only the holder
    of the lock can be writing them."""
    if not dst.parent.is_dir():
        raise OutputError(f"output directory {dst.parent} does not exist")
    path = lock_path(dst)
    fd = _acquire(path)
    try:
        os.ftruncate(fd, 0)
        os.write(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode()
        )
        stale = remove_stale_staging(dst)
        if on_stale is not None:
            on_stale(stale)
        forced_exit_cleanups[fd] = lambda: _unlink(path)  # a run blocked in GDAL when interrupted (interrupts.py)
        yield
    finally:
        forced_exit_cleanups.pop(fd, None)
        try:
            os.unlink(path)  # still ours: unlink before unlocking, so no one locks a file about to vanish
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def job_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of a batch's output folder for the whole batch: a */15 cron whose scenes take hours must not
    start a second full-CPU run on the same job. JobBusy at once when another live process holds it. It is an
    output lock (same file rules; sweep_stale removes it when its process is gone), so the kernel frees it too."""
    with ExitStack() as stack:
        try:
            stack.enter_context(output_lock(folder / JOB_LOCK_NAME))
        except OutputBusy:
            holder = _holder(lock_path(folder / JOB_LOCK_NAME))
            raise JobBusy(f"another rssr batch is running on {folder} ({holder}); nothing was done") from None
        yield


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _acquire(path: Path) -> int:
    while True:
        fd = open_private_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputBusy(f"{path.name[1:-5]} is being written by another run ({_holder(path)})") from None
            raise OutputError(f"cannot lock {path}: {exc.strerror or exc}") from exc
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)  # the previous holder unlinked it between our open and our lock: take the new one


def _holder(path: Path) -> str:
    try:
        fd = open_private_file(path, create=False)
    except OutputError:
        return "unknown holder"
    with os.fdopen(fd, "rb") as file:
        return file.read(200).decode(errors="replace").strip() or "unknown holder"


def remove_stale_staging(dst: Path) -> list[Path]:
    """Remove the staging directories of `dst` that no live run owns (call only while holding its lock);
    returns what was removed. A planted symlink of that name is left alone, never followed."""
    stale = []
    for directory in sorted(dst.parent.glob(glob.escape(staging_prefix(dst)) + "*")):
        try:
            info = os.lstat(directory)
        except FileNotFoundError:
            continue
        if directory.name.endswith(RESUME_MARK):  # kept on purpose for the next run (pipeline/resume.py)
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not _owner_alive(directory):
            shutil.rmtree(directory, ignore_errors=True)
            stale.append(directory)
    return stale


def _owner_alive(directory: Path) -> bool:
    """A live run keeps its staging directory's owner file flocked (cog.staging_dir); a dead one cannot."""
    try:
        fd = os.open(directory / STAGING_OWNER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # no owner file: left by a run killed before it made one (or by an older rssr)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def sweep_stale(folder: Path) -> list[Path]:
    """Remove every staging directory and lock file in `folder` whose owner process is gone, whatever output
    it belongs to (a run killed with -9 leaves hundreds of MB that no later run of *that* name may come for).

    Each output's leftovers are removed while holding that output's lock, so nothing a live run uses is
    touched: a lock held by a live process makes its output busy and it is skipped. Lock files are only
    considered when they carry rssr's "pid N on HOST" line (another tool's lock is left alone)."""
    outputs: dict[str, None] = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if name.startswith(".") and STAGING_MARK in name and entry.is_dir(follow_symlinks=False):
            outputs[name[1 : name.rindex(STAGING_MARK)]] = None
        elif (
            name.startswith(".")
            and name.endswith(".lock")
            and entry.is_file(follow_symlinks=False)
            and _is_rssr_lock(Path(entry.path))
        ):
            outputs[name[1:-5]] = None
    removed: list[Path] = []
    for output in filter(None, outputs):
        dst = folder / output
        had_lock = lock_path(dst).is_file()
        try:
            with output_lock(dst, on_stale=removed.extend):
                pass
        except OutputError:  # busy (a live run) or unusable: leave it
            continue
        if had_lock:
            removed.append(lock_path(dst))
    return removed


def _is_rssr_lock(path: Path) -> bool:
    return _holder(path).startswith("pid ")
