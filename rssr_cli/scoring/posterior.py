"""Is a stochastic SR a posterior sampler? The seven bars of issue 21, per image and pooled over images.

If the prior m is the posterior mean E[x|y] and x̂ an exact posterior sample, then in any band x̂'s power
equals the truth's, its cross-power with the truth equals m's, its MSE is twice m's, and the mean of K
samples loses 10 log10(1 + 1/K) dB against m. Second-order figures cannot tell a sampler from "m plus
Gaussian noise with the right spectrum"; a proper score against that null can, and so can the
deviations' kurtosis and where the spread falls. Per image, with K >= 2 samples x̂_k, the prior m, the
truth x, the LR y and the degradation D (all float [bands, H, W] in model units; the scores use the
images shaved by `border` HR pixels, the consistency bar uses them whole):

1. spectral realism: in-band power ratio P(x̂)/P(x) in [0.7, 1.3] (F = 0.25-0.5 cycles/px on the
   luminance, Hann-windowed as in detail.py), and the distance mean_f |log10 S_x̂ - log10 S_x| of the
   radially averaged power spectra over 0.125-0.5 cycles/px (SPECTRUM_RINGS equal rings; S_x̂ the mean
   of the K samples' spectra) <= 0.1. Reported beside it, not judged: the pooled distance
   mean_f |mean_i (mean_k log10 S_x̂k - log10 S_x)|, the images' mean log spectra compared. Where the LR does not fix
   an image's level of detail, an exact posterior sample's spectrum and the truth's are two draws of that
   level, so the per-image distance stays well above 0 for a correct sampler (tests: `make_world(levels=...)`;
   BENCHMARKS: the bar's floor on real images), while the pooled one goes to 0 with the number of images.
2. keeps what the prior knows: cross-power Re<F x̂, F x> / Re<F m, F x> >= 0.95, CI lower bound >= 0.9.
   Reported beside it, not judged: the change (C(x̂) - C(m)) / P(x), in units of the truth's band power. Where
   the prior knows almost nothing in the band (C(m) near 0: Sentinel-2 at x4) the ratio is one of two near-zero
   numbers and its CI spans about everything; the change stays decidable (an exact sampler's is 0).
3. distortion budget: MSE(x̂)/MSE(m) <= 2.2 (all bands), and PSNR(m) - PSNR(mean of the K samples)
   <= 10 log10(1 + 1/K) + 0.2 dB.
4. a proper score beats a matched null: the fair energy score on PATCH x PATCH patches (all bands,
   norms per pixel: ||.|| / sqrt(d)), ES = mean_k ||x̂_k - x|| - sum_{k!=l} ||x̂_k - x̂_l|| / (2K(K-1)),
   below the prior's ||m - x|| and below that of m + n_k, n a stationary Gaussian whose per-frequency
   cross-band covariance is the samples' mean deviation periodogram (`matched_gaussian`); both paired
   differences with a 95 % CI below 0.
5. structured deviations: the (non-excess) kurtosis of F(x̂ - m) (spatial, luminance, the K samples'
   pixels pooled) >= 6 and >= half that of F(x - m) (a Gaussian's is 3).
6. consistent with the input: mean |D(x̂) - y| minus the truth's own mean |D(x) - y|, in quantisation
   steps of the stored dtype, <= 1.
7. calibrated spread: sum of the samples' per-pixel variance (ddof 1; for K = 2 that is ½||x̂1 - x̂2||²)
   over sum ||x - m||² in [0.5, 1.2], and the per-image Pearson correlation over BLOCK x BLOCK blocks
   between the spread and the prior's squared error has a 95 % CI above 0.

Pooling (`posterior_bars`): ratios are ratios of sums over images (the issue's Σ form for bar 7; robust
where one image's denominator is near 0), other figures means of per-image values; CIs are percentile
bootstraps over images, paired (numerators and denominators resampled together). A figure whose value
is not finite fails. Range rules judge the point estimate; bars 2, 4 and 7 also judge a CI bound.
Pure numpy; the caller supplies D.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from rssr_cli.scoring.detail import BAND, Interval, _windowed_spectrum, band_mask, bootstrap_ci, luminance

SPECTRUM_BAND = (0.125, 0.5)  # cycles per HR pixel: the two top octaves
SPECTRUM_RINGS = 12
PATCH = 32  # energy-score patch side, HR pixels
BLOCK = 8  # spread/error correlation block side, HR pixels
POWER_RANGE = (0.7, 1.3)
MAX_LOG_SPECTRUM_DISTANCE = 0.1
MIN_CROSS_RATIO, MIN_CROSS_RATIO_LOW = 0.95, 0.9
MAX_MSE_RATIO = 2.2
MEAN_PSNR_SLACK_DB = 0.2
MIN_KURTOSIS = 6.0
MAX_CONSISTENCY_STEPS = 1.0
SPREAD_RANGE = (0.5, 1.2)

Degrade = Callable[[np.ndarray], np.ndarray]  # HR [C, H, W] -> LR [C, h, w]


@dataclass(frozen=True)
class PosteriorImage:
    """One image's raw figures: ratios kept as numerator and denominator so pooling is a ratio of sums."""

    samples: int
    power_sample: float  # in-band power on the luminance, mean over the K samples
    power_truth: float
    power_prior: float
    log_spectrum_distance: float
    cross_sample: float  # Re<F x̂, F x>, mean over the samples
    cross_prior: float  # Re<F m, F x>
    mse_sample: float  # mean over the samples
    mse_prior: float
    mean_psnr_drop: float  # PSNR(m) - PSNR(mean of the K samples), dB
    es_sample: float  # fair energy score, mean over patches
    es_prior: float  # ||m - x|| per pixel, mean over patches
    es_null: float  # fair energy score of m + matched Gaussian noise
    kurtosis_sample: float
    kurtosis_truth: float
    consistency_excess: float  # (mean |D(x̂) - y| - mean |D(x) - y|) / quantisation step
    spread: float  # sum over pixels and bands of the samples' variance (ddof 1)
    prior_error: float  # sum ||x - m||²
    spread_error_correlation: float  # over BLOCK x BLOCK blocks
    log_spectrum_offsets: tuple[float, ...] = ()  # per ring mean_k log10 S_x̂k - log10 S_x; () in older rows

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------- per image


