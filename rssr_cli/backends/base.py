"""The one interface every super-resolution backend implements (classical resamplers, the diffusion model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import numpy as np

from rssr_cli.geo.grid import HRGrid


@dataclass(frozen=True)
class SRRequest:
    """One window to super-resolve.

    lr:   float32 [bands, h, w], normalized radiometry (see radiometry.py), nodata already filled.
    grid: where the HR pixels sit inside this LR window (exact sub-grid of the global output).
    seed: the window's own seed (grid.tile_seed), so a stochastic backend is reproducible per window.
    stats: optional [bands, 2] (mean, std) of the whole scene in the same units: a model standardizes with
          these instead of the window's own, so its output does not depend on where the window falls.
    """

    lr: np.ndarray
    grid: HRGrid
    seed: int
    stats: Optional[np.ndarray] = None


class SRBackend(Protocol):
    """Maps LR windows to HR windows: float32 [bands, grid.height, grid.width] per request, same order."""

    name: str

    def upsample(self, requests: Sequence[SRRequest]) -> list[np.ndarray]: ...

    def provenance(self) -> dict[str, str]:
        """Tags written into the output (method, model id + hash, steps, ...)."""
        ...


class SpreadBackend(SRBackend, Protocol):
    """A backend that averages K >= 2 draws per window can also say how far they scatter (the uncertainty layer).

    upsample stays the contract every backend keeps (the means); upsample_with_spread gives, per request and in
    the same order, (mean, spread): the spread is the per-pixel sample standard deviation (ddof 1) of the K draws,
    float32 [bands, h, w] in the same normalized units as the mean."""

    writes_spread: bool  # True when it draws K >= 2 samples per window

    def upsample_with_spread(self, requests: Sequence[SRRequest]) -> list[tuple[np.ndarray, np.ndarray]]: ...


def writes_spread(backend: SRBackend) -> bool:
    """Does this backend's run come with a spread layer (a SpreadBackend drawing K >= 2 samples)?"""
    return bool(getattr(backend, "writes_spread", False)) and callable(getattr(backend, "upsample_with_spread", None))
