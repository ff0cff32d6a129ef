"""rssr_cli.scoring.metrics: PSNR/SSIM values, border crop, degrade-back, consistency, phase-correlation shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rssr_cli.backends.classical import resample
from rssr_cli.geo.grid import HRGrid
from rssr_cli.scoring.metrics import (
    area_matrix,
    degrade_back,
    gaussian_window,
    phase_correlation_shift,
    psnr,
    shave,
    spectral_angle,
    ssim,
    ssim_map,
)

from textures import smooth_random


def fourier_shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """out[y, x] = img[y - dy, x - dx] for a periodic band-limited image."""
    h, w = img.shape[-2:]
    ky, kx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(img) * np.exp(-2j * np.pi * (ky * dy + kx * dx))))


# ------------------------------------------------------------------------------------------ PSNR / SSIM


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    img = np.random.default_rng(1).random((3, 32, 40))
    assert psnr(img, img, 1.0) == math.inf
    assert ssim(img, img, 1.0) == pytest.approx(1.0, abs=1e-12)


def test_known_noise_gives_known_psnr():
    a = np.full((2, 16, 16), 0.5)
    noise = np.where(np.indices(a.shape).sum(axis=0) % 2 == 0, 0.01, -0.01)  # MSE = 1e-4 exactly
    assert psnr(a, a + noise, 1.0) == pytest.approx(40.0, abs=1e-9)
    assert psnr(a * 255, (a + noise) * 255, 255.0) == pytest.approx(40.0, abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    c1 = (0.01 * 1.0) ** 2
    a, b = np.full((20, 20), 0.2), np.full((20, 20), 0.6)
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert ssim(a, b, 1.0) == pytest.approx(expected, rel=1e-12)


def test_ssim_matches_an_independent_scipy_filter_implementation():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(2)
    a = rng.random((3, 40, 36))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    pad = len(gaussian_window()) // 2
    values = []
    for x, y in zip(a, b):  # skimage's recipe: reflect-filter with truncate=3.5, then crop the pad
        f = lambda img: ndimage.gaussian_filter(img, 1.5, truncate=3.5, mode="reflect")
        ux, uy = f(x), f(y)
        vx, vy, cxy = f(x * x) - ux**2, f(y * y) - uy**2, f(x * y) - ux * uy
        c1, c2 = 0.01**2, 0.03**2
        s = ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        values.append(s[pad:-pad, pad:-pad].mean())
    assert ssim(a, b, 1.0) == pytest.approx(np.mean(values), abs=1e-10)
    assert ssim_map(a, b, 1.0).shape == (3, 40 - 2 * pad, 36 - 2 * pad)


def test_ssim_decreases_with_noise_and_rejects_tiny_images():
    img = smooth_random((48, 48), seed=3)
    rng = np.random.default_rng(3)
    scores = [ssim(img, img + s * rng.standard_normal(img.shape), 2.0) for s in (0.01, 0.05, 0.2)]
    assert scores[0] > scores[1] > scores[2]
    with pytest.raises(ValueError):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)), 1.0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)), 1.0)


def test_shave_crops_the_last_two_axes():
    img = np.arange(3 * 10 * 12).reshape(3, 10, 12)
    assert shave(img, 2).shape == (3, 6, 8)
    assert np.array_equal(shave(img, 2), img[:, 2:-2, 2:-2])
    assert shave(img, 0) is img
    with pytest.raises(ValueError):
        shave(img, 5)


# ---------------------------------------------------------------------------------------- degrade_back


def test_degrade_back_inverts_nearest_upsampling_at_integer_scale():
    lr = np.random.default_rng(4).random((2, 7, 9))
    sr = lr.repeat(3, axis=1).repeat(3, axis=2)
    np.testing.assert_allclose(degrade_back(sr, lr.shape), lr, atol=1e-12)
    np.testing.assert_allclose(degrade_back(sr[0], (7, 9)), lr[0], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n_in=st.integers(2, 60), n_out=st.integers(1, 30))
def test_area_matrix_rows_sum_to_one_and_preserve_the_mean(n_in, n_out):
    m = area_matrix(n_out, n_in)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(m.sum(axis=0), n_out / n_in, atol=1e-12)


def test_degrade_back_preserves_the_mean_at_non_integer_scale():
    sr = np.random.default_rng(5).random((3, 45, 38))  # e.g. a 10x8 LR at x4.5 / x4.75
    back = degrade_back(sr, (10, 8))
    assert back.shape == (3, 10, 8)
    np.testing.assert_allclose(back.mean(axis=(1, 2)), sr.mean(axis=(1, 2)), rtol=1e-12)


def _l1_and_angle(sr: np.ndarray, lr: np.ndarray) -> tuple[np.ndarray, float]:
    back = degrade_back(sr, lr.shape)
    return np.abs(back - lr).mean(axis=(-2, -1)), float(np.nanmean(spectral_angle(back, lr)))


def test_degrade_back_of_bicubic_upsampling_is_close_and_nearest_is_exact():
    lr = (0.3 + 0.1 * smooth_random((4, 24, 20), sigma=2.0, seed=6)).astype(np.float32)
    grid = HRGrid(height=108, width=90, y0=0.0, x0=0.0, dy=24 / 108, dx=20 / 90)  # x4.5
    l1, sam = _l1_and_angle(resample(lr, grid, "bicubic"), lr)
    assert len(l1) == 4
    assert max(l1) < 0.01 * float(np.abs(lr).mean())
    assert 0 <= sam < 0.5
    l1, sam = _l1_and_angle(lr.repeat(4, axis=1).repeat(4, axis=2), lr)
    assert max(l1) < 1e-6 and sam < 0.05  # float32 input: arccos near 1 is coarse


def test_spectral_angle_known_values():
    a = np.array([1.0, 0.0])[:, None, None] * np.ones((2, 2, 3))
    b = np.array([1.0, 1.0])[:, None, None] * np.ones((2, 2, 3))
    np.testing.assert_allclose(spectral_angle(a, b), 45.0)
    np.testing.assert_allclose(spectral_angle(a, 3 * a), 0.0, atol=1e-6)
    assert np.isnan(spectral_angle(a, np.zeros_like(a))).all()


# ------------------------------------------------------------------------------------- phase correlation


@pytest.mark.parametrize("shift", [(2.0, -3.0), (0.5, 0.25), (-1.3, 0.7), (0.0, 0.0)])
def test_phase_correlation_recovers_integer_and_subpixel_shifts(shift):
    reference = smooth_random((64, 72), seed=7)
    moved = fourier_shift(reference, *shift)
    dy, dx = phase_correlation_shift(moved, reference)  # maps reference onto moved
    assert dy == pytest.approx(shift[0], abs=0.05)
    assert dx == pytest.approx(shift[1], abs=0.05)
    back = phase_correlation_shift(reference, moved)  # the opposite direction flips the sign
    assert back[0] == pytest.approx(-shift[0], abs=0.05) and back[1] == pytest.approx(-shift[1], abs=0.05)


def test_phase_correlation_multiband():
    reference = smooth_random((3, 48, 48), seed=8)
    dy, dx = phase_correlation_shift(fourier_shift(reference, -0.4, 1.6), reference)
    assert (dy, dx) == (pytest.approx(-0.4, abs=0.05), pytest.approx(1.6, abs=0.05))
