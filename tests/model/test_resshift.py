"""Residual shifting (rssr_cli/model/resshift.py): schedule, forward marginal, posterior step, sampler NFE."""

from __future__ import annotations

import math

import pytest
import torch

from rssr_cli.model.resshift import (
    ResShiftSchedule,
    band_noise,
    from_residual,
    gaussian_posterior_variance,
    local_detail,
    local_error_variance,
    resshift_etas,
    resshift_loss,
    resshift_posterior,
    resshift_q_sample,
    resshift_sample,
    resshift_schedule,
    resshift_start,
    tilt_gain,
    tilted_noise,
    to_residual,
)

N = 200_000  # Monte-Carlo draws (scalars: a fraction of a second)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_etas_follow_resshift_eq9():
    etas = resshift_etas(15, kappa=2.0)
    assert etas.dtype == torch.float64 and etas.shape == (15,)
    assert float(etas[0]) == pytest.approx((0.04 / 2.0) ** 2) and float(etas[-1]) == pytest.approx(0.999)
    assert bool((etas[1:] > etas[:-1]).all())
    assert float(resshift_etas(15, kappa=1.0)[0]) == pytest.approx(0.001)  # η_1 = min((0.04/κ)², 0.001)
    # p < 1 spends more steps at low noise: sqrt(η) is geometric in ((t-1)/(T-1))^p (T-1)
    ratio = (resshift_etas(15, kappa=1.0, power=0.3).sqrt().log() - math.log(math.sqrt(0.001))) / math.log(
        math.sqrt(0.999 / 0.001)
    )
    assert torch.allclose(ratio, (torch.arange(15, dtype=torch.float64) / 14) ** 0.3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: resshift_etas(1),
        lambda: resshift_etas(5, eta_first=0.5, eta_last=0.4),
        lambda: ResShiftSchedule(torch.tensor([0.2, 0.1], dtype=torch.float64), 1.0, (0, 1)),
        lambda: ResShiftSchedule(torch.tensor([0.1, 0.2], dtype=torch.float64), 0.0, (0, 1)),
        lambda: ResShiftSchedule(torch.tensor([0.1], dtype=torch.float64), 1.0, (0, 1)),
        lambda: resshift_schedule(5).strided(6),
        lambda: resshift_posterior(torch.zeros(1), torch.zeros(1), 0.2, 0.3, 1.0),
    ],
)
def test_bad_schedules_are_value_errors(call):
    with pytest.raises(ValueError):
        call()


def test_forward_marginal_mean_and_variance_and_its_end_is_the_noised_estimate():
    schedule = resshift_schedule(15, kappa=2.0)
    r0 = torch.full((N,), 0.7, dtype=torch.float64)
    for t in (0, 7, 14):
        eta = float(schedule.etas[t])
        r_t = resshift_q_sample(
            r0, torch.full((N,), t), torch.randn(N, generator=_gen(t), dtype=torch.float64), schedule
        )
        assert float(r_t.mean()) == pytest.approx((1 - eta) * 0.7, abs=4 * 2.0 * math.sqrt(eta / N))
        assert float(r_t.var()) == pytest.approx(4.0 * eta, rel=0.02)
    assert (1 - float(schedule.etas[-1])) * 0.7 < 0.001  # r_T: the estimate (residual 0) plus κ√η_T ε


def test_transitions_compose_into_the_marginal():
    """r_t = r_{t-1} - α_t r0 + κ√α_t ε step by step from r0 reaches q(r_T | r0): the process is one Markov chain."""
    schedule = resshift_schedule(6, kappa=1.5)
    etas = [0.0, *map(float, schedule.etas)]
    r0, g = 0.5, _gen(3)
    r = torch.full((N,), r0, dtype=torch.float64)
    for prev, eta in zip(etas, etas[1:]):
        r = r - (eta - prev) * r0 + 1.5 * math.sqrt(eta - prev) * torch.randn(N, generator=g, dtype=torch.float64)
    assert float(r.mean()) == pytest.approx((1 - etas[-1]) * r0, abs=0.02)
    assert float(r.var()) == pytest.approx(1.5**2 * etas[-1], rel=0.02)


