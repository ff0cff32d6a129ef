"""Shared helpers for the model tests: a tiny SRModel and HR grids matching rssr_cli.geo.grid.HRGrid."""

from __future__ import annotations

import copy

import torch

from rssr_cli.model.operator import grid_tensors
from rssr_cli.model.sr_model import TINY_SPEC, SRModel


def tiny_spec(**parts) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    for part, args in parts.items():
        spec[part]["args"].update(args)
    return spec


def tiny_model(seed: int = 0, **parts) -> SRModel:
    torch.manual_seed(seed)
    model = SRModel(tiny_spec(**parts)).eval()
    # The zero-initialized output layers make an untrained denoiser output 0; perturb every weight so
    # the tests exercise real (non-trivial) sampler trajectories.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def hr_grid(h: int, w: int, scale: float, batch: int = 1):
    """ys [B,H], xs [B,W], cell [B,2] for a whole LR window of h x w at `scale` (H = round(h*s))."""
    hh, ww = max(1, round(h * scale)), max(1, round(w * scale))
    return grid_tensors(hh, ww, 0.0, 0.0, h / hh, w / ww, batch=batch)


def tiny_chain(seed: int = 2) -> SRModel:
    """A tiny residual-shifting model (4-step chain, κ = 1) whose denoiser predicts a non-zero r0: realistic draws
    that differ from the prior and from each other."""
    chain = tiny_model(seed=seed)
    chain.set_resshift(chain_steps=4, kappa=1.0, residual_scale=20.0)
    with torch.no_grad():  # set_resshift keeps the UNet; perturb it again so the chain's prediction is not 0
        for p in chain.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return chain
