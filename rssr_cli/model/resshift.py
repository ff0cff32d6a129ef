"""Residual shifting (ResShift: Yue, Wang, Loy; NeurIPS 2023, eqs. 1-7) in residual coordinates around the
operator's estimate: a forward process whose end is the noised estimate by construction.

The residual r0 = (HR - estimate) * scale uses ONE global scale (a card value), never the window's own
statistics, so a noise level means the same strength in every window. With a schedule 0 < η_1 < ... < η_T ≈ 1:
- forward marginal  q(r_t | r0)       = N((1 - η_t) r0, κ² η_t I)         (ResShift eq. 2 with the LR term = 0)
- transition        q(r_t | r_{t-1})  = N(r_{t-1} - α_t r0, κ² α_t I),     α_t = η_t - η_{t-1}
- posterior         q(r_s | r_t, r0)  = N((η_s/η_t) r_t + (1 - η_s/η_t) r0, κ² η_s (η_t - η_s)/η_t I), any s < t
  (eq. 7 for s = t-1; the noise is a random walk in η, so a strided chain keeps the same form).
At t = T the state is κ√η_T ε plus 0.1 % of r0: the operator's estimate with noise, which is exactly where an
LR-start sampler begins, so training and sampling agree at every step. The network predicts r0
(`model(r_t, t, cond) -> r0_hat`, t the 0-based index into the schedule); `resshift_sample` draws from the
chain's posterior with that prediction, one network call per schedule entry (NFE = len(schedule)).
κ is the perception-distortion knob: the start noise and every step's injected noise scale with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch.nn import functional as F

from rssr_cli.model.samplers import Callback, Generators, randn

Model = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
Variance = float | torch.Tensor


@dataclass(frozen=True)
class ResShiftSchedule:
    """The training chain's η_t (float64, increasing) and κ, or a strided part of it (`timesteps` index the training chain)."""

    etas: torch.Tensor  # [T] float64, η at each entry of `timesteps`
    kappa: float
    timesteps: tuple[int, ...]  # 0-based indices into the training chain, increasing

    def __post_init__(self) -> None:
        if self.etas.dim() != 1 or self.etas.numel() != len(self.timesteps) or not self.timesteps:
            raise ValueError("a schedule needs one η per timestep, and at least one")
        if self.kappa <= 0:
            raise ValueError(f"kappa must be > 0, got {self.kappa}")
        if bool((self.etas <= 0).any()) or bool((self.etas > 1).any()) or bool((self.etas[1:] <= self.etas[:-1]).any()):
            raise ValueError("η must increase strictly within (0, 1]")

    def __len__(self) -> int:
        return len(self.timesteps)

    def strided(self, steps: int) -> "ResShiftSchedule":
        """`steps` entries evenly spread over this schedule, the first and the last (η_T) kept: fewer network calls."""
        if not 1 <= steps <= len(self):
            raise ValueError(f"steps must be in [1, {len(self)}], got {steps}")
        last = len(self) - 1
        picks = (
            [last] if steps == 1 else [round(i * last / (steps - 1)) for i in range(steps)]
        )  # spacing >= 1: distinct
        return ResShiftSchedule(self.etas[picks], self.kappa, tuple(self.timesteps[i] for i in picks))


def resshift_etas(
    steps: int = 15,
    *,
    kappa: float = 2.0,
    eta_first: Optional[float] = None,
    eta_last: float = 0.999,
    power: float = 0.3,
) -> torch.Tensor:
    """ResShift's schedule (eq. 9): √η_t = √η_1 · b0^β_t, β_t = ((t-1)/(T-1))^p (T-1), b0 = (η_T/η_1)^(1/(2(T-1)));
    η_1 = min((0.04/κ)², 0.001) by default (the first state's noise below a quantisation step). float64 [steps]."""
    if steps < 2:
        raise ValueError(f"a residual-shifting chain needs >= 2 steps, got {steps}")
    first = min((0.04 / kappa) ** 2, 0.001) if eta_first is None else float(eta_first)
    if not 0.0 < first < eta_last <= 1.0:
        raise ValueError(f"need 0 < eta_first < eta_last <= 1, got {first}, {eta_last}")
    t = torch.arange(
        steps, dtype=torch.float64, device="cpu"
    )  # a schedule is a CPU constant (also under a meta-device build)
    beta = (t / (steps - 1)) ** power * (steps - 1)
    b0 = math.exp(math.log(eta_last / first) / (2 * (steps - 1)))
    return (math.sqrt(first) * b0**beta) ** 2


