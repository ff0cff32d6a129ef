"""Per-window standardization: the model sees zero-mean unit-std bands whatever the sensor's radiometry."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

MIN_STD = 1e-2  # in normalized units (~2.5 DN of uint8): keeps flat windows (water, nodata fill) from blowing up


class Stats(NamedTuple):
    mean: torch.Tensor  # [B, C, 1, 1]
    std: torch.Tensor  # [B, C, 1, 1]


def standardize(lr: torch.Tensor, given: Optional[Stats] = None) -> tuple[torch.Tensor, Stats]:
    """Zero mean, unit std per sample and band: computed on the LR window itself, or `given` ([B, C, 1, 1] each,
    e.g. the whole scene's, so that a pixel's value does not depend on where the tiling put its window)."""
    if given is None:
        mean = lr.mean(dim=(-2, -1), keepdim=True)
        std = lr.std(dim=(-2, -1), keepdim=True, unbiased=False)
    else:
        mean, std = given.mean.to(lr), given.std.to(lr)
    std = std.clamp_min(MIN_STD)
    return (lr - mean) / std, Stats(mean, std)


def destandardize(z: torch.Tensor, stats: Stats) -> torch.Tensor:
    return z * stats.std + stats.mean
