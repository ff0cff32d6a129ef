"""The chain's sampler settings, chosen per model on the selection set (issue 21: "v0 per model"): the variance
correction v0 and the band correlation of the noise (resshift.band_noise).

A few-step chain trained by MSE leaves out Var(r0 | r_t); the sampler adds it back for a N(0, v0) residual
(model/resshift.py). v0 = 1 is right when the global residual scale makes the residual's variance ~1 everywhere, but a
model's r̂0 explains a different share of it (measured on held-out tiles at v0 = 1: the Sentinel-2 chain's spread was
0.18 of the prior's error, the aerial one's 1.05). So v0 is a property of the trained model, picked like a checkpoint:
by the fair energy score (a proper score, so it cannot reward a collapsed or an inflated spread) on the SAME selection
images and seeds as `rssr train --keep best`, never on held-out images. The draws share their noise across candidates
(each image's generator is seeded by its index), so the candidates differ by their settings alone. The energy score
is taken over all bands of a patch jointly, so it also judges how the draws' deviations go together across bands
(the band correlation; single-band selection images cannot tell, and then every correlation scores the same).

One v0 adds the same variance everywhere while the prior's error is x30 larger on a roof edge than in a field: the
chain's spread was 0.1-0.4 of the prior's error on some images and 1-2.7x on others (Sentinel-2 chain, step 5500).
fit_local_error fits how the error grows with the detail the prior put in a place (a power law, on the selection
images), and v0 then multiplies that expected error pixel by pixel (resshift.local_error_variance).

Two criteria (CRITERIA): "energy", the best fair energy score; "spread", the spread closest to the prior's error
(|log spread/error| smallest), the ratio an exact posterior sampler has (its ½ E||x̂1 - x̂2||² equals E||x - m||² when
m is the posterior mean; issue 21's bar 7). The energy score is flat near its optimum (on the aerial chain v0 1.5 and 2
scored 0.2678 and 0.2677) and an imperfect sampler's best energy score sits on the under-dispersed side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from rssr_cli.core.errors import UsageError
from rssr_cli.model.deviation_shape import GAIN_RANGE, KNOTS, RING_WIDTH
from rssr_cli.model.resshift import local_detail
from rssr_cli.model.sr_model import SRModel
from rssr_cli.model.validation import CHAIN_SAMPLER_RANGES
from rssr_cli.scoring.posterior import band_pass, block_means, radial_spectrum
from rssr_cli.training.api import validate_posterior
from rssr_cli.training.data import TrainImage
from rssr_cli.training.trainer import module_device, protocol_window


def _spread_match(candidate: "Candidate") -> float:
    ratio = candidate.figures["spread_ratio"]
    return -abs(float(np.log(ratio))) if ratio > 0 else -np.inf


CRITERIA = {"energy": lambda c: c.score, "spread": _spread_match}  # higher is better
FIT_BLOCK = 8  # HR px: the blocks over which the prior's squared error and its local detail are compared


@dataclass(frozen=True)
class Candidate:
    settings: dict[str, float]  # sampler defaults (CHAIN_SAMPLER_RANGES keys)
    figures: dict[str, float]  # validate_posterior's: score (1 - ES/ES_prior), power/spread/MSE ratios, the null's

    @property
    def score(self) -> float:
        return self.figures["score"]


def calibrate_sampler(
    model: SRModel,
    images: Sequence[TrainImage],
    candidates: Sequence[Mapping[str, float]],
    scale: float = 4.0,
    degradation: str = "bicubic",
    criterion: str = "energy",
) -> tuple[dict[str, float], list[Candidate]]:
    """The candidate sampler settings best by `criterion` (CRITERIA) on `images`, and every candidate's figures. The
    model's sampler defaults are left as they were; the caller writes the choice into the card."""
    if criterion not in CRITERIA:
        raise UsageError(f"unknown calibration criterion {criterion!r}; choose one of: {', '.join(CRITERIA)}")
    if model.process != "resshift":
        raise UsageError("the sampler's calibration belongs to a residual-shifting chain; this model has none")
    if not images:
        raise UsageError("calibration needs selection images (--val)")
    if not candidates:
        raise UsageError("calibration needs at least one candidate")
    for settings in candidates:
        for key, value in settings.items():
            if key not in CHAIN_SAMPLER_RANGES:
                raise UsageError(f"{key} is not a calibrated sampler setting ({', '.join(CHAIN_SAMPLER_RANGES)})")
            low, high = CHAIN_SAMPLER_RANGES[key]
            if not low <= value <= high:
                raise UsageError(f"{key} candidates must be in [{low:g}, {high:g}], got {value}")
    before = model.sampler_defaults
    scored = []
    try:
        for settings in candidates:
            chosen = {k: float(v) for k, v in settings.items()}
            model.sampler_defaults = {**before, **chosen}
            scored.append(Candidate(chosen, validate_posterior(model, list(images), scale, degradation)))
    finally:
        model.sampler_defaults = before
    best = max(scored, key=CRITERIA[criterion])
    return best.settings, scored


