"""rssr_cli.evaluation.fidelity_files: `evaluate --fidelity` runs the streamed engine of `upscale --report`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from rssr_cli.backends.classical import resample
from rssr_cli.core.errors import InputError
from rssr_cli.evaluation.fidelity_files import fidelity_of_files, fidelity_rows
from rssr_cli.evaluation.protocol import hr_grid_on_image

from textures import smooth_field

LR_T = Affine(40.0, 0, 500_000.0, 0, -40.0, 4_000_000.0)


def _write(path, data: np.ndarray, transform: Affine, nodata=None):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=len(data),
        dtype=data.dtype,
        crs="EPSG:32633",
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
    return path


def test_fidelity_of_bicubic_is_centred_and_sees_a_displacement(tmp_path):
    lr = (2000 + 6000 * smooth_field(64, 64, bands=4, seed=5)).round().astype(np.uint16)
    sr = resample(lr.astype(np.float32), hr_grid_on_image(256, 256, (64, 64)), "bicubic").round().astype(np.uint16)
    lr_path = _write(tmp_path / "lr.tif", lr, LR_T)
    sr_path = _write(tmp_path / "sr.tif", sr, LR_T @ Affine.scale(0.25))
    ok = fidelity_of_files(sr_path, lr_path)
    assert ok.shift is not None and ok.shift.magnitude < 0.05
    assert ok.worst_consistency < 0.01 and ok.spectral_angle_deg < 1.0 and ok.scale_xy == (4.0, 4.0)
    assert ok.output == str(sr_path) and len(fidelity_rows(ok)) == 4
    moved_path = _write(tmp_path / "moved.tif", np.roll(sr, 4, axis=-1), LR_T @ Affine.scale(0.25))  # 1 LR px right
    moved = fidelity_of_files(moved_path, lr_path)
    assert moved.shift.dy == pytest.approx(0.0, abs=0.05) and moved.shift.dx == pytest.approx(1.0, abs=0.05)
    assert json.loads(moved.to_json())["format"] == "rssr-fidelity/1"


def test_band_selection_and_nodata(tmp_path):
    lr = (2000 + 6000 * smooth_field(40, 40, bands=3, seed=2)).round().astype(np.uint16)
    sr = lr[1:2].repeat(2, axis=1).repeat(2, axis=2)
    sr[:, :10, :10] = 0
    lr_path = _write(tmp_path / "lr.tif", lr, LR_T)
    sr_path = _write(tmp_path / "sr.tif", sr, LR_T @ Affine.scale(0.5), nodata=0)
    with pytest.raises(InputError, match="band"):
        fidelity_of_files(sr_path, lr_path)
    report = fidelity_of_files(sr_path, lr_path, lr_bands=[2])
    assert report.bands[0].band == 2 and report.bands[0].consistency_l1 == 0.0  # nearest x2: exact
    assert report.lr_pixels_compared == 40 * 40 - 5 * 5  # the nodata corner is left out
