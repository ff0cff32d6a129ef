"""Files rssr creates beside outputs, opened so that a planted symlink or a foreign file is never followed.

Anyone who can write an output folder can plant `.x.tif.lock -> ~/.bashrc` or a staging name pointing
elsewhere; a run that followed it would truncate or delete the victim. New files are created with
O_EXCL (or inside a fresh private directory), existing ones opened with O_NOFOLLOW and checked with fstat.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable

from rssr_cli.core.errors import OutputError


def open_private_file(path: Path, *, create: bool = True) -> int:
    """Open (or create) a file rssr owns beside an output, never following a symlink planted there: anyone who
    can write the output folder could otherwise point `.x.tif.lock` at ~/.bashrc and have the next run
    truncate it. The file must be a regular file with one link, owned by this user; anything else is refused."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(
                f"{path} is a symbolic link; refusing to follow it (remove it if it is not yours)"
            ) from None
        raise OutputError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        check_private(path, os.fstat(fd))
    except OutputError:
        os.close(fd)
        raise
    return fd


def check_private(path: Path, info: os.stat_result) -> None:
    """`info` (an fstat/lstat) describes a regular file with one link owned by this user, or OutputError."""
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{path} is not a regular file; refusing to use it (remove it if it is not yours)")
    if info.st_uid != os.geteuid() or info.st_nlink != 1:
        raise OutputError(f"{path} is owned by another user or hard-linked elsewhere; refusing to write it")


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """write(tmp) into a fresh private directory beside `path`, then rename onto it: nothing planted beside
    `path` is ever written through, and `path` appears only complete (a symlink there is replaced, not followed)."""
    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp = staging / path.name
        write(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