def set_sampler_defaults(model: SRModel, settings: Mapping[str, float | Sequence[float]]) -> None:
    """Calibrated sampler defaults (numbers, and deviation_gain's list), in the model and in the spec its card is written
    from."""
    for key, value in settings.items():
        model.sampler_defaults[key] = float(value) if isinstance(value, (int, float)) else [float(g) for g in value]
    model.spec["sampler"] = dict(model.sampler_defaults)


@dataclass(frozen=True)
class LocalErrorFit:
    """log E[(HR - prior)² | block] = log_scale + exponent * log local_detail(prior), fitted over blocks."""

    exponent: float
    log_scale: float  # includes the log-normal mean's σ²/2, so exp(...) is the expected squared error, not its median
    correlation: float  # of log block error with log block detail: how much of the error's size the detail predicts
    blocks: int
    mean_log_detail: float = 0.0  # over the fitted blocks: where at_exponent pivots

    @property
    def settings(self) -> dict[str, float]:
        return {"local_exponent": self.exponent, "local_log_scale": self.log_scale}

    def at_exponent(self, exponent: float) -> "LocalErrorFit":
        """The same fit with another exponent, pivoted at the blocks' mean log detail (the expected error there is
        unchanged). The least-squares slope over blocks is the best predictor of a block's log error, yet spread/error
        still fell with the error from image to image (Sentinel-2 chain, selection crops: correlation -0.65 at the
        fitted 0.75, -0.12 at 1.0): a steeper law, with v0 re-matched, spreads each image by its own error."""
        low, high = CHAIN_SAMPLER_RANGES["local_exponent"]
        exponent = float(min(max(exponent, low), high))
        log_scale = self.log_scale + (self.exponent - exponent) * self.mean_log_detail
        return LocalErrorFit(exponent, log_scale, self.correlation, self.blocks, self.mean_log_detail)


@dataclass(frozen=True)
class _Selection:
    """One selection image degraded by the protocol, the grid of its HR pixels and the prior's estimate of it."""

    lr: torch.Tensor  # [1, C, h, w]
    hr: torch.Tensor  # [C, H, W]
    grid: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # ys, xs, cell
    prior: torch.Tensor  # [C, H, W], the input's units

    @property
    def nyquist(self) -> float:
        """The LR Nyquist in cycles per HR pixel."""
        return 0.5 * min(self.lr.shape[-2] / self.hr.shape[-2], self.lr.shape[-1] / self.hr.shape[-1])


def _selection(model: SRModel, img: TrainImage, scale: float, degradation: str) -> _Selection:
    # LR and grid on the model's device (bench/calibrate_chain.py --device: one v0 on 64 whole images takes ~28 min on
    # one core of the project's CPU); HR and prior on the CPU, where the figures are computed
    lr, hr, grid = protocol_window(img, scale, degradation, module_device(model))
    return _Selection(lr, hr[0].float(), grid, model.sample(lr, *grid, mode="prior")[0].float().cpu())


@torch.no_grad()
def fit_local_error(
    model: SRModel, images: Sequence[TrainImage], scale: float = 4.0, degradation: str = "bicubic"
) -> LocalErrorFit:
    """How the prior's squared error grows with the detail it puts in a place (resshift.local_error_variance), by
    log-log least squares over FIT_BLOCK x FIT_BLOCK blocks of the selection images (every band): the per-pixel v0 of a
    chain whose residual's size varies by place. Blocks with no error or no detail (exact zeros) are left out."""
    if not images:
        raise UsageError("the local error fit needs selection images (--val)")
    errors, details = [], []
    for img in images:
        sel = _selection(model, img, scale, degradation)
        prior = sel.prior
        errors.append(block_means(((sel.hr - prior) ** 2).numpy(), FIT_BLOCK).ravel())
        details.append(block_means(local_detail(prior[:, None])[:, 0].numpy(), FIT_BLOCK).ravel())
    error, detail = np.concatenate(errors), np.concatenate(details)
    keep = (error > 0) & (detail > 0) & np.isfinite(error) & np.isfinite(detail)
    if keep.sum() < 3:
        raise UsageError("the local error fit needs blocks with both error and detail; these images have none")
    x, y = np.log(detail[keep]), np.log(error[keep])
    exponent, intercept = np.polyfit(x, y, 1)
    low, high = CHAIN_SAMPLER_RANGES["local_exponent"]
    exponent = float(min(max(exponent, low), high))
    intercept = float(np.mean(y - exponent * x))  # refitted at the clipped exponent
    residual = y - (intercept + exponent * x)
    correlation = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else 0.0
    return LocalErrorFit(exponent, intercept + float(residual.var()) / 2, correlation, int(keep.sum()), float(x.mean()))


