"""The chain's deviation kept out of what the input sees (range/null-space decomposition, as in DDNM: Wang et al.
2023, "Zero-shot image restoration using denoising diffusion null-space model").

A sample is the prior's estimate m plus a deviation d. Seen through the degradation D, the sample is D(m) + D(d):
whatever of d that D keeps moves the sample away from its input by exactly that much, and that part of d is error,
not detail (the prior already decided what the input shows). Projecting d onto D's null space,

    d <- d - A⁺ A d,    A⁺ = Aᵀ (A Aᵀ)⁻¹,

leaves a sample exactly as consistent with its input as the prior (D(m + d) = D(m)) and takes nothing the input could
not tell apart. The prior itself may not be consistent (a model trained on a family of blurs is judged under one
member): the sampler's range correction w (card key `range_correction`) adds w A⁺(y - A m), the range part of the
full decomposition, so with w = 1 every draw reproduces its input under D (A A⁺ = I). D is separable
(A = A_y ⊗ A_x, one matrix per axis built at the window's own HR pixel centres, so any scale and sub-pixel phase is
exact), so the projection is two small solves per window, not one of size HR x LR.
The projector is orthogonal: it never amplifies anything, however much D blurs.

The kernels are the protocol's degradations (evaluation/protocol.py), in LR pixel units:
- "bicubic": the anti-aliased bicubic downsampling (degrade.downsample): Keys' cubic over ±2 LR pixels;
- "sentinel2": the sensor family's evaluation member (sensor_degradation.EVALUATION, its own psf_weights): a Gaussian
  of MTF 0.3 at the LR Nyquist, then the LR pixel's box aggregate.
At the window's edges each kernel treats the HR pixels beyond it as the protocol's degradation does (bicubic: the
weights inside, renormalised; sentinel2: the edge pixels repeated), so a whole image run as one window is exactly as
consistent as its prior; in a scene, a window's edge is halo that blending mostly discards.
"""

from __future__ import annotations

import torch

from rssr_cli.degradation.sensor_degradation import EVALUATION_GAUSSIAN_MTF, psf_weights
from rssr_cli.geo.kernels import keys_cubic

KERNELS = ("bicubic", "sentinel2")
_RIDGE = 1e-6  # relative to the Gram matrix's mean diagonal: keeps the solve defined for nearly dependent rows


def degradation_matrix(kind: str, centres: torch.Tensor, cell: torch.Tensor, n_lr: int) -> torch.Tensor:
    """[N, n_lr, H] one axis of D: LR pixel i (spanning [i, i + 1)) as a weighted mean of the HR pixels at `centres`
    [N, H] (LR units, evenly spaced `cell` [N] apart: an output window's grid)."""
    centres = centres.double()
    cell = cell.double()
    lr_centres = torch.arange(n_lr, dtype=torch.float64, device=centres.device) + 0.5
    if kind == "bicubic":  # degrade.downsample: Keys' cubic stretched to the LR pixel, at the HR centres
        weights = keys_cubic(centres[:, None, :] - lr_centres[None, :, None])
    elif kind == "sentinel2":  # the sensor's own matrices: Gaussian on the HR pixels, then each one's box overlap
        rows = []
        for first, step in zip(centres[:, 0].tolist(), cell.tolist()):
            origin = 0.5 - first / step  # where LR pixel 0 starts, in HR pixels
            rows.append(psf_weights(n_lr, 1.0 / step, origin, centres.shape[-1], EVALUATION_GAUSSIAN_MTF))
        weights = torch.stack(rows).double().to(centres.device)
    else:
        raise ValueError(f"unknown null-space kernel {kind!r}; choose one of: {', '.join(KERNELS)}")
    return weights / weights.sum(-1, keepdim=True).clamp(min=1e-12)


def _pseudo_inverse_t(a: torch.Tensor) -> torch.Tensor:
    """[N, n_lr, H] -> (A⁺)ᵀ = (A Aᵀ)⁻¹ A; a zero row of A (an LR pixel no HR pixel reaches) gives a zero row."""
    gram = a @ a.transpose(-2, -1)
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp(min=1e-12)[:, None, None]
    empty = (a.abs().sum(-1) == 0).to(a.dtype)
    eye = torch.eye(gram.shape[-1], dtype=a.dtype, device=a.device)
    return torch.linalg.solve(gram + scale * (_RIDGE * eye + torch.diag_embed(empty)), a)


class NullSpaceProjection:
    """P = I - A⁺A for a batch of windows (separable A), built once per window batch and applied to every draw."""

    def __init__(self, kind: str, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor, lr_size: tuple[int, int]):
        """ys [N, H], xs [N, W]: the HR pixel centres in LR units; cell [N, 2]: LR pixels per HR pixel (y, x);
        lr_size: the LR window (h, w)."""
        self.ay = degradation_matrix(kind, ys, cell[:, 0], lr_size[0])
        self.ax = degradation_matrix(kind, xs, cell[:, 1], lr_size[1])
        self.py = _pseudo_inverse_t(self.ay)
        self.px = _pseudo_inverse_t(self.ax)

    def seen(self, d: torch.Tensor) -> torch.Tensor:
        """A d: [N, C, H, W] -> [N, C, h, w] (C: the window's bands, all on its one grid)."""
        return torch.einsum("nyh,nchw,nxw->ncyx", self.ay, d.double(), self.ax)

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        """A⁺ z: [N, C, h, w] -> [N, C, H, W] (float64), the least-norm HR field that D sees as z."""
        return torch.einsum("nyh,ncyx,nxw->nchw", self.py, z.double(), self.px)

    def __call__(self, d: torch.Tensor) -> torch.Tensor:
        """d - A⁺ A d, in d's dtype."""
        return (d.double() - self.lift(self.seen(d))).to(d.dtype)
