"""The real sensor's degradation (Sentinel-2 MSI), for training and Wald's protocol: a randomised PSF, the pixel's
box aggregate, a sub-pixel grid phase, sensor noise and 12-bit quantization.

Why random: a model trained on one fixed blur learns to undo that blur and rings on any other (a sharper band,
a box-averaged product). Every training sample draws its own member of the family below, so the model learns the
conditional mean over the blurs a real Sentinel-2 band can have.

The PSF of a coarse pixel of side s (in fine pixels) is a Gaussian (optics, motion, the instrument's MTF) convolved
with the s x s box of the detector's aggregate. Its modulation transfer at the coarse Nyquist (1/(2s) cycles per fine
pixel) is the product MTF_gauss * MTF_box, with MTF_box = sinc(1/2) = 2/pi ~ 0.64. The Sentinel-2 MSI specification
asks for a system MTF of 0.15-0.30 at Nyquist; in-flight measurements of the 10 m bands are ~0.2-0.35 (ESA S2 MPC
data quality reports). The training range below brackets those values, plus the box member alone (MTF 0.64: a plain
block mean, what a product resampled by averaging shows).

Positions are continuous pixel coordinates of the fine array (pixel j covers [j, j + 1)); the coarse grid's top-left
corner sits at `origin` and its pixels have side `scale`, so any real scale and any phase are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from rssr_cli.scoring.metrics import area_overlaps

BOX_MTF = 2.0 / math.pi  # the s x s box's MTF at the coarse Nyquist: sinc(1/2)
SYSTEM_MTF_RANGE = (0.12, 0.45)  # the system MTF at the coarse Nyquist a training sample draws (uniform)
BOX_SHARE = 0.2  # of training samples: the box member alone (no optical blur, MTF 2/pi)
NOISE_STD_MAX = 0.0015  # sensor noise std in reflectance units (15 DN of L1C's 10,000): drawn uniform in [0, max]
LEVELS_12BIT = 4095  # 12-bit radiometry: reflectance 0..1 in 4095 steps (~2.4 DN)
EVALUATION_GAUSSIAN_MTF = 0.3  # the evaluation member: Gaussian MTF 0.3 at the LR Nyquist, then the s x s box


@dataclass(frozen=True)
class SensorDraw:
    """One member of the degradation family: the Gaussian's MTF at the coarse Nyquist (1.0: the box alone), the
    coarse grid's sub-pixel phase (origin, fine px, y and x), noise std and quantization levels (None: none)."""

    gaussian_mtf: float = EVALUATION_GAUSSIAN_MTF
    origin: tuple[float, float] = (0.0, 0.0)
    noise_std: float = 0.0
    levels: Optional[int] = None

    @property
    def system_mtf(self) -> float:
        return self.gaussian_mtf * BOX_MTF


EVALUATION = SensorDraw()  # Gaussian MTF 0.3 + box: system MTF 0.19 at the LR Nyquist, exact grid, no noise


def draw(rng: np.random.Generator) -> SensorDraw:
    """A random member for one training sample."""
    if rng.random() < BOX_SHARE:
        gaussian = 1.0
    else:
        gaussian = min(1.0, float(rng.uniform(*SYSTEM_MTF_RANGE)) / BOX_MTF)
    origin = (float(rng.random()), float(rng.random()))
    return SensorDraw(gaussian, origin, float(rng.uniform(0.0, NOISE_STD_MAX)), LEVELS_12BIT)


def gaussian_sigma(scale: float, gaussian_mtf: float) -> float:
    """Std (fine px) of the Gaussian whose MTF at the coarse Nyquist 1/(2 scale) equals gaussian_mtf (1.0: none)."""
    if gaussian_mtf >= 1.0:
        return 0.0
    return scale * math.sqrt(-2.0 * math.log(gaussian_mtf)) / math.pi


