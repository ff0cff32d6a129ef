"""rssr_cli.training.alignment: a pair's HR on the LR grid (the one area rule) and the shift to correct."""

from __future__ import annotations

import numpy as np
import pytest

from rssr_cli.geo.grid import HRGrid
from rssr_cli.scoring.metrics import degrade_back
from rssr_cli.training.alignment import area_to_lr, pair_shift

from textures import smooth_random


def test_pair_shift_trusts_georeferencing_unless_few_blocks_agree():
    aligned, moved = [(0.02, -0.01)] * 3, [(0.8, -0.4)] * 7
    assert pair_shift(aligned + moved) == (0.0, 0.0)  # 30% agree with the georeferencing
    assert pair_shift([(0.05, 0.0)] + moved * 2) == pytest.approx((0.8, -0.4))
    assert pair_shift([]) == (0.0, 0.0)


def test_pair_area_average_is_degrade_back_on_aligned_grids():
    """training.pairs.area_to_lr (any alignment, validity) and degrade_back (same extent) share one area rule."""
    hr = smooth_random((2, 45, 36), seed=8)
    grid = HRGrid(height=45, width=36, y0=0.0, x0=0.0, dy=10 / 45, dx=8 / 36)  # x4.5
    back, valid = area_to_lr(hr, np.ones(hr.shape[-2:], dtype=bool), grid, (10, 8))
    assert valid.all()
    np.testing.assert_allclose(back, degrade_back(hr, (10, 8)), atol=1e-12)
