"""The operator's inference path (row blocks, one sample at a time) computes what its whole-window path does."""

from __future__ import annotations

import pytest
import torch

from rssr_cli.backends import bundled_model_paths
from rssr_cli.model.checkpoint import load_model
from rssr_cli.model.operator import NeuralOperatorPrior
from rssr_cli.model.resample import bicubic_at

from model_helpers import hr_grid, tiny_model

torch.set_num_threads(1)

SHAPES = [  # (operator args, LR h, LR w, scale, batch)
    (dict(enc_width=8, enc_blocks=1, width=8, attn_layers=1, heads=2, feat_channels=4), 9, 11, 2.0, 2),
    (dict(enc_width=16, enc_blocks=2, width=48, attn_layers=2, heads=4, feat_channels=16), 23, 19, 4.5, 1),
    (dict(in_channels=3, enc_width=8, enc_blocks=1, width=16, attn_layers=3, heads=2, feat_channels=4), 12, 13, 1.7, 2),
    (dict(enc_width=8, enc_blocks=1, width=12, attn_layers=2, heads=3, feat_channels=2), 5, 7, 8.0, 3),
]


def random_operator(args: dict, seed: int = 0) -> NeuralOperatorPrior:
    torch.manual_seed(seed)
    op = NeuralOperatorPrior(**args).eval()
    with torch.no_grad():
        for p in op.parameters():  # away from the init (LayerNorm's gamma 1, beta 0) so every term is exercised
            p.normal_(0.0, 0.3)
    return op


@pytest.mark.parametrize("args, h, w, scale, batch", SHAPES)
def test_blocked_inference_equals_the_whole_window_path(args, h, w, scale, batch):
    op = random_operator(args)
    lr = torch.randn(batch, op.in_channels, h, w)
    ys, xs, cell = hr_grid(h, w, scale, batch=batch)
    whole = op(lr, ys, xs, cell)  # autograd on: the whole-window path training uses
    with torch.no_grad():
        blocked = op(lr, ys, xs, cell)
        feat = op.encoder(lr)
        one_row_blocks = op.forward_blocked(feat, ys, xs, cell, op.in_channels + op.feat_channels, block_tokens=1)
    assert blocked.estimate.shape == whole.estimate.shape and blocked.features.shape == whole.features.shape
    assert (blocked.estimate - whole.estimate).abs().max() < 1e-4
    assert (blocked.features - whole.features).abs().max() < 1e-4
    whole_residual = whole.estimate - bicubic_at(lr, ys, xs)
    assert (one_row_blocks[:, : op.in_channels] - whole_residual).abs().max() < 1e-4
    assert (one_row_blocks[:, op.in_channels :] - whole.features).abs().max() < 1e-4


def test_estimate_only_skips_the_feature_map():
    op = random_operator(SHAPES[1][0])
    lr = torch.randn(1, 1, 10, 9)
    ys, xs, cell = hr_grid(10, 9, 3.3)
    with torch.no_grad():
        full = op(lr, ys, xs, cell)
        only = op(lr, ys, xs, cell, features=False)
    assert only.features.shape[1] == 0
    assert torch.allclose(only.estimate, full.estimate, atol=1e-5)


def test_prior_only_sample_equals_the_whole_window_path():
    model = tiny_model()
    lr = torch.rand(2, 3, 11, 10)
    ys, xs, cell = hr_grid(11, 10, 4.5, batch=2)
    with torch.no_grad():
        blocked = model.sample(lr, ys, xs, cell, mode="prior")
    with torch.enable_grad():
        whole = model.sample(lr, ys, xs, cell, mode="prior")
    assert (blocked - whole).abs().max() < 1e-4


@pytest.mark.shipped_model  # about the shipped model itself (conftest's guard)
def test_shipped_weights_load_and_give_the_same_estimate():
    path = next((p for p in bundled_model_paths() if p.is_file()), None)
    if path is None:
        pytest.skip("no bundled model")
    model = load_model(path)
    lr = torch.rand(1, 1, 9, 8)
    ys, xs, cell = hr_grid(9, 8, 4.5)
    with torch.no_grad():
        blocked = model.sample(lr, ys, xs, cell, mode="prior")
    with torch.enable_grad():
        whole = model.sample(lr, ys, xs, cell, mode="prior")
    assert (blocked - whole).abs().max() < 1e-4