def resshift_schedule(steps: int = 15, *, kappa: float = 2.0, **eta_args: float) -> ResShiftSchedule:
    """The training chain: `steps` η values (resshift_etas) with κ, timesteps 0..steps-1."""
    return ResShiftSchedule(resshift_etas(steps, kappa=kappa, **eta_args), float(kappa), tuple(range(steps)))


def to_residual(hr: torch.Tensor, estimate: torch.Tensor, *, scale: float) -> torch.Tensor:
    """r0 = (HR - estimate) * scale: one global scale for every window (never the window's std)."""
    return (hr - estimate) * scale


def from_residual(r: torch.Tensor, estimate: torch.Tensor, *, scale: float) -> torch.Tensor:
    """The image a residual stands for: estimate + r / scale."""
    return estimate + r / scale


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.device, like.dtype).view((-1,) + (1,) * (like.dim() - 1))


def resshift_q_sample(
    r0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: ResShiftSchedule
) -> torch.Tensor:
    """Forward marginal r_t = (1 - η_t) r0 + κ √η_t ε; t [N] indexes the schedule's entries (the training chain's:
    its entries are its timesteps)."""
    eta = _per_sample(schedule.etas[t.cpu()], r0)
    return (1 - eta) * r0 + schedule.kappa * eta.sqrt() * noise


def resshift_posterior(
    r_t: torch.Tensor, r0: torch.Tensor, eta_t: float, eta_s: float, kappa: float
) -> tuple[torch.Tensor, float]:
    """q(r_s | r_t, r0) for η_s < η_t (η_s = 0: the point r0): (mean, std)."""
    if not 0.0 <= eta_s < eta_t:
        raise ValueError(f"need 0 <= eta_s < eta_t, got {eta_s}, {eta_t}")
    ratio = eta_s / eta_t
    return ratio * r_t + (1 - ratio) * r0, kappa * math.sqrt(eta_s * (eta_t - eta_s) / eta_t)


def gaussian_posterior_variance(eta: float, kappa: float, prior_variance: Variance) -> Variance:
    """Var(r0 | r_t) if r0 ~ N(0, prior_variance) per pixel: what an MSE-trained r̂0 = E[r0 | r_t] leaves out. The
    global residual scale makes the residual's variance about 1, so prior_variance = 1 is the unconditional one; a
    tensor is a per-pixel prior variance (local_error_variance)."""
    noise = kappa**2 * eta
    if isinstance(prior_variance, torch.Tensor):
        return prior_variance * noise / ((1.0 - eta) ** 2 * prior_variance + noise).clamp_min(1e-12)
    signal = (1.0 - eta) ** 2 * prior_variance
    return prior_variance * noise / (signal + noise) if signal + noise > 0 else prior_variance


# The window over which the prior's local detail is measured (HR px, odd: centred), for local_error_variance.
LOCAL_WINDOW = 9
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def local_detail(estimate: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W]: the mean squared Laplacian of the estimate over LOCAL_WINDOW x LOCAL_WINDOW around each pixel
    (edges replicated): how much detail the prior put there, in the estimate's units squared."""
    x = estimate.float()
    lap = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), _LAPLACIAN.to(x)[None, None]) ** 2
    half = LOCAL_WINDOW // 2
    return F.avg_pool2d(F.pad(lap, (half,) * 4, mode="replicate"), LOCAL_WINDOW, stride=1)


def local_error_variance(estimate: torch.Tensor, *, exponent: float, log_scale: float) -> torch.Tensor:
    """The prior's expected squared error at each pixel, exp(log_scale) * local_detail ** exponent (the estimate's
    units squared): the residual's size varies x30 between places (a field, a roof edge) while one global v0 adds the
    same variance everywhere, so a few-step chain was under-dispersed where the prior errs and over-dispersed where it
    does not. The power law is fitted on the selection images (training/calibration.fit_local_error: log-log least
    squares over 8 x 8 blocks; the Sentinel-2 chain's prior: correlation 0.77)."""
    return math.exp(log_scale) * local_detail(estimate) ** exponent


