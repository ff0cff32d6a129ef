"""A draw's deviation shaped to the prior error's spectrum (model/deviation_shape.py) and its card key."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rssr_cli.core.errors import CheckpointError
from rssr_cli.model.checkpoint import load_model, save_model
from rssr_cli.model.deviation_shape import KNOTS, DeviationShaper, gain_field
from rssr_cli.scoring.posterior import radial_spectrum

from model_helpers import hr_grid, tiny_chain


def test_the_gain_field_is_the_knots_values_in_units_of_each_rows_nyquist():
    gains = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    field = gain_field((64, 64), gains, torch.tensor([0.125, 0.0625]))
    f = np.fft.fftfreq(64)
    for row, nyquist in enumerate((0.125, 0.0625)):
        along_x = field[row, 0, 0].numpy()
        expected = np.interp(np.abs(f) / nyquist, KNOTS, gains)  # flat beyond the end knots
        np.testing.assert_allclose(along_x, expected, atol=1e-12)
    with pytest.raises(ValueError, match="gains"):
        gain_field((8, 8), [1.0, 2.0], torch.tensor([0.25]))


def test_unit_gains_change_nothing_and_a_ring_gain_scales_that_rings_power():
    """Away from the reflect-padded edges, a gain g on every knot multiplies the ring power by g²; a gain that rises
    with frequency moves power to the top rings and leaves a window's size and finiteness alone."""
    noise = torch.randn(3, 1, 96, 96, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nyquist = torch.full((3,), 0.125)
    torch.testing.assert_close(DeviationShaper([1.0] * len(KNOTS), noise.shape, nyquist)(noise), noise)
    doubled = DeviationShaper([2.0] * len(KNOTS), noise.shape, nyquist)(noise)
    torch.testing.assert_close(doubled, 2 * noise)
    rising = DeviationShaper([0.5, 0.5, 1.0, 1.0, 3.0, 3.0], noise.shape, nyquist)(noise)
    assert rising.shape == noise.shape and torch.isfinite(rising).all()
    inner = (slice(None), 0, slice(16, 80), slice(16, 80))
    low, high = (0.125 * 1.0, 0.125 * 1.5), (0.125 * 3.5, 0.125 * 4.0)

    def ratio(band):
        shaped = np.mean([radial_spectrum(p, band, 1)[0] for p in rising[inner].numpy()])
        white = np.mean([radial_spectrum(p, band, 1)[0] for p in noise[inner].numpy()])
        return shaped / white

    assert ratio(low) == pytest.approx(0.25, rel=0.25)
    assert ratio(high) == pytest.approx(9.0, rel=0.25)


def test_the_gains_travel_with_the_card_and_shape_the_draws(tmp_path):
    chain = tiny_chain()
    chain.sampler_defaults["variance_correction"] = 1.0
    lr = torch.rand(1, chain.in_channels, 12, 12, generator=torch.Generator().manual_seed(1))
    ys, xs, cell = hr_grid(12, 12, 4.0)

    def deviation(model):
        with torch.no_grad():
            prior = model.sample(lr, ys, xs, cell, mode="prior")
            draw = model.sample_draws(lr, ys, xs, cell, 1, generator=torch.Generator().manual_seed(3))[0]
        return draw - prior

    plain = deviation(chain)
    chain.sampler_defaults["deviation_gain"] = [3.0] * len(KNOTS)
    chain.spec["sampler"] = dict(chain.sampler_defaults)
    loaded = load_model(save_model(chain, tmp_path / "shaped"))
    assert loaded.sampler_defaults["deviation_gain"] == [3.0] * len(KNOTS)
    torch.testing.assert_close(deviation(loaded), 3 * plain, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("gains", [[1.0, 2.0], [1.0] * (len(KNOTS) - 1) + [-1.0], [1.0] * 5 + ["x"], 2.0])
def test_a_malformed_deviation_gain_in_a_card_is_refused(tmp_path, gains):
    chain = tiny_chain()
    path = save_model(chain, tmp_path / "m")
    card = json.loads(path.with_suffix(".json").read_text())
    card["sampler"]["deviation_gain"] = gains
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="deviation_gain"):
        load_model(path)
