"""Test-time self-ensemble (`--tta`): the model run on the 8 flips/transposes of each window, outputs mapped back
and averaged (Timofte et al. 2016, "Seven ways to improve example-based single image super resolution").

The operator queries HR pixel centres given in the LR window's pixel units, so a flip of the window is a flip of
those coordinates too (y -> h - y, order reversed to stay ascending); a transpose swaps the two axes and the cell.
Scene statistics (normalize.Stats) do not depend on orientation and pass through unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch

TRANSFORMS = tuple(range(8))  # bit 0: flip rows, bit 1: flip columns, bit 2: transpose (after the flips)

Sampler = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def forward(k: int, lr: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor):
    """(lr, ys, xs, cell) of the transformed window: lr [B,C,h,w], ys [B,H], xs [B,W], cell [B,2] (dy, dx)."""
    h, w = lr.shape[-2:]
    if k & 1:
        lr, ys = lr.flip(-2), h - ys.flip(-1)
    if k & 2:
        lr, xs = lr.flip(-1), w - xs.flip(-1)
    if k & 4:
        lr, ys, xs, cell = lr.transpose(-2, -1), xs, ys, cell.flip(-1)
    return lr, ys, xs, cell


def inverse(k: int, hr: torch.Tensor) -> torch.Tensor:
    """The output of the transformed window [B,C,·,·] back in the original orientation."""
    if k & 4:
        hr = hr.transpose(-2, -1)
    if k & 2:
        hr = hr.flip(-1)
    if k & 1:
        hr = hr.flip(-2)
    return hr


def self_ensemble(
    sample: Sampler, lr: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor
) -> torch.Tensor:
    """Mean of `sample` over the 8 dihedral transforms of the window (8x the cost)."""
    total = None
    for k in TRANSFORMS:
        out = inverse(k, sample(*forward(k, lr, ys, xs, cell))).float()
        total = out if total is None else total + out
    assert total is not None
    return total / len(TRANSFORMS)
