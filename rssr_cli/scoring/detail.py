"""Detail metrics: does the super-resolved image add the truth's fine detail, or noise-like texture?

PSNR rewards a blurry mean; these figures say what happens in the band a regression estimate cannot
reach. All take SR and HR (and, for the correctness shares, the bicubic upsampling of the LR) as
float [bands, H, W] arrays in the same units, already shaved of their borders. Pure numpy.

- `spectral_detail`: on the luminance, Hann-windowed, mean removed, in the radial frequency band
  0.25-0.5 cycles/pixel of the HR grid (the top octave; bicubic leaves almost nothing there):
    * hf_energy_ratio = P(SR) / P(HR)        (0 = blurry, 1 = as much detail as the truth)
    * hf_error_ratio  = P(SR - HR) / P(HR)   (below 1 = the added detail helps; a blurry image scores 1)
    * hf_correlation  = Re<SR, HR> / sqrt(P(SR) P(HR)) over the band (1 = the truth's detail, 0 = unrelated)
- `correctness_shares`: opensr-test's improvement / omission / hallucination classification (Aybar et
  al. 2024, opensr-test 0.2.x `correctness.py`), per pixel, with L1 distances averaged over bands:
  d_ref = |bicubic - HR|, d_im = |SR - HR|, d_om = |SR - bicubic|, both relative to d_ref;
  improvement = d_im + d_om (1 - exp(-H l)), omission = d_om + d_im (1 - exp(-H l)), H = d_im + d_om - 1,
  hallucination = exp(-d_im d_om l), l = 0.8; each pixel takes the smallest; shares over the pixels
  where any distance exceeds 0.01 (their stability threshold, in reflectance-like units of [0, 1]).
  Differences from the package: no histogram harmonization of SR to HR (rssr keeps the LR's
  radiometry by construction) and the LR-to-HR reference is bicubic (the package's is its own
  upsampler); the shares are what the package calls "percent" normalization.
- `bootstrap_ci`: a percentile bootstrap 95 % CI of a mean over images (fixed seed: reproducible).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

BAND = (0.25, 0.5)  # cycles per HR pixel, radial
STABILITY_THRESHOLD = 0.01
CORRECTNESS_LAMBDA = 0.8
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601, for 3-band (RGB) images; other band counts: the band mean


@dataclass(frozen=True)
class SpectralDetail:
    hf_energy_ratio: float
    hf_error_ratio: float
    hf_correlation: float


@dataclass(frozen=True)
class CorrectnessShares:
    improvement: float
    omission: float
    hallucination: float


@dataclass(frozen=True)
class DetailScore:
    """Every detail figure of one SR image against its truth."""

    hf_energy_ratio: float
    hf_error_ratio: float
    hf_correlation: float
    improvement: float
    omission: float
    hallucination: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DETAIL_FIELDS = tuple(DetailScore.__dataclass_fields__)


def luminance(img: np.ndarray) -> np.ndarray:
    """[bands, H, W] -> [H, W]: Rec. 601 luma for 3 bands, else the mean of the bands."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return img
    if img.shape[0] == 3:
        return np.tensordot(np.asarray(LUMA_WEIGHTS), img, axes=1)
    return img.mean(axis=0)


