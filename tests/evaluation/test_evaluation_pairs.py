"""rssr_cli.evaluation.pairs: a real LR/HR pair scored on its common area."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from rssr_cli.backends import get_backend
from rssr_cli.evaluation.pairs import evaluate_pairs
from rssr_cli.scoring.metrics import degrade_back

from textures import smooth_field


def _write(path: Path, data: np.ndarray, transform: Affine) -> None:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=len(data),
        dtype=data.dtype,
        crs="EPSG:32618",
        transform=transform,
    ) as dst:
        dst.write(data)


def test_evaluate_pairs_recovers_gain_and_scores_high(tmp_path: Path):
    field = 1000 + 3000 * smooth_field(120, 120, bands=2, sigma=3.0, seed=9)  # a 1 m scene
    _write(tmp_path / "hr.tif", field[:, :96, :96].round().astype(np.uint16), Affine(1, 0, 1000, 0, -1, 2000))
    lr = 0.8 * degrade_back(field[:, 6:, 6:], (38, 38)) + 300  # another sensor: 3 m, other gain/offset
    _write(tmp_path / "lr.tif", lr.round().astype(np.uint16), Affine(3, 0, 1006, 0, -3, 1994))
    score = evaluate_pairs(tmp_path / "lr.tif", tmp_path / "hr.tif", get_backend("bicubic"))
    assert score.lr_window == (0, 0, 30, 30) and score.hr_window == (6, 6, 90, 90)
    assert score.scale == (pytest.approx(3.0), pytest.approx(3.0)) and score.shave == 3
    assert score.psnr > 30 and score.ssim > 0.9
    np.testing.assert_allclose(score.gain, 10000 / 0.8, rtol=0.05)  # SR is in model units (/10000)
    assert abs(score.shift_hr_px[0]) < 0.1 and abs(score.shift_hr_px[1]) < 0.1
    assert json.loads(score.to_json())["hr_window"] == [6, 6, 90, 90]


def test_evaluate_pairs_rejects_mismatched_bands(tmp_path: Path):
    field = (1000 * smooth_field(30, 30, bands=3)).astype(np.uint16)
    _write(tmp_path / "hr.tif", field, Affine(1, 0, 0, 0, -1, 30))
    _write(tmp_path / "lr.tif", field[:1, ::3, ::3].copy(), Affine(3, 0, 0, 0, -3, 30))
    with pytest.raises(ValueError, match="band counts differ"):
        evaluate_pairs(tmp_path / "lr.tif", tmp_path / "hr.tif", get_backend("bicubic"))
    score = evaluate_pairs(tmp_path / "lr.tif", tmp_path / "hr.tif", get_backend("bicubic"), hr_bands=[1])
    assert math.isfinite(score.psnr)
