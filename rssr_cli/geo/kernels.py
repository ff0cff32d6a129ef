"""The resampling kernels (Keys' cubic written once for numpy arrays and torch tensors alike) and the numpy
resampling matrices of the classical backends (`-m bicubic`, `lanczos`, `nearest`) that metrics reuse.

Keys' cubic convolution with a = -0.5 (Keys 1981; GDAL's and PIL's bicubic) is *the* bicubic of rssr: the classical
`-m bicubic` backend (numpy matrices), the operator's bicubic base (torch matrices) and Wald's `bicubic` row (torch
taps) all evaluate this function, so "bicubic" means one thing everywhere. The shipped guided sharpener was trained
on inputs resampled with a = -0.75 (torch's grid_sample cubic); it keeps that member of the family through the same
function (sharpen.model.SHARPENER_CUBIC_A), as part of the model, never as a reported "bicubic".
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

KEYS_A = -0.5
CUBIC_SUPPORT = 2  # the kernel is zero from |x| = 2 on: 4 taps per output position


def keys_cubic(x: Any, a: float = KEYS_A) -> Any:
    """Keys' cubic convolution kernel at offsets x (input pixels): a numpy array or a torch tensor in, the same out
    (only abs, powers, comparisons and products with the boolean masks: both libraries evaluate it alike)."""
    x = abs(x)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return near * (x <= 1) + far * ((x > 1) & (x < 2))


def _lanczos3(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "bicubic": (keys_cubic, CUBIC_SUPPORT),  # Keys a = -0.5: the one bicubic
    "lanczos": (_lanczos3, 3),
}


def resample_matrix(centers: np.ndarray, n_in: int, method: str) -> np.ndarray:
    """[len(centers), n_in] weights sampling a 1-D signal of n_in pixels at continuous centres.

    centres are in pixel-edge coordinates (pixel k spans [k, k+1)); edges replicate the border pixel.
    """
    pos = centers - 0.5
    if method == "nearest":
        idx = np.clip(np.floor(centers).astype(np.int64), 0, n_in - 1)
        m = np.zeros((len(centers), n_in), dtype=np.float64)
        m[np.arange(len(centers)), idx] = 1.0
        return m
    kernel, support = KERNELS[method]
    base = np.floor(pos).astype(np.int64)
    taps = np.arange(-support + 1, support + 1)
    src = base[:, None] + taps[None, :]
    w = kernel(pos[:, None] - src)
    w /= w.sum(axis=1, keepdims=True)
    m = np.zeros((len(centers), n_in), dtype=np.float64)
    rows = np.repeat(np.arange(len(centers)), len(taps))
    np.add.at(m, (rows, np.clip(src, 0, n_in - 1).ravel()), w.ravel())
    return m