def _shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[..., border : img.shape[-2] - border, border : img.shape[-1] - border] if border > 0 else img


def band_power(plane: np.ndarray, band: tuple[float, float] = BAND) -> float:
    """Power of a [H, W] plane in a radial band (Hann-windowed, mean removed: detail.py's spectrum)."""
    return float(np.sum(np.abs(_windowed_spectrum(plane)[band_mask(plane.shape, band)]) ** 2))


def cross_power(a: np.ndarray, b: np.ndarray, band: tuple[float, float] = BAND) -> float:
    """Re sum over the band of A conj(B), the windowed spectra of two [H, W] planes."""
    mask = band_mask(a.shape, band)
    return float(np.real(np.sum(_windowed_spectrum(a)[mask] * np.conj(_windowed_spectrum(b)[mask]))))


def radial_spectrum(
    plane: np.ndarray, band: tuple[float, float] = SPECTRUM_BAND, rings: int = SPECTRUM_RINGS
) -> np.ndarray:
    """Mean windowed power in `rings` equal-width radial rings spanning `band` (cycles/px)."""
    power = np.abs(_windowed_spectrum(plane)) ** 2
    radius = np.hypot(np.fft.fftfreq(plane.shape[0])[:, None], np.fft.fftfreq(plane.shape[1])[None, :])
    edges = np.linspace(band[0], band[1], rings + 1)
    ring = np.digitize(radius, edges) - 1  # ring i holds edges[i] <= r < edges[i+1]; r == band[1] joins the last
    ring[radius == band[1]] = rings - 1
    inside = (ring >= 0) & (ring < rings)
    total = np.bincount(ring[inside], weights=power[inside], minlength=rings)
    count = np.bincount(ring[inside], minlength=rings)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def log_spectrum_distance(sample_rings: np.ndarray, truth_rings: np.ndarray) -> float:
    """mean over rings of |log10 S_samples - log10 S_truth|, S_samples the mean of the samples' spectra.
    sample_rings [K, rings] and truth_rings [rings]: `radial_spectrum` of each sample and of the truth."""
    s_hat, s_true = sample_rings.mean(axis=0), truth_rings
    keep = (s_hat > 0) & (s_true > 0)
    if not keep.any():
        return math.nan
    return float(np.mean(np.abs(np.log10(s_hat[keep]) - np.log10(s_true[keep]))))