def tilt_gain(shape: Sequence[int], tilt: float, nyquist: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] Fourier amplitude gains that make white noise of `shape` fall as f^-tilt above each row's LR
    Nyquist (`nyquist` [N], cycles per HR pixel) and as f² below it (what the input already fixes is left alone), at
    unit variance: the variance correction's draw shaped like a real residual, whose power falls with frequency where
    white noise is flat (measured: too little power just above the LR Nyquist, 2.6x too much at 0.5 cycles/px)."""
    h, w = shape[-2:]
    fy = torch.fft.fftfreq(h, device=nyquist.device, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, device=nyquist.device, dtype=torch.float64)[None, :]
    radius = (fy**2 + fx**2).sqrt()[None, None]
    knee = nyquist.to(torch.float64).clamp_min(1e-6).view(-1, 1, 1, 1)
    ratio = (radius / knee).clamp_min(1e-6)
    power = torch.where(ratio >= 1, ratio ** (-tilt), ratio**2)
    return (power / power.mean(dim=(-2, -1), keepdim=True)).sqrt()


def tilted_noise(noise: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """White noise [N, 1, H, W] filtered by tilt_gain's gains in the Fourier domain over the window (the noise is the
    window's own, so its periodic edges are no seam)."""
    return torch.fft.ifft2(torch.fft.fft2(noise.to(torch.float64)) * gain).real.to(noise.dtype)


def band_noise(
    shape: Sequence[int],
    generator: Generators,
    *,
    bands: int = 1,
    correlation: float = 0.0,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Standard normal noise for a band-folded batch (rows window by window, `bands` rows each): every row's marginal
    is N(0, 1) and the rows of one window correlate by `correlation` (1: one field shared by its bands; 0: independent).
    The network sees one band at a time, so the chain cannot learn that a real residual is largely common to the bands
    (an edge is an edge in every band); independent noise makes a draw's deviations a colour speckle the truth does
    not have, shared noise makes them luminance-like. Per band the chain is unchanged."""
    if bands <= 1 or correlation <= 0.0:
        return randn(shape, generator, device=device, dtype=dtype)
    if shape[0] % bands:
        raise ValueError(f"a batch of {shape[0]} rows is not whole windows of {bands} bands")
    shared = randn((shape[0] // bands, *shape[1:]), generator, device=device, dtype=dtype).repeat_interleave(bands, 0)
    if correlation >= 1.0:
        return shared
    own = randn(shape, generator, device=device, dtype=dtype)
    return math.sqrt(correlation) * shared + math.sqrt(1.0 - correlation) * own


def resshift_start(
    shape: Sequence[int],
    schedule: ResShiftSchedule,
    *,
    generator: Generators = None,
    device=None,
    bands: int = 1,
    band_correlation: float = 0.0,
) -> torch.Tensor:
    """r_T for sampling: κ √η_T ε, the operator's estimate noised (the (1 - η_T) r0 term, 0.1 % of r0, is unknown and
    dropped); ε correlated across a window's bands as `band_noise` says."""
    noise = band_noise(shape, generator, bands=bands, correlation=band_correlation, device=device)
    return schedule.kappa * math.sqrt(float(schedule.etas[-1])) * noise


