"""The hostile table (issue 11): what a careless or hostile user can throw at `rssr`, run through the real
command line in a subprocess. For every case: the documented exit code, exactly one `error:` line on stderr
(a batch: each failed scene's line and the summary table; under -q the failed scenes' lines alone), no
traceback, nothing at the destination, no staging folder or lock left, and the input's bytes unchanged (the
whole work folder is compared, hidden files and the victims of planted links included).

The table holds every refusal and one-line failure of issue 11 that goes through the command line: items
1-4 (planted lock links, hostile model cards, --log-json on an input/output/link, AOIs and inputs that are
devices, FIFOs or huge), 7 (-q keeps errors) and 11-19.

To add a case: append a Case to CASES. `args` follow `rssr`; the arguments `{src}`, `{dst}` and `{work}` are
replaced by paths (anything else is passed as it is: a --name template keeps its braces).
`make_src(work)` writes the input (default: a small 3-band uint16 UTM raster) and returns its path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.rpc import RPC

import s2_products as sp
from conftest import UTM_CRS, UTM_TRANSFORM, synthetic_image, write_raster
from http_range_server import serve_directory

CLASSICAL = ("-m", "bicubic")  # cases that are not about the model never load it


PROGRESS_LINE = re.compile(r"^.+: \d+ % \(\d+/\d+ windows\), ")


def plain_raster(work: Path) -> Path:
    return write_raster(work / "src.tif", synthetic_image(3, 37, 45))


def paletted_raster(work: Path) -> Path:
    """Land-cover classes 0, 5, 10 with a colour table (values are classes, not measurements)."""
    path = work / "classes.tif"
    classes = (np.arange(20 * 20).reshape(1, 20, 20) % 3 * 5).astype("uint8")
    profile = dict(driver="GTiff", width=20, height=20, count=1, dtype="uint8", crs=UTM_CRS, transform=UTM_TRANSFORM)
    with rasterio.open(path, "w", photometric="palette", **profile) as dataset:
        dataset.write(classes)
        dataset.write_colormap(1, {0: (255, 0, 0, 255), 5: (0, 255, 0, 255), 10: (0, 0, 255, 255)})
    return path


def gcp_raster(work: Path) -> Path:
    """Located by four ground control points, no geotransform (a raw satellite or scanned-map product)."""
    corners = [(0, 0), (0, 20), (20, 0), (20, 20)]
    gcps = [GroundControlPoint(row, col, 500_000 + 10 * col, 4_000_000 - 10 * row) for row, col in corners]
    data = synthetic_image(1, 20, 20, "uint8")
    return write_raster(work / "gcps.tif", data, crs=UTM_CRS, transform=None, gcps=gcps)  # the CRS of the GCPs


def rpc_raster(work: Path) -> Path:
    """Located by rational polynomial coefficients only."""
    terms = [0.0] * 20
    rpcs = RPC(
        height_off=0,
        height_scale=100,
        lat_off=36.1,
        lat_scale=0.01,
        long_off=15.0,
        long_scale=0.01,
        line_off=10,
        line_scale=10,
        samp_off=10,
        samp_scale=10,
        err_bias=0,
        err_rand=0,
        line_num_coeff=[0, 0, -1] + terms[3:],
        line_den_coeff=[1] + terms[1:],
        samp_num_coeff=[0, 1] + terms[2:],
        samp_den_coeff=[1] + terms[1:],
    )
    return write_raster(
        work / "rpcs.tif", synthetic_image(1, 20, 20, "uint8"), crs=None, transform=Affine.identity(), rpcs=rpcs
    )


RECTANGULAR_PIXELS = Affine(20.0, 0.0, 500_000.0, 0.0, -10.0, 4_000_000.0)  # 20 m wide, 10 m tall


def rectangular_pixels(work: Path) -> Path:
    return write_raster(work / "rect.tif", synthetic_image(1, 10, 10), transform=RECTANGULAR_PIXELS)


# On the default raster at -s 2 output pixels are 5 m, centres at 500002.5 + 5k, 3999997.5 - 5k.
BETWEEN_CENTRES = (
    "POLYGON((500000.5 3999999.5, 500001.5 3999999.5, 500001.5 3999998.5, 500000.5 3999998.5, 500000.5 3999999.5))"
)
SLIVER = "POLYGON((500000 3999996, 500450 3999996, 500450 3999995.5, 500000 3999995.5, 500000 3999996))"  # 0.5 m tall


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


NOBODY = f"tcp://127.0.0.1:{closed_port()}"  # an unreachable Dask scheduler


# ---- makers for the cases of items 1-4 and 7 (security, -q) --------------------------------------------------------

VICTIM_TEXT = "precious\n"


def victim_file(work: Path) -> Path:
    """A file a hostile link points at (someone's ~/.bashrc); the snapshot of the work folder hashes it."""
    victim = work / "home" / ".bashrc"
    victim.parent.mkdir()
    victim.write_text(VICTIM_TEXT)
    return victim


def with_symlinked_log(work: Path) -> Path:
    (work / "log.jsonl").symlink_to(victim_file(work))
    return plain_raster(work)


def with_symlinked_lock(work: Path) -> Path:
    """`.out.tif.lock -> ~/.bashrc` planted beside the single output (the lock rssr would truncate and write)."""
    (work / ".out.tif.lock").symlink_to(victim_file(work))
    return plain_raster(work)


def with_symlinked_lock_in_batch_folder(work: Path) -> Path:
    """The same plant in an existing batch folder `planted/`, beside the scene's output src_x2.tif."""
    (work / "planted").mkdir()
    (work / "planted" / ".src_x2.tif.lock").symlink_to(victim_file(work))
    return plain_raster(work)


def with_hard_linked_lock(work: Path) -> Path:
    """`.out.tif.lock` as a second name of the victim: not a symlink, yet writing it would write the victim."""
    os.link(victim_file(work), work / ".out.tif.lock")
    return plain_raster(work)


def with_fifo_aoi(work: Path) -> Path:
    os.mkfifo(work / "aoi.fifo")  # opening it for reading would block until a writer comes: none ever does
    return plain_raster(work)


def with_huge_aoi(work: Path) -> Path:
    with open(work / "big.geojson", "wb") as file:
        file.truncate(101 * 10**6)  # sparse: no disk used, but 101 MB to read
    return plain_raster(work)


def fifo_raster(work: Path) -> Path:
    path = work / "scene.tif"
    os.mkfifo(path)
    return path


def bad_model(**operator_args) -> Callable[[Path], Path]:
    """make_src: the default raster, plus `bad.safetensors` + `bad.json`: the shipped card (models/aerial.json)
    with `operator_args` changed, over a weights file of no tensors whose sha256 the card records and whose
    header embeds the same description. Everything the old code checked before building passes."""
    import json
    import struct

    def make(work: Path) -> Path:
        card = json.loads((Path(__file__).resolve().parents[2] / "models" / "aerial.json").read_text())
        card["spec"]["operator"]["args"].update(operator_args)
        embedded = {k: v for k, v in card.items() if k not in ("rssr_version", "training", "metrics", "sha256")}
        header = json.dumps({"__metadata__": {"rssr": json.dumps(embedded)}}).encode()
        header += b" " * (-len(header) % 8)
        weights = work / "bad.safetensors"
        weights.write_bytes(struct.pack("<Q", len(header)) + header)
        card["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        (work / "bad.json").write_text(json.dumps(card, indent=2))
        return plain_raster(work)

    return make


def scenes_with_a_corrupt_one(work: Path) -> Path:
    """A batch input folder: one good scene and one corrupt file (a TIFF signature, then garbage)."""
    folder = work / "scenes"
    folder.mkdir()
    write_raster(folder / "good.tif", synthetic_image(1, 30, 34))
    (folder / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    return folder


# ---- makers for issue 23 (remote STAC, secrets, control characters, hostile item JSON, inputs as outputs) -----------

ESC_NAME = "x\x1b[2J\nerror: forged"  # clears the screen, then forges a second error line


def stac_item(work: Path, hrefs: dict[str, str], name: str = "item.json") -> Path:
    """A STAC item in `work` whose assets (keyed by Sentinel-2 common name) point at `hrefs`; B04.tif beside it."""
    import json

    sp._write_band(sp.band_path("B04"), work / "files" / "B04.tif")
    assets = {key: {"href": href, "type": "image/tiff", "eo:bands": [{"name": key}]} for key, href in hrefs.items()}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "properties": {}, "geometry": None, "assets": assets}
    (work / name).write_text(json.dumps(item))
    return work / name


def remote_item_reading(href: str) -> Callable[[Path], Path]:
    """make_src: an item served over HTTP whose red band is `href` (with {work} replaced), a local file's name."""
    return lambda work: stac_item(work, {"red": href.replace("{work}", str(work))})


def fifo_item(work: Path) -> Path:
    os.mkfifo(work / "item.json")
    return work / "item.json"


def item_linked_to_dev_zero(work: Path) -> Path:
    (work / "item.json").symlink_to("/dev/zero")
    return work / "item.json"


def huge_item(work: Path) -> Path:
    with open(work / "item.json", "wb") as file:
        file.truncate(17 * 2**20)  # sparse: 17 MiB of NULs, no disk used
    return work / "item.json"


def deeply_nested_item(work: Path) -> Path:
    (work / "item.json").write_text("[" * 100_000 + "]" * 100_000)
    return work / "item.json"


def safe_with_hostile_granules(work: Path) -> Path:
    """A .SAFE whose two granule folders are named with ESC and a newline: the refusal names them."""
    safe = work / sp.L1C_NAME
    for granule in (ESC_NAME, ESC_NAME + "2"):
        sp._write_band(sp.band_path("B04"), safe / "GRANULE" / granule / "IMG_DATA" / f"T18SUJ_{sp.STAMP}_B04.tif")
    return safe


def l1c_product(work: Path) -> Path:
    safe = sp.make_l1c(work, suffix=".tif", bands=("B02", "B03", "B04", "B08"))
    return safe


BAND_B04 = f"{sp.L1C_NAME}/GRANULE/L1C_{sp.TILE}_A009352_{sp.STAMP}/IMG_DATA/{sp.TILE}_{sp.STAMP}_B04.tif"


def bandless_folder(work: Path) -> Path:
    (work / "scene").mkdir()
    (work / "scene" / "notes.txt").write_text("no band here\n")
    return work / "scene"


def run_with_a_corrupt_state(work: Path) -> Path:
    """A train-sharpener run folder whose state.pt (for --resume) is truncated garbage."""
    (work / "run").mkdir()
    (work / "run" / "state.pt").write_bytes(b"PK\x03\x04 truncated")
    return sp.BANDS_DIR


def product_with_a_band_twice(work: Path) -> Path:
    """B04 as .tif and as .jp2 in one IMG_DATA folder (a re-packed or half-converted product)."""
    safe = l1c_product(work)
    band = work / BAND_B04
    band.with_suffix(".jp2").write_bytes(band.read_bytes())
    return safe


def band_folder_with_a_fifo(work: Path) -> Path:
    (work / "bands").mkdir()
    os.mkfifo(work / "bands" / "x_B05.tif")
    return work / "bands"


def tiny_band_folder(work: Path) -> Path:
    """12 x 12 px of the 10 m bands (2 x 2 of the 60 m band): nothing survives Wald's degradation by 6."""
    with rasterio.open(sp.band_path("B04")) as b04:
        west, north = b04.transform @ (0, 0)
    return sp.crop_bands(
        work / "tiny", ("B02", "B03", "B04", "B08", "B05", "B01"), (west, north - 120, west + 120, north)
    )


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    exit_code: int
    message: str  # must appear in the error line (a batch: in the failed scene's line)
    make_src: Callable[[Path], Path] = plain_raster
    dst: str = "out.tif"  # relative to the work folder; ending in / makes it an (existing, empty) batch folder
    batch: bool = False  # scenes ran: stderr holds scene lines and the summary table instead of one line
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 120
    max_seconds: Optional[float] = None  # the refusal must come this fast (the process's whole life)
    leaves: tuple[str, ...] = ()  # entries (relative to the work folder) that rightly appear, e.g. a finished output
    needs: tuple[str, ...] = ()  # paths the case needs on this machine (skipped without them), e.g. /dev/full
    serve: bool = False  # serve the work folder over HTTP (range requests) while rssr runs: `{server}` is host:port
    hidden: tuple[str, ...] = ()  # secrets that must appear nowhere on stdout or stderr


def upscale(*options: str) -> tuple[str, ...]:
    return ("upscale", "{src}", "-o", "{dst}", *options)


CASES: list[Case] = [
    # Click's usage errors are one line, not Typer's boxed usage text
    Case("unparseable-scale", upscale("-s", "x", *CLASSICAL), 2, "Invalid value for '--scale'"),
    Case("missing-output", ("upscale", "{src}", "-s", "2", *CLASSICAL), 2, "Missing option '--output'"),
    Case("unknown-option", upscale("-s", "2", "--forc", *CLASSICAL), 2, "No such option: --forc"),
    Case("bad-choice", upscale("-s", "2", "--device", "tpu", *CLASSICAL), 2, "Invalid value for '--device'"),
    # inputs whose output would be silently wrong
    Case("palette", upscale("-s", "2", *CLASSICAL), 1, "gdal_translate -expand rgb", make_src=paletted_raster),
    Case("palette-nearest", upscale("-s", "2", "-m", "nearest"), 1, "is paletted", make_src=paletted_raster),
    Case(
        "gcps-only", upscale("-s", "2", *CLASSICAL), 1, "warp it onto a grid first, e.g. gdalwarp", make_src=gcp_raster
    ),
    Case("rpcs-only", upscale("-s", "2", *CLASSICAL), 1, "gdalwarp -rpc", make_src=rpc_raster),
    # --resolution: X or X,Y; gdalwarp's `-tr X Y` spelling must not turn Y into an input
    Case(
        "resolution-two-words",
        ("upscale", "{src}", "-r", "5", "5", "-o", "{dst}", *CLASSICAL),
        2,
        "write -r X,Y",
        make_src=rectangular_pixels,
    ),
    Case(
        "resolution-coarser-on-an-axis",
        upscale("-r", "15", *CLASSICAL),
        2,
        "coarser than the input's 20 x 10 pixels",
        make_src=rectangular_pixels,
    ),
    Case("resolution-three-numbers", upscale("-r", "5,5,5", *CLASSICAL), 2, "X or X,Y"),
    # an effective scale of 1 (round(W*s) = W on both axes) would write a copy tagged as super-resolved
    Case("effective-scale-one", upscale("-s", "1.0000001", *CLASSICAL), 2, "effective scale is 1"),
    Case(
        "resolution-of-the-input",
        upscale("-r", "20,10", *CLASSICAL),
        2,
        "effective scale is 1",
        make_src=rectangular_pixels,
    ),
    # an AOI between pixel centres selects no pixel: the output would be all nodata
    Case(
        "aoi-between-pixel-centres",
        upscale("-s", "2", "--aoi", BETWEEN_CENTRES, *CLASSICAL),
        2,
        "covers no pixel centre",
    ),
    Case("aoi-sliver-between-rows", upscale("-s", "2", "--aoi", SLIVER, *CLASSICAL), 2, "covers no pixel centre"),
    # creation options GDAL would ignore (an uncompressed file for COMPRESS=NOTACODEC) or that break the build
    Case(
        "co-unknown-codec",
        upscale("-s", "2", "--co", "COMPRESS=NOTACODEC", *CLASSICAL),
        2,
        "'NOTACODEC' is an unexpected value for COMPRESS",
    ),
    Case(
        "co-unknown-option",
        upscale("-s", "2", "--co", "FOO=bar", *CLASSICAL),
        2,
        "does not support creation option FOO",
    ),
    Case(
        "co-copy-src-overviews",
        upscale("-s", "2", "--co", "COPY_SRC_OVERVIEWS=YES", *CLASSICAL),
        2,
        "COPY_SRC_OVERVIEWS is not accepted",
    ),
    Case(
        "co-codec-for-the-dtype", upscale("-s", "2", "--co", "COMPRESS=JPEG", *CLASSICAL), 2, "16 not allowed for JPEG"
    ),
    Case("co-block-size", upscale("-s", "2", "--co", "BLOCKXSIZE=100", *CLASSICAL), 2, "Bad value 100"),
    Case(
        "co-codec-for-the-dtype-in-batch",
        upscale("-s", "2", "--co", "COMPRESS=JPEG", *CLASSICAL),
        1,
        "not allowed for JPEG",
        dst="out/",
        batch=True,
    ),
    # output names: a GeoTIFF by name too, short enough for the staging folder, a template of plain fields
    Case("output-png", upscale("-s", "2", *CLASSICAL), 2, "must end in .tif or .tiff", dst="x.png"),
    Case(
        "output-name-too-long", upscale("-s", "2", *CLASSICAL), 2, "bytes long; at most 240 fit", dst="a" * 251 + ".tif"
    ),
    Case(
        "output-name-too-long-for-the-staging",
        upscale("-s", "2", *CLASSICAL),
        2,
        "at most 240 fit",
        dst="a" * 237 + ".tif",
    ),
    Case(
        "output-folder-name-too-long",
        upscale("-s", "2", *CLASSICAL),
        1,
        "File name too long",
        dst="d" * 300 + "/out.tif",
    ),
    Case(
        "input-name-too-long",
        upscale("-s", "2", *CLASSICAL),
        1,
        "File name too long",
        make_src=lambda work: work / ("d" * 300 + ".tif"),
    ),
    Case(
        "name-attribute-access",
        upscale("-s", "2", "--name", "{stem.__class__}.tif", *CLASSICAL),
        2,
        "only the plain fields",
        dst="out/",
    ),
    Case(
        "name-index-access",
        upscale("-s", "2", "--name", "{name[0]}.tif", *CLASSICAL),
        2,
        "only the plain fields",
        dst="out/",
    ),
    Case(
        "name-not-a-tif",
        upscale("-s", "2", "--name", "{stem}.png", *CLASSICAL),
        2,
        "must end in .tif or .tiff",
        dst="out/",
    ),
    # an empty method must not mean "the default"; model options must not be ignored by a classical method
    Case("method-empty", upscale("-s", "2", "-m", ""), 2, "--method is empty"),
    Case(
        "steps-with-bicubic",
        upscale("-s", "2", "--steps", "3", *CLASSICAL),
        2,
        "--steps only applies to the diffusion model",
    ),
    Case("tta-with-bicubic", upscale("-s", "2", "--tta", *CLASSICAL), 2, "--tta only applies to the diffusion model"),
    Case(
        "strength-with-lanczos", upscale("-s", "2", "-m", "lanczos", "--strength", "0.3"), 2, "--strength only applies"
    ),
    Case(
        "model-and-precision-with-nearest",
        upscale("-s", "2", "-m", "nearest", "--model", "m.safetensors", "--precision", "fp32"),
        2,
        "--model, --precision only apply",
    ),
    Case(
        "steps-with-bicubic-in-batch",
        upscale("-s", "2", "--steps", "3", *CLASSICAL),
        2,
        "--steps only applies",
        dst="out/",
    ),
    # tracebacks before
    Case("negative-steps", upscale("-s", "2", "--steps", "-1"), 2, "--steps must be >= 0"),
    Case(
        "scheduler-with-a-space",
        upscale("-s", "2", "--scheduler", "foo bar", *CLASSICAL),
        2,
        "is not an address",
        dst="out/",
    ),
    Case(
        "scheduler-without-a-port", upscale("-s", "2", "--scheduler", "foo", *CLASSICAL), 2, "missing port", dst="out/"
    ),
    # an unreachable scheduler is the environment failing (exit 1), reported within seconds, not 31 s
    Case(
        "scheduler-unreachable",
        upscale("-s", "2", "--scheduler", NOBODY, *CLASSICAL),
        1,
        "cannot reach the Dask scheduler",
        dst="out/",
        max_seconds=25,
    ),
    Case(
        "split-rows-zero",
        upscale("-s", "2", "--scheduler", NOBODY, "--split-rows", "0", *CLASSICAL),
        2,
        "--split-rows needs at least 2 parts",
        max_seconds=15,
    ),
    # a log that cannot be written after the output was: one line that says so, exit 1
    Case(
        "log-json-full-disk",
        upscale("-s", "2", "--log-json", "/dev/full", *CLASSICAL),
        1,
        "cannot append to --log-json /dev/full: No space left on device",
        leaves=("out.tif",),
        needs=("/dev/full",),
    ),
    Case(
        "log-json-full-disk-in-batch",
        upscale("-s", "2", "--log-json", "/dev/full", *CLASSICAL),
        1,
        "No space left on device",
        dst="out/",
        leaves=("out/src_x2.tif",),
        needs=("/dev/full",),
    ),
    Case("info-palette", ("info", "{src}", "-s", "2"), 1, "is paletted", make_src=paletted_raster),
    Case("info-resolution-pair", ("info", "{src}", "-r", "5,x"), 2, "X or X,Y"),
    Case(
        "palette-in-batch",
        upscale("-s", "2", *CLASSICAL),
        1,
        "is paletted",
        make_src=paletted_raster,
        dst="out/",
        batch=True,
    ),
    # ---- items 1-4 (security) and 7 (-q), run through the same table ----
    # item 1: a lock file planted as a symlink is never followed (the victim is hashed by the snapshot)
    Case(
        "lock-symlinked-to-a-victim",
        upscale("-s", "2", *CLASSICAL),
        1,
        ".out.tif.lock is a symbolic link; refusing to follow it",
        make_src=with_symlinked_lock,
    ),
    Case(
        "lock-symlinked-to-a-victim-in-batch",
        upscale("-s", "2", *CLASSICAL),
        1,
        "is a symbolic link; refusing to follow it",
        make_src=with_symlinked_lock_in_batch_folder,
        dst="planted",
        batch=True,
    ),
    Case(
        "lock-hard-linked-to-a-victim",
        upscale("-s", "2", *CLASSICAL),
        1,
        "hard-linked elsewhere; refusing to write it",
        make_src=with_hard_linked_lock,
    ),
    # item 2: a hostile model card is one CheckpointError line before anything is built, in every mode
    Case(
        "model-card-enc-width-2000",
        upscale("-s", "2", "--model", "bad.safetensors"),
        1,
        "the model card describes a model of 470,859,186 parameters; at most 200,000,000",
        make_src=bad_model(enc_width=2000),
        max_seconds=60,
    ),
    Case(
        "model-card-heads-0",
        upscale("-s", "2", "--model", "bad.safetensors"),
        1,
        "model spec operator.heads must be an integer in 1..4096, got 0",
        make_src=bad_model(heads=0),
    ),
    Case(
        "model-card-enc-width-2000-in-batch",
        upscale("-s", "2", "--model", "bad.safetensors"),
        1,
        "the model card describes a model of 470,859,186 parameters; at most 200,000,000",
        make_src=bad_model(enc_width=2000),
        dst="out/",
        max_seconds=60,
    ),
    Case(
        "model-card-heads-0-in-batch",
        upscale("-s", "2", "--model", "bad.safetensors"),
        1,
        "operator.heads must be an integer",
        make_src=bad_model(heads=0),
        dst="out/",
    ),
    Case(
        "info-model-card-enc-width-2000",
        ("info", "--model", "bad.safetensors"),
        1,
        "the model card describes a model of 470,859,186 parameters; at most 200,000,000",
        make_src=bad_model(enc_width=2000),
        max_seconds=60,
    ),
    Case(
        "info-model-card-heads-0",
        ("info", "--model", "bad.safetensors"),
        1,
        "operator.heads must be an integer",
        make_src=bad_model(heads=0),
    ),
    # item 3: the JSON log is never the input, the output, or followed through a symlink; refused before any work
    Case("log-json-is-the-input", upscale("-s", "2", "--log-json", "{src}", *CLASSICAL), 2, "is the input"),
    Case("log-json-is-the-output", upscale("-s", "2", "--log-json", "{dst}", *CLASSICAL), 2, "is the output"),
    Case(
        "log-json-is-an-input-of-the-batch",
        upscale("-s", "2", "--log-json", "{src}", *CLASSICAL),
        2,
        "is the input",
        dst="out/",
    ),
    Case(
        "log-json-is-an-output-of-the-batch",
        upscale("-s", "2", "--log-json", "out/src_x2.tif", *CLASSICAL),
        2,
        "is the output",
        dst="out/",
    ),
    Case(
        "log-json-is-a-lock-of-the-batch",
        upscale("-s", "2", "--log-json", "out/.src_x2.tif.lock", *CLASSICAL),
        2,
        "is the output's lock file",
        dst="out/",
    ),
    Case(
        "log-json-in-a-staging-folder",
        upscale("-s", "2", "--log-json", "out/.src_x2.tif.rssr-abc/log.jsonl", *CLASSICAL),
        2,
        "is inside the staging area",
        dst="out/",
    ),
    Case(
        "log-json-symlinked-to-a-victim",
        upscale("-s", "2", "--log-json", "log.jsonl", *CLASSICAL),
        2,
        "--log-json log.jsonl is a symbolic link; give the file itself",
        make_src=with_symlinked_log,
    ),
    # item 4: AOIs that are devices, FIFOs or huge are refused at once; so are inputs that are not regular files
    Case(
        "aoi-dev-zero",
        upscale("-s", "2", "--aoi", "/dev/zero", *CLASSICAL),
        2,
        "not a regular file",
        max_seconds=30,
        timeout=60,
        needs=("/dev/zero",),
    ),
    Case(
        "aoi-dev-urandom",
        upscale("-s", "2", "--aoi", "/dev/urandom", *CLASSICAL),
        2,
        "not a regular file",
        max_seconds=30,
        timeout=60,
        needs=("/dev/urandom",),
    ),
    Case(
        "aoi-fifo",
        upscale("-s", "2", "--aoi", "aoi.fifo", *CLASSICAL),
        2,
        "not a regular file",
        make_src=with_fifo_aoi,
        max_seconds=30,
        timeout=60,
    ),
    Case(
        "aoi-over-100-mb",
        upscale("-s", "2", "--aoi", "big.geojson", *CLASSICAL),
        2,
        "an AOI file may be at most 100 MB",
        make_src=with_huge_aoi,
        max_seconds=30,
        timeout=60,
    ),
    Case(
        "input-fifo",
        upscale("-s", "2", *CLASSICAL),
        1,
        "not a regular file",
        make_src=fifo_raster,
        max_seconds=30,
        timeout=60,
    ),
    Case(
        "input-fifo-in-batch",
        upscale("-s", "2", *CLASSICAL),
        1,
        "not a regular file",
        make_src=fifo_raster,
        dst="out/",
        batch=True,
        max_seconds=30,
        timeout=60,
    ),
    Case(
        "input-dev-zero",
        upscale("-s", "2", *CLASSICAL),
        1,
        "not a regular file",
        make_src=lambda work: Path("/dev/zero"),
        max_seconds=30,
        timeout=60,
        needs=("/dev/zero",),
    ),
    # item 7: -q hides progress, never errors: the corrupt scene's line reaches stderr (and only the failed lines)
    Case(
        "quiet-batch-with-a-corrupt-scene",
        upscale("-s", "2", "-q", *CLASSICAL),
        1,
        "broken.tif",
        make_src=scenes_with_a_corrupt_one,
        dst="out/",
        batch=True,
        leaves=("out/good_x2.tif",),
    ),
    # ---- issue 23 ----
    # item 1: a remote STAC item references remote URLs only: a local file's pixels must never be published
    Case(
        "remote-stac-file-href",
        ("upscale", "http://{server}/item.json", "-o", "{dst}", "-s", "2", *CLASSICAL),
        1,
        "a remote STAC item may only reference",
        make_src=remote_item_reading("file://{work}/files/B04.tif"),
        serve=True,
    ),
    Case(
        "remote-stac-vsisubfile-href",
        ("upscale", "http://{server}/item.json", "-o", "{dst}", "-s", "2", *CLASSICAL),
        1,
        "is not a remote URL",
        make_src=remote_item_reading("/vsisubfile/0_100000,{work}/files/B04.tif"),
        serve=True,
    ),
    Case(
        "remote-stac-local-path-href",
        ("upscale", "http://{server}/item.json", "-o", "{dst}", "-s", "2", *CLASSICAL),
        1,
        "is not a remote URL",
        make_src=remote_item_reading("/vsicurl/file://{work}/files/B04.tif"),
        serve=True,
    ),
    Case(
        "stac-vsistdin-href",
        upscale("-s", "2", *CLASSICAL),
        1,
        "reads standard input",
        make_src=lambda work: stac_item(work, {"red": "/vsistdin/"}),
    ),
    Case(
        "info-remote-stac-file-href",
        ("info", "http://{server}/item.json"),
        1,
        "is not a remote URL",
        make_src=remote_item_reading("file://{work}/files/B04.tif"),
        serve=True,
    ),
    # item 2: credentials in URLs are never echoed (error line, info)
    Case(
        "url-credentials-in-the-error-line",
        (
            "upscale",
            "http://bob:hunter2@{server}/missing.tif?X-Amz-Signature=SEKRET1&X-Amz-Credential=SEKRET2&sig=SEKRET3&token=SEKRET4",
            "-o",
            "{dst}",
            "-s",
            "2",
            *CLASSICAL,
        ),
        1,
        "http://***@",
        serve=True,
        hidden=("hunter2", "SEKRET"),
    ),
    Case(
        "url-credentials-in-info",
        ("info", "https://bob:hunter2@{server}/missing.tif?X-Amz-Signature=SEKRET1&key=SEKRET2"),
        1,
        "X-Amz-Signature=***",
        serve=True,
        hidden=("hunter2", "SEKRET"),
    ),
    Case(
        "stac-href-credentials-in-the-error-line",
        upscale("-s", "2", *CLASSICAL),
        1,
        "sig=***",
        make_src=lambda work: stac_item(work, {"red": "https://alice:hunter2@127.0.0.1:9/B04.tif?sig=SEKRET&se=2030"}),
        hidden=("hunter2", "SEKRET"),
    ),
    # item 3: control characters in input-controlled names never reach the terminal raw, never forge a line
    Case(
        "granule-names-with-escapes",
        upscale("-s", "2", *CLASSICAL),
        1,
        "holds 2 granules",
        make_src=safe_with_hostile_granules,
    ),
    Case(
        "stac-href-with-escapes",
        upscale("-s", "2", *CLASSICAL),
        1,
        "control character",
        make_src=lambda work: stac_item(work, {"red": "files/" + ESC_NAME + ".tif"}),
    ),
    Case(
        "stac-href-with-a-nul-byte",
        upscale("-s", "2", *CLASSICAL),
        1,
        "NUL byte",
        make_src=lambda work: stac_item(work, {"red": "files/B04.tif\x00.tif"}),
    ),
    Case(
        "output-name-with-escapes",
        upscale("-s", "2", *CLASSICAL),
        1,
        "\\x1b[2J\\nerror: forged",
        dst=ESC_NAME + "/out.tif",
    ),
    # item 4: an item JSON that is a FIFO, a device, huge or nested 100k deep is one line at once
    Case(
        "stac-item-fifo",
        upscale("-s", "2", *CLASSICAL),
        1,
        "not a regular file",
        make_src=fifo_item,
        max_seconds=30,
        timeout=60,
    ),
    Case(
        "stac-item-dev-zero",
        upscale("-s", "2", *CLASSICAL),
        1,
        "not a regular file",
        make_src=item_linked_to_dev_zero,
        max_seconds=30,
        timeout=60,
        needs=("/dev/zero",),
    ),
    Case(
        "stac-item-over-16-mib",
        upscale("-s", "2", *CLASSICAL),
        1,
        "larger than 16 MiB",
        make_src=huge_item,
        max_seconds=30,
        timeout=60,
    ),
    Case(
        "stac-item-nested-100k-deep",
        upscale("-s", "2", *CLASSICAL),
        1,
        "nested too deeply",
        make_src=deeply_nested_item,
    ),
    Case(
        "info-stac-item-fifo",
        ("info", "{src}"),
        1,
        "not a regular file",
        make_src=fifo_item,
        max_seconds=30,
        timeout=60,
    ),
    # item 5: every file a run reads is an input: never written, appended to or replaced
    Case(
        "log-json-is-a-band-of-the-product",
        upscale("-s", "2", "--log-json", BAND_B04, *CLASSICAL),
        2,
        "is a file the run reads",
        make_src=l1c_product,
    ),
    Case(
        "output-is-a-band-of-the-product",
        upscale("-s", "2", "--overwrite", *CLASSICAL),
        2,
        "is a file the run reads",
        make_src=l1c_product,
        dst=BAND_B04,
    ),
    Case(
        "output-is-a-band-of-the-stac-item",
        upscale("-s", "2", "-b", "red", "--overwrite", *CLASSICAL),
        2,
        "is a file the run reads",
        make_src=lambda work: stac_item(work, {"red": "files/B04.tif"}),
        dst="files/B04.tif",
    ),
    Case(
        "batch-output-inside-the-product",
        ("upscale", "{src}", "-o", "{src}/out/", "-s", "2", *CLASSICAL),
        2,
        "is inside the input",
        make_src=l1c_product,
    ),
    # item 7: --nodata must be storable in the bands' type, for products and STAC items too
    Case(
        "product-nodata-fraction-on-uint16",
        upscale("-s", "2", "--nodata", "0.5", *CLASSICAL),
        2,
        "--nodata 0.5 cannot be stored in uint16",
        make_src=l1c_product,
    ),
    Case(
        "product-nodata-negative-on-uint16",
        upscale("-s", "2", "--nodata", "-1", *CLASSICAL),
        2,
        "--nodata -1 cannot be stored in uint16",
        make_src=l1c_product,
    ),
    Case(
        "product-nodata-70000-on-uint16",
        upscale("-s", "2", "--nodata", "70000", *CLASSICAL),
        2,
        "cannot be stored in uint16",
        make_src=l1c_product,
    ),
    Case(
        "stac-nodata-nan-on-uint16",
        upscale("-s", "2", "-b", "red", "--nodata", "nan", *CLASSICAL),
        2,
        "cannot be stored in uint16",
        make_src=lambda work: stac_item(work, {"red": "files/B04.tif"}),
    ),
    Case(
        "nodata-1e39-on-float32",
        upscale("-s", "2", "--nodata", "1e39", *CLASSICAL),
        2,
        "cannot be stored in float32",
        make_src=lambda work: write_raster(work / "f.tif", synthetic_image(1, 20, 20, "float32")),
    ),
    # item 17: a product missing one of the default bands is the input's fault (exit 1), not a usage error
    Case(
        "product-missing-a-default-band",
        upscale("-s", "2", *CLASSICAL),
        1,
        "lacks B02 of the default bands",
        make_src=lambda work: sp.make_l1c(work, suffix=".tif", bands=("B03", "B04", "B08")),
    ),
    Case(
        "evaluate-json-is-a-band-of-the-product",
        ("evaluate", "--wald", "{src}", "--json", "{work}/" + BAND_B04, "-q"),
        2,
        "is a file this evaluation reads",
        make_src=l1c_product,
    ),
    # item 9: train-sharpener checks its options and its inputs: one line, never "model written" without a file
    Case(
        "train-sharpener-negative-steps",
        ("train-sharpener", "{src}", "-o", "{dst}", "--steps", "-5"),
        2,
        "--steps must be a whole number >= 1",
        dst="run",
    ),
    Case(
        "train-sharpener-nan-lr",
        ("train-sharpener", "{src}", "-o", "{dst}", "--lr", "nan"),
        2,
        "--lr must be a finite number",
        dst="run",
    ),
    Case(
        "train-sharpener-bandless-folder",
        ("train-sharpener", "{src}", "-o", "{dst}", "--steps", "2"),
        1,
        "holds no Sentinel-2 band files",
        make_src=bandless_folder,
        dst="run",
    ),
    Case(
        "train-sharpener-corrupt-state",
        (
            "train-sharpener",
            "{src}",
            "-o",
            "{work}/run",
            "--resume",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--crop",
            "12",
            "--width",
            "8",
            "--blocks",
            "1",
            "--threads",
            "1",
        ),
        1,
        "cannot resume from",
        make_src=run_with_a_corrupt_state,
    ),
    # item 12: -r 10 on a product of 10 m bands would be a copy: the single-raster rule
    Case(
        "product-resolution-of-its-bands",
        upscale("-r", "10", *CLASSICAL),
        2,
        "the effective scale is 1",
        make_src=l1c_product,
    ),
    # item 11: two sources of one band are refused with both named, never resolved by listing order
    Case(
        "product-band-in-two-files",
        upscale("-s", "2", *CLASSICAL),
        1,
        "band B04 is in 2 files",
        make_src=product_with_a_band_twice,
    ),
    Case(
        "stac-band-named-by-two-assets",
        upscale("-s", "2", "-b", "red", *CLASSICAL),
        1,
        "band B04 is named by two assets (red, B04)",
        make_src=lambda work: stac_item(work, {"red": "files/B04.tif", "B04": "files/B04_copy.tif"}),
    ),
    # item 20, then issue 22 item 3: --split-rows splits a product as a raster (no refusal): on to the cluster
    Case(
        "split-rows-on-a-product",
        upscale("-s", "2", "--scheduler", NOBODY, "--split-rows", "2", *CLASSICAL),
        1,
        "cannot reach the Dask scheduler",
        make_src=l1c_product,
        max_seconds=25,
    ),
    Case(
        "split-rows-on-a-batch-of-products",
        upscale("-s", "2", "--scheduler", NOBODY, "--split-rows", "2", *CLASSICAL),
        1,
        "cannot reach the Dask scheduler",
        make_src=l1c_product,
        dst="out/",
        max_seconds=25,
    ),
    # item 22: --bands all on an incomplete product says what is missing (a copy in progress), never a shorter output
    Case(
        "bands-all-on-a-product-missing-bands",
        upscale("-s", "2", "--bands", "all", *CLASSICAL),
        1,
        "lacks B01, B05, B06, B07, B8A, B09, B10, B11, B12 of the 13 bands",
        make_src=l1c_product,
    ),
    # item 16: evaluate --wald on what is not a usable Sentinel-2 scene: one line, at once
    Case("evaluate-wald-non-s2-raster", ("evaluate", "--wald", "{src}", "-q"), 1, "is not a Sentinel-2 product"),
    Case(
        "evaluate-wald-bandless-folder",
        ("evaluate", "--wald", "{src}", "-q"),
        1,
        "holds no Sentinel-2 band files",
        make_src=bandless_folder,
    ),
    Case(
        "evaluate-wald-fifo-band",
        ("evaluate", "--wald", "{src}", "-q"),
        1,
        "is not a regular file",
        make_src=band_folder_with_a_fifo,
        max_seconds=30,
        timeout=60,
    ),
    Case(
        "evaluate-wald-tiny-scene",
        ("evaluate", "--wald", "{src}", "-q"),
        1,
        "too small for Wald's protocol",
        make_src=tiny_band_folder,
    ),
]


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry below `folder` (hidden ones too): files by content hash, folders and links by kind."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            entries[key] = f"link -> {os.readlink(path)}"
        elif path.is_file():
            entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[key] = "dir" if path.is_dir() else "other"
    return entries


def _fill(arg: str, places: dict[str, str]) -> str:
    """{src}, {dst}, {work} as whole arguments or inside one (`{src}/`, `http://{server}/item.json`)."""
    if arg in places:
        return places[arg]
    for key, value in places.items():
        if key in ("{server}", "{src}", "{work}"):
            arg = arg.replace(key, value)
    return arg


def run_rssr(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RSSR_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "rssr_cli", *args],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_case(tmp_path, case: Case):
    missing = [path for path in case.needs if not os.path.exists(path)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    work = tmp_path / "work"
    work.mkdir()
    src = case.make_src(work)
    dst = work / case.dst
    if case.dst.endswith("/"):
        dst.mkdir(parents=True)
    before = snapshot(work)
    places = {"{src}": str(src), "{dst}": str(dst) + ("/" if case.dst.endswith("/") else ""), "{work}": str(work)}
    with contextlib.ExitStack() as stack:
        if case.serve:
            server = stack.enter_context(serve_directory(work, tmp_path / "requests.jsonl"))
            places["{server}"] = f"127.0.0.1:{server.port}"
        args = [_fill(a, places) for a in case.args]
        started = time.monotonic()
        proc = run_rssr(args, work, case.env, case.timeout)
        seconds = time.monotonic() - started
    said = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "\x1b" not in proc.stderr, said  # no input-controlled name reaches the terminal raw (issue 23 item 3)
    for secret in case.hidden:
        assert secret not in proc.stdout + proc.stderr, said
    assert proc.returncode == case.exit_code, said
    assert "Traceback" not in proc.stdout + proc.stderr, said
    # a stderr that is no terminal gets a progress line per 10 % of the windows (issue 23 item 24): not an error line
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]
    if case.batch:
        assert any("failed" in line and case.message in line for line in lines), said
        if "-q" in case.args:  # -q hides progress and the summary, never errors: only the failed scenes' lines
            assert all(line.split()[0] == "failed" for line in lines), said
        else:
            assert "scene(s)" in proc.stderr, said  # the summary table
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), said
        assert case.message in lines[0], said
    after = snapshot(work)
    for entry in case.leaves:
        assert after.pop(entry, None) is not None, f"{entry} is missing\n{said}"
    assert after == before, said  # nothing at DST, no staging or lock left, the input untouched
    if case.max_seconds is not None:
        assert seconds < case.max_seconds, f"took {seconds:.1f} s\n{said}"


def rssr_ok(work: Path, *args: str) -> subprocess.CompletedProcess:
    proc = run_rssr(list(args), work, {}, 120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
@pytest.mark.parametrize("resolution,pixel,size", [("5", (5.0, 5.0), (40, 20)), ("5,2.5", (5.0, 2.5), (40, 40))])
def test_resolution_reaches_the_asked_pixel_size_on_both_axes(tmp_path, resolution, pixel, size):
    """20 x 10 m pixels with -r 5 give 5 x 5 m pixels (not 5 x 2.5 m); -r X,Y sets each axis like gdalwarp -tr."""
    src = rectangular_pixels(tmp_path)
    rssr_ok(tmp_path, "upscale", str(src), "-o", str(tmp_path / "out.tif"), "-r", resolution, *CLASSICAL, "-q")
    with rasterio.open(tmp_path / "out.tif") as out, rasterio.open(src) as source:
        assert out.res == pytest.approx(pixel)
        assert (out.width, out.height) == size
        assert out.bounds == pytest.approx(source.bounds)


def test_a_classical_backend_refuses_model_options_even_when_the_method_was_defaulted():
    """Without -m the method may resolve to bicubic (no model installed): --steps must still not be ignored."""
    from rssr_cli.backends import get_backend
    from rssr_cli.core.errors import UsageError

    with pytest.raises(UsageError, match="--steps only applies to the diffusion model, not to the bicubic method"):
        get_backend("bicubic", device="auto", steps=4)
    assert get_backend("bicubic", device="auto").name == "bicubic"  # the device option is shared by every method
