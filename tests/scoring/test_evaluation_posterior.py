"""Posterior-sampler bars (rssr_cli/scoring/posterior.py) on worlds where the answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from posterior_world import box_down, make_world

from rssr_cli.evaluation.jsonsafe import finite_or_none
from rssr_cli.evaluation.protocol import ImageScore
from rssr_cli.scoring.posterior import (
    PosteriorImage,
    fair_energy_score,
    kurtosis,
    matched_gaussian,
    posterior_bars,
    posterior_image,
    radial_spectrum,
    ratio_ci,
    realistic_default_verdict,
    sample_seed,
    summarize_posterior,
)

K = 4
IMAGES = 8


def _figures(samples, world, seed):
    return posterior_image(samples, world.prior, world.truth, world.lr, degrade=box_down, quant_step=1 / 255, seed=seed)


@pytest.fixture(scope="module")
def candidates() -> dict[str, list[PosteriorImage]]:
    """Per image: K exact posterior samples, the mean + Gaussian noise matched to their deviations, the prior K times."""
    out: dict[str, list[PosteriorImage]] = {"exact": [], "gaussian": [], "prior": []}
    for i in range(IMAGES):
        world, rng = make_world(i), np.random.default_rng(100 + i)
        exact = [world.draw(rng) for _ in range(K)]
        gaussian = world.prior[None] + matched_gaussian(np.stack(exact) - world.prior[None], K, rng)
        for name, samples in (("exact", exact), ("gaussian", list(gaussian)), ("prior", [world.prior] * K)):
            out[name].append(_figures(samples, world, i))
    return out


def _verdicts(images) -> dict[int, bool]:
    return {bar.number: bar.passed for bar in posterior_bars(images)}


def test_an_exact_posterior_passes_every_bar(candidates):
    bars = posterior_bars(candidates["exact"])
    assert all(bar.passed for bar in bars), [f for bar in bars for f in bar.figures if not f.passed]
    figures = {f.name: f.value.mean for bar in bars for f in bar.figures}
    assert figures["HF power / truth"] == pytest.approx(1.0, abs=0.05)
    assert figures["MSE / prior"] == pytest.approx(2.0, abs=0.05)  # the theorem: an exact sample doubles the MSE
    assert figures[f"PSNR loss, {K}-mean (dB)"] == pytest.approx(10 * math.log10(1 + 1 / K), abs=0.15)
    assert figures["spread / error"] == pytest.approx(1.0, abs=0.05)


def test_mean_plus_matched_gaussian_noise_fails_the_score_the_tails_and_the_spread_placement(candidates):
    verdicts = _verdicts(candidates["gaussian"])
    assert not verdicts[4] and not verdicts[5] and not verdicts[7]
    assert verdicts[2] and verdicts[3]  # second-order figures cannot tell it from a sampler
    bars = {bar.number: bar for bar in posterior_bars(candidates["gaussian"])}
    assert bars[5].figures[0].value.mean == pytest.approx(3.0, abs=0.2)  # a Gaussian's kurtosis
    assert bars[7].figures[0].passed  # its total spread is right; only where it falls is wrong


def test_the_prior_itself_fails_realism_and_spread(candidates):
    verdicts = _verdicts(candidates["prior"])
    assert not verdicts[1] and not verdicts[7]
    assert verdicts[2] and verdicts[3] and verdicts[6]
    bars = {bar.number: bar for bar in posterior_bars(candidates["prior"])}
    assert bars[1].figures[0].value.mean == pytest.approx(0.5, abs=0.05)  # |c|² / (|c|² + |p|²) by construction
    assert bars[7].figures[0].value.mean == 0.0


def test_rows_pool_into_bars_per_cell_even_after_json_nulls(candidates):
    rows = [
        ImageScore(f"i{n}", 4.0, "model-k4", 30.0, 0.9, 0.1, (128, 128), (32, 32), 0, posterior=image.as_dict())
        for n, image in enumerate(candidates["prior"])
    ]
    rows[0] = ImageScore(
        "i0",
        4.0,
        "model-k4",
        30.0,
        0.9,
        0.1,
        (128, 128),
        (32, 32),
        0,
        posterior={**candidates["prior"][0].as_dict(), "kurtosis_sample": None},
    )
    rows.append(ImageScore("i0", 4.0, "bicubic", 25.0, 0.8, 0.1, (128, 128), (32, 32), 0))
    [cell] = summarize_posterior(rows, (4.0,), ("model-k4", "bicubic"))
    assert (cell.scale, cell.backend, cell.samples, cell.images, cell.passed) == (4.0, "model-k4", K, IMAGES, 3)
    assert [bar.number for bar in cell.bars] == list(range(1, 8))
    doc = cell.as_dict()
    assert doc["bars"][0]["figures"][0]["rule"] == "in [0.7, 1.3]" and doc["bars"][0]["passed"] is False


def _bar1(images) -> dict[str, float]:
    return {f.name: f.value.mean for f in posterior_bars(images)[0].figures}


def test_where_the_input_does_not_fix_the_level_an_exact_sampler_fails_the_per_image_spectrum_not_the_pooled_one():
    exact, prior = [], []
    for i in range(24):
        world, rng = make_world(i, levels=(0.5, 2.0)), np.random.default_rng(300 + i)
        exact.append(_figures([world.draw(rng) for _ in range(2)], world, i))
        prior.append(_figures([world.prior] * 2, world, i))
    sampler, mean = _bar1(exact), _bar1(prior)
    # per image, the draws' level and the truth's are independent: the distance is the prior's order
    assert sampler["log10 spectrum dist"] > 0.2 and mean["log10 spectrum dist"] > 0.2
    # pooled over images the exact sampler's log spectrum meets the truth's; the prior's does not
    assert sampler["pooled log10 spectrum dist"] < 0.1 < 0.2 < mean["pooled log10 spectrum dist"]


def test_with_the_level_fixed_the_pooled_spectrum_distance_agrees_with_the_per_image_one(candidates):
    exact, prior = _bar1(candidates["exact"]), _bar1(candidates["prior"])
    assert exact["pooled log10 spectrum dist"] <= exact["log10 spectrum dist"] < 0.1
    assert prior["pooled log10 spectrum dist"] == pytest.approx(prior["log10 spectrum dist"], abs=0.01)


def test_the_pooled_spectrum_survives_json_and_rows_written_before_it_still_pool(candidates):
    def row(n: int, posterior: dict) -> ImageScore:
        return ImageScore(f"i{n}", 4.0, "model-k4", 30.0, 0.9, 0.1, (128, 128), (32, 32), 0, posterior=posterior)

    written = [json.loads(json.dumps(finite_or_none(image.as_dict()))) for image in candidates["exact"]]
    assert isinstance(written[0]["log_spectrum_offsets"], list) and len(written[0]["log_spectrum_offsets"]) == 12
    [cell] = summarize_posterior([row(n, d) for n, d in enumerate(written)], (4.0,), ("model-k4",))
    assert {f.name: f.value.mean for f in cell.bars[0].figures}["pooled log10 spectrum dist"] == pytest.approx(
        _bar1(candidates["exact"])["pooled log10 spectrum dist"]
    )
    older = [{k: v for k, v in d.items() if k != "log_spectrum_offsets"} for d in written]
    [cell] = summarize_posterior([row(n, d) for n, d in enumerate(older)], (4.0,), ("model-k4",))
    pooled = {f.name: f for f in cell.bars[0].figures}["pooled log10 spectrum dist"]
    assert math.isnan(pooled.value.mean) and pooled.value.n == 0 and pooled.passed  # a reference: shown, not judged
    assert cell.passed == 7


def test_the_cross_power_change_is_zero_for_an_exact_sampler_and_negative_for_one_that_drops_the_prior(candidates):
    def change(images) -> tuple[float, float, float]:
        bar2 = {f.name: f.value for f in posterior_bars(images)[1].figures}
        value = bar2["cross-power change / truth power"]
        return value.mean, value.low, value.high

    assert change(candidates["prior"]) == (0.0, 0.0, 0.0)
    mean, _, _ = change(candidates["exact"])
    assert abs(mean) < 0.05  # 0 in expectation; 8 images of 4 draws each leave +0.02 here
    dropped = []  # every sample keeps only half of what the prior knows in the textured blocks
    for i in range(IMAGES):
        world, rng = make_world(i), np.random.default_rng(100 + i)
        half = world.prior - 0.5 * (world.prior - make_world(i, amplitude=0.0).prior)
        dropped.append(_figures([half + (world.draw(rng) - world.prior) for _ in range(K)], world, i))
    _, _, high = change(dropped)
    assert high < -0.1


# ------------------------------------------------------------------------------------------- parts


def test_fair_energy_score_of_two_samples_is_the_issue_formula():
    rng = np.random.default_rng(0)
    truth, a, b = rng.standard_normal((3, 2, 32, 32))
    d = truth.size
    expected = (
        0.5 * (np.linalg.norm(a - truth) + np.linalg.norm(b - truth)) - 0.5 * np.linalg.norm(a - b)
    ) / math.sqrt(d)
    assert fair_energy_score(np.stack([a, b]), truth) == pytest.approx(expected)
    assert fair_energy_score(np.stack([truth, truth]), truth) == 0.0


def test_matched_gaussian_has_the_mean_periodogram_and_cross_band_structure():
    rng = np.random.default_rng(1)
    common = rng.standard_normal((2, 1, 32, 32))
    deviations = np.concatenate([common, 2 * common], axis=1)  # band 2 = 2 x band 1
    draws = matched_gaussian(deviations, 400, rng)
    assert np.allclose(draws[:, 1], 2 * draws[:, 0])  # the cross-band covariance is kept, not only each band's power
    target = np.mean(np.abs(np.fft.fft2(deviations)) ** 2, axis=0)
    got = np.mean(np.abs(np.fft.fft2(draws)) ** 2, axis=0)
    assert np.mean(got) == pytest.approx(np.mean(target), rel=0.05)
    assert np.median(got / target) == pytest.approx(1.0, abs=0.15)
    assert kurtosis(draws[:, 0]) == pytest.approx(3.0, abs=0.1)  # per band (band 2 has 4x the variance)


def test_radial_spectrum_of_white_noise_is_flat():
    noise = np.random.default_rng(2).standard_normal((128, 128))
    rings = radial_spectrum(noise)
    assert rings.shape == (12,) and np.all(np.isfinite(rings))
    assert np.ptp(np.log10(rings)) < 0.15


def test_ratio_ci_pools_sums_and_resamples_pairs():
    r = ratio_ci([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert (r.mean, r.low, r.high, r.n) == (
        0.5,
        pytest.approx(0.5),
        pytest.approx(0.5),
        3,
    )  # paired: every resample is 0.5
    one = ratio_ci([1.0, math.nan], [4.0, 1.0])
    assert one.mean == 0.25 and one.n == 1 and math.isnan(one.low)
    assert ratio_ci([], []).n == 0


def test_posterior_image_refuses_one_sample_and_mismatched_shapes():
    world = make_world(0, size=32)
    with pytest.raises(ValueError, match="K >= 2"):
        _figures([world.prior], world, 0)
    with pytest.raises(ValueError, match="shapes differ"):
        _figures([world.prior[:, :16], world.prior[:, :16]], world, 0)
    with pytest.raises(ValueError, match="too small"):
        posterior_image(
            [world.prior] * 2, world.prior, world.truth, world.lr, degrade=box_down, quant_step=1 / 255, border=13
        )


def test_bars_refuse_mixed_sample_counts(candidates):
    other = PosteriorImage(**{**candidates["exact"][0].as_dict(), "samples": 2})
    with pytest.raises(ValueError, match="different K"):
        posterior_bars([candidates["exact"][0], other])


def test_sample_zero_is_the_image_seed_and_samples_do_not_collide_across_images():
    assert sample_seed(7, 0) == 7
    seeds = {sample_seed(image, k) for image in range(100) for k in range(8)}
    assert len(seeds) == 800


@pytest.mark.parametrize(
    "bars, cost, hallucination, improvement, clauses",
    [
        (7, 0.9, 0.10, 0.20, 0),
        (6, 0.9, 0.10, 0.20, 1),
        (7, 1.2, 0.10, 0.20, 1),
        (7, 0.9, 0.20, 0.20, 1),  # equal shares are not "below"
        (2, 0.92, 0.467, 0.186, 2),  # the first Sentinel-2 chain on held-out tiles (BENCHMARKS.md)
        (7, float("nan"), 0.1, 0.2, 1),  # an unmeasured cost never passes
    ],
)
def test_the_default_mode_rule_names_every_failed_clause(bars, cost, hallucination, improvement, clauses):
    ok, failed = realistic_default_verdict(bars, cost, hallucination, improvement)
    assert ok == (clauses == 0)
    assert len(failed) == clauses