@pytest.mark.parametrize("s, t", [(3, 4), (0, 9)])
def test_posterior_step_matches_monte_carlo(s, t):
    """Draw (r_s, r_t) from the forward chain; regress r_s on r_t: slope, intercept and residual variance are eq. 7's."""
    schedule, kappa, r0 = resshift_schedule(10, kappa=2.0), 2.0, 0.3
    eta_s, eta_t = float(schedule.etas[s]), float(schedule.etas[t])
    g = _gen(5)
    r_s = (1 - eta_s) * r0 + kappa * math.sqrt(eta_s) * torch.randn(N, generator=g, dtype=torch.float64)
    r_t = (
        r_s - (eta_t - eta_s) * r0 + kappa * math.sqrt(eta_t - eta_s) * torch.randn(N, generator=g, dtype=torch.float64)
    )
    slope = float(((r_s - r_s.mean()) * (r_t - r_t.mean())).mean() / r_t.var())
    intercept = float(r_s.mean() - slope * r_t.mean())
    residual = float((r_s - intercept - slope * r_t).var())
    mean, std = resshift_posterior(r_t, torch.tensor(r0, dtype=torch.float64), eta_t, eta_s, kappa)
    assert slope == pytest.approx(eta_s / eta_t, abs=0.01)
    assert intercept == pytest.approx((1 - eta_s / eta_t) * r0, abs=0.01)
    assert residual == pytest.approx(std**2, rel=0.02)
    assert torch.allclose(mean, slope * r_t + intercept, atol=0.02)


def test_posterior_at_eta_zero_is_the_prediction():
    r0 = torch.tensor([0.25])
    mean, std = resshift_posterior(torch.tensor([3.0]), r0, 0.4, 0.0, 2.0)
    assert std == 0.0 and torch.equal(mean, r0)


class Counting:
    """A model that counts its calls and records the timesteps; predicts a fixed r0."""

    def __init__(self, r0: float = 0.0):
        self.calls: list[int] = []
        self.r0 = r0

    def __call__(self, r, t, cond):
        self.calls.append(int(t[0]))
        return torch.full_like(r, self.r0)


@pytest.mark.parametrize("steps", [15, 8, 4, 1])
def test_nfe_is_the_schedule_length(steps):
    schedule = resshift_schedule(15).strided(steps)
    model = Counting()
    resshift_sample(model, torch.zeros(2, 1, 4, 4), schedule, cond=None, generator=_gen(0))
    assert len(model.calls) == len(schedule) == steps
    assert model.calls == sorted(schedule.timesteps, reverse=True) and model.calls[0] == 14  # from η_T down
    assert steps == 1 or model.calls[-1] == 0


def test_a_sure_prediction_walks_the_forward_marginals_down_to_r0():
    """With the true r0 predicted, each state is a draw of q(r_t | r0), and the chain ends exactly at r0."""
    schedule = resshift_schedule(10, kappa=2.0)
    seen: dict[int, torch.Tensor] = {}
    start = resshift_start((N,), schedule, generator=_gen(1), device="cpu").double()
    out = resshift_sample(
        Counting(0.4),
        start,
        schedule,
        cond=None,
        generator=_gen(2),
        callback=lambda info: seen.setdefault(info["t"], info["x"]),
    )
    assert torch.all(out == 0.4)
    eta = float(schedule.etas[4])  # the state reached after the step from t = 5 is r_4
    assert float(seen[5].mean()) == pytest.approx((1 - eta) * 0.4, abs=0.02)
    assert float(seen[5].var()) == pytest.approx(4.0 * eta, rel=0.03)


def test_mse_trained_chains_are_under_dispersed_and_fewer_steps_more_so():
    """The Bayes-optimal r0 prediction for a unit-Gaussian residual, E[r0 | r_t], sampled through the chain:
    the output variance falls short of 1 (what bar 7 of `evaluate --samples` measures), worse with fewer steps."""
    full = resshift_schedule(15, kappa=2.0)

    def bayes(r, t, cond):
        eta = full.etas[t.cpu()].view(-1, *([1] * (r.dim() - 1))).to(r.dtype)
        return (1 - eta) / ((1 - eta) ** 2 + 4.0 * eta) * r

    variance = {}
    for steps in (15, 4):
        schedule = full.strided(steps)
        start = resshift_start((50_000, 1), schedule, generator=_gen(7))
        variance[steps] = float(resshift_sample(bayes, start, schedule, cond=None, generator=_gen(8)).var())
    assert 0.6 < variance[15] < 0.9 and variance[4] < 0.5 * variance[15] + 0.1
    assert variance[4] < variance[15]


@pytest.mark.parametrize("steps", [15, 8, 4])
def test_the_variance_correction_restores_the_gaussian_worlds_spread_at_any_step_count(steps):
    """Same world as above: with the missing Var(r0 | r_t) drawn at each step, the chain's samples have the unit
    variance of the true residual whatever the number of steps (exact for a Gaussian residual), where the plug-in
    chain falls short."""
    full = resshift_schedule(15, kappa=2.0)

    def bayes(r, t, cond):
        eta = full.etas[t.cpu()].view(-1, *([1] * (r.dim() - 1))).to(r.dtype)
        return (1 - eta) / ((1 - eta) ** 2 + 4.0 * eta) * r

    schedule = full.strided(steps)
    start = resshift_start((50_000, 1), schedule, generator=_gen(7))
    corrected = resshift_sample(bayes, start, schedule, cond=None, generator=_gen(8), variance_correction=1.0)
    plain = resshift_sample(bayes, start, schedule, cond=None, generator=_gen(8))
    assert abs(float(corrected.var()) - 1.0) < 0.04 and float(plain.var()) < 0.9
    assert gaussian_posterior_variance(0.999, 2.0, 1.0) > 0.99 and gaussian_posterior_variance(1e-6, 2.0, 1.0) < 1e-4