def _selection_draws(model: SRModel, selections: Sequence[_Selection], border: int, samples: int):
    """Per selection image (prior computed once, _selection): the prior and `samples` draws ([C, H, W] arrays, the
    input's units, shaved by `border`) and the LR Nyquist in cycles per HR pixel; image k's draws come from a
    generator seeded k, like validate_posterior's."""
    shave = (slice(None), slice(border, -border), slice(border, -border))
    for k, sel in enumerate(selections):
        gen = torch.Generator().manual_seed(k)
        draws = [
            d[0].float().cpu().numpy()[shave] for d in model.sample_draws(sel.lr, *sel.grid, samples, generator=gen)
        ]
        yield sel.prior.numpy()[shave], draws, sel.nyquist


@torch.no_grad()
def fit_band_correlation(
    model: SRModel, images: Sequence[TrainImage], scale: float = 4.0, degradation: str = "bicubic"
) -> Optional[float]:
    """How much the prior's error above the LR Nyquist is common to a window's bands: the pooled correlation
    sum e_i e_j / sqrt(sum e_i² sum e_j²) over band pairs of the band-passed error, clipped to [0, 1]; the band
    correlation of the chain's noise (resshift.band_noise), which the energy score could not pick (it moved by ±0.002
    across correlations while the draws' luminance power doubled). None for single-band images."""
    cross = norm = 0.0
    for img in images:
        if img.pixels.shape[0] < 2:
            continue
        sel = _selection(model, img, scale, degradation)
        error = [band_pass(e, (sel.nyquist, 0.5)) for e in (sel.hr - sel.prior).numpy()]
        for i in range(len(error)):
            for j in range(i + 1, len(error)):
                cross += float(np.sum(error[i] * error[j]))
                norm += float(np.sqrt(np.sum(error[i] ** 2) * np.sum(error[j] ** 2)))
    if norm <= 0:
        return None
    return float(min(max(cross / norm, 0.0), 1.0))


@dataclass(frozen=True)
class DeviationGainFit:
    """deviation_shape's gains and, per fitting round, the deviations' ring power over the prior error's (pooled over
    images and bands) measured with the gains of that round: the first row is with the card's own gains (without
    any: the unshaped chain), the last with the gains returned."""

    gains: list[float]
    ratios: list[list[float]]

    @property
    def settings(self) -> dict[str, list[float]]:
        return {"deviation_gain": self.gains}


@torch.no_grad()
def fit_deviation_gain(
    model: SRModel,
    images: Sequence[TrainImage],
    scale: float = 4.0,
    degradation: str = "bicubic",
    *,
    rounds: int = 3,
    samples: int = 2,
) -> DeviationGainFit:
    """The amplitude gains at deviation_shape.KNOTS that make the draws' deviation from the prior have the prior
    error's power, ring by ring (rings RING_WIDTH wide around the knots, in units of the LR Nyquist), on the selection
    images with the model's other sampler settings. The gains multiply by sqrt(error power / deviation power) each
    round: the null-space projection after the shaping mixes each ring with its aliases, so one round is not exact."""
    if not images:
        raise UsageError("the deviation gain fit needs selection images (--val)")
    if model.process != "resshift":
        raise UsageError("the deviation gain belongs to a residual-shifting chain; this model has none")
    before = model.sampler_defaults
    gains = [float(g) for g in before.get("deviation_gain") or [1.0] * len(KNOTS)]
    selections = [_selection(model, img, scale, degradation) for img in images]  # the prior is the same every round
    border = int(np.ceil(scale))

    def rings(nyquist: float) -> tuple[float, float]:
        return nyquist * (KNOTS[0] - RING_WIDTH / 2), nyquist * (KNOTS[-1] + RING_WIDTH / 2)

    shave = (slice(None), slice(border, -border), slice(border, -border))
    error_power = np.zeros(len(KNOTS))  # the prior's error: the same every round
    for sel in selections:
        for band in (sel.hr - sel.prior).numpy()[shave]:
            error_power += np.nan_to_num(radial_spectrum(band, rings(sel.nyquist), len(KNOTS)))
    rows = []
    try:
        for _ in range(rounds + 1):
            model.sampler_defaults = {**before, "deviation_gain": gains}
            deviation_power = np.zeros(len(KNOTS))
            for prior, draws, nyquist in _selection_draws(model, selections, border, samples):
                for c in range(prior.shape[0]):
                    for draw in draws:
                        spectrum = radial_spectrum(draw[c] - prior[c], rings(nyquist), len(KNOTS))
                        deviation_power += np.nan_to_num(spectrum) / len(draws)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = deviation_power / error_power
            rows.append([float(r) for r in ratio])
            if len(rows) > rounds:
                break
            step = np.where((deviation_power > 0) & (error_power > 0), np.sqrt(1.0 / ratio), 1.0)
            gains = [float(np.clip(g * s, *GAIN_RANGE)) for g, s in zip(gains, step)]
    finally:
        model.sampler_defaults = before
    return DeviationGainFit(gains, rows)
