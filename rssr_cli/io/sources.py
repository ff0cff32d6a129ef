"""Input names: a local path, or any dataset name GDAL reads; kept as strings, never through pathlib.Path.

pathlib would turn `http://host/x.tif` into `http:/host/x.tif` and `/vsicurl/http://...` into a path that
does not exist. GDAL names are `/vsi*` paths (/vsicurl/, /vsis3/, /vsizip/, /vsigs/, /vsiaz/, ...), URLs
(`http(s)://`, `s3://`, `gs://`: mapped to their /vsi prefix) and driver connection strings
(`SENTINEL2_L2A:...`, `STACIT:...`, `GTIFF_DIR:...`). Only a local path is checked for existence, scanned
as a directory or expanded as a glob; an existing file or folder is local whatever characters its name has.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

# URL scheme -> the GDAL virtual file system that reads it (/vsicurl/ keeps the whole URL)
URL_FILESYSTEMS = {"http://": "/vsicurl/", "https://": "/vsicurl/", "s3://": "/vsis3/", "gs://": "/vsigs/"}
# A GDAL driver prefix: upper case, at least two characters (so a Windows drive letter is not one)
CONNECTION_STRING = re.compile(r"^[A-Z][A-Z0-9_]+:")


def exists_locally(name: str) -> bool:
    try:
        return os.path.exists(name)
    except (ValueError, OSError):  # a NUL byte, a name too long: not a local file
        return False


def is_connection_string(name: str) -> bool:
    return bool(CONNECTION_STRING.match(name)) and not exists_locally(name)


def is_local(name: str) -> bool:
    """A file-system path: not a /vsi path, a URL or a driver connection string (an existing file always is)."""
    if exists_locally(name):
        return True
    return not (name.startswith("/vsi") or "://" in name or CONNECTION_STRING.match(name))


def gdal_name(name: str) -> str:
    """The name to give GDAL: a URL gets its /vsi prefix (http(s):// -> /vsicurl/URL, s3://b/k -> /vsis3/b/k,
    gs://b/k -> /vsigs/b/k); every other name is passed as given."""
    lowered = name.lower()
    for scheme, filesystem in URL_FILESYSTEMS.items():
        if lowered.startswith(scheme) and not exists_locally(name):
            return filesystem + (name if filesystem == "/vsicurl/" else name[len(scheme) :])
    return name


def base_name(name: str) -> str:
    """The file name a dataset name ends in: a local file's name, a URL's or /vsi path's last component
    without its query string, the name of the file a connection string points at."""
    if is_local(name):
        return os.path.basename(os.path.normpath(name))
    if is_connection_string(name):
        return base_name(_connection_path(name))
    if name.startswith("/vsicurl?"):  # /vsicurl?url=ENCODED&options: the URL is a parameter
        url = parse_qs(name[len("/vsicurl?") :]).get("url", [""])[0]
        return base_name(url) if url else "vsicurl"
    path = urlsplit(name).path if "://" in name else name.split("?", 1)[0]
    return path.rstrip("/").rsplit("/", 1)[-1] or "dataset"


def stem(name: str) -> str:
    """base_name without its extension, plus a connection string's other fields (GTIFF_DIR:2:/d/x.tif ->
    x_2), so two subdatasets of one file get different output names."""
    base = base_name(name)
    root = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    if not is_connection_string(name):
        return root
    path = _connection_path(name)
    extra = [f for f in _connection_fields(name) if f != path and f]
    return "_".join([root, *(re.sub(r"[^A-Za-z0-9_.-]+", "_", f).strip("_") for f in extra)])


def _connection_fields(name: str) -> list[str]:
    """The colon-separated fields after the driver prefix; double-quoted fields may contain colons."""
    _, rest = name.split(":", 1)
    return [f.strip('"') for f in re.findall(r'"[^"]*"|[^:]+', rest)]


def _connection_path(name: str) -> str:
    """The field of a connection string that names a file (the first with a '/' or a '.'), else the last."""
    fields = _connection_fields(name) or [name]
    return next((f for f in fields if "/" in f or "." in f), fields[-1])
