"""Image-quality and fidelity metrics in plain numpy (no torch, no I/O).

Arrays are channel-first, like every raster in rssr: [bands, h, w], or [h, w] for one band.
All computations run in float64 whatever the input dtype.

- `psnr`: 10 log10(data_range^2 / MSE) over every pixel and band; +inf for identical inputs.
- `ssim`: Wang et al. 2004 with the standard settings: an 11x11 Gaussian window (sigma 1.5,
  truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03, population (not sample) covariances, the map
  evaluated only where the window fits inside the image ("valid"), averaged over the map and then
  over bands. This matches skimage's `structural_similarity(..., gaussian_weights=True,
  use_sample_covariance=False)` and the authors' MATLAB code up to its final crop.
- `degrade_back`: exact area averaging of an SR image onto the LR grid it came from (any real scale);
  `area_weights` gives a block of its weights for scenes too big to hold.
- `noise_sigma`: the white-noise level of an image (Immerkaer's 3x3 Laplacian-difference estimator).
- `measure_shift`: phase correlation refined by Lucas-Kanade on the interior (unbiased for sub-pixel
  shifts of resampled images, which phase correlation alone reads short).
- `phase_correlation_shift`: sub-pixel translation between two images (regularized phase correlation,
  peak refined by the Guizar-Sicairos et al. 2008 upsampled DFT to 0.01 px). Sign: the returned (dy, dx) is the shift
  that maps `moving` onto `reference`, i.e. reference[y, x] ~= moving[y - dy, x - dx]; an image whose
  content moved down/right relative to the reference gives negative values when passed as `moving`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rssr_cli.geo.kernels import resample_matrix

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # window radius = int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_bands(img: np.ndarray) -> np.ndarray:
    """[h, w] or [bands, h, w] -> float64 [bands, h, w]."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 2:
        return a[None]
    if a.ndim != 3:
        raise ValueError(f"expected an image [h, w] or [bands, h, w], got shape {a.shape}")
    return a


