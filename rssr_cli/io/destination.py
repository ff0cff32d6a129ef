"""Where an output goes: its name checked, the destination checked before any work, and the hidden staging
directory beside it (flocked by its owner; removed whatever happens) in which the output is built."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rssr_cli.core.errors import OutputError, UsageError
from rssr_cli.core.interrupts import forced_exit_cleanups
from rssr_cli.io.products import is_input_path

log = logging.getLogger(__name__)


OUTPUT_SUFFIXES = (".tif", ".tiff")
_MKDTEMP_RANDOM_CHARS = 8
_DEFAULT_NAME_MAX = 255


def check_output_name(dst: Path) -> None:
    """Refuse, before any work, an output name rssr cannot honour: not .tif/.tiff (the file is a GeoTIFF
    whatever it is called: `-o x.png` would be a TIFF in disguise), or too long for the hidden staging
    folder made beside it (`.NAME.rssr-XXXXXXXX` must fit the filesystem's NAME_MAX)."""
    if dst.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"output {dst} must end in .tif or .tiff: rssr writes Cloud-Optimized GeoTIFFs")
    name_bytes = len(os.fsencode(dst.name))
    overhead = len(os.fsencode(staging_prefix(dst))) + _MKDTEMP_RANDOM_CHARS - name_bytes
    limit = _name_max(dst.parent)
    if name_bytes + overhead > limit:
        raise UsageError(
            f"output file name is {name_bytes} bytes long; at most {limit - overhead} fit "
            f"(the filesystem allows {limit} and rssr stages the output under a longer hidden name)"
        )


def _name_max(directory: Path) -> int:
    """The longest file name (bytes) the filesystem of `directory` (or of its nearest existing parent) allows."""
    for candidate in (directory, *directory.parents):
        try:
            if candidate.is_dir():
                return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError):
            break
    return _DEFAULT_NAME_MAX


def check_destination(dst: Path, *, overwrite: bool, src: str) -> None:
    """Refuse early (before any work) what would fail or destroy something at the end."""
    check_output_name(dst)
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"output directory {parent} does not exist")
    if dst.is_dir():
        raise OutputError(f"{dst} is a directory")
    if is_input_path(dst, src):  # the input itself, a band file of the product or item, or inside the .SAFE
        what = (
            "the input file" if dst.exists() and os.path.samefile(dst, src) else f"a file the run reads (input {src})"
        )
        raise UsageError(f"{dst} is {what}; write the output elsewhere")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} already exists; pass --overwrite to replace it")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output directory {parent} is not writable")


STAGING_MARK = ".rssr-"
RESUME_MARK = f"{STAGING_MARK}resume"  # .NAME.rssr-resume: an interrupted scene's staging, kept for the next run


def staging_prefix(dst: Path) -> str:
    """Name prefix of DST's staging directories (a run killed with -9 leaves one; locks.py removes it later)."""
    return f".{dst.name}{STAGING_MARK}"


STAGING_OWNER = ".owner"  # flocked by the run using the directory: a sweep removes only directories nobody holds


@contextmanager
def staging_dir(dst: Path) -> Iterator[Path]:
    """A hidden temporary directory beside DST (same filesystem, so the final rename is atomic), always removed.

    mkdtemp creates it with mkdir (0700, never through a planted symlink); it is checked with lstat before
    use, and its `.owner` file stays flocked while the run lives, so locks.sweep_stale can tell a dead run's
    leftovers (hundreds of MB after a kill -9) from a live run's, whatever output they belong to."""
    try:
        path = Path(tempfile.mkdtemp(prefix=staging_prefix(dst), dir=dst.parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {dst.parent}: {exc.strerror or exc}") from exc
    owner = None
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise OutputError(f"staging directory {path} was replaced by something else; refusing to use it")
        try:
            owner = os.open(
                path / STAGING_OWNER, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            fcntl.flock(owner, fcntl.LOCK_EX)
        except OSError as exc:
            raise OutputError(f"cannot write to {path}: {exc.strerror or exc}") from exc
        forced_exit_cleanups[id(path)] = lambda: remove_tree(path)  # a run blocked in GDAL when interrupted
        yield path
    finally:
        forced_exit_cleanups.pop(id(path), None)
        remove_tree(path)
        if owner is not None:
            os.close(owner)


def remove_tree(path: Path) -> None:
    """rmtree that never follows a symlink (shutil.rmtree refuses a symlinked top; inner links are unlinked)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        pass
