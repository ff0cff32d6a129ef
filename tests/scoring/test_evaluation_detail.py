"""Detail metrics (rssr_cli/scoring/detail.py): the HF band figures, opensr-test shares and bootstrap CIs behave as defined."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rssr_cli.evaluation.protocol import ImageScore
from rssr_cli.scoring.detail import (
    band_mask,
    bootstrap_ci,
    correctness_shares,
    luminance,
    paired_differences,
    spectral_detail,
    summarize_detail,
)


def _texture(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((3, size, size)).astype(np.float32)


def _box_blur(img: np.ndarray) -> np.ndarray:
    """3x3 mean: removes most of the 0.25-0.5 cycles/px band."""
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    return sum(padded[:, dy : dy + img.shape[1], dx : dx + img.shape[2]] for dy in range(3) for dx in range(3)) / 9.0


def test_band_mask_selects_the_top_octave():
    mask = band_mask((64, 64))
    fy = np.fft.fftfreq(64)[:, None]
    fx = np.fft.fftfreq(64)[None, :]
    r = np.hypot(fy, fx)
    assert mask[r < 0.25].sum() == 0 and mask[(r >= 0.25) & (r <= 0.5)].all()


def test_luminance_rec601_for_rgb_and_mean_otherwise():
    img = np.stack([np.full((4, 4), v, np.float32) for v in (1.0, 0.0, 0.0)])
    assert np.allclose(luminance(img), 0.299)
    four = np.stack([np.full((4, 4), v, np.float32) for v in (1.0, 0.0, 0.0, 1.0)])
    assert np.allclose(luminance(four), 0.5)


def test_spectral_detail_of_the_truth_itself():
    hr = _texture()
    d = spectral_detail(hr, hr)
    assert d.hf_energy_ratio == pytest.approx(1.0)
    assert d.hf_error_ratio == pytest.approx(0.0, abs=1e-12)
    assert d.hf_correlation == pytest.approx(1.0)


def test_spectral_detail_ranks_blur_truth_and_unrelated_texture():
    hr = _texture(0)
    blurred = spectral_detail(_box_blur(hr), hr)
    assert blurred.hf_energy_ratio < 0.2  # the band is mostly gone
    assert 0.8 < blurred.hf_error_ratio <= 1.2  # missing detail: error ~ the truth's own power
    noisy = spectral_detail(_box_blur(hr) + (_texture(1) - 0.5), hr)  # same energy, wrong detail
    assert noisy.hf_energy_ratio > 0.5
    assert noisy.hf_error_ratio > blurred.hf_error_ratio  # unrelated texture is worse than none
    assert abs(noisy.hf_correlation) < 0.2
    half = spectral_detail(0.5 * hr + 0.5 * _box_blur(hr), hr)  # the right detail at half amplitude
    assert half.hf_error_ratio < blurred.hf_error_ratio and half.hf_correlation > 0.9


def test_spectral_detail_flat_truth_is_nan():
    flat = np.zeros((3, 32, 32), np.float32)
    assert math.isnan(spectral_detail(_texture(size=32), flat).hf_energy_ratio)


def test_correctness_shares_classify_the_three_cases():
    hr = _texture(0)
    lr_up = _box_blur(hr)
    assert correctness_shares(hr, hr, lr_up).improvement == pytest.approx(1.0)  # SR is the truth
    assert correctness_shares(lr_up, hr, lr_up).omission == pytest.approx(1.0)  # SR is the interpolation
    far = lr_up + 3.0 * (hr - lr_up) * -1.0  # pushed away from both
    shares = correctness_shares(far, hr, lr_up)
    assert shares.hallucination > 0.9
    assert shares.improvement + shares.omission + shares.hallucination == pytest.approx(1.0)


def test_bootstrap_ci_is_reproducible_and_brackets_the_mean():
    values = list(np.random.default_rng(3).normal(1.0, 0.5, size=40))
    a, b = bootstrap_ci(values), bootstrap_ci(values)
    assert a == b
    assert a.low < a.mean < a.high and a.n == 40
    assert a.excludes_zero()
    assert not bootstrap_ci([-1.0, 1.0, -1.0, 1.0]).excludes_zero()
    assert bootstrap_ci([float("nan"), 2.0]).n == 1


def test_paired_differences_skip_missing_pairs():
    assert paired_differences([1.0, None, 3.0], [0.5, 1.0, float("nan")]) == [0.5]
    with pytest.raises(ValueError):
        paired_differences([1.0], [])


def _row(image: str, backend: str, psnr: float, corr: float) -> ImageScore:
    detail = {
        "hf_energy_ratio": 0.1,
        "hf_error_ratio": 1.0,
        "hf_correlation": corr,
        "improvement": 0.2,
        "omission": 0.7,
        "hallucination": 0.1,
    }
    return ImageScore(image, 4.0, backend, psnr, 0.9, 0.1, (32, 32), (8, 8), 4, detail)


def test_summarize_detail_pairs_images_against_the_references():
    rows = []
    for i in range(6):
        rows += [
            _row(f"{i}.png", "bicubic", 20.0 + i, 0.0),
            _row(f"{i}.png", "model-prior", 21.0 + i, 0.2),
            _row(f"{i}.png", "model-k2", 21.0 + i, 0.3 + 0.01 * i),
        ]
    summary = {d.backend: d for d in summarize_detail(rows, (4.0,), ("model-prior", "model-k2", "bicubic"))}
    k2 = summary["model-k2"]
    assert k2.versus["model-prior"]["psnr"].mean == pytest.approx(0.0)
    assert k2.versus["model-prior"]["hf_correlation"].mean == pytest.approx(0.125)
    assert k2.versus["model-prior"]["hf_correlation"].excludes_zero()
    assert k2.versus["bicubic"]["psnr"].mean == pytest.approx(1.0)
    assert "model-prior" not in summary["bicubic"].versus  # the mirror of model-prior vs bicubic is not repeated
    assert summary["model-prior"].versus["bicubic"]["psnr"].mean == pytest.approx(1.0)
