"""rssr_cli.model.resample: the torch bicubic is the classical numpy bicubic (one kernel, two array libraries)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rssr_cli.geo.kernels import KERNELS, KEYS_A, keys_cubic, resample_matrix
from rssr_cli.model.operator import grid_tensors
from rssr_cli.model.resample import bicubic_at, cubic_kernel, cubic_matrix
from rssr_cli.sharpen.degrade import sample_at


def test_numpy_and_torch_cubic_kernels_are_equal():
    x = np.linspace(-3.0, 3.0, 6001)
    numpy_cubic, support = KERNELS["bicubic"]
    assert support == 2
    np.testing.assert_allclose(cubic_kernel(torch.from_numpy(x)).numpy(), numpy_cubic(x), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n_in=st.integers(1, 40), scale=st.floats(1.0, 8.0), shift=st.floats(-1.0, 1.0))
def test_numpy_and_torch_bicubic_matrices_are_equal(n_in, scale, shift):
    """Same weights at any real scale, border pixels replicated alike (the prior's bicubic base == `-m bicubic`)."""
    n_out = max(1, round(n_in * scale))
    centers = shift + (np.arange(n_out) + 0.5) * n_in / n_out
    expected = resample_matrix(centers, n_in, "bicubic")
    got = cubic_matrix(torch.from_numpy(centers)[None], n_in)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_bicubic_base_stays_in_float32_under_a_bf16_autocast():
    """The bicubic base is the bulk of the estimate: --precision bf16 must not round it to 8 mantissa bits."""
    lr = torch.randn(1, 1, 20, 20) * 3 + 10
    ys, xs, _ = grid_tensors(90, 90, 0.0, 0.0, 20 / 90, 20 / 90)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = bicubic_at(lr, ys, xs)
    assert low.dtype == torch.float32 and torch.equal(low, bicubic_at(lr, ys, xs))


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 24), scale=st.floats(1.0, 6.0), shift=st.floats(-1.5, 1.5))
def test_sharpeners_bicubic_is_upscale_bicubic(h, w, scale, shift):
    """One bicubic (issue 22): the guided sharpener's and Wald's band resampling (sharpen.degrade.sample_at, gathered
    taps) equals `rssr upscale -m bicubic`'s matrices (Keys a = -0.5), border rule included; it was grid_sample's
    a = -0.75 before."""
    rng = np.random.default_rng(h * 100 + w)
    lr = rng.normal(size=(2, h, w))
    ys = shift + (np.arange(max(1, round(h * scale))) + 0.5) / scale
    xs = -shift + (np.arange(max(1, round(w * scale))) + 0.5) / scale
    expected = np.einsum("yh,chw,xw->cyx", resample_matrix(ys, h, "bicubic"), lr, resample_matrix(xs, w, "bicubic"))
    got = sample_at(torch.from_numpy(lr)[None], torch.from_numpy(ys)[None], torch.from_numpy(xs)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_one_keys_kernel_for_numpy_and_torch():
    assert KEYS_A == -0.5  # GDAL's and PIL's bicubic
    x = np.linspace(-3.0, 3.0, 601)
    np.testing.assert_allclose(keys_cubic(torch.from_numpy(x)).numpy(), keys_cubic(x), rtol=0, atol=1e-14)
