"""The chain's variance correction, chosen per model on the selection set (issue 21: "v0 per model").

A few-step chain trained by MSE leaves out Var(r0 | r_t); the sampler adds it back for a N(0, v0) residual
(model/resshift.py). v0 = 1 is right when the global residual scale makes the residual's variance ~1 everywhere, but a
model's r̂0 explains a different share of it (measured on held-out tiles at v0 = 1: the Sentinel-2 chain's spread was
0.18 of the prior's error, the aerial one's 1.05). So v0 is a property of the trained model, picked like a checkpoint:
by the fair energy score (a proper score, so it cannot reward a collapsed or an inflated spread) on the SAME selection
images and seeds as `rssr train --keep best`, never on held-out images. The draws share their noise across v0 (each
image's generator is seeded by its index), so the candidates differ by v0 alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rssr_cli.core.errors import UsageError
from rssr_cli.model.sr_model import SRModel
from rssr_cli.training.api import validate_posterior
from rssr_cli.training.data import TrainImage

DEFAULT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class Candidate:
    variance_correction: float
    figures: dict[str, float]  # validate_posterior's: score (1 - ES/ES_prior), power/spread/MSE ratios, the null's

    @property
    def score(self) -> float:
        return self.figures["score"]


def calibrate_variance_correction(
    model: SRModel,
    images: Sequence[TrainImage],
    scale: float = 4.0,
    degradation: str = "bicubic",
    grid: Sequence[float] = DEFAULT_GRID,
) -> tuple[float, list[Candidate]]:
    """The v0 of `grid` with the best energy score on `images`, and every candidate's figures. The model's sampler
    default is left as it was; the caller writes the choice into the card."""
    if model.process != "resshift":
        raise UsageError("the variance correction belongs to a residual-shifting chain; this model has none")
    if not images:
        raise UsageError("calibration needs selection images (--val)")
    if not grid or any(not 0.0 <= v <= 100.0 for v in grid):
        raise UsageError(f"variance-correction candidates must be in [0, 100], got {list(grid)}")
    before = model.sampler_defaults.get("variance_correction", 0.0)
    candidates = []
    try:
        for v0 in grid:
            model.sampler_defaults["variance_correction"] = float(v0)
            candidates.append(Candidate(float(v0), validate_posterior(model, list(images), scale, degradation)))
    finally:
        model.sampler_defaults["variance_correction"] = before
    best = max(candidates, key=lambda c: c.score)
    return best.variance_correction, candidates


def set_variance_correction(model: SRModel, v0: float) -> None:
    """The sampler's default v0, in the model and in the spec its card is written from."""
    model.sampler_defaults["variance_correction"] = float(v0)
    model.spec["sampler"] = dict(model.sampler_defaults)