def test_samples_depend_on_their_own_generator_only():
    schedule = resshift_schedule(5).strided(3)
    model = Counting(0.1)
    alone = resshift_sample(model, torch.zeros(1, 1, 3, 3), schedule, cond=None, generator=[_gen(11)])
    batch = resshift_sample(model, torch.zeros(2, 1, 3, 3), schedule, cond=None, generator=[_gen(10), _gen(11)])
    assert torch.equal(batch[1:], alone)
    again = resshift_sample(model, torch.zeros(1, 1, 3, 3), schedule, cond=None, generator=[_gen(11)])
    assert torch.equal(again, alone)


def test_residual_round_trip_and_the_loss_of_a_perfect_model():
    hr, estimate = torch.rand(1, 3, 8, 8, generator=_gen(0)), torch.rand(1, 3, 8, 8, generator=_gen(1))
    r0 = to_residual(hr, estimate, scale=4.0)
    assert torch.allclose(from_residual(r0, estimate, scale=4.0), hr)
    schedule = resshift_schedule(5)
    t, noise = torch.tensor([3]), torch.randn(1, 3, 8, 8, generator=_gen(2))
    assert float(resshift_loss(lambda r, t, c: r0, r0, None, t, noise, schedule)) == 0.0
    assert float(resshift_loss(lambda r, t, c: torch.zeros_like(r), r0, None, t, noise, schedule)) == pytest.approx(
        float((r0**2).mean())
    )


@pytest.mark.parametrize("correlation", [0.0, 0.5, 0.9, 1.0])
def test_band_noise_keeps_each_band_standard_normal_and_correlates_a_windows_bands(correlation):
    windows, bands = 2, 3
    noise = band_noise((windows * bands, 1, 200, 200), [_gen(1), _gen(2)], bands=bands, correlation=correlation)
    rows = noise.reshape(windows, bands, -1)
    assert rows.mean().abs() < 0.01 and (rows.var(dim=-1) - 1).abs().max() < 0.03  # N(0, 1) per band
    within = torch.corrcoef(rows[0])[0, 1:]
    assert (within - correlation).abs().max() < 0.02
    across = torch.corrcoef(torch.stack([rows[0, 0], rows[1, 0]]))[0, 1]
    assert across.abs() < 0.02  # windows keep their own noise


def test_shared_band_noise_keeps_each_windows_draw_its_own_generators():
    alone = band_noise((3, 1, 4, 4), [_gen(11)], bands=3, correlation=0.5)
    batch = band_noise((6, 1, 4, 4), [_gen(10), _gen(11)], bands=3, correlation=0.5)
    assert torch.equal(batch[3:], alone)
    with pytest.raises(ValueError):
        band_noise((5, 1, 4, 4), None, bands=3, correlation=0.5)


def test_a_chains_draws_go_together_across_bands_as_the_card_says():
    """SRModel: a 1-channel chain folds a window's bands into the batch; band_correlation c gives their noise that
    correlation. An untrained chain (its zero-initialised output layer predicts r0 = 0) draws noise alone, so the
    draws' deviations from the prior correlate across bands by c."""
    from rssr_cli.model.sr_model import SRModel

    from model_helpers import hr_grid, tiny_spec

    torch.manual_seed(0)
    chain = SRModel(tiny_spec()).eval()
    chain.set_resshift(chain_steps=4, kappa=1.0, residual_scale=20.0, variance_correction=1.0)
    lr = torch.rand(1, 3, 16, 16)
    ys, xs, cell = hr_grid(16, 16, 2.0)
    with torch.no_grad():
        prior = chain.sample(lr, ys, xs, cell, mode="prior")

    @torch.no_grad()
    def band_correlation(value: float) -> float:
        chain.sampler_defaults["band_correlation"] = value
        draw = chain.sample(lr, ys, xs, cell, generator=torch.Generator().manual_seed(0))
        deviation = (draw - prior)[0].reshape(3, -1)
        return float(torch.corrcoef(deviation)[0, 1:].mean())

    assert band_correlation(1.0) > 0.999
    assert abs(band_correlation(0.5) - 0.5) < 0.1
    assert abs(band_correlation(0.0)) < 0.1


