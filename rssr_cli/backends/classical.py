"""Classical resamplers (nearest, bicubic, lanczos) as separable matrices evaluated at exact HR positions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rssr_cli.backends.base import SRRequest
from rssr_cli.geo.grid import HRGrid
from rssr_cli.geo.kernels import KERNELS, resample_matrix


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
