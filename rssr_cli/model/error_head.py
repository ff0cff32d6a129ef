"""How wrong the prior is, pixel by pixel: a small learned head for the chain's variance correction (issue 21, bars
1 and 7).

The chain's v0 map is the prior's expected squared error at each pixel (resshift.gaussian_posterior_variance's
prior variance). The power law on the estimate's own local detail (resshift.local_error_variance) predicts it where
the prior drew an edge, but not where the prior smoothed everything away: held out, its predicted / actual error per
image had a log-sd of 0.56-0.6, and the spread of the draws fell as the image's error grew (a dense city's draws had
a third of its error). This head reads what the operator saw (its HR feature map, the estimate, the estimate's local
detail and the scale) and predicts log E[(HR - estimate)²] in the window's standardized units, so its figures are
the same for a bright and a dark window; it is trained by the Gaussian negative log-likelihood of the prior's
actual error (error_nll), whose minimiser is exactly log E[error² | inputs].

The head never sees the truth at inference and never changes the estimate: it only sets how far a draw may go.
Measured held out (BENCHMARKS.md, "A learned error head"): where in an image the prior errs, block correlation 0.65
-> 0.77 on both chains; the per-image level's log-sd 0.89 -> 0.59 on aerial images, unchanged on Sentinel-2 tiles.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rssr_cli.model.registry import register
from rssr_cli.model.resshift import local_detail

DETAIL_FLOOR = 1e-6  # standardized units²: log local detail of a flat window stays finite
BORDER = 8  # HR px of each training patch left out of the loss: the head's zero padding is not the scene


@register("error_head")
class ErrorHead(nn.Module):
    """[estimate, operator features, log local detail, log scale] at HR -> log expected squared error of the estimate,
    standardized units. Dilated residual convolutions: a receptive field of 35 HR px (45 with the local detail's
    window), no normalization (the level of the error is what it predicts), a bounded context (a window's result does
    not depend on the window's size)."""

    def __init__(self, *, feat_channels: int, width: int = 32, dilations: Sequence[int] = (1, 2, 4, 8, 1)):
        super().__init__()
        self.feat_channels = int(feat_channels)
        self.stem = nn.Conv2d(self.feat_channels + 3, width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(width, width, 3, padding=int(d), dilation=int(d)) for d in dilations)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, estimate: torch.Tensor, features: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """estimate [N, 1, H, W] and features [N, feat_channels, H, W] (the operator's, standardized units), cell
        [N, 2] (LR pixels per HR pixel) -> [N, 1, H, W] log E[(HR - estimate)²]."""
        estimate = estimate.float()
        detail = torch.log(local_detail(estimate) + DETAIL_FLOOR)
        log_scale = torch.log(1.0 / cell.float().min(dim=1).values).view(-1, 1, 1, 1).expand_as(estimate)
        h = F.silu(self.stem(torch.cat([estimate, features.to(estimate.dtype), detail, log_scale], dim=1)))
        for block in self.blocks:
            h = h + F.silu(block(h))
        return self.out(h)


def error_nll(log_variance: torch.Tensor, error: torch.Tensor, border: int = BORDER) -> torch.Tensor:
    """The Gaussian negative log-likelihood of `error` under N(0, exp(log_variance)) per pixel, constants dropped,
    `border` px shaved: minimised by log_variance = log E[error² | the head's inputs]."""
    if border > 0 and min(error.shape[-2:]) > 2 * border:
        shave = (..., slice(border, -border), slice(border, -border))
        log_variance, error = log_variance[shave], error[shave]
    log_variance = log_variance.float()
    return (log_variance + error.float() ** 2 * torch.exp(-log_variance)).mean()
