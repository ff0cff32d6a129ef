"""Noise schedules (float64 functions), the parameterization wrapper (one `denoise(x_t, t, cond) -> x0`
contract) and the training loss.

Choices, and why:
- Schedule: NeurOp-Diff's linear betas 1e-6..1e-2 over T=2000 by default. Its tiny first betas keep
  ᾱ within 1e-3 of 1 over the first 20 steps, where super-resolution's fine detail lives, and ᾱ_T ≈ 5e-5
  makes x_T pure noise for the full-chain baseline. The cosine schedule (Nichol & Dhariwal 2021) is
  available by name; the schedule is a card entry, so a model trains and samples with the same one.
- Target: the residual over the operator's estimate, x0 = (HR - estimate) * residual_scale in
  standardized units. The estimate already carries the low frequencies and radiometry, so the
  diffusion only models the missing high-frequency detail (a narrower, zero-mean distribution: SR3's
  and ResShift's residual trick); x0 = 0 is then exactly "the operator's estimate", which is what the
  LR-start sampler noises. `residual_scale` brings that small residual to about unit variance so the
  schedule's signal-to-noise ratios mean what they say.
- Parameterization: v-prediction (Salimans & Ho 2022, v = √ᾱ·ε − √(1−ᾱ)·x0). ε-prediction turns a small
  error into a 1/√ᾱ_t-amplified x0 error at high noise (≈150× at t=T here), and x0-prediction is badly
  conditioned near t=0; v is well scaled at both ends, which matters when a sampler takes 4–10 big steps.
  eps and x0 are kept selectable in this one wrapper, never as branches inside the samplers.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

PREDICTIONS = ("v", "eps", "x0")
LOSS_NORMS = ("l1", "l2")


def linear_betas(*, steps: int = 2000, start: float = 1e-6, end: float = 1e-2) -> torch.Tensor:
    """DDPM linear schedule (Ho et al. 2020), NeurOp-Diff's range; float64 [steps]."""
    return torch.linspace(start, end, steps, dtype=torch.float64)


def cosine_betas(*, steps: int = 2000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, eq. 17); float64 [steps]."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


SCHEDULES: dict[str, Callable[..., torch.Tensor]] = {"linear": linear_betas, "cosine": cosine_betas}


def betas_for(spec: dict[str, Any]) -> torch.Tensor:
    """Betas from a {"name", "args"} schedule spec (as stored in the model card)."""
    name = spec.get("name")
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; choose one of: {', '.join(sorted(SCHEDULES))}")
    return SCHEDULES[name](**spec.get("args", {}))


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = Π_{s<=t} (1 - β_s), float64."""
    return torch.cumprod(1.0 - betas.double(), dim=0)


class Denoiser(nn.Module):
    """The one denoiser contract: forward(x_t, t, cond) -> x0_hat, whatever the net predicts (v, eps or x0)."""

    alphas_cumprod: torch.Tensor  # a buffer (set in __init__)
    net: Any  # the registered network (denoiser.UNet for "sr3_unet")

    def __init__(self, net: nn.Module, *, alphas_cumprod: torch.Tensor, prediction: str = "v"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of: {', '.join(PREDICTIONS)}")
        self.net = net
        self.prediction = prediction
        # Derived from the card's schedule, not stored in the weights: it can never drift from the card.
        self.register_buffer("alphas_cumprod", alphas_cumprod.double(), persistent=False)

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def coefficients(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(√ᾱ_t, √(1−ᾱ_t)) as [N,1,1,1] in like's dtype (computed in float64)."""
        abar = self.alphas_cumprod[t.to(self.alphas_cumprod.device)].to(like.device)
        shape = (-1,) + (1,) * (like.dim() - 1)
        return abar.sqrt().view(shape).to(like.dtype), (1 - abar).sqrt().view(shape).to(like.dtype)

    def _timesteps(self, t: torch.Tensor | int, n: int, device: torch.device) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.long, device=device)
        return t.expand(n) if t.dim() == 0 else t

    def net_output(self, x_t: torch.Tensor, t: torch.Tensor | int, cond: Any) -> torch.Tensor:
        """The raw network prediction (float32), its noise level given as t/T in [0, 1)."""
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        return self.net(x_t, t.float() / self.num_timesteps, cond).float()

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | int, cond: Any) -> torch.Tensor:
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        out = self.net_output(x_t, t, cond)
        a, b = self.coefficients(t, x_t)
        if self.prediction == "v":
            return a * x_t - b * out
        if self.prediction == "eps":
            return (x_t - b * out) / a
        return out

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the net is trained to output for (x0, noise, t)."""
        a, b = self.coefficients(t, x0)
        return {"v": a * noise - b * x0, "eps": noise, "x0": x0}[self.prediction]


def q_sample(denoiser: Denoiser, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Forward process x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (Ho et al. 2020, eq. 4)."""
    a, b = denoiser.coefficients(t, x0)
    return a * x0 + b * noise


def sample_timesteps(
    n: int, num_timesteps: int, *, generator: Optional[torch.Generator] = None, device=None, max_fraction: float = 1.0
) -> torch.Tensor:
    """Uniform training timesteps [n] in [0, ceil(max_fraction * T)): max_fraction < 1 trains the denoiser only
    in the low-noise regime the LR-start sampler visits (t <= strength * T), not the whole chain."""
    if not 0.0 < max_fraction <= 1.0:
        raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction}")
    high = max(1, min(num_timesteps, math.ceil(max_fraction * num_timesteps)))
    g_device = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=g_device).to(device)


TRAIN_STARTS = ("truth", "estimate")


def diffusion_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    cond: Any,
    t: torch.Tensor,
    noise: torch.Tensor,
    *,
    norm: str = "l1",
    noised: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean |net(x_t, t) − target| (L1 as NeurOp-Diff; "l2" = the DDPM simple loss) on the chosen parameterization.

    noised: what x_t is made from (default x0, the DDPM forward process). The LR-start sampler noises the
    operator's estimate, residual 0, not the truth: training with noised = 0 shows the net exactly the input
    its first sampler step gets (x_t = √(1−ᾱ_t)·ε), instead of a noised truth it never sees at inference."""
    x_t = q_sample(denoiser, x0 if noised is None else noised, t, noise)
    out = denoiser.net_output(x_t, t, cond)
    target = denoiser.target(x0, noise, t)
    if norm == "l1":
        return F.l1_loss(out, target)
    if norm == "l2":
        return F.mse_loss(out, target)
    raise ValueError(f"unknown loss norm {norm!r}; choose l1 or l2")