def _same_shape(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    if tuple(a) != tuple(b):
        raise ValueError(f"shapes differ: {tuple(a)} vs {tuple(b)}")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and bands; inf when a == b."""
    _same_shape(np.shape(a), np.shape(b))
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """Normalized 1-D Gaussian taps, radius int(truncate * sigma + 0.5) (scipy/skimage convention)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _filter_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation of [..., h, w] with taps along both image axes, 'valid' region only."""
    x = sliding_window_view(x, len(taps), axis=-1) @ taps
    return sliding_window_view(x, len(taps), axis=-2) @ taps


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """SSIM index map [bands, h - 2r, w - 2r] (r = window radius), see the module docstring."""
    a, b = _as_bands(a), _as_bands(b)
    _same_shape(a.shape, b.shape)
    taps = gaussian_window(sigma)
    if min(a.shape[-2:]) < len(taps):
        raise ValueError(f"SSIM needs images of at least {len(taps)}x{len(taps)} px, got {a.shape[-2:]}")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, taps), _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a**2
    var_b = _filter_valid(b * b, taps) - mu_b**2
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return num / den


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean SSIM: the map averaged per band, then over bands (1.0 for identical images)."""
    return float(np.mean(ssim_map(a, b, data_range).mean(axis=(-2, -1))))


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Drop `border` pixels on each side of the last two axes (a view; border 0 returns img)."""
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return img
    h, w = img.shape[-2:]
    if 2 * border >= min(h, w):
        raise ValueError(f"border {border} leaves nothing of a {h}x{w} image")
    return img[..., border:-border, border:-border]


def area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] exact area weights: output pixel i averages the input pixels overlapping [i, i+1)
    in output units, each weighted by its overlap. Rows sum to 1; columns sum to n_out / n_in, so the
    mean is preserved exactly. Integer n_in / n_out gives plain block means."""
    return area_weights(0, n_out, 0, n_in, n_out, n_in)


def area_weights(
    out_start: int,
    out_stop: int,
    in_start: int,
    in_stop: int,
    n_out: int,
    n_in: int,
    *,
    start: float = 0.0,
    step: Optional[float] = None,
) -> np.ndarray:
    """Rows [out_start, out_stop) and columns [in_start, in_stop) of area_matrix(n_out, n_in), computed
    directly: a block of a scene-sized matrix (which would not fit in memory) for block-wise degrade-back.
    `start`, `step`: fine pixel j spans [start + j*step, start + (j+1)*step) in coarse pixels (default: the grids
    share their bounds, step n_out / n_in), e.g. a band stack's common grid placed on a band's own grid."""
    step = n_out / n_in if step is None else step
    out_idx, in_idx, w = area_overlaps(n_out, step, start, first=in_start, count=in_stop - in_start)
    m = np.zeros((out_stop - out_start, in_stop - in_start))
    keep = (out_idx >= out_start) & (out_idx < out_stop)
    m[out_idx[keep] - out_start, in_idx[keep] - in_start] = w[keep]
    return m


def area_overlaps(
    n_coarse: int, step: float, start: float = 0.0, *, first: int = 0, count: int
) -> tuple[np.ndarray, ...]:
    """The one area-averaging rule, in sparse form: (coarse index, fine index, overlap) for fine pixels
    j = first..first+count-1 spanning [start + j*step, start + (j+1)*step) in coarse pixel units, against
    coarse pixels [r, r+1), 0 <= r < n_coarse. Any alignment, any real ratio (degrade-back, pair training)."""
    j = first + np.arange(count)
    lo, hi = start + j * step, start + (j + 1) * step
    r = np.floor(lo).astype(np.int64)[:, None] + np.arange(int(math.ceil(step)) + 1)[None, :]
    w = np.clip(np.minimum(hi[:, None], r + 1.0) - np.maximum(lo[:, None], r), 0.0, None)
    keep = (w > 0.0) & (r >= 0) & (r < n_coarse)
    return r[keep], np.broadcast_to(j[:, None], r.shape)[keep], w[keep]


def noise_sigma(img: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Standard deviation of the white noise in a 2-D image (Immerkaer 1996, "Fast noise variance estimation").

    The 3x3 kernel [[1,-2,1],[-2,4,-2],[1,-2,1]] cancels planes and smooth gradients, so on a textured
    image the estimate is an upper bound (edges leak in). Only 3x3 neighbourhoods entirely valid count.
    NaN when fewer than one such neighbourhood exists.
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) < 3:
        return math.nan
    k = ((1, -2, 1), (-2, 4, -2), (1, -2, 1))
    h, w = x.shape
    response: np.ndarray = sum(k[i][j] * x[i : h - 2 + i, j : w - 2 + j] for i in range(3) for j in range(3))  # type: ignore[assignment]
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        ok = np.ones((h - 2, w - 2), dtype=bool)
        for i in range(3):
            for j in range(3):
                ok &= v[i : h - 2 + i, j : w - 2 + j]
        response = response[ok]
    if np.size(response) == 0:
        return math.nan
    return float(math.sqrt(math.pi / 2.0) * np.mean(np.abs(response)) / 6.0)


def degrade_back(sr: np.ndarray, lr_shape: Sequence[int]) -> np.ndarray:
    """Area-average an SR image [bands, H, W] (or [H, W]) onto the LR grid (h, w) = lr_shape[-2:].

    Both grids cover the same extent (the rssr output grid convention), so the result is what a sensor
    with the LR pixel footprint would have recorded from the SR scene (box PSF). float64 output.
    """
    x = _as_bands(sr)
    h, w = int(lr_shape[-2]), int(lr_shape[-1])
    my = area_matrix(h, x.shape[-2])
    mx = area_matrix(w, x.shape[-1])
    out = np.einsum("yh,bhw,xw->byx", my, x, mx, optimize=True)
    return out[0] if np.ndim(sr) == 2 else out


def spectral_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel angle in degrees between the band vectors of a and b ([bands, h, w] -> [h, w]).

    Undefined (NaN) where either vector is all zero. With one band the angle is 0 where both values
    share a sign and 180 where they do not.
    """
    a, b = _as_bands(a), _as_bands(b)
    _same_shape(a.shape, b.shape)
    dot = np.sum(a * b, axis=0)
    norm = np.sqrt(np.sum(a * a, axis=0) * np.sum(b * b, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, dot / norm, np.nan)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _upsampled_dft(data: np.ndarray, size: int, factor: int, offsets: tuple[float, float]) -> np.ndarray:
    """Inverse DFT of `data` evaluated on a size x size grid of spacing 1/factor, starting at offsets
    (in upsampled units): a matrix product instead of a zero-padded FFT (Guizar-Sicairos 2008)."""
    rows, cols = data.shape
    ky = np.fft.ifftshift(np.arange(rows)) - rows // 2
    kx = np.fft.ifftshift(np.arange(cols)) - cols // 2
    py = np.arange(size) - offsets[0]
    px = np.arange(size) - offsets[1]
    ker_y = np.exp(2j * np.pi / (rows * factor) * py[:, None] * ky[None, :])
    ker_x = np.exp(2j * np.pi / (cols * factor) * kx[:, None] * px[None, :])
    return ker_y @ data @ ker_x


def phase_correlation_shift(
    reference: np.ndarray,
    moving: np.ndarray,
    upsample: int = 100,
    regularization: float = 1e-2,
) -> tuple[float, float]:
    """(dy, dx) in pixels that maps `moving` onto `reference` (precision 1/upsample px).

    Multi-band inputs share one cross-power spectrum C (summed over bands, band means removed).
    C is whitened as C / (|C| + regularization * max|C|): pure phase correlation (regularization 0)
    lets frequencies that carry no energy, only float round-off, dominate on smooth images (a float32
    bicubic SR then reads as 0.2 px off); any non-negative spectral weighting keeps a pure shift's peak
    exactly in place, so this costs no bias. No window is applied: on periodic test images a window
    biases the estimate towards 0; on real rasters the non-wrapping edges pull slightly towards 0
    instead. Shifts beyond half the image size alias.
    """
    ref, mov = _as_bands(reference), _as_bands(moving)
    _same_shape(ref.shape, mov.shape)
    ref = ref - ref.mean(axis=(-2, -1), keepdims=True)
    mov = mov - mov.mean(axis=(-2, -1), keepdims=True)
    cross = np.sum(np.fft.fft2(ref) * np.conj(np.fft.fft2(mov)), axis=0)
    magnitude = np.abs(cross)
    cross = cross / (magnitude + regularization * magnitude.max() + 1e-300)
    corr = np.abs(np.fft.ifft2(cross))
    h, w = corr.shape
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    shift = np.array([iy if iy <= h // 2 else iy - h, ix if ix <= w // 2 else ix - w], dtype=np.float64)
    if upsample > 1:
        # refine inside +-0.75 px of the integer peak on a grid of spacing 1/upsample
        shift = np.round(shift * upsample) / upsample
        size = int(math.ceil(upsample * 1.5))
        centre = size // 2
        offsets = (centre - shift[0] * upsample, centre - shift[1] * upsample)
        fine = np.abs(_upsampled_dft(cross, size, upsample, offsets))
        fy, fx = np.unravel_index(int(np.argmax(fine)), fine.shape)
        shift = shift + (np.array([fy, fx], dtype=np.float64) - centre) / upsample
    return float(shift[0]), float(shift[1])


def measure_shift(reference: np.ndarray, moving: np.ndarray, iterations: int = 8) -> tuple[float, float]:
    """(dy, dx) with reference[y, x] ~= moving[y - dy, x - dx]: phase correlation, refined by Lucas-Kanade.

    Phase correlation alone reads sub-pixel shifts of resampled images short (0.25 px as 0.15: the
    non-wrapping block edges and the interpolation's phase errors near Nyquist pull it towards whole
    pixels). The refinement warps `moving` by the estimate (bicubic) and solves the linearized least
    squares for the remaining shift on the block's interior, where edges play no part.
    """
    reference, moving = _as_bands(reference), _as_bands(moving)
    dy, dx = phase_correlation_shift(reference, moving)
    scale = np.maximum(moving.std(axis=(-2, -1)), 1e-12)[:, None, None]  # bands weigh alike
    ref, mov = reference / scale, moving / scale
    _, h, w = mov.shape
    for _ in range(iterations):
        margin = int(math.ceil(max(abs(dy), abs(dx)))) + 3
        if min(h, w) - 2 * margin < 8:
            break
        my = resample_matrix(np.arange(h) + 0.5 - dy, h, "bicubic")
        mx = resample_matrix(np.arange(w) + 0.5 - dx, w, "bicubic")
        warped = np.einsum("yh,bhw,xw->byx", my, mov, mx, optimize=True)
        gy, gx = np.gradient(warped, axis=(1, 2))
        inner = (slice(None), slice(margin, h - margin), slice(margin, w - margin))
        gy, gx, residual = gy[inner].ravel(), gx[inner].ravel(), (ref - warped)[inner].ravel()
        normal = np.array([[gy @ gy, gy @ gx], [gy @ gx, gx @ gx]])
        if abs(np.linalg.det(normal)) < 1e-12 * max(1.0, float(np.trace(normal))) ** 2:
            break  # no texture in one direction: keep the phase-correlation estimate
        # warped(s + d) ~= warped(s) - g . d, so the residual ref - warped is best explained by d = -N^-1 G^T r
        step = -np.linalg.solve(normal, [gy @ residual, gx @ residual])
        dy, dx = dy + float(step[0]), dx + float(step[1])
        if np.hypot(*step) < 1e-4:
            break
    return dy, dx
