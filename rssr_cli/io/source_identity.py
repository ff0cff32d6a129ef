"""Which file an output was made from: size, mtime and a sampled content fingerprint, recorded in RSSR_SOURCE_* tags.

A batch skips a scene whose output records the same request; without the source's identity it would also
skip a scene whose input was replaced (a re-processed Sentinel-2 tile at the same path) or another raster
of the same stem. The fingerprint hashes the size, the first and last 64 KiB (headers, tile indexes) and
16 evenly spaced 16 KiB blocks, so it costs ~0.4 MB of reads whatever the file size; the mtime catches
an in-place edit between the sampled blocks.

A band stack (a Sentinel-2 product, a STAC item) is identified by the band files a run reads, not by the
product's other files: a band changed (even with its size and mtime kept) redoes the scene, a touched
manifest.safe or a new QI file does not. Each band file counts by its own identity: a local file by the
fingerprint above, a member of a local .SAFE.zip by its CRC-32 and size (the zip's directory: exact and free),
and a remote asset (an http(s)/s3/gs URL) by its href, credentials left out.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from pathlib import Path
from typing import Iterable, Optional

from rssr_cli.core.errors import RssrError
from rssr_cli.core.messages import redact
from rssr_cli.io.products import open_band_stack
from rssr_cli.io.raster_io import gdal_env

EDGE_BYTES = 64 * 1024
SAMPLED_BLOCKS = 16
BLOCK_BYTES = 16 * 1024
SIZE_TAG, MTIME_TAG, FINGERPRINT_TAG = "RSSR_SOURCE_SIZE", "RSSR_SOURCE_MTIME_NS", "RSSR_SOURCE_FINGERPRINT"
BANDS_TAG = "RSSR_SOURCE_BANDS"  # a band stack's output: the bands whose files make its identity
IDENTITY_TAGS = (SIZE_TAG, MTIME_TAG, FINGERPRINT_TAG, BANDS_TAG)


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
    identity = _file_identity(str(src))
    if identity is None:
        return {}
    size, mtime, fingerprint = identity
    return {SIZE_TAG: str(size), MTIME_TAG: str(mtime), FINGERPRINT_TAG: fingerprint}


def _file_identity(path: str) -> Optional[tuple[int, int, str]]:
    """(size, mtime_ns, sampled content fingerprint) of a local file; None when it cannot be read."""
    try:
        with open(path, "rb") as file:
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
        return None
    return info.st_size, info.st_mtime_ns, digest.hexdigest()[:32]


def bands_identity(bands: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The RSSR_SOURCE_* tags of a band stack run: of the (name, GDAL dataset) of every band it reads (module doc)."""
    digest = hashlib.sha256()
    total, newest, archives = 0, 0, _ZipDirectories()
    named = dict(bands)
    for name in sorted(named):
        dataset = named[name]
        member = archives.member(dataset)
        local = None if member is not None or not is_local_file(dataset) else _file_identity(dataset)
        if member is not None:
            line = f"zip {member.CRC:08x} {member.file_size}"
            total += member.file_size
        elif local is not None:
            line = f"file {local[0]} {local[1]} {local[2]}"
            total, newest = total + local[0], max(newest, local[1])
        else:  # a remote asset (or one unreadable now, which the run itself reports): its href
            line = f"href {redact(dataset)}"
        digest.update(f"{name}\0{line}\n".encode())
    return {
        SIZE_TAG: str(total),
        MTIME_TAG: str(newest),
        FINGERPRINT_TAG: digest.hexdigest()[:32],
        BANDS_TAG: ",".join(named),
    }


def is_local_band(dataset: str) -> bool:
    """A band file whose identity is of its content (bands_identity): a local file or a member of a local zip; not
    a remote asset, identified only by its href."""
    return is_local_file(dataset) or _ZipDirectories().member(dataset) is not None


def stack_identity(src: str | Path, names: Iterable[str]) -> dict[str, str]:
    """bands_identity of the named bands of the band stack at `src` as it is now (a band gone, or a stack that
    cannot be listed, is an identity no output records: the scene is redone and the run reports why)."""
    try:
        with gdal_env():  # a remote item's assets: the HTTP timeouts apply to the skip check too
            by_name = {band.name: band.dataset for band in open_band_stack(src).bands}
    except (RssrError, OSError):
        return {FINGERPRINT_TAG: "unreadable"}
    wanted = list(names)
    if not all(name in by_name for name in wanted):
        return {FINGERPRINT_TAG: "band missing"}
    return bands_identity((name, by_name[name]) for name in wanted)


class _ZipDirectories:
    """Members of local zips (/vsizip/ARCHIVE.zip/MEMBER), each archive's directory read once."""

    def __init__(self) -> None:
        self._infos: dict[str, dict[str, zipfile.ZipInfo]] = {}

    def member(self, dataset: str) -> Optional[zipfile.ZipInfo]:
        if not dataset.startswith("/vsizip/"):
            return None
        rest = dataset[len("/vsizip/") :]
        if rest.startswith("{"):  # /vsizip/{ARCHIVE}/MEMBER
            archive, _, member = rest[1:].partition("}/")
        else:
            cut = rest.lower().find(".zip/")
            if cut < 0:
                return None
            archive, member = rest[: cut + 4], rest[cut + 5 :]
        if not is_local_file(archive):
            return None
        if archive not in self._infos:
            try:
                with zipfile.ZipFile(archive) as zipped:
                    self._infos[archive] = {info.filename: info for info in zipped.infolist()}
            except (OSError, zipfile.BadZipFile):
                self._infos[archive] = {}
        return self._infos[archive].get(member)


def same_source(recorded: dict[str, str], src: str | Path) -> bool:
    """The output's tags record this very source (same size, mtime and fingerprint; for a band stack's output, of
    the bands it read), or identity cannot be known for it (not a local file: nothing to compare, as before
    identities were recorded)."""
    if BANDS_TAG in recorded:
        current = stack_identity(src, recorded[BANDS_TAG].split(","))
    else:  # a raster; or a product's output made before band identities (its folder's listing, below)
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
