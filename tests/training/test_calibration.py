"""The chain's sampler settings chosen per model on the selection set (training/calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rssr_cli.core.errors import UsageError
from rssr_cli.model.checkpoint import load_model, save_model
from rssr_cli.training.calibration import (
    calibrate_sampler,
    fit_band_correlation,
    fit_deviation_gain,
    fit_local_error,
    set_sampler_defaults,
)
from rssr_cli.training.data import TrainImage

from model_helpers import hr_grid, tiny_chain, tiny_model


def _images(channels: int, n: int = 2, side: int = 32) -> list[TrainImage]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = []
    for k in range(n):
        base = 0.5 + 0.3 * np.sin(6 * xx + k) * np.cos(5 * yy)
        px = np.stack([base + 0.05 * rng.standard_normal((side, side)) for _ in range(channels)]).astype(np.float32)
        out.append(TrainImage(px, None, f"img{k}"))
    return out


def test_the_best_scoring_candidate_is_chosen_and_the_models_default_is_left_alone():
    chain = tiny_chain()
    chain.sampler_defaults["variance_correction"] = 0.7
    grid = [{"variance_correction": v} for v in (0.0, 1.0, 4.0)]
    best, candidates = calibrate_sampler(chain, _images(chain.in_channels), grid)
    assert [c.settings for c in candidates] == grid
    assert best == max(candidates, key=lambda c: c.score).settings
    assert chain.sampler_defaults["variance_correction"] == 0.7 and "band_correlation" not in chain.sampler_defaults
    spreads = [c.figures["spread_ratio"] for c in candidates]
    assert spreads[0] < spreads[1] < spreads[2]  # v0 adds spread: the candidates really differ by it


def test_the_spread_criterion_picks_the_spread_closest_to_the_priors_error():
    """criterion "spread": the candidate whose spread/error is nearest 1 in ratio (log distance), whatever its energy
    score; an unknown criterion is a usage error."""
    chain = tiny_chain()
    grid = [{"variance_correction": v} for v in (0.0, 0.5, 1.0, 4.0, 16.0)]
    best, candidates = calibrate_sampler(chain, _images(chain.in_channels), grid, criterion="spread")
    distance = {c.settings["variance_correction"]: abs(np.log(c.figures["spread_ratio"])) for c in candidates}
    assert distance[best["variance_correction"]] == min(distance.values())
    with pytest.raises(UsageError, match="criterion"):
        calibrate_sampler(chain, _images(chain.in_channels), grid, criterion="psnr")


def test_the_chosen_v0_travels_with_the_card(tmp_path):
    chain = tiny_chain()
    set_sampler_defaults(chain, {"variance_correction": 2.5, "band_correlation": 0.8})
    loaded = load_model(save_model(chain, tmp_path / "m"))
    assert loaded.sampler_defaults["variance_correction"] == 2.5
    assert loaded.sampler_defaults["band_correlation"] == 0.8


@pytest.mark.parametrize(
    "model, images, grid",
    [
        (lambda: tiny_model(), True, [{"variance_correction": 1.0}]),  # no chain
        (tiny_chain, False, [{"variance_correction": 1.0}]),  # no selection images
        (tiny_chain, True, []),  # nothing to choose from
        (tiny_chain, True, [{"variance_correction": -1.0}]),  # a negative variance
        (tiny_chain, True, [{"band_correlation": 1.5}]),  # not a correlation
        (tiny_chain, True, [{"steps": 2.0}]),  # not a calibrated setting
    ],
)
def test_what_cannot_be_calibrated_is_a_usage_error(model, images, grid):
    m = model()
    with pytest.raises(UsageError):
        calibrate_sampler(m, _images(m.in_channels) if images else [], grid)


def test_the_local_error_fit_travels_with_the_card_and_puts_the_chains_spread_where_the_prior_has_detail(tmp_path):
    """fit_local_error on selection images gives a power law of the prior's local detail; with it in the card, the
    sampler's v0 becomes a map (zero where the estimate is flat), and the draws spread more on the textured half of
    a window than the global v0 makes them, and less on its flat half."""
    chain = tiny_chain()
    fit = fit_local_error(chain, _images(chain.in_channels, n=3, side=48), 4.0)
    assert 0.0 <= fit.exponent <= 2.0 and np.isfinite(fit.log_scale) and fit.blocks > 3
    chain.sampler_defaults["variance_correction"] = 1.0
    half = np.full((chain.in_channels, 16, 16), 0.5, np.float32)
    half[:, :, 8:] += 0.2 * np.random.default_rng(1).standard_normal((chain.in_channels, 16, 8)).astype(np.float32)
    lr = torch.from_numpy(half)[None]
    ys, xs, cell = hr_grid(16, 16, 4.0)

    def spread(model):
        with torch.no_grad():
            draws = model.sample_draws(lr, ys, xs, cell, 6, generator=torch.Generator().manual_seed(0))
        var = torch.stack(draws).var(0)[0].mean(0)
        return float(var[:, 4:24].mean()), float(var[:, 40:].mean())  # flat, textured (away from the seam)

    flat_global, textured_global = spread(chain)
    set_sampler_defaults(chain, {**fit.settings, "local_exponent": 1.0, "local_log_scale": fit.log_scale})
    local = load_model(save_model(chain, tmp_path / "local"))
    assert local.sampler_defaults["local_exponent"] == 1.0
    flat_local, textured_local = spread(local)
    assert textured_local / flat_local > 2 * textured_global / flat_global


def test_a_correction_tilt_travels_with_the_card_and_shapes_the_draws(tmp_path):
    chain = tiny_chain()
    lr = torch.from_numpy(_images(chain.in_channels, n=1, side=12)[0].pixels)[None]
    ys, xs, cell = hr_grid(12, 12, 2.0)

    def draw(model):
        with torch.no_grad():
            return model.sample_draws(lr, ys, xs, cell, 1, generator=torch.Generator().manual_seed(3))[0]

    set_sampler_defaults(chain, {"variance_correction": 1.0})
    white = draw(chain)
    set_sampler_defaults(chain, {"correction_tilt": 2.0})
    tilted = load_model(save_model(chain, tmp_path / "tilted"))
    assert tilted.sampler_defaults["correction_tilt"] == 2.0
    assert torch.isfinite(draw(tilted)).all() and not torch.allclose(draw(tilted), white)


def test_the_local_error_fit_needs_selection_images_and_falls_back_to_one_v0_when_detail_predicts_nothing():
    chain = tiny_chain()
    with pytest.raises(UsageError):
        fit_local_error(chain, [])
    # a flat image: the (random) prior's small error does not grow with its detail; the exponent is clipped at 0,
    # which the sampler reads as the global v0
    flat = [TrainImage(np.full((chain.in_channels, 32, 32), 0.5, np.float32), None, "flat")]
    fit = fit_local_error(chain, flat)
    assert fit.exponent == 0.0 and np.isfinite(fit.log_scale)


def test_the_band_correlation_is_the_priors_error_common_to_the_bands():
    """Identical bands give the prior identical inputs, so its error is the same in every band (correlation 1); bands
    of independent noise give errors that share nothing (near 0); single-band images cannot tell (None)."""
    chain = tiny_chain()  # single-band: a 3-band image is folded into three rows
    same = [TrainImage(np.repeat(img.pixels, 3, 0), None, img.source) for img in _images(1, n=2)]
    assert fit_band_correlation(chain, same) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(5)
    apart = [TrainImage((0.5 + 0.2 * rng.standard_normal((3, 32, 32))).astype(np.float32), None, "n")]
    assert fit_band_correlation(chain, apart) < 0.2
    assert fit_band_correlation(chain, [TrainImage(img.pixels[:1], None, img.source) for img in same]) is None


def test_the_deviation_gains_bring_the_draws_spectrum_to_the_priors_error(tmp_path):
    """Each fitting round measures the deviations' ring power over the prior error's with that round's gains; the
    last round's ratios are nearer 1 than the unshaped chain's, the gains travel with the card, and the model's own
    sampler settings are left as they were."""
    chain = tiny_chain()
    chain.sampler_defaults["variance_correction"] = 1.0
    images = _images(chain.in_channels, n=2, side=48)
    fit = fit_deviation_gain(chain, images, 4.0, rounds=2)
    assert "deviation_gain" not in chain.sampler_defaults
    first, last = np.log(fit.ratios[0]), np.log(fit.ratios[-1])
    assert len(fit.ratios) == 3 and np.all(np.isfinite(first)) and np.all(np.isfinite(last))
    assert np.abs(last).max() < 0.5 * np.abs(first).max()
    assert all(0.0 <= g <= 20.0 for g in fit.gains)
    set_sampler_defaults(chain, fit.settings)
    assert load_model(save_model(chain, tmp_path / "shaped")).sampler_defaults["deviation_gain"] == fit.gains
    with pytest.raises(UsageError):
        fit_deviation_gain(chain, [])
    with pytest.raises(UsageError):
        fit_deviation_gain(tiny_model(), images)


def test_another_local_exponent_keeps_the_expected_error_at_the_mean_detail():
    chain = tiny_chain()
    fit = fit_local_error(chain, _images(chain.in_channels, n=3, side=48), 4.0)
    steeper = fit.at_exponent(fit.exponent + 0.5)
    assert steeper.exponent == pytest.approx(fit.exponent + 0.5)
    at_mean = fit.log_scale + fit.exponent * fit.mean_log_detail
    assert steeper.log_scale + steeper.exponent * fit.mean_log_detail == pytest.approx(at_mean)
    assert (steeper.correlation, steeper.blocks) == (fit.correlation, fit.blocks)
    assert fit.at_exponent(5.0).exponent == 2.0  # clipped to the card's range
