"""A draw's deviation from the prior, shaped to the spectrum of the prior's error (issue 21, bar 1).

A few-step chain's deviations have the wrong spectrum: measured on the aerial chain (step 5500, local v0, projected
out of what the input sees), their power over the prior's error power rises from 0.08 just above the LR Nyquist to
2.1 at 0.5 cycles/px (pooled over the selection crops): too white, so one v0 that matches the total spread leaves the
octave above the Nyquist empty and over-fills the top of the band. An exact posterior sampler's deviation x̂ - m has
the spectrum of the prior's error x - m, ring by ring.

So the card may carry `deviation_gain`: amplitude gains at fixed radial knots (KNOTS, in units of each row's LR
Nyquist, so one card serves every scale), fitted on the selection images (training/calibration.fit_deviation_gain)
so that the deviations' ring power equals the prior error's. The draw's residual is filtered by the gains, linearly
interpolated between knots and held flat beyond them, before the null-space projection (null_space.py), so the
projection still removes whatever the shaping puts where the input sees. The filter runs on the window reflect-padded
by PAD pixels: a window's edges are not periodic, and a circular filter would carry one edge's detail to the other.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

KNOTS = (1.25, 1.75, 2.25, 2.75, 3.25, 3.75)  # radial frequency / the row's LR Nyquist: the centres of the fit's rings
RING_WIDTH = 0.5  # the fit's rings are [knot - 0.25, knot + 0.25) in the same units
GAIN_RANGE = (0.0, 20.0)
PAD = 16  # HR px of reflection around a window before filtering


def gain_field(shape: Sequence[int], gains: Sequence[float], nyquist: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] amplitude gains over the FFT grid of an H x W plane for rows whose LR Nyquists (cycles per HR
    pixel) are `nyquist` [N]: `gains` at KNOTS, linear between them, flat outside."""
    if len(gains) != len(KNOTS):
        raise ValueError(f"deviation_gain needs {len(KNOTS)} gains (one per knot {KNOTS}), got {len(gains)}")
    h, w = shape[-2:]
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=nyquist.device)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64, device=nyquist.device)[None, :]
    radius = (fy**2 + fx**2).sqrt()[None, None]
    knee = nyquist.to(torch.float64).clamp_min(1e-6).view(-1, 1, 1, 1)
    position = (radius / knee).clamp(KNOTS[0], KNOTS[-1])
    knots = torch.tensor(KNOTS, dtype=torch.float64, device=nyquist.device)
    values = torch.tensor([float(g) for g in gains], dtype=torch.float64, device=nyquist.device)
    upper = torch.searchsorted(knots, position.contiguous(), right=False).clamp(1, len(KNOTS) - 1)
    lower = upper - 1
    t = (position - knots[lower]) / (knots[upper] - knots[lower])
    return values[lower] + t * (values[upper] - values[lower])


class DeviationShaper:
    """The filter of gain_field for residuals [N, 1, h, w] of one window batch (rows whose LR Nyquists are `nyquist`
    [N]), built once and applied to every draw of those windows, over each window reflect-padded by PAD pixels."""

    def __init__(self, gains: Sequence[float], size: Sequence[int], nyquist: torch.Tensor):
        h, w = size[-2:]
        self.pad_y, self.pad_x = min(PAD, h - 1), min(PAD, w - 1)
        self.field = gain_field((h + 2 * self.pad_y, w + 2 * self.pad_x), gains, nyquist)

    def __call__(self, residual: torch.Tensor) -> torch.Tensor:
        h, w = residual.shape[-2:]
        pad_y, pad_x = self.pad_y, self.pad_x
        padded = F.pad(residual.to(torch.float64), (pad_x, pad_x, pad_y, pad_y), mode="reflect")
        filtered = torch.fft.ifft2(torch.fft.fft2(padded) * self.field).real
        return filtered[..., pad_y : pad_y + h, pad_x : pad_x + w].to(residual.dtype)
