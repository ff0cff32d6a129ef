"""Sampling matrices at arbitrary HR pixel centres (torch): bicubic base and 4-neighbour local-ensemble indices."""

from __future__ import annotations

import torch


def cubic_kernel(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys cubic convolution (a = -0.5, the same kernel as the classical `bicubic` backend)."""
    x = x.abs()
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def cubic_matrix(centers: torch.Tensor, n_in: int) -> torch.Tensor:
    """[B, N, n_in] bicubic weights sampling n_in LR pixels at centres [B, N] (pixel k spans [k, k+1))."""
    pos = centers - 0.5
    src = torch.arange(n_in, device=centers.device, dtype=centers.dtype)
    w = cubic_kernel(pos[..., None] - src)
    # Replicate-border: fold weights that would fall outside onto the edge pixels.
    base = torch.floor(pos)
    for tap in (-1.0, 0.0, 1.0, 2.0):
        k = base + tap
        outside_lo = k < 0
        outside_hi = k > n_in - 1
        wt = cubic_kernel(pos - k)
        w[..., 0] += torch.where(outside_lo, wt, torch.zeros_like(wt))
        w[..., -1] += torch.where(outside_hi, wt, torch.zeros_like(wt))
    return w / w.sum(-1, keepdim=True)


def bicubic_at(lr: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bicubic samples of lr [B,C,h,w] at the separable grid ys [B,H] x xs [B,W] → [B,C,H,W].

    Always in lr's own precision, also under a bf16 autocast: it is the bulk of the estimate (the model adds a
    residual), and bf16's 8-bit mantissa would cost ~0.4 % of every value for a negligible share of the time."""
    my = cubic_matrix(ys, lr.shape[-2]).to(lr.dtype)
    mx = cubic_matrix(xs, lr.shape[-1]).to(lr.dtype)
    with torch.autocast(lr.device.type, enabled=False):
        return torch.einsum("byh,bchw,bxw->bcyx", my, lr, mx)


def neighbours(centers: torch.Tensor, n_in: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The two nearest LR pixel centres along one axis: (index [B,N], offset [B,N], linear weight [B,N]).

    offset = centre - LR pixel centre, in LR pixels; the two weights are the 1-D areas of LIIF's local
    ensemble (bilinear), so the 2-D product over both axes gives the 4-neighbour area weights.
    """
    pos = centers - 0.5
    lo = torch.floor(pos)
    frac = pos - lo
    out = []
    for k, w in ((lo, 1.0 - frac), (lo + 1.0, frac)):
        idx = k.clamp(0, n_in - 1)
        out.append((idx.long(), centers - (idx + 0.5), w))
    return out
