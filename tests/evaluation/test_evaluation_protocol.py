"""rssr_cli.evaluation.protocol: the folder benchmark (degrade, super-resolve, score), image loading, quantization."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from rssr_cli.backends import get_backend
from rssr_cli.evaluation.protocol import EvaluationReport, ImageScore, evaluate_folder, load_image
from rssr_cli.io.radiometry import quantize
from rssr_cli.scoring.metrics import degrade_back

from textures import smooth_field

SHARED_DATA = Path(os.environ.get("RSSR_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    for i, (h, w) in enumerate([(64, 64), (61, 70), (72, 56)]):
        rgb = (smooth_field(h, w, seed=i) * 255).round().astype(np.uint8)
        sub = tmp_path / ("a" if i < 2 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.moveaxis(rgb, 0, -1)).save(sub / f"img{i}.png")
    return tmp_path


def test_evaluate_folder_ranks_bicubic_above_nearest(png_folder: Path):
    backends = {"bicubic": get_backend("bicubic"), "nearest": get_backend("nearest")}
    calls = []
    report = evaluate_folder(png_folder, backends, scales=(2, 4, 4.5), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert len(report.rows) == 3 * 3 * 2
    means = {(s.scale, s.backend): s for s in report.summary()}
    for scale in (2.0, 4.0):
        assert means[scale, "bicubic"].psnr > means[scale, "nearest"].psnr
        assert means[scale, "bicubic"].ssim > means[scale, "nearest"].ssim
    for s in report.summary():
        assert all(math.isfinite(v) for v in (s.psnr, s.ssim, s.seconds)) and s.images == 3
        assert 0 < s.ssim < 1
    assert {r.image for r in report.rows} == {"a/img0.png", "a/img1.png", "b/img2.png"}
    row = next(r for r in report.rows if r.image == "a/img1.png" and r.scale == 4.5)
    assert row.lr_size == (14, 16) and row.hr_size == (61, 70) and row.shave == 5
    data = json.loads(report.to_json())
    assert data["border_rule"] == "shave ceil(scale) px" and len(data["summary"]) == 6
    assert all(len(r) == 6 for r in report.summary_rows())


def test_evaluate_folder_options(png_folder: Path):
    seen = []

    def box_degrade(hr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        seen.append(size)
        return degrade_back(hr, size).astype(np.float32)

    report = evaluate_folder(
        png_folder, {"bicubic": get_backend("bicubic")}, scales=(2,), border=0, limit=2, degrade=box_degrade
    )
    assert len(report.rows) == 2 and seen == [(32, 32), (30, 35)]
    assert report.rows[0].shave == 0 and report.border_rule == "shave 0 px"


def test_report_json_is_strict_with_infinite_psnr():
    row = ImageScore("x.png", 2.0, "oracle", math.inf, 1.0, 0.1, (8, 8), (4, 4), 2)
    report = EvaluationReport([row], (2.0,), ("oracle",), "shave ceil(scale) px", "test")
    data = json.loads(report.to_json())
    assert data["summary"][0]["psnr"] is None and data["rows"][0]["ssim"] == 1.0


def test_load_image_uint16_tiff_and_quantize(tmp_path: Path):
    data = np.array([[[0, 10000], [20000, 65535]]] * 4, dtype=np.uint16)
    path = tmp_path / "ms.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=2,
        height=2,
        count=4,
        dtype="uint16",
        crs="EPSG:32618",
        transform=Affine(10, 0, 0, 0, -10, 20),
    ) as dst:
        dst.write(data)
    image = load_image(path)
    assert image.dtype == "uint16" and image.data.shape == (4, 2, 2)
    np.testing.assert_allclose(image.data[0], [[0, 1], [2, 6.5535]], rtol=1e-6)
    np.testing.assert_allclose(quantize(np.array([-0.1, 0.50004, 9.0]), "uint16"), [0, 0.5, 6.5535], rtol=1e-6)
    np.testing.assert_allclose(quantize(np.array([0.5, 1.2]), "uint8"), [128 / 255, 1.0], rtol=1e-6)


# ------------------------------------------------------------------------------------------- real data


def test_bicubic_x4_on_a_real_uc_merced_image_is_plausible():
    val = SHARED_DATA / "ucmerced" / "val"
    if not val.is_dir():
        pytest.skip(f"UC Merced val not found at {val} (set RSSR_SHARED_DATA)")
    report = evaluate_folder(val, {"bicubic": get_backend("bicubic")}, scales=(4,), limit=1)
    assert 20.0 < report.rows[0].psnr < 35.0
    assert 0.2 < report.rows[0].ssim < 1.0
