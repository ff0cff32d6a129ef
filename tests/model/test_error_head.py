"""The learned error head (model/error_head.py): what it learns, how it travels with the card, how the sampler uses
it as the chain's v0 map."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rssr_cli.core.errors import CheckpointError
from rssr_cli.model.checkpoint import load_model, save_model
from rssr_cli.model.error_head import ErrorHead, error_nll

from model_helpers import hr_grid, tiny_chain


def test_the_likelihood_is_lowest_at_the_log_of_the_mean_squared_error():
    error = torch.randn(4, 1, 40, 40, generator=torch.Generator().manual_seed(0)) * 3.0
    best = math.log(float((error[..., 8:-8, 8:-8] ** 2).mean()))
    at = {d: float(error_nll(torch.full_like(error, best + d), error)) for d in (-0.5, 0.0, 0.5)}
    assert at[0.0] < at[-0.5] and at[0.0] < at[0.5]


def test_the_head_learns_a_variance_that_its_inputs_predict():
    """Half of each patch errs with variance e^2, the other half with e^-2, and one feature channel says which:
    trained by the likelihood, the head's log variance finds both levels (the estimate alone could not tell)."""
    torch.manual_seed(0)
    head = ErrorHead(feat_channels=2, width=8, dilations=(1, 2))
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    cell = torch.full((4, 2), 0.25)
    side = torch.zeros(1, 1, 32, 32)
    side[..., 16:] = 1.0
    log_var = 4.0 * side - 2.0
    for _ in range(200):
        features = torch.cat([side.expand(4, 1, 32, 32), torch.randn(4, 1, 32, 32, generator=gen)], 1)
        error = torch.randn(4, 1, 32, 32, generator=gen) * torch.exp(0.5 * log_var)
        loss = error_nll(head(torch.zeros(4, 1, 32, 32), features, cell), error, border=4)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        features = torch.cat([side, torch.zeros(1, 1, 32, 32)], 1)
        predicted = head(torch.zeros(1, 1, 32, 32), features, cell[:1])[0, 0]
    assert float(predicted[4:-4, 4:12].mean()) == pytest.approx(-2.0, abs=0.4)
    assert float(predicted[4:-4, 20:28].mean()) == pytest.approx(2.0, abs=0.4)


def _with_head(level: float):
    """A tiny chain with an error head that predicts log variance `level` everywhere (zero weights, that bias)."""
    chain = tiny_chain()
    chain.add_error_head(width=4)
    assert chain.error_head is not None
    with torch.no_grad():
        for p in chain.error_head.parameters():
            p.zero_()
        chain.error_head.out.bias.fill_(level)
    return chain


def test_the_heads_expected_error_is_the_chains_v0_map_in_residual_units():
    chain = _with_head(math.log(0.5))
    chain.sampler_defaults.update(variance_correction=2.0, local_error="head")
    lr = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    ys, xs, cell = hr_grid(10, 10, 3.0, batch=2)
    with torch.no_grad():
        prior, stats = chain.prior(lr, ys, xs, cell)
        v0 = chain._variance_correction(prior, stats, cell.repeat_interleave(3, 0))
    assert isinstance(v0, torch.Tensor) and v0.shape == prior.estimate.shape
    expected = 2.0 * 0.5 * stats.std**2 * chain.residual_scale**2  # v0 x e^level x the window's variance, scaled
    torch.testing.assert_close(v0, expected.expand_as(v0))
    chain.sampler_defaults["local_error"] = ""  # no head asked for and no local law: one number
    with torch.no_grad():
        assert chain._variance_correction(prior, stats, cell) == 2.0


def test_head_contrast_raises_the_expected_error_in_residual_units_to_a_power():
    """v0 x E^(1 + c), E the head's expected squared residual: places where the head expects more error than a
    residual unit get relatively more, quieter places less; c = 0 is the head as it is."""
    lr = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    ys, xs, cell = hr_grid(10, 10, 3.0, batch=2)
    chain = _with_head(math.log(0.5))
    chain.sampler_defaults.update(variance_correction=2.0, local_error="head")
    with torch.no_grad():
        prior, stats = chain.prior(lr, ys, xs, cell)
        plain = chain._variance_correction(prior, stats, cell.repeat_interleave(3, 0))
        chain.sampler_defaults["head_contrast"] = 0.5
        contrasted = chain._variance_correction(prior, stats, cell.repeat_interleave(3, 0))
    assert isinstance(plain, torch.Tensor) and isinstance(contrasted, torch.Tensor)
    torch.testing.assert_close(contrasted, 2.0 * (plain / 2.0) ** 1.5)
    spread = [float(torch.log(v).std()) for v in (plain, contrasted)]  # the windows' stds differ: E varies
    assert spread[0] > 0 and spread[1] == pytest.approx(1.5 * spread[0], rel=1e-4)


def test_a_larger_expected_error_spreads_the_draws_more():
    lr = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(3)) * 0.5 + 0.25
    ys, xs, cell = hr_grid(10, 10, 4.0)
    spreads = []
    for level in (-6.0, 0.0):
        chain = _with_head(level)
        chain.sampler_defaults.update(variance_correction=1.0, local_error="head")
        with torch.no_grad():
            a, b = chain.sample_draws(lr, ys, xs, cell, 2, generator=torch.Generator().manual_seed(0))
        spreads.append(float((a - b).pow(2).mean()))
    assert spreads[1] > 1.3 * spreads[0]  # the chain's own step noise is the same in both


def test_the_head_travels_with_the_card_and_a_card_must_have_the_head_it_names(tmp_path):
    chain = _with_head(0.3)
    chain.sampler_defaults.update(variance_correction=1.0, local_error="head")
    save_model(chain, tmp_path / "m")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.error_head is not None and loaded.sampler_defaults["local_error"] == "head"
    for name, tensor in chain.error_head.state_dict().items():
        torch.testing.assert_close(loaded.error_head.state_dict()[name], tensor)
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["spec"]["error_head"] == {"name": "error_head", "args": {"width": 4}}

    def broken(edit) -> None:
        bad = json.loads((tmp_path / "m.json").read_text())
        edit(bad)
        (tmp_path / "m.json").write_text(json.dumps(bad))

    broken(lambda c: c["sampler"].update(local_error="oracle"))
    with pytest.raises(CheckpointError, match="local_error"):
        load_model(tmp_path / "m.safetensors")
    broken(lambda c: c["sampler"].update(local_error="head", head_contrast=3.0))
    with pytest.raises(CheckpointError, match="head_contrast"):
        load_model(tmp_path / "m.safetensors")
    broken(lambda c: c["sampler"].update(local_error="", head_contrast=1.0))
    with pytest.raises(CheckpointError, match="head_contrast"):
        load_model(tmp_path / "m.safetensors")
    plain = tiny_chain()
    plain.sampler_defaults["local_error"] = "head"
    with pytest.raises(CheckpointError, match="no error_head"):
        save_model(plain, tmp_path / "n")
        load_model(tmp_path / "n.safetensors")
