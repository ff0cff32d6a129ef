"""model/null_space.py: a chain's deviation projected out of what the input sees (issue 21, bar 6)."""

from __future__ import annotations

import pytest
import torch

from rssr_cli.degradation import sensor_degradation
from rssr_cli.degradation.degrade import downsample
from rssr_cli.model.null_space import NullSpaceProjection, degradation_matrix

from model_helpers import hr_grid, tiny_spec

DEGRADE = {
    "bicubic": lambda hr, size: downsample(hr, size),
    "sentinel2": lambda hr, size: sensor_degradation.degrade(hr, hr.shape[-1] / size[1], size),
}


@pytest.mark.parametrize("kind", sorted(DEGRADE))
@pytest.mark.parametrize("scale", [2.0, 4.0])
def test_a_projected_deviation_is_invisible_through_the_protocols_own_degradation(kind, scale):
    """The protocol's degradation (degrade.downsample / the sensor's evaluation member) of the projected deviation is
    ~0 on every LR pixel, the edges included, where the raw deviation's is not; the projection is idempotent and
    never lengthens the deviation (an orthogonal projector)."""
    torch.manual_seed(0)
    h = w = 20
    ys, xs, cell = hr_grid(h, w, scale)
    projection = NullSpaceProjection(kind, ys, xs, cell, (h, w))
    deviation = torch.randn(1, 2, int(h * scale), int(w * scale))
    projected = projection(deviation)
    size = (h, w)
    seen_before = DEGRADE[kind](deviation, size).abs().mean()
    seen_after = DEGRADE[kind](projected, size).abs().mean()
    assert seen_after < 1e-4 * seen_before
    assert torch.allclose(projection(projected), projected, atol=1e-5)
    assert projected.norm() <= deviation.norm()
    # what D cannot see is kept: a deviation at the HR Nyquist (a checkerboard) passes almost unchanged
    checker = (-1.0) ** (torch.arange(deviation.shape[-2])[:, None] + torch.arange(deviation.shape[-1]))
    checker = checker.expand_as(deviation).contiguous()
    assert (projection(checker) - checker)[..., 12:-12, 12:-12].abs().max() < 0.05


def test_one_axis_of_d_is_the_protocols_own_matrix_up_to_the_edges():
    """Every row of D is a weighted mean; on a window that is a whole image, D(x) by the matrices equals the protocol's
    degradation of x on every LR pixel, the edges included (bicubic: torch's renormalised border; sentinel2: the
    repeated edge pixels of sensor_degradation.psf_weights)."""
    torch.manual_seed(1)
    h, w, scale = 12, 9, 4.0
    ys, xs, cell = hr_grid(h, w, scale)
    hr = torch.rand(1, 1, int(h * scale), int(w * scale))
    for kind, degrade in DEGRADE.items():
        rows = degradation_matrix(kind, ys, cell[:, 0], h)
        assert torch.allclose(rows.sum(-1), torch.ones_like(rows.sum(-1)))
        seen = NullSpaceProjection(kind, ys, xs, cell, (h, w)).seen(hr).float()
        assert torch.allclose(seen, degrade(hr, (h, w)), atol=1e-5), kind


def test_a_chain_with_a_null_space_card_key_is_as_consistent_as_its_prior():
    """SRModel: with the card's sampler null_space set, a draw seen through that degradation equals the prior seen
    through it; without it, the draw's noise shows. An untrained chain draws noise alone."""
    from rssr_cli.model.sr_model import SRModel

    torch.manual_seed(0)
    chain = SRModel(tiny_spec()).eval()
    chain.set_resshift(chain_steps=4, kappa=1.0, residual_scale=20.0, variance_correction=1.0)
    lr = torch.rand(1, 3, 16, 16)
    ys, xs, cell = hr_grid(16, 16, 2.0)

    @torch.no_grad()
    def excess(null_space: str) -> float:
        chain.sampler_defaults["null_space"] = null_space
        prior = chain.sample(lr, ys, xs, cell, mode="prior")
        draw = chain.sample(lr, ys, xs, cell, generator=torch.Generator().manual_seed(0))
        seen = downsample(draw - prior, (16, 16))
        return float(seen.abs().mean() / (draw - prior).abs().mean())

    assert excess("") > 0.05
    assert excess("bicubic") < 1e-4


