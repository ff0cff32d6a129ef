"""A .SAFE folder's identity (RSSR_SOURCE_* tags) changes when a band file inside it is rewritten; a band stack's
output is known by the band files its run read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.io.source_identity import FINGERPRINT_TAG, SIZE_TAG, source_identity

import s2_products as sp


def test_folder_identity_is_stable_and_follows_its_files(tmp_path):
    product = tmp_path / "S2A_MSIL1C_X.SAFE"
    band = product / "GRANULE" / "L1C_T1" / "IMG_DATA" / "T1_B04.jp2"
    band.parent.mkdir(parents=True)
    band.write_bytes(b"a" * 100)
    first = source_identity(product)
    assert first[SIZE_TAG] == "100" and first == source_identity(product)
    band.write_bytes(b"b" * 100)  # re-processed: same size, new content and mtime
    os.utime(band, ns=(1, 10**18))
    assert source_identity(product)[FINGERPRINT_TAG] != first[FINGERPRINT_TAG]
    (product / "extra.xml").write_text("x")
    assert source_identity(product)[SIZE_TAG] == "101"


# ---- issue 23 item 8: a band stack's identity is of the band files a run reads ------------------------------------


def batch_status(src: Path, out: Path) -> str:
    """One batch run of `src` into `out/` (B04, bicubic x2): the scene's status in the JSON log."""
    log = out / "log.jsonl"
    result = CliRunner().invoke(
        app,
        ["upscale", str(src), "-o", f"{out}/", "-s", "2", "-m", "bicubic", "-b", "B04", "-q", "--log-json", str(log)],
    )
    assert result.exit_code == 0, result.output
    return json.loads(log.read_text().splitlines()[-1])["status"]


def rewrite_pixels(path: Path, change: int = 0) -> None:
    """The band file rewritten uncompressed (so its size depends only on its grid), pixels shifted by `change`,
    its mtime kept: a re-processed band that only its content tells apart."""
    info = path.stat()
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile.update(driver="GTiff", compress=None, tiled=False)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data + np.asarray(change, dtype=data.dtype))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def l1c_band(product: Path, band: str) -> Path:
    return next(product.rglob(f"*_{band}.tif"))


def test_a_band_changed_with_its_size_and_mtime_kept_is_redone(tmp_path):
    product = sp.make_l1c(tmp_path, suffix=".tif", bands=("B02", "B03", "B04", "B08"))
    band = l1c_band(product, "B04")
    rewrite_pixels(band)
    assert batch_status(product, tmp_path / "out") == "done"
    size = band.stat().st_size
    rewrite_pixels(band, change=1)
    assert band.stat().st_size == size
    assert batch_status(product, tmp_path / "out") == "done"
    assert batch_status(product, tmp_path / "out") == "skipped"


def test_a_touched_manifest_or_an_unread_band_does_not_redo_a_product(tmp_path):
    product = sp.make_l1c(tmp_path, suffix=".tif", bands=("B02", "B03", "B04", "B08"))
    (product / "manifest.safe").write_text("<manifest/>\n")
    assert batch_status(product, tmp_path / "out") == "done"
    (product / "manifest.safe").write_text("<manifest>re-issued</manifest>\n")
    (product / "MTD_MSIL1C.xml").touch()
    rewrite_pixels(l1c_band(product, "B08"), change=1)  # the run reads B04 only
    assert batch_status(product, tmp_path / "out") == "skipped"


def test_a_stac_asset_replaced_under_an_unchanged_item_is_redone(tmp_path):
    item = sp.make_stac_item(tmp_path)
    before = item.read_bytes(), item.stat().st_mtime_ns
    assert batch_status(item, tmp_path / "out") == "done"
    rewrite_pixels(tmp_path / "files" / "B04.tif", change=1)
    assert (item.read_bytes(), item.stat().st_mtime_ns) == before
    assert batch_status(item, tmp_path / "out") == "done"
    assert batch_status(item, tmp_path / "out") == "skipped"


def test_a_zipped_product_is_known_by_its_band_members(tmp_path):
    product = sp.make_l1c(tmp_path / "safe", suffix=".tif", bands=("B02", "B03", "B04", "B08"))
    (tmp_path / "in").mkdir()
    zipped = sp.make_zip(product, tmp_path / "in" / f"{product.name}.zip")
    assert batch_status(zipped, tmp_path / "out") == "done"
    os.utime(zipped, ns=(1, 10**18))  # re-packed or touched: the same band members
    assert batch_status(zipped, tmp_path / "out") == "skipped"
    rewrite_pixels(l1c_band(product, "B04"), change=1)
    sp.make_zip(product, zipped)
    assert batch_status(zipped, tmp_path / "out") == "done"


def test_a_product_output_made_before_band_identities_still_compares_by_folder(tmp_path):
    """An output whose tags hold the folder identity (no RSSR_SOURCE_BANDS) is compared as before: not redone."""
    from rssr_cli.io.source_identity import BANDS_TAG, same_source

    product = sp.make_l1c(tmp_path, suffix=".tif", bands=("B02", "B03", "B04", "B08"))
    recorded = source_identity(product)
    assert BANDS_TAG not in recorded and same_source(recorded, product)