def _windowed_spectrum(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    return np.fft.fft2((plane - plane.mean()) * window)


def band_mask(shape: tuple[int, int], band: tuple[float, float] = BAND) -> np.ndarray:
    """FFT bins whose radial frequency (cycles/pixel) lies in [band[0], band[1]]."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    radius = np.hypot(fy, fx)
    return (radius >= band[0]) & (radius <= band[1])


def spectral_detail(sr: np.ndarray, hr: np.ndarray, band: tuple[float, float] = BAND) -> SpectralDetail:
    """HF energy ratio, HF error ratio and in-band correlation of SR vs HR (module docstring)."""
    sr_l, hr_l = luminance(sr), luminance(hr)
    if sr_l.shape != hr_l.shape:
        raise ValueError(f"shapes differ: {sr_l.shape} vs {hr_l.shape}")
    if min(sr_l.shape) < 8:
        raise ValueError(f"image too small for a spectrum: {sr_l.shape}")
    mask = band_mask(sr_l.shape, band)
    s, t = _windowed_spectrum(sr_l)[mask], _windowed_spectrum(hr_l)[mask]
    p_sr, p_hr = float(np.sum(np.abs(s) ** 2)), float(np.sum(np.abs(t) ** 2))
    p_err = float(np.sum(np.abs(s - t) ** 2))
    cross = float(np.real(np.sum(s * np.conj(t))))
    if p_hr <= 0.0:  # a flat truth has no detail to match
        return SpectralDetail(math.nan, math.nan, math.nan)
    corr = cross / math.sqrt(p_sr * p_hr) if p_sr > 0.0 else 0.0
    return SpectralDetail(p_sr / p_hr, p_err / p_hr, corr)


def correctness_shares(
    sr: np.ndarray,
    hr: np.ndarray,
    lr_up: np.ndarray,
    *,
    threshold: float = STABILITY_THRESHOLD,
    plambda: float = CORRECTNESS_LAMBDA,
) -> CorrectnessShares:
    """Shares of pixels classified improvement / omission / hallucination (module docstring)."""
    sr, hr, lr_up = (np.asarray(a, dtype=np.float64) for a in (sr, hr, lr_up))
    if not sr.shape == hr.shape == lr_up.shape:
        raise ValueError(f"shapes differ: {sr.shape}, {hr.shape}, {lr_up.shape}")
    axis = 0 if sr.ndim == 3 else None
    d_ref = np.abs(lr_up - hr).mean(axis=axis)
    d_im = np.abs(sr - hr).mean(axis=axis)
    d_om = np.abs(sr - lr_up).mean(axis=axis)
    considered = (d_ref > threshold) | (d_im > threshold) | (d_om > threshold)
    if not considered.any():
        return CorrectnessShares(math.nan, math.nan, math.nan)
    ref = np.maximum(d_ref[considered], 1e-12)  # the bicubic was exact here: any change is relative to ~0
    im, om = d_im[considered] / ref, d_om[considered] / ref
    h = im + om - 1.0
    with np.errstate(over="ignore"):
        scores = np.stack(
            [
                im + om * (1.0 - np.exp(-h * plambda)),
                om + im * (1.0 - np.exp(-h * plambda)),
                np.exp(-im * om * plambda),
            ]
        )
    label = np.argmin(np.nan_to_num(scores, nan=np.inf, posinf=np.inf, neginf=-np.inf), axis=0)
    n = label.size
    return CorrectnessShares(*(float(np.sum(label == k)) / n for k in range(3)))


def detail_score(sr: np.ndarray, hr: np.ndarray, lr_up: np.ndarray) -> DetailScore:
    spectral = spectral_detail(sr, hr)
    shares = correctness_shares(sr, hr, lr_up)
    return DetailScore(**asdict(spectral), **asdict(shares))


@dataclass(frozen=True)
class Interval:
    """A mean over images with its 95 % bootstrap CI."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(
    values: Sequence[Optional[float]], *, resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Percentile bootstrap CI of the mean of `values` (NaNs dropped). Paired comparisons pass differences."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if x.size == 1:
        return Interval(float(x[0]), math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


def paired_differences(a: Sequence[Optional[float]], b: Sequence[Optional[float]]) -> list[float]:
    """a_i - b_i where both are finite (the same images, paired)."""
    if len(a) != len(b):
        raise ValueError(f"paired lists differ in length: {len(a)} vs {len(b)}")
    return [x - y for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]


DEFAULT_REFERENCES = ("model-prior", "bicubic")  # paired comparisons: vs the operator's estimate, vs interpolation


@dataclass(frozen=True)
class DetailSummary:
    """One (scale, backend) cell: each figure's mean over images with its CI, and paired differences
    (this backend minus a reference, image by image) with their CIs, for PSNR and every detail figure."""

    scale: float
    backend: str
    figures: dict[str, Interval]
    versus: dict[str, dict[str, Interval]]  # reference backend -> figure -> Interval of the differences


def _figure(row, name: str) -> Optional[float]:
    if name == "psnr":
        return row.psnr
    return (row.detail or {}).get(name)


def summarize_detail(
    rows: Sequence, scales: Sequence[float], backends: Sequence[str], references: Sequence[str] = DEFAULT_REFERENCES
) -> list[DetailSummary]:
    """Per (scale, backend): detail figures with 95 % CIs over images, and paired CIs vs each reference that ran.

    `rows` are protocol.ImageScore (fields image, scale, backend, psnr, detail)."""
    names = ("psnr", *DETAIL_FIELDS)
    out = []
    for scale in scales:
        cell = {b: {r.image: r for r in rows if r.scale == scale and r.backend == b} for b in backends}
        for backend in backends:
            mine = cell[backend]
            if not mine or not any(r.detail for r in mine.values()):
                continue
            figures = {n: bootstrap_ci([_figure(r, n) for r in mine.values()]) for n in names if n != "psnr"}
            versus = {}
            for ref in references:
                theirs = cell.get(ref) or {}
                common = [image for image in mine if image in theirs]
                if ref == backend or not common or _mirrored(backend, ref, references):
                    continue
                versus[ref] = {
                    n: bootstrap_ci(
                        paired_differences(
                            [_figure(mine[i], n) for i in common], [_figure(theirs[i], n) for i in common]
                        )
                    )
                    for n in names
                }
            out.append(DetailSummary(float(scale), backend, figures, versus))
    return out


def _mirrored(backend: str, ref: str, references: Sequence[str]) -> bool:
    """bicubic vs model-prior is model-prior vs bicubic negated: keep one direction of two references."""
    return backend in references and list(references).index(backend) > list(references).index(ref)