def test_a_window_inside_a_scene_at_a_fractional_scale_and_phase_is_projected_on_its_own_grid():
    """A window whose HR grid starts off the LR grid (y0, x0 = 0.3, 0.7 LR px) at x4.5 with a halo-like crop of the LR
    around it: the projected deviation, seen through the sensor's matrices for that grid, is ~0 on the LR pixels the
    window covers; the same holds for the self-ensemble's transformed grids (flips, transpose)."""
    from rssr_cli.model.operator import grid_tensors
    from rssr_cli.model.self_ensemble import TRANSFORMS, forward

    torch.manual_seed(3)
    h, w, scale = 14, 12, 4.5
    hh, ww = int((h - 1) * scale), int((w - 1) * scale)  # the HR window covers LR [0.3, 13.3) x [0.7, 11.7)
    ys, xs, cell = grid_tensors(hh, ww, 0.3, 0.7, 1 / scale, 1 / scale)
    plain = NullSpaceProjection("sentinel2", ys, xs, cell, (h, w))
    flipped = NullSpaceProjection("sentinel2", *forward(1, torch.zeros(1, 1, h, w), ys, xs, cell)[1:], (h, w))
    assert torch.allclose(flipped.ay, plain.ay.flip(-1, -2), atol=1e-6)  # a flip of the window is a flip of D
    for k in TRANSFORMS:
        lr_k, ys_k, xs_k, cell_k = forward(k, torch.zeros(1, 1, h, w), ys, xs, cell)
        projection = NullSpaceProjection("sentinel2", ys_k, xs_k, cell_k, tuple(lr_k.shape[-2:]))
        deviation = torch.randn(1, 1, ys_k.shape[-1], xs_k.shape[-1])
        seen = projection.seen(projection(deviation))
        assert seen.abs().max() < 1e-4 * projection.seen(deviation).abs().max(), k


def test_an_unknown_null_space_in_a_card_is_refused():
    from rssr_cli.model.checkpoint import CheckpointError
    from rssr_cli.model.validation import validate_spec

    spec = tiny_spec()
    spec["sampler"] = {"steps": 0, "strength": 0.1, "null_space": "gaussian"}
    with pytest.raises(CheckpointError, match="null_space"):
        validate_spec(spec)


@pytest.mark.parametrize("kind", sorted(DEGRADE))
def test_the_range_correction_makes_every_draw_reproduce_its_input(kind):
    """With range_correction 1 a draw seen through the card's degradation is the input itself (the prior's own gap
    to it put back); 0.5 puts back half that gap; the faithful mode (the prior) is left alone."""
    from rssr_cli.model.sr_model import SRModel

    torch.manual_seed(1)
    chain = SRModel(tiny_spec()).eval()
    chain.set_resshift(chain_steps=4, kappa=1.0, residual_scale=20.0, variance_correction=1.0)
    chain.sampler_defaults["null_space"] = kind
    lr = torch.rand(1, 3, 12, 12) * 0.5 + 0.25
    ys, xs, cell = hr_grid(12, 12, 3.0)

    @torch.no_grad()
    def gap(weight: float) -> tuple[float, float]:
        chain.sampler_defaults["range_correction"] = weight
        prior = chain.sample(lr, ys, xs, cell, mode="prior")
        draw = chain.sample(lr, ys, xs, cell, generator=torch.Generator().manual_seed(0))
        seen = NullSpaceProjection(kind, ys, xs, cell, (12, 12)).seen
        return float((seen(draw) - lr).abs().mean()), float((seen(prior) - lr).abs().mean())

    untouched, prior_gap = gap(0.0)
    assert untouched == pytest.approx(prior_gap, rel=1e-3) and prior_gap > 1e-3  # projected: the prior's own gap
    assert gap(1.0)[0] < 1e-4 * prior_gap
    assert gap(0.5)[0] == pytest.approx(0.5 * prior_gap, rel=1e-2)
    assert gap(1.0)[1] == prior_gap


def test_a_range_correction_without_its_degradation_is_refused():
    from rssr_cli.model.checkpoint import CheckpointError
    from rssr_cli.model.validation import validate_spec

    spec = tiny_spec()
    spec["sampler"] = {"steps": 0, "strength": 0.1, "range_correction": 1.0}
    with pytest.raises(CheckpointError, match="range_correction"):
        validate_spec(spec)