def test_a_per_pixel_variance_correction_is_the_scalar_one_where_it_is_constant_and_none_where_it_is_zero():
    """v0 as a map (local_error_variance in residual units): a constant map draws exactly what the scalar draws, and
    where the map is 0 the step noise is the plug-in chain's alone."""
    schedule = resshift_schedule(8, kappa=1.0).strided(4)
    model = lambda r, t, cond: 0.5 * r  # noqa: E731
    start = resshift_start((1, 1, 6, 6), schedule, generator=_gen(3))
    scalar = resshift_sample(model, start, schedule, cond=None, generator=_gen(4), variance_correction=1.5)
    constant = resshift_sample(
        model, start, schedule, cond=None, generator=_gen(4), variance_correction=torch.full((1, 1, 6, 6), 1.5)
    )
    assert torch.allclose(scalar, constant, atol=1e-6)
    half = torch.zeros(1, 1, 6, 6)
    half[..., 3:] = 1.5
    mixed = resshift_sample(model, start, schedule, cond=None, generator=_gen(4), variance_correction=half)
    plain = resshift_sample(model, start, schedule, cond=None, generator=_gen(4))
    assert torch.allclose(mixed[..., :3], plain[..., :3], atol=1e-6)
    assert torch.allclose(mixed[..., 3:], scalar[..., 3:], atol=1e-6)
    assert isinstance(gaussian_posterior_variance(0.5, 1.0, half), torch.Tensor)


def test_the_local_error_variance_is_a_power_law_of_the_detail_the_estimate_holds_there():
    flat = torch.full((1, 1, 24, 24), 0.3)
    assert (
        float(local_detail(flat).abs().max()) == 0.0
        and float(local_error_variance(flat, exponent=0.7, log_scale=1.0).max()) == 0.0
    )
    board = flat.clone()
    board[..., ::2, ::2] += 0.1  # a one-pixel grid: Laplacian ±0.4 / ∓0.2 ... away from the edges
    board[..., :, :12] = 0.3  # left half flat: the detail stays on the right (and the window's reach around it)
    detail = local_detail(board)
    assert float(detail[..., :, :7].max()) == 0.0 and float(detail[..., 4:-4, 16:].min()) > 0.0
    for exponent, log_scale in ((1.0, 0.0), (0.5, -2.0)):
        expected = math.exp(log_scale) * detail**exponent
        assert torch.allclose(local_error_variance(board, exponent=exponent, log_scale=log_scale), expected)


@pytest.mark.parametrize("tilt", [0.0, 1.0, 3.0])
def test_tilted_noise_keeps_unit_variance_and_falls_as_f_to_the_minus_tilt_above_the_lr_nyquist(tilt):
    noise = torch.randn(64, 1, 64, 64, generator=_gen(5), dtype=torch.float64)
    shaped = tilted_noise(noise, tilt_gain(noise.shape, tilt, torch.full((64,), 0.125)))
    assert abs(float(shaped.var()) - 1.0) < 0.03 and shaped.dtype == noise.dtype
    power = (torch.fft.fft2(shaped).abs() ** 2).mean(dim=(0, 1))
    f = torch.fft.fftfreq(64, dtype=torch.float64)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt()

    def ring(r):
        return float(power[(radius - r).abs() < 0.02].mean())

    assert ring(0.45) / ring(0.15) == pytest.approx((0.45 / 0.15) ** -tilt, rel=0.2)
    assert ring(0.05) < ring(0.15)  # below the LR Nyquist it falls (as f²): what the input fixes is left alone


def test_a_tilted_correction_shapes_only_its_own_part_of_the_step_noise():
    """Tilt 0 is the single-draw sampler, bit for bit; a tilt needs the rows' LR Nyquist and changes the draw only
    through the correction (no correction: the tilt is ignored)."""
    schedule = resshift_schedule(8, kappa=1.0).strided(4)
    model = lambda r, t, cond: 0.5 * r  # noqa: E731
    start = resshift_start((2, 1, 16, 16), schedule, generator=_gen(3))
    nyquist = torch.full((2,), 0.125)

    def run(**options):
        return resshift_sample(model, start, schedule, cond=None, generator=_gen(4), **options)

    assert torch.equal(run(variance_correction=1.0), run(variance_correction=1.0, correction_tilt=0.0, nyquist=nyquist))
    assert torch.equal(run(), run(correction_tilt=2.0, nyquist=nyquist))
    tilted = run(variance_correction=1.0, correction_tilt=2.0, nyquist=nyquist)
    assert not torch.allclose(tilted, run(variance_correction=1.0))
    with pytest.raises(ValueError):
        run(variance_correction=1.0, correction_tilt=2.0)
