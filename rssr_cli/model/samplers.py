"""Samplers as plain functions of (denoise, x, timesteps): the step count is the length of the schedule
passed, so NFE = len(timesteps) is visible and testable.

`denoise(x_t, t, cond) -> x0_hat` is the one contract (diffusion.Denoiser); it exposes the float64
`alphas_cumprod` it was trained with. Randomness comes only from `generator`: None, one
torch.Generator, or a sequence of them that splits the batch into equal consecutive groups (one per
window), so a window's noise depends on its own seed only, not on what else is in the batch.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Union

import torch

# The sampler settings for a model whose card names none, and for new models: the shipped model's
# (models/aerial.json). steps 0 = the operator's estimate alone: no LR-start setting measured so far beats it
# (BENCHMARKS.md, issue 14), so the default is the cheapest setting that is not worse; `--steps K` runs the
# denoiser from the noised estimate at `strength` t0/T.
DEFAULT_SAMPLER: dict[str, Any] = {"steps": 0, "strength": 0.1}
# What training validates a denoiser with when the card's default is the prior alone (steps 0).
DENOISER_VALIDATION_STEPS = 1

Generators = Union[None, torch.Generator, Sequence[torch.Generator]]
Callback = Optional[Callable[[dict[str, Any]], None]]


def randn(shape: Sequence[int], generator: Generators, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise; with a list of generators, generator k fills rows [k*n/K, (k+1)*n/K)."""
    gens = [generator] if generator is None or isinstance(generator, torch.Generator) else list(generator)
    n = shape[0]
    if not gens or n % len(gens):
        raise ValueError(f"batch of {n} cannot be split evenly between {len(gens)} generators")
    rows = (n // len(gens), *shape[1:])
    # Draw on the generator's own device (CPU generators give the same noise whatever device computes).
    parts = [torch.randn(rows, generator=g, device=g.device if g is not None else device) for g in gens]
    return torch.cat(parts).to(device=device, dtype=dtype)


def timesteps_for(strength: float, steps: int, num_timesteps: int) -> list[int]:
    """`steps` descending timesteps evenly spaced ("trailing") from t0 = strength·T down to just above 0.

    The last step jumps from t0/steps straight to x0, so no evaluation is spent at ᾱ≈1.
    strength = 1 starts at t = T-1 (pure noise: the full chain).
    """
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t0 = min(num_timesteps - 1, round(strength * num_timesteps))
    if t0 < steps:
        raise ValueError(f"strength {strength} gives t0={t0} < steps={steps}; raise strength or lower steps")
    return [round(t0 - i * t0 / steps) for i in range(steps)]


def ddim_sample(
    denoise: Callable[..., torch.Tensor],
    x: torch.Tensor,
    timesteps: Sequence[int],
    *,
    cond: Any,
    alphas_cumprod: Optional[torch.Tensor] = None,
    eta: float = 0.0,
    generator: Generators = None,
    callback: Callback = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) from x at timesteps[0] down to x0; one denoiser call per timestep."""
    abar = (
        (alphas_cumprod if alphas_cumprod is not None else getattr(denoise, "alphas_cumprod")).detach().double().cpu()
    )
    ts = [int(t) for t in timesteps]
    for i, t in enumerate(ts):
        a_t = float(abar[t])
        a_prev = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0 = denoise(x, t_batch, cond).to(x.dtype)
        eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1.0 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * randn(x.shape, generator, device=x.device, dtype=x.dtype)
        if callback is not None:
            callback({"x": x, "i": i, "t": t, "denoised": x0})
    return x


def full_chain(
    denoise: Callable[..., torch.Tensor],
    shape: Sequence[int],
    *,
    cond: Any,
    steps: int,
    generator: Generators = None,
    eta: float = 0.0,
    callback: Callback = None,
) -> torch.Tensor:
    """Baseline: DDIM from pure noise x_T ~ N(0, I) with `steps` evaluations (NeurOp-Diff's inference)."""
    abar = getattr(denoise, "alphas_cumprod")  # the schedule the denoiser was trained with
    x = randn(shape, generator, device=abar.device)
    ts = timesteps_for(1.0, steps, abar.shape[0])
    return ddim_sample(denoise, x, ts, cond=cond, eta=eta, generator=generator, callback=callback)


def lr_start(
    denoise: Callable[..., torch.Tensor],
    x0_init: torch.Tensor,
    *,
    cond: Any,
    steps: int,
    strength: float,
    generator: Generators = None,
    eta: float = 0.0,
    callback: Callback = None,
) -> torch.Tensor:
    """Miao et al.'s efficient sampler (as SDEdit/CCDF): x_t0 = √ᾱ_t0·x0_init + √(1−ᾱ_t0)·ε, then `steps` DDIM steps."""
    abar = getattr(denoise, "alphas_cumprod")  # the schedule the denoiser was trained with
    ts = timesteps_for(strength, steps, abar.shape[0])
    a0 = float(abar[ts[0]])
    eps = randn(x0_init.shape, generator, device=x0_init.device, dtype=x0_init.dtype)
    x = math.sqrt(a0) * x0_init + math.sqrt(1.0 - a0) * eps
    return ddim_sample(denoise, x, ts, cond=cond, eta=eta, generator=generator, callback=callback)
