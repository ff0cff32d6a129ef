"""Sampling matrices at arbitrary HR pixel centres (torch): bicubic base and 4-neighbour local-ensemble indices."""

from __future__ import annotations

import torch

from rssr_cli.geo.kernels import KEYS_A, keys_cubic


def cubic_kernel(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution (a = -0.5): kernels.keys_cubic, the classical `bicubic` backend's kernel."""
    return keys_cubic(x)


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


_TAPS = (-1.0, 0.0, 1.0, 2.0)  # the 4 input pixels around a position that Keys' kernel reaches


def cubic_taps(centers: torch.Tensor, n_in: int, a: float = KEYS_A) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 input pixels (index [..., N, 4], clamped: the border pixel repeated) and their cubic weights [..., N, 4]
    at centres [..., N] (pixel k spans [k, k+1)): cubic_matrix's weights without the dense matrix."""
    pos = centers - 0.5
    k = torch.floor(pos)[..., None] + torch.tensor(_TAPS, dtype=centers.dtype, device=centers.device)
    w = keys_cubic(pos[..., None] - k, a)
    return k.clamp(0, n_in - 1).long(), w / w.sum(-1, keepdim=True)


def bicubic_sample(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, *, a: float = KEYS_A) -> torch.Tensor:
    """Bicubic samples of x [N,C,h,w] at the separable positions ys [N,H] x xs [N,W] → [N,C,H,W]: bicubic_at's values
    (the same kernel and border rule) by gathering 4 taps per axis, so a whole band costs 8 products per pixel instead
    of two dense matrix products (the guided sharpener resamples scenes of millions of pixels). `a`: Keys' parameter
    (a model may have been trained on another member of the family, sharpen.model.SHARPENER_CUBIC_A)."""
    out = []
    for n in range(x.shape[0]):
        iy, wy = cubic_taps(ys[n].to(torch.float64), x.shape[-2], a)
        ix, wx = cubic_taps(xs[n].to(torch.float64), x.shape[-1], a)
        wy, wx = wy.to(x.dtype), wx.to(x.dtype)
        rows = wy[:, 0, None] * x[n][:, iy[:, 0], :]  # [C, H, w]
        for t in range(1, len(_TAPS)):
            rows = rows + wy[:, t, None] * x[n][:, iy[:, t], :]
        cols = wx[:, 0] * rows[:, :, ix[:, 0]]  # [C, H, W]
        for t in range(1, len(_TAPS)):
            cols = cols + wx[:, t] * rows[:, :, ix[:, t]]
        out.append(cols)
    return torch.stack(out)


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
