"""A .SAFE folder's identity (RSSR_SOURCE_* tags) changes when a band file inside it is rewritten."""

from __future__ import annotations

import os

from rssr_cli.source_identity import FINGERPRINT_TAG, SIZE_TAG, source_identity


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
