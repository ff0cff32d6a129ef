"""Lay out the committed Sentinel-2 band crops (tests/data/s2/bands, made by make_s2_bands.py) as the products
rssr reads: an L1C .SAFE (JPEG 2000 when this GDAL writes it, as real products are), an L2A .SAFE (GeoTIFF, with
the coarser copies of finer bands that R20m/R60m hold), a .SAFE.zip, and a STAC item with relative hrefs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.windows
from rasterio.drivers import raster_driver_extensions

from rssr_cli.geo.band_names import SENTINEL2_BANDS, SENTINEL2_NATIVE_M

BANDS_DIR = Path(__file__).parent / "data" / "s2" / "bands"
TILE = "T18SUJ"
STAMP = "20181231T153611"
L1C_NAME = f"S2B_MSIL1C_{STAMP}_N0207_R068_{TILE}_{STAMP}.SAFE"
L2A_NAME = f"S2B_MSIL2A_{STAMP}_N0211_R068_{TILE}_{STAMP}.SAFE"
STAC_KEYS = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B11": "swir16",
    "B12": "swir22",
}


def band_path(band: str, source_dir: Path = BANDS_DIR) -> Path:
    return source_dir / f"{band}.tif"


def crop_bands(out_dir: Path, bands, bounds) -> Path:
    """Each band cut to the pixels of its own grid that cover `bounds` (west, south, east, north)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for band in bands:
        with rasterio.open(band_path(band)) as src:
            window = rasterio.windows.from_bounds(*bounds, transform=src.transform)
            window = window.round_offsets(op="floor").round_lengths(op="ceil")
            col1 = min(src.width, int(np.ceil((bounds[2] - src.transform.c) / src.transform.a)))
            row1 = min(src.height, int(np.ceil((src.transform.f - bounds[1]) / -src.transform.e)))
            window = rasterio.windows.Window(
                window.col_off, window.row_off, col1 - window.col_off, row1 - window.row_off
            )
            profile = src.profile
            profile.update(width=int(window.width), height=int(window.height), transform=src.window_transform(window))
            with rasterio.open(out_dir / f"{band}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
    return out_dir


def jp2_available() -> bool:
    return "jp2" in raster_driver_extensions()


def _write_band(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix == ".jp2":
        rasterio.shutil.copy(str(src), str(dst), driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE="YES")
    else:
        rasterio.shutil.copy(str(src), str(dst), driver="GTiff", COMPRESS="DEFLATE")


def make_l1c(root: Path, *, suffix: str | None = None, bands=SENTINEL2_BANDS, source_dir: Path = BANDS_DIR) -> Path:
    """GRANULE/L1C_.../IMG_DATA/T18SUJ_<stamp>_Bxx.jp2 (+ a TCI, which is not a band, and the product XML)."""
    suffix = suffix or (".jp2" if jp2_available() else ".tif")
    safe = root / L1C_NAME
    img = safe / "GRANULE" / f"L1C_{TILE}_A009352_{STAMP}" / "IMG_DATA"
    for band in bands:
        _write_band(band_path(band, source_dir), img / f"{TILE}_{STAMP}_{band}{suffix}")
    _write_band(band_path(bands[0], source_dir), img / f"{TILE}_{STAMP}_TCI{suffix}")
    (safe / "MTD_MSIL1C.xml").write_text("<not-parsed/>\n")
    return safe


def make_l2a(root: Path) -> Path:
    """GRANULE/L2A_.../IMG_DATA/R10m|R20m|R60m/T18SUJ_<stamp>_Bxx_NNm.tif, with R20m/R60m also holding coarser
    copies of the finer bands (as real L2A products do) and non-band layers (SCL, AOT)."""
    safe = root / L2A_NAME
    img = safe / "GRANULE" / f"L2A_{TILE}_A009352_{STAMP}" / "IMG_DATA"
    for band in SENTINEL2_BANDS:
        if band == "B10":  # L2A has no cirrus band
            continue
        native = SENTINEL2_NATIVE_M[band]
        _write_band(band_path(band), img / f"R{native}m" / f"{TILE}_{STAMP}_{band}_{native}m.tif")
        if native == 10:  # a 20 m aggregate, which must never be picked over the 10 m original
            _write_aggregate(band_path(band), img / "R20m" / f"{TILE}_{STAMP}_{band}_20m.tif")
        if native == 60:  # Sen2Cor's 20 m resampled copy of B01/B09: finer, yet never picked over the 60 m original
            _write_upsampled(band_path(band), img / "R20m" / f"{TILE}_{STAMP}_{band}_20m.tif", 3)
    _write_band(band_path("B05"), img / "R20m" / f"{TILE}_{STAMP}_SCL_20m.tif")
    _write_band(band_path("B02"), img / "R10m" / f"{TILE}_{STAMP}_AOT_10m.tif")
    return safe


def _write_aggregate(src: Path, dst: Path) -> None:
    with rasterio.open(src) as ds:
        data = ds.read(1).astype(np.float64)
        profile = ds.profile
        h, w = data.shape[0] // 2, data.shape[1] // 2
        coarse = data[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3)).round().astype("uint16")
        profile.update(width=w, height=h, transform=ds.transform @ rasterio.Affine.scale(2))
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(coarse, 1)


def _write_upsampled(src: Path, dst: Path, factor: int) -> None:
    with rasterio.open(src) as ds:
        fine = np.repeat(np.repeat(ds.read(1), factor, 0), factor, 1)
        profile = ds.profile
        profile.update(
            width=fine.shape[1], height=fine.shape[0], transform=ds.transform @ rasterio.Affine.scale(1 / factor)
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(fine, 1)


def make_zip(safe: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(safe.rglob("*")):
            if path.is_file():
                archive.write(path, Path(safe.name) / path.relative_to(safe))
    return zip_path


def make_stac_item(root: Path) -> Path:
    """An item in the style of the public catalogues: asset keys are common names, eo:bands name the band,
    hrefs relative to the item (band files in a subfolder), plus assets that are not bands."""
    files = root / "files"
    assets: dict = {}
    for band, key in STAC_KEYS.items():
        _write_band(band_path(band), files / f"{band}.tif")
        assets[key] = {
            "href": f"files/{band}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": key, "common_name": key if not key.startswith("rededge") else "rededge"}],
            "gsd": SENTINEL2_NATIVE_M[band],
        }
    assets["thumbnail"] = {"href": "files/thumb.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}
    assets["granule_metadata"] = {"href": "files/metadata.xml", "type": "application/xml", "roles": ["metadata"]}
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "S2B_18SUJ_20181231_0_L1C",
        "properties": {"datetime": "2018-12-31T15:36:11Z"},
        "geometry": None,
        "links": [],
        "assets": assets,
    }
    path = root / "item.json"
    path.write_text(json.dumps(item, indent=1))
    return path


# Every band of one extent (as in a real product), so every run has the same common grid:
# 54 x 54 px at 10 m, 27 x 27 at 20 m, 9 x 9 at 60 m of the committed crops.
SHARED_BOUNDS = (441780.0, 4166280.0, 442320.0, 4166820.0)


def shared_extent_product(root: Path) -> Path:
    """An L1C product whose bands all cover SHARED_BOUNDS (GeoTIFF bands: quicker to read than JPEG 2000)."""
    bands = crop_bands(root / "bands", SENTINEL2_BANDS, SHARED_BOUNDS)
    return make_l1c(root, suffix=".tif", source_dir=bands)


def tiny_sharpener(folder: Path, name: str) -> Path:
    """A tiny random guided sharpener (seeded) saved as `folder/tiny`, its card naming it `name`."""
    import torch  # lazy: the product helpers serve torch-free tests too

    from rssr_cli.sharpen.model import TINY_SPEC, build_sharpener, save_sharpener

    torch.manual_seed(0)
    model = build_sharpener(TINY_SPEC)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return save_sharpener(model, folder / "tiny", {"name": name})
