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
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .cog import staging_prefix
from .errors import OutputError
from .safefiles import open_private_file


class OutputBusy(OutputError):
    """Another live process holds the lock of this output."""


def lock_path(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.lock"


@contextmanager
def output_lock(dst: Path) -> Iterator[None]:
    """Hold the lock of `dst` for the block; OutputBusy at once (no waiting) if another process holds it.

    While it is held, staging directories left beside DST by a crashed run are removed: only the holder
    of the lock can be writing them."""
    if not dst.parent.is_dir():
        raise OutputError(f"output directory {dst.parent} does not exist")
    path = lock_path(dst)
    fd = _acquire(path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        remove_stale_staging(dst)
        yield
    finally:
        try:
            os.unlink(path)  # still ours: unlink before unlocking, so no one locks a file about to vanish
        except FileNotFoundError:
            pass
        os.close(fd)


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
    """Remove the staging directories of `dst` (call only while holding its lock); returns what was removed."""
    stale = sorted(dst.parent.glob(glob.escape(staging_prefix(dst)) + "*"))
    for directory in stale:
        shutil.rmtree(directory, ignore_errors=True)
    return stale
