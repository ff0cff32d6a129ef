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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from rssr_cli.core.errors import UsageError
from rssr_cli.model.sr_model import SRModel
from rssr_cli.model.validation import CHAIN_SAMPLER_RANGES
from rssr_cli.training.api import validate_posterior
from rssr_cli.training.data import TrainImage


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
) -> tuple[dict[str, float], list[Candidate]]:
    """The candidate sampler settings with the best energy score on `images`, and every candidate's figures. The
    model's sampler defaults are left as they were; the caller writes the choice into the card."""
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
    best = max(scored, key=lambda c: c.score)
    return best.settings, scored


def set_sampler_defaults(model: SRModel, settings: Mapping[str, float]) -> None:
    """Calibrated sampler defaults, in the model and in the spec its card is written from."""
    model.sampler_defaults.update({k: float(v) for k, v in settings.items()})
    model.spec["sampler"] = dict(model.sampler_defaults)
