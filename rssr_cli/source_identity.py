"""Which file an output was made from: size, mtime and a sampled content fingerprint, recorded in RSSR_SOURCE_* tags.

A batch skips a scene whose output records the same request; without the source's identity it would also
skip a scene whose input was replaced (a re-processed Sentinel-2 tile at the same path) or another raster
of the same stem. The fingerprint hashes the size, the first and last 64 KiB (headers, tile indexes) and
16 evenly spaced 16 KiB blocks, so it costs ~0.4 MB of reads whatever the file size; the mtime catches
an in-place edit between the sampled blocks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

EDGE_BYTES = 64 * 1024
SAMPLED_BLOCKS = 16
BLOCK_BYTES = 16 * 1024
SIZE_TAG, MTIME_TAG, FINGERPRINT_TAG = "RSSR_SOURCE_SIZE", "RSSR_SOURCE_MTIME_NS", "RSSR_SOURCE_FINGERPRINT"
IDENTITY_TAGS = (SIZE_TAG, MTIME_TAG, FINGERPRINT_TAG)


def is_local_file(src: str | Path) -> bool:
    text = str(src)
    if text.startswith("/vsi") or "://" in text:
        return False
    try:
        return stat.S_ISREG(os.stat(text).st_mode)
    except OSError:
        return False


def source_identity(src: str | Path) -> dict[str, str]:
    """The RSSR_SOURCE_* tags of a local regular file or folder (a .SAFE product); {} for anything else (a URL,
    a /vsi path, a missing file)."""
    if os.path.isdir(src) and not str(src).startswith("/vsi"):
        return _folder_identity(Path(src))
    if not is_local_file(src):
        return {}
    try:
        with open(src, "rb") as file:
            info = os.fstat(file.fileno())
            digest = hashlib.sha256(str(info.st_size).encode())
            digest.update(file.read(EDGE_BYTES))
            span = max(0, info.st_size - EDGE_BYTES)
            for i in range(1, SAMPLED_BLOCKS + 1):
                file.seek(span * i // (SAMPLED_BLOCKS + 1))
                digest.update(file.read(BLOCK_BYTES))
            file.seek(span)
            digest.update(file.read(EDGE_BYTES))
    except OSError:
        return {}
    return {SIZE_TAG: str(info.st_size), MTIME_TAG: str(info.st_mtime_ns), FINGERPRINT_TAG: digest.hexdigest()[:32]}


def same_source(recorded: dict[str, str], src: str | Path) -> bool:
    """The output's tags record this very source (same size, mtime and fingerprint), or identity cannot be
    known for it (not a local file: nothing to compare, as before identities were recorded)."""
    current = source_identity(src)
    if not current:
        return True
    return all(recorded.get(key) == value for key, value in current.items())


def _folder_identity(folder: Path) -> dict[str, str]:
    """A folder's identity from its listing: every file's relative path, size and mtime (no content read:
    a re-processed product rewrites its band files, which changes their mtimes)."""
    digest = hashlib.sha256()
    total, newest = 0, 0
    try:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = path.stat()
            total, newest = total + info.st_size, max(newest, info.st_mtime_ns)
            digest.update(f"{path.relative_to(folder).as_posix()}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    except OSError:
        return {}
    return {SIZE_TAG: str(total), MTIME_TAG: str(newest), FINGERPRINT_TAG: digest.hexdigest()[:32]}
