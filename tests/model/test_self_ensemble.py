"""Test-time self-ensemble (--tta): the 8 window transforms map the HR query grid exactly, and the ensemble is
invariant to flipping/transposing its input; the backend tags it and only when on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.windows import Window

from rssr_cli.backends import SRRequest, get_backend
from rssr_cli.geo.grid import hr_grid_for, plan_output_grid
from rssr_cli.model.checkpoint import save_model
from rssr_cli.model.operator import grid_tensors
from rssr_cli.model.resample import bicubic_at
from rssr_cli.model.self_ensemble import TRANSFORMS, forward, inverse

from model_helpers import tiny_model

torch.set_num_threads(1)


def _window(h=9, w=13, H=20, W=31):
    """An LR window (non-square) and an HR sub-grid that does not start at the window's corner."""
    lr = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    ys, xs, cell = grid_tensors(H, W, 0.7, 0.4, (h - 1.4) / H, (w - 0.9) / W, batch=2)
    return lr, ys, xs, cell


@pytest.mark.parametrize("k", TRANSFORMS)
def test_each_transform_maps_the_query_grid_exactly(k):
    # bicubic interpolation commutes with flips/transposes: transformed window + transformed grid, mapped back,
    # must be the untransformed interpolation (a wrong coordinate mapping shifts or mirrors it)
    lr, ys, xs, cell = _window()
    t_lr, t_ys, t_xs, t_cell = forward(k, lr, ys, xs, cell)
    back = inverse(k, bicubic_at(t_lr, t_ys, t_xs))
    torch.testing.assert_close(back, bicubic_at(lr, ys, xs), atol=1e-5, rtol=0)
    assert torch.equal(t_cell, cell.flip(-1) if k & 4 else cell)


def test_ensemble_is_invariant_to_the_window_orientation():
    model = tiny_model()
    lr, ys, xs, cell = _window(h=12, w=12, H=30, W=30)
    with torch.inference_mode():
        plain = model.sample(lr, ys, xs, cell, mode="prior")
        ensemble = model.sample(lr, ys, xs, cell, mode="prior", tta=True)
        flipped = model.sample(*forward(3, lr, ys, xs, cell), mode="prior", tta=True)
    assert ensemble.shape == plain.shape
    assert (ensemble - plain).abs().max() > 1e-4  # a real model is not orientation-invariant: the ensemble averages
    torch.testing.assert_close(inverse(3, flipped), ensemble, atol=1e-5, rtol=0)


def test_backend_tags_tta_only_when_on(tmp_path):
    path = save_model(tiny_model(), tmp_path / "tiny.safetensors", model_id="tiny-test")
    plain = get_backend("diffusion", model=path, device="cpu", threads=1, steps=0)
    assert "tta" not in plain.provenance()  # outputs made without it keep the tags they had
    assert get_backend("diffusion", model=path, device="cpu", threads=1, steps=0, tta=True).provenance()["tta"] == "8"
    assert plain.variant(tta=True).tta and not plain.tta
    grid = plan_output_grid(30, 40, Affine.identity(), scale=2.5)
    _, hr = hr_grid_for(Window(5, 3, 11, 9), grid)
    request = SRRequest(lr=np.random.default_rng(0).random((2, 9, 11), dtype=np.float32), grid=hr, seed=0)
    (out,) = plain.variant(tta=True).upsample([request])
    (ref,) = plain.upsample([request])
    assert out.shape == ref.shape and np.isfinite(out).all() and not np.allclose(out, ref)
