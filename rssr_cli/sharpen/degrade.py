"""Wald's protocol, the degradation half: an MTF-matched Gaussian PSF, then sampling at exact grid positions (the
matched Gaussian protocol, `--degradation psf`; the PSF itself is sensor_degradation's, the one PSF module).

Positions are continuous pixel coordinates of the array sampled (pixel i covers [i, i+1), its centre is i + 0.5),
so grids with different origins and steps (a 20 m grid starting 10 m west of the 10 m grid) need no special case.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rssr_cli.degradation import sensor_degradation
from rssr_cli.degradation.sensor_degradation import gaussian_blur  # the one PSF; re-exported for wald_inputs
from rssr_cli.model.resample import bicubic_sample
from rssr_cli.scoring.metrics import area_overlaps
from rssr_cli.sharpen.model import SHARPENER_CUBIC_A

# Sentinel-2 MSI modulation transfer function at the Nyquist frequency of each band's own grid. The instrument's
# specification asks for 0.15-0.3 (ESA Sentinel-2 User Handbook; measured values in-flight are ~0.2-0.35); DSen2
# and the EVOLAND tool model the PSF as a Gaussian matched to such a value. We use the middle of that range for
# every band: the blur of a factor-r degradation is then sigma = r * sqrt(-2 ln MTF) / pi native pixels.
MTF_AT_NYQUIST = 0.25


def psf_sigma(ratio: float, mtf: float = MTF_AT_NYQUIST) -> float:
    """Gaussian PSF std (in pixels of the finer grid) whose MTF at the coarse grid's Nyquist equals `mtf`."""
    return sensor_degradation.gaussian_sigma(ratio, mtf)


def sample_at(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, *, mode: str = "bicubic") -> torch.Tensor:
    """Values of [N, C, H, W] at the separable positions ys [N, H'] and xs [N, W'] (pixel coordinates).

    Bicubic is rssr's one bicubic (kernels.keys_cubic, a = -0.5: `rssr upscale -m bicubic`'s, not grid_sample's
    a = -0.75); outside the array the border pixels are repeated."""
    if mode == "bicubic":
        return bicubic_sample(x, ys, xs)
    n, _, h, w = x.shape
    gy = (2.0 * ys / h - 1.0).to(x.dtype)
    gx = (2.0 * xs / w - 1.0).to(x.dtype)
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def resample_for_sharpener(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """sample_at's bicubic with the kernel the shipped sharpeners were trained on (model.SHARPENER_CUBIC_A): their
    inputs and the back-projection residual, never a reported `bicubic`."""
    return bicubic_sample(x, ys, xs, a=SHARPENER_CUBIC_A)


def centres(start: float, step: float, count: int, *, batch: int = 1) -> torch.Tensor:
    """[batch, count] positions start + (i + 0.5) * step: the centres of a grid's pixels in another's coordinates."""
    line = start + (torch.arange(count, dtype=torch.float64) + 0.5) * step
    return line.float().expand(batch, count).contiguous()


def degrade(
    x: torch.Tensor, ratio: float, size: tuple[int, int], *, origin: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """Wald's degradation by `ratio`: blur with the MTF-matched PSF, then sample a grid of `size` (h, w) pixels
    of side `ratio` whose top-left corner sits at `origin` (y, x) in x's pixel coordinates."""
    blurred = gaussian_blur(x, psf_sigma(ratio))
    n = x.shape[0]
    ys = centres(origin[0], ratio, size[0], batch=n)
    xs = centres(origin[1], ratio, size[1], batch=n)
    return sample_at(blurred, ys, xs, mode="bilinear")


def seen_by_native_pixels(
    output: np.ndarray,
    scale: float,
    origin: tuple[float, float],
    step: tuple[float, float],
    native_shape: tuple[int, int],
    *,
    mtf: float = MTF_AT_NYQUIST,
) -> np.ndarray:
    """An output band as its native pixels measure it: blurred by the Gaussian whose MTF at the native Nyquist is
    `mtf` (default: the sensor's, MTF_AT_NYQUIST), sampled at the native pixel centres. Output pixel i's centre sits
    at native coordinate origin + (i + 0.5) * step (y, x)."""
    blurred = gaussian_blur(
        torch.from_numpy(np.ascontiguousarray(output, dtype=np.float32))[None, None], psf_sigma(scale, mtf)
    )
    ys = centres(-origin[0] / step[0], 1 / step[0], native_shape[0])
    xs = centres(-origin[1] / step[1], 1 / step[1], native_shape[1])
    return sample_at(blurred, ys, xs, mode="bilinear")[0, 0].numpy()


def pixel_aggregate(
    output: np.ndarray, origin: tuple[float, float], step: tuple[float, float], native_shape: tuple[int, int]
) -> np.ndarray:
    """An output band as the native pixels' aggregate measures it: the area-weighted mean of the output over each
    native pixel's footprint (metrics.area_overlaps, the one area rule: any real ratio, any phase). Output pixel i
    covers native [origin + i * step, origin + (i + 1) * step) (y, x). A native pixel the output covers in part: the
    mean of that part; not at all: NaN."""
    x = torch.from_numpy(np.ascontiguousarray(output, dtype=np.float64))
    for axis in (0, 1):
        native_idx, out_idx, overlap = (
            torch.from_numpy(np.ascontiguousarray(a))
            for a in area_overlaps(native_shape[axis], step[axis], origin[axis], count=output.shape[axis])
        )
        moved = x.movedim(axis, 0)
        sums = torch.zeros((native_shape[axis], *moved.shape[1:]), dtype=torch.float64)
        sums.index_add_(0, native_idx, moved[out_idx] * overlap[:, None])
        weights = torch.zeros(native_shape[axis], dtype=torch.float64).index_add_(0, native_idx, overlap)
        x = (sums / weights[:, None]).movedim(0, axis)
    return x.numpy()
