"""Samplers: NFE = steps asked, timestep spacing, DDIM algebra, injected randomness."""

from __future__ import annotations

import pytest
import torch

from rssr_cli.model.diffusion import alphas_cumprod, linear_betas
from rssr_cli.model.samplers import ddim_sample, full_chain, lr_start, randn, timesteps_for

torch.set_num_threads(1)

ABAR = alphas_cumprod(linear_betas(steps=2000))


class CountingDenoiser:
    """Wraps a denoiser; counts network evaluations (NFE)."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0
        self.alphas_cumprod = ABAR
        self.timesteps: list[int] = []

    def __call__(self, x, t, cond):
        self.calls += 1
        self.timesteps.append(int(t[0]))
        return self.fn(x, t, cond)


def toy_denoise(x, t, cond):
    """A deterministic, x-dependent x0 estimate (not an oracle), so trajectories are non-trivial."""
    return 0.5 * torch.tanh(x) + cond


@pytest.mark.parametrize("steps", [1, 2, 5, 20, 50])
def test_full_chain_nfe_equals_steps(steps):
    d = CountingDenoiser(toy_denoise)
    out = full_chain(
        d, (2, 1, 5, 7), cond=torch.zeros(2, 1, 5, 7), steps=steps, generator=torch.Generator().manual_seed(0)
    )
    assert d.calls == steps
    assert d.timesteps[0] == 1999 and out.shape == (2, 1, 5, 7)


@pytest.mark.parametrize("steps,strength", [(1, 0.1), (4, 0.3), (8, 0.5), (10, 0.05), (25, 1.0)])
def test_lr_start_nfe_equals_steps(steps, strength):
    d = CountingDenoiser(toy_denoise)
    lr_start(d, torch.zeros(1, 1, 4, 4), cond=torch.zeros(1, 1, 4, 4), steps=steps, strength=strength)
    assert d.calls == steps
    assert d.timesteps[0] == min(1999, round(strength * 2000))


def test_ddim_nfe_is_len_timesteps():
    d = CountingDenoiser(toy_denoise)
    ddim_sample(d, torch.randn(1, 1, 3, 3), [900, 500, 100], cond=torch.zeros(1, 1, 3, 3))
    assert d.calls == 3 and d.timesteps == [900, 500, 100]


def test_timesteps_for_spacing():
    ts = timesteps_for(0.3, 4, 2000)
    assert ts == [600, 450, 300, 150]  # trailing spacing: the last step jumps from t0/k to x0
    full = timesteps_for(1.0, 50, 2000)
    assert len(full) == 50 and full[0] == 1999 and len(set(full)) == 50
    assert all(a > b for a, b in zip(full, full[1:])) and full[-1] > 0


@pytest.mark.parametrize("strength,steps", [(0.0, 4), (1.5, 4), (0.5, 0), (0.001, 10)])
def test_timesteps_for_rejects(strength, steps):
    with pytest.raises(ValueError):
        timesteps_for(strength, steps, 2000)


def test_ddim_with_exact_x0_lands_on_x0():
    """eta = 0 DDIM with a denoiser that knows x0 returns x0 from any start (Song et al. eq. 12)."""
    x0 = torch.randn(2, 1, 6, 5, generator=torch.Generator().manual_seed(1))
    d = CountingDenoiser(lambda x, t, cond: x0)
    out = ddim_sample(d, torch.randn(2, 1, 6, 5), timesteps_for(0.7, 6, 2000), cond=None)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)


def test_lr_start_starts_at_noised_init():
    """x_t0 = sqrt(abar) x0_init + sqrt(1-abar) eps, eps drawn from the generator."""
    seen = {}

    def grab(x, t, cond):
        seen.setdefault("x", x.clone())
        return torch.zeros_like(x)

    d = CountingDenoiser(grab)
    init = torch.full((1, 1, 64, 64), 2.0)
    lr_start(d, init, cond=None, steps=2, strength=0.3, generator=torch.Generator().manual_seed(3))
    a = ABAR[600].item()
    eps = torch.randn((1, 1, 64, 64), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(seen["x"], a**0.5 * init + (1 - a) ** 0.5 * eps)


def test_seed_determinism():
    def run(seed, eta=0.0):
        d = CountingDenoiser(toy_denoise)
        g = torch.Generator().manual_seed(seed)
        return full_chain(d, (1, 1, 8, 8), cond=torch.zeros(1, 1, 8, 8), steps=5, generator=g, eta=eta)

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))
    assert torch.equal(run(7, eta=1.0), run(7, eta=1.0))
    assert not torch.equal(run(7, eta=1.0), run(7, eta=0.0))


def test_per_window_generators_split_the_batch():
    """With one generator per window, a window's noise depends only on its own generator."""
    gens = lambda *seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    both = randn((4, 1, 3, 3), gens(11, 22))  # 2 windows x 2 bands
    alone = randn((2, 1, 3, 3), gens(22))
    assert torch.equal(both[2:], alone)
    swapped = randn((4, 1, 3, 3), gens(22, 11))
    assert torch.equal(swapped[:2], both[2:]) and torch.equal(swapped[2:], both[:2])
    with pytest.raises(ValueError):
        randn((3, 1, 2, 2), gens(1, 2))