def log_spectrum_offsets(sample_rings: np.ndarray, truth_rings: np.ndarray) -> np.ndarray:
    """Per ring, mean over the samples of log10 S_sample - log10 S_truth (NaN where a spectrum is 0). The mean of
    the logs, not the log of the mean spectrum as in the per-image distance: for an exact posterior sampler each
    sample's log spectrum and the truth's are draws of one law, so these offsets average to 0 over images, where
    the log of a mean of K spectra would be biased up by however much the level varies between the samples."""
    with np.errstate(divide="ignore", invalid="ignore"):
        offsets = np.log10(sample_rings).mean(axis=0) - np.log10(truth_rings)
    return np.where(np.isfinite(offsets), offsets, np.nan)


def pooled_spectrum_distance(
    offsets: Sequence[Sequence[float]], *, resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> Interval:
    """mean over rings of |mean over images of the per-ring log offsets|, with a percentile bootstrap over images.
    Images without offsets (rows written before them) or with a ring missing are left out."""
    rows = [np.asarray(o, dtype=np.float64) for o in offsets if len(o) == SPECTRUM_RINGS]
    table = np.array([r for r in rows if np.isfinite(r).all()])
    if table.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    value = float(np.abs(table.mean(axis=0)).mean())
    if len(table) == 1:
        return Interval(value, math.nan, math.nan, 1)
    idx = np.random.default_rng(seed).integers(0, len(table), size=(resamples, len(table)))
    boot = np.abs(table[idx].mean(axis=1)).mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return Interval(value, float(low), float(high), len(table))


def band_pass(plane: np.ndarray, band: tuple[float, float] = BAND) -> np.ndarray:
    """The [H, W] plane filtered to the radial band (ideal FFT mask, no window: a window would shape the tails)."""
    return np.real(np.fft.ifft2(np.fft.fft2(plane - plane.mean()) * band_mask(plane.shape, band)))


def kurtosis(values: np.ndarray) -> float:
    """E[v^4] / E[v^2]^2 of zero-centred values (a Gaussian: 3); NaN for all zeros."""
    v = np.asarray(values, dtype=np.float64).ravel()
    second = float(np.mean(v**2))
    return float(np.mean(v**4)) / second**2 if second > 0.0 else math.nan


def matched_gaussian(deviations: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` draws [count, C, H, W] of a stationary Gaussian field whose per-frequency cross-band covariance
    is the mean periodogram of deviations [K, C, H, W]: n(f) = K^-1/2 sum_k D_k(f) z_k(f), z_k the spectra
    of unit white noise scaled to E|z|² = 1 (Hermitian, so n is real)."""
    k, _, h, w = deviations.shape
    spectra = np.fft.rfft2(deviations)  # real fields: the half spectrum carries everything
    draws = []
    for _ in range(count):
        z = np.fft.rfft2(rng.standard_normal((k, 1, h, w))) / math.sqrt(h * w)
        draws.append(np.fft.irfft2(np.sum(spectra * z, axis=0) / math.sqrt(k), s=(h, w)))
    return np.stack(draws)


def _patches(img: np.ndarray, size: int) -> np.ndarray:
    """[..., C, H, W] -> [..., P, C*size*size]: non-overlapping tiles, the remainder dropped."""
    *lead, c, h, w = img.shape
    ny, nx = h // size, w // size
    tiles = img[..., : ny * size, : nx * size].reshape(*lead, c, ny, size, nx, size)
    tiles = np.moveaxis(tiles, (-4, -2), (-5, -4))  # [..., ny, nx, C, size, size]
    return tiles.reshape(*lead, ny * nx, c * size * size)


def fair_energy_score(samples: np.ndarray, truth: np.ndarray, patch: int = PATCH) -> float:
    """The fair (unbiased) energy score of samples [K, C, H, W] against the truth, per-pixel norms, mean over patches."""
    k = samples.shape[0]
    size = min(patch, *truth.shape[-2:])
    s, t = _patches(samples, size), _patches(truth, size)
    d = s.shape[-1]
    to_truth = np.linalg.norm(s - t[None], axis=-1).mean(axis=0)
    between = sum(np.linalg.norm(s[i] - s[j], axis=-1) for i in range(k) for j in range(i + 1, k))
    return float(np.mean(to_truth - between / (k * (k - 1))) / math.sqrt(d))


def block_means(img: np.ndarray, size: int) -> np.ndarray:
    """Means over size x size blocks of the last two axes (a partial last block dropped)."""
    h, w = img.shape[-2] // size, img.shape[-1] // size
    return img[..., : h * size, : w * size].reshape(*img.shape[:-2], h, size, w, size).mean(axis=(-3, -1))


def spread_error_correlation(spread: np.ndarray, error: np.ndarray, block: int = BLOCK) -> float:
    """Pearson correlation over blocks of the mean spread [H, W] and the mean squared error [H, W]; NaN if either is flat."""
    size = min(block, *spread.shape)
    a, b = block_means(spread, size).ravel(), block_means(error, size).ravel()
    if a.size < 2 or a.std() == 0.0 or b.std() == 0.0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def posterior_image(
    samples: Sequence[np.ndarray],
    prior: np.ndarray,
    truth: np.ndarray,
    lr: np.ndarray,
    *,
    degrade: Degrade,
    quant_step: float,
    border: int = 0,
    seed: int = 0,
) -> PosteriorImage:
    """Every raw figure of one image (module docstring). samples: K >= 2 arrays shaped like prior and truth."""
    full = np.stack([np.asarray(s, dtype=np.float64) for s in samples])
    prior_full, truth_full = np.asarray(prior, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    k = full.shape[0]
    if k < 2:
        raise ValueError(f"a posterior evaluation needs K >= 2 samples, got {k}")
    if not full.shape[1:] == prior_full.shape == truth_full.shape:
        raise ValueError(f"shapes differ: samples {full.shape[1:]}, prior {prior_full.shape}, truth {truth_full.shape}")
    xs, m, x = _shave(full, border), _shave(prior_full, border), _shave(truth_full, border)
    if min(x.shape[-2:]) < 8:
        raise ValueError(f"image too small for a spectrum after the border: {x.shape[-2:]}")
    lum_s, lum_m, lum_x = [luminance(s) for s in xs], luminance(m), luminance(x)
    rings_s, rings_x = np.stack([radial_spectrum(p) for p in lum_s]), radial_spectrum(lum_x)  # once, for bar 1's two

    mse_s = float(np.mean((xs - x[None]) ** 2))
    mse_m = float(np.mean((m - x) ** 2))
    mse_mean = float(np.mean((xs.mean(axis=0) - x) ** 2))
    with np.errstate(divide="ignore"):
        psnr_drop = float(10.0 * np.log10(mse_mean / mse_m)) if mse_m > 0 else math.nan

    rng = np.random.default_rng([seed, 21])
    deviations = xs - m[None]
    null = m[None] + matched_gaussian(deviations, k, rng)

    lr_f = np.asarray(lr, dtype=np.float64)
    cons_s = float(np.mean([np.mean(np.abs(degrade(s) - lr_f)) for s in full]))
    cons_x = float(np.mean(np.abs(degrade(truth_full) - lr_f)))

    variance = xs.var(axis=0, ddof=1)
    error = (x - m) ** 2
    return PosteriorImage(
        samples=k,
        power_sample=float(np.mean([band_power(p) for p in lum_s])),
        power_truth=band_power(lum_x),
        power_prior=band_power(lum_m),
        log_spectrum_distance=log_spectrum_distance(rings_s, rings_x),
        log_spectrum_offsets=tuple(float(v) for v in log_spectrum_offsets(rings_s, rings_x)),
        cross_sample=float(np.mean([cross_power(p, lum_x) for p in lum_s])),
        cross_prior=cross_power(lum_m, lum_x),
        mse_sample=mse_s,
        mse_prior=mse_m,
        mean_psnr_drop=psnr_drop,
        es_sample=fair_energy_score(xs, x),
        es_prior=fair_energy_score(np.stack([m, m]), x),
        es_null=fair_energy_score(null, x),
        kurtosis_sample=kurtosis(np.stack([band_pass(p - lum_m) for p in lum_s])),
        kurtosis_truth=kurtosis(band_pass(lum_x - lum_m)),
        consistency_excess=(cons_s - cons_x) / quant_step,
        spread=float(variance.sum()),
        prior_error=float(error.sum()),
        spread_error_correlation=spread_error_correlation(variance.mean(axis=0), error.mean(axis=0)),
    )


# --------------------------------------------------------------------------------------- pooled


def ratio_ci(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """sum(num) / sum(den) over images with a paired percentile bootstrap CI (images resampled as pairs)."""
    pairs = [(a, b) for a, b in zip(numerators, denominators) if math.isfinite(a) and math.isfinite(b)]
    if not pairs:
        return Interval(math.nan, math.nan, math.nan, 0)
    num, den = np.asarray(pairs, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(num.sum() / den.sum()) if den.sum() != 0 else math.nan
        if num.size == 1:
            return Interval(value, math.nan, math.nan, 1)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, num.size, size=(resamples, num.size))
        ratios = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return Interval(value, math.nan, math.nan, int(num.size))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return Interval(value, float(low), float(high), int(num.size))


@dataclass(frozen=True)
class Figure:
    """One pooled figure of a bar: its value with the 95 % CI, the rule it is judged by, and the verdict."""

    name: str
    value: Interval
    rule: str
    passed: bool

    def as_dict(self) -> dict:
        return {"name": self.name, **self.value.as_dict(), "rule": self.rule, "passed": self.passed}


@dataclass(frozen=True)
class Bar:
    """One of the seven bars: passes when every figure does."""

    number: int
    name: str
    figures: tuple[Figure, ...]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.figures)

    def as_dict(self) -> dict:
        return {
            "number": self.number,
            "name": self.name,
            "passed": self.passed,
            "figures": [f.as_dict() for f in self.figures],
        }


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _within(value: Interval, low: float, high: float) -> bool:
    return _finite(value.mean) and low <= value.mean <= high


def _at_most(value: Interval, limit: float) -> bool:
    return _finite(value.mean) and value.mean <= limit


def _below_zero(value: Interval) -> bool:
    """The 95 % CI lies below 0 (a single image has no CI: not shown)."""
    return _finite(value.high) and value.high < 0.0


def posterior_bars(images: Sequence[PosteriorImage]) -> tuple[Bar, ...]:
    """The seven bars pooled over images (module docstring)."""
    if not images:
        raise ValueError("no images to pool")
    counts = {i.samples for i in images}
    if len(counts) != 1:
        raise ValueError(f"images were sampled with different K: {sorted(counts)}")
    k = counts.pop()

    def col(name: str) -> list[float]:
        return [float(getattr(i, name)) for i in images]

    def diff(a: str, b: str, factor: float = 1.0) -> list[float]:
        return [x - factor * y for x, y in zip(col(a), col(b))]

    power = ratio_ci(col("power_sample"), col("power_truth"))
    prior_power = ratio_ci(col("power_prior"), col("power_truth"))
    distance = bootstrap_ci(col("log_spectrum_distance"))
    pooled_distance = pooled_spectrum_distance([i.log_spectrum_offsets for i in images])
    cross = ratio_ci(col("cross_sample"), col("cross_prior"))
    cross_change = ratio_ci(diff("cross_sample", "cross_prior"), col("power_truth"))
    mse = ratio_ci(col("mse_sample"), col("mse_prior"))
    drop = bootstrap_ci(col("mean_psnr_drop"))
    drop_limit = 10.0 * math.log10(1.0 + 1.0 / k) + MEAN_PSNR_SLACK_DB
    es_prior, es_null = bootstrap_ci(diff("es_sample", "es_prior")), bootstrap_ci(diff("es_sample", "es_null"))
    kurt_s, kurt_x = bootstrap_ci(col("kurtosis_sample")), bootstrap_ci(col("kurtosis_truth"))
    kurt_vs_half = bootstrap_ci(diff("kurtosis_sample", "kurtosis_truth", 0.5))
    consistency = bootstrap_ci(col("consistency_excess"))
    spread = ratio_ci(col("spread"), col("prior_error"))
    correlation = bootstrap_ci(col("spread_error_correlation"))
    lo, hi = POWER_RANGE
    return (
        Bar(
            1,
            "spectral realism",
            (
                Figure("HF power / truth", power, f"in [{lo:g}, {hi:g}]", _within(power, lo, hi)),
                Figure(
                    "log10 spectrum dist",
                    distance,
                    f"<= {MAX_LOG_SPECTRUM_DISTANCE:g}",
                    _at_most(distance, MAX_LOG_SPECTRUM_DISTANCE),
                ),
                Figure("pooled log10 spectrum dist", pooled_distance, "reference", True),
                Figure("prior: HF power / truth", prior_power, "reference", True),
            ),
        ),
        Bar(
            2,
            "keeps what the prior knows",
            (
                Figure(
                    "cross-power / prior",
                    cross,
                    f">= {MIN_CROSS_RATIO:g}, CI low >= {MIN_CROSS_RATIO_LOW:g}",
                    _finite(cross.mean)
                    and cross.mean >= MIN_CROSS_RATIO
                    and (cross.n < 2 or (_finite(cross.low) and cross.low >= MIN_CROSS_RATIO_LOW)),
                ),
                Figure("cross-power change / truth power", cross_change, "reference", True),
            ),
        ),
        Bar(
            3,
            "distortion budget",
            (
                Figure("MSE / prior", mse, f"<= {MAX_MSE_RATIO:g}", _at_most(mse, MAX_MSE_RATIO)),
                Figure(f"PSNR loss, {k}-mean (dB)", drop, f"<= {drop_limit:.2f}", _at_most(drop, drop_limit)),
            ),
        ),
        Bar(
            4,
            "proper score beats a matched null",
            (
                Figure("ES - prior", es_prior, "CI < 0", _below_zero(es_prior)),
                Figure("ES - Gaussian null", es_null, "CI < 0", _below_zero(es_null)),
            ),
        ),
        Bar(
            5,
            "structured deviations",
            (
                Figure(
                    "kurtosis", kurt_s, f">= {MIN_KURTOSIS:g}", _finite(kurt_s.mean) and kurt_s.mean >= MIN_KURTOSIS
                ),
                Figure(
                    "kurtosis - truth/2", kurt_vs_half, ">= 0", _finite(kurt_vs_half.mean) and kurt_vs_half.mean >= 0.0
                ),
                Figure("truth: kurtosis", kurt_x, "reference", True),
            ),
        ),
        Bar(
            6,
            "consistent with the input",
            (
                Figure(
                    "|D(x)-y| excess (q)",
                    consistency,
                    f"<= {MAX_CONSISTENCY_STEPS:g}",
                    _at_most(consistency, MAX_CONSISTENCY_STEPS),
                ),
            ),
        ),
        Bar(
            7,
            "calibrated spread",
            (
                Figure(
                    "spread / error",
                    spread,
                    f"in [{SPREAD_RANGE[0]:g}, {SPREAD_RANGE[1]:g}]",
                    _within(spread, *SPREAD_RANGE),
                ),
                Figure(
                    "corr(spread, error)", correlation, "CI > 0", _finite(correlation.low) and correlation.low > 0.0
                ),
            ),
        ),
    )


# ---------------------------------------------------------------------------------- evaluate rows


@dataclass(frozen=True)
class PosteriorSummary:
    """One (scale, backend) cell of `rssr evaluate --samples K`: the seven bars over its images."""

    scale: float
    backend: str
    samples: int
    images: int
    bars: tuple[Bar, ...]

    @property
    def passed(self) -> int:
        return sum(b.passed for b in self.bars)

    def as_dict(self) -> dict:
        return {
            "scale": self.scale,
            "backend": self.backend,
            "samples": self.samples,
            "images": self.images,
            "bars_passed": self.passed,
            "bars": [b.as_dict() for b in self.bars],
        }


def summarize_posterior(rows: Sequence, scales: Sequence[float], backends: Sequence[str]) -> list[PosteriorSummary]:
    """Per (scale, backend) with posterior figures: the pooled bars. `rows` are protocol.ImageScore."""
    out = []
    for scale in scales:
        for backend in backends:
            images = [_image(r.posterior) for r in rows if r.scale == scale and r.backend == backend and r.posterior]
            if images:
                out.append(
                    PosteriorSummary(float(scale), backend, images[0].samples, len(images), posterior_bars(images))
                )
    return out


def _image(fields: Mapping[str, Optional[float]]) -> PosteriorImage:
    """A row's dict back into figures (JSON turned NaN into None, tuples into lists)."""

    def number(v: Optional[float]) -> float:
        return math.nan if v is None else float(v)

    values: dict = {}
    for key, v in fields.items():
        if key == "samples":
            values[key] = int(v)  # type: ignore[arg-type]
        elif key == "log_spectrum_offsets":
            values[key] = tuple(number(x) for x in v)  # type: ignore[union-attr]
        else:
            values[key] = number(v)
    return PosteriorImage(**values)


def sample_seed(seed: int, k: int) -> int:
    """Sample k's seed for an image seeded `seed`: sample 0 is the image's own (the PSNR row's output)."""
    return int(seed) + int(k) * 1_000_003


# ---------------------------------------------------------------------------------- the default mode

MAX_REALISTIC_COST_DB = 1.0  # issue 21, item 4: realistic may cost at most this much PSNR against faithful


def realistic_default_verdict(
    bars_passed: int, psnr_cost_db: float, hallucination: float, improvement: float
) -> tuple[bool, list[str]]:
    """Issue 21's rule for the default mode (README, "Modes"): realistic becomes the default only when its draws pass
    all seven bars on held-out images, cost at most MAX_REALISTIC_COST_DB of PSNR against faithful, and their
    opensr-test hallucination share stays below their improvement share. Returns the verdict and, when it is no,
    every failed clause in words."""
    failed = []
    if bars_passed < 7:
        failed.append(f"passes {bars_passed} of the 7 posterior bars")
    if not psnr_cost_db <= MAX_REALISTIC_COST_DB:
        failed.append(f"costs {psnr_cost_db:.2f} dB against faithful (at most {MAX_REALISTIC_COST_DB:g})")
    if not hallucination < improvement:
        failed.append(f"hallucination share {hallucination:.3f} is not below its improvement share {improvement:.3f}")
    return not failed, failed