def resshift_sample(
    model: Model,
    r_T: torch.Tensor,
    schedule: ResShiftSchedule,
    *,
    cond: Any,
    generator: Generators = None,
    callback: Callback = None,
    variance_correction: Variance = 0.0,
    bands: int = 1,
    band_correlation: float = 0.0,
    correction_tilt: float = 0.0,
    nyquist: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Ancestral sampling of the chain's posterior q(r_s | r_t, r̂0) from r_T down to r0; one model call per entry.

    variance_correction v0 > 0: each step also draws the part of r0 that the point estimate r̂0 leaves out, i.e. the
    step's variance gains (1 - η_s/η_t)² Var(r0 | r_t) under a N(0, v0) residual (gaussian_posterior_variance):
    p(r_s | r_t) = ∫ q(r_s | r_t, r0) p(r0 | r_t) dr0 has that variance, while plugging in r̂0 alone makes a few-step
    chain trained with MSE under-dispersed. 0: the plain plug-in sampler; a tensor (r's shape): v0 per pixel
    (local_error_variance in residual units). `bands`, `band_correlation`: the step noise of a band-folded batch
    (band_noise). correction_tilt > 0 (with `nyquist` [N], each row's LR Nyquist in cycles per HR pixel): the
    correction's part of the step noise is drawn on its own and shaped by tilted_noise; the chain's own part stays
    white, as trained."""
    etas = [float(e) for e in schedule.etas]
    corrected = isinstance(variance_correction, torch.Tensor) or variance_correction > 0
    tilted = corrected and correction_tilt > 0
    if tilted and nyquist is None:
        raise ValueError("a tilted correction needs each row's LR Nyquist")
    gain = tilt_gain(r_T.shape, correction_tilt, nyquist.to(r_T.device)) if tilted and nyquist is not None else None
    r = r_T

    def draw() -> torch.Tensor:
        return band_noise(r.shape, generator, bands=bands, correlation=band_correlation, device=r.device, dtype=r.dtype)

    for i in range(len(schedule) - 1, -1, -1):
        t = torch.full((r.shape[0],), schedule.timesteps[i], dtype=torch.long, device=r.device)
        r0_hat = model(r, t, cond).to(r.dtype)
        eta_s = etas[i - 1] if i > 0 else 0.0
        mean, std = resshift_posterior(r, r0_hat, etas[i], eta_s, schedule.kappa)
        missing: Variance = 0.0
        if corrected:
            missing = (1.0 - eta_s / etas[i]) ** 2 * gaussian_posterior_variance(
                etas[i], schedule.kappa, variance_correction
            )
        if gain is not None:  # the chain's own noise white, the correction's shaped, each its own draw
            r = mean + std * draw() + missing**0.5 * tilted_noise(draw(), gain)
        elif corrected or std > 0:
            r = mean + (std**2 + missing) ** 0.5 * draw()
        else:
            r = mean
        if callback is not None:
            callback({"x": r, "i": len(schedule) - 1 - i, "t": schedule.timesteps[i], "denoised": r0_hat})
    return r


def resshift_loss(
    model: Model, r0: torch.Tensor, cond: Any, t: torch.Tensor, noise: torch.Tensor, schedule: ResShiftSchedule
) -> torch.Tensor:
    """Mean squared error of the r0 prediction on the forward marginal (ResShift's training objective, eq. 8)."""
    return F.mse_loss(model(resshift_q_sample(r0, t, noise, schedule), t, cond), r0)


class ResShiftDenoiser(torch.nn.Module):
    """The chain's one network contract: forward(r_t, t, cond) -> r̂0, its noise level given to the net as t/T.
    Holds the same `net` as diffusion.Denoiser, so a DDPM model's UNet weights load into it unchanged."""

    net: Any

    def __init__(self, net: torch.nn.Module, chain: ResShiftSchedule):
        super().__init__()
        self.net = net
        self.chain = chain

    @property
    def num_timesteps(self) -> int:
        return len(self.chain)

    def forward(self, r_t: torch.Tensor, t: torch.Tensor | int, cond: Any) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.long, device=r_t.device)
        t = t.expand(r_t.shape[0]) if t.dim() == 0 else t
        return self.net(r_t, t.float() / self.num_timesteps, cond).float()


def chain_from_spec(diffusion: dict) -> ResShiftSchedule:
    """The training chain a card's `diffusion` section names ({"process": "resshift", "chain_steps", "kappa",
    optional "eta_last", "power"})."""
    return resshift_schedule(
        int(diffusion["chain_steps"]),
        kappa=float(diffusion["kappa"]),
        eta_last=float(diffusion.get("eta_last", 0.999)),
        power=float(diffusion.get("power", 0.3)),
    )
