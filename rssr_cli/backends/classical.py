"""Classical resamplers (nearest, bicubic, lanczos) as separable matrices evaluated at exact HR positions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..grid import HRGrid
from ..kernels import CUBIC_SUPPORT, keys_cubic
from .base import SRRequest


def _lanczos3(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "bicubic": (keys_cubic, CUBIC_SUPPORT),  # Keys a = -0.5: the one bicubic (kernels.py)
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


def resample(lr: np.ndarray, grid: HRGrid, method: str) -> np.ndarray:
    """Resample [bands, h, w] onto the HR grid with a separable kernel: out = My @ band @ Mx^T."""
    _, h, w = lr.shape
    my = resample_matrix(grid.centers_y(), h, method).astype(np.float32)
    mx = resample_matrix(grid.centers_x(), w, method).astype(np.float32)
    return np.einsum("yh,bhw,xw->byx", my, lr.astype(np.float32), mx, optimize=True)


@dataclass
class ClassicalBackend:
    """A deterministic resampler; the reference every model must beat."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in ("nearest", *KERNELS):
            raise ValueError(f"unknown classical method {self.name!r}")

    def upsample(self, requests: Sequence[SRRequest]) -> list[np.ndarray]:
        return [resample(r.lr, r.grid, self.name) for r in requests]

    def provenance(self) -> dict[str, str]:
        return {"method": self.name}