def gaussian_radius(sigma: float) -> int:
    return int(math.ceil(3.0 * sigma)) if sigma > 0 else 0


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W], replicate padding (borders are context the caller crops off)."""
    radius = gaussian_radius(sigma)
    if radius == 0:
        return x
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def box_weights(count: int, scale: float, origin: float, size: int) -> torch.Tensor:
    """[count, size] exact pixel-aggregate weights: coarse pixel i covers fine [origin + i*scale, origin + (i+1)*scale)
    and averages the fine pixels it overlaps by their overlap length (metrics.area_overlaps, the one area rule; the
    parts outside the array count as its edge pixels)."""
    fine, coarse, overlap = area_overlaps(size, scale, origin, count=count)
    weights = np.zeros((count, size))
    np.add.at(weights, (coarse, fine), overlap)
    lo = origin + np.arange(count) * scale
    weights[:, 0] += np.clip(np.minimum(lo + scale, 0.0) - lo, 0.0, None)  # beyond the first pixel
    weights[:, -1] += np.clip(lo + scale - np.maximum(lo, float(size)), 0.0, None)  # beyond the last
    return torch.from_numpy(weights / scale).float()


def gaussian_matrix(size: int, sigma: float) -> torch.Tensor:
    """[size, size] the separable Gaussian blur along one axis as a matrix (replicate border, like gaussian_blur)."""
    radius = gaussian_radius(sigma)
    if radius == 0:
        return torch.eye(size)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    matrix = np.zeros((size, size))
    rows = np.arange(size)
    for tap, weight in zip(taps, kernel):
        np.add.at(matrix, (rows, np.clip(rows + tap, 0, size - 1)), weight)
    return torch.from_numpy(matrix).float()


def psf_weights(count: int, scale: float, origin: float, size: int, gaussian_mtf: float) -> torch.Tensor:
    """[count, size] one axis of the whole PSF: the Gaussian, then the box aggregate (separable, so a 2-D
    degradation is two small matrix products instead of a convolution over the fine crop)."""
    box = box_weights(count, scale, origin, size)
    return box @ gaussian_matrix(size, gaussian_sigma(scale, gaussian_mtf))


def degrade(
    hr: torch.Tensor,
    scale: float | tuple[float, float],
    lr_shape: tuple[int, int],
    member: SensorDraw = EVALUATION,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Fine [N, C, H, W] (reflectance units) -> the coarse [N, C, h, w] a sensor of pixel side `scale` (one value, or
    (y, x)) records: Gaussian PSF, box aggregate on the grid at member.origin, noise, quantization (clipped at 0)."""
    h, w = lr_shape
    sy, sx = (scale, scale) if isinstance(scale, (int, float)) else scale
    wy = psf_weights(h, sy, member.origin[0], hr.shape[-2], member.gaussian_mtf).to(hr.device)
    wx = psf_weights(w, sx, member.origin[1], hr.shape[-1], member.gaussian_mtf).to(hr.device)
    lr = torch.einsum("yh,nchw,xw->ncyx", wy, hr.float(), wx)
    if member.noise_std > 0:
        lr = lr + member.noise_std * torch.randn(lr.shape, generator=generator, dtype=lr.dtype).to(lr.device)
    if member.levels:
        lr = torch.round(lr.clamp(min=0.0) * member.levels) / member.levels
    return lr


def lr_centres_of_hr(count: int, scale: float, origin: float, first: int = 0) -> torch.Tensor:
    """[count] centres of fine pixels first..first+count-1 in the coarse grid's pixel coordinates: what the model is
    told (the fine grid seen from the coarse one whose corner is at `origin`)."""
    return (first + torch.arange(count, dtype=torch.float64) + 0.5 - origin) / scale


def measured_system_mtf(scale: float, member: SensorDraw, *, periods: int = 16) -> float:
    """The system MTF at the coarse Nyquist as `degrade` applies it: a cosine of that frequency whose crests sit on
    the coarse pixel centres goes through the degradation; its coarse amplitude is the MTF (the PSF is symmetric)."""
    n_lr = 2 * periods
    pad = gaussian_radius(gaussian_sigma(scale, member.gaussian_mtf)) + int(math.ceil(scale)) + 2
    size = int(math.ceil(n_lr * scale)) + 2 * pad
    j = torch.arange(size, dtype=torch.float64)
    # fine pixel j's mean of cos(pi (x - c0) / scale) over [j, j+1): the cosine integrated exactly over the pixel
    c0 = pad + scale / 2  # the first coarse centre
    k = math.pi / scale
    fine = (torch.sin(k * (j + 1 - c0)) - torch.sin(k * (j - c0))) / k
    member = replace(member, origin=(0.0, float(pad)), noise_std=0.0, levels=None)
    lr = degrade(fine.float()[None, None, None, :].expand(1, 1, 1, -1).contiguous(), scale, (1, n_lr), member)
    signs = torch.tensor([(-1.0) ** i for i in range(n_lr)])
    return float((lr[0, 0, 0].double() * signs).mean())
