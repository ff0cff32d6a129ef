"""The full model: NeurOp-Diff operator prior (Xu et al. 2025) + Miao et al.'s prior pyramid + a conditional
UNet that diffuses the residual over the operator's estimate, sampled with the LR-start sampler.

Band rule (also written in the model card): a model with in_channels = 1 treats every band on its own —
a [B, C, h, w] window becomes B*C single-band samples — so one model serves 1, 3, 4 and 13 bands; a model
with in_channels = C > 1 takes exactly C bands together; any other band count is a CheckpointError.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, NamedTuple, Optional

import torch
from torch import nn

from rssr_cli.core.errors import CheckpointError
from rssr_cli.model import prior_features as _prior_features  # noqa: F401  (registers "prior_pyramid")
from rssr_cli.model.denoiser import Condition, pad_to_multiple
from rssr_cli.model.deviation_shape import DeviationShaper
from rssr_cli.model.diffusion import (
    PREDICTIONS,
    TRAIN_STARTS,
    Denoiser,
    alphas_cumprod,
    betas_for,
    diffusion_loss,
    sample_timesteps,
)
from rssr_cli.model.error_head import ErrorHead, error_nll
from rssr_cli.model.normalize import Stats, destandardize, standardize
from rssr_cli.model.null_space import NullSpaceProjection
from rssr_cli.model.operator import NeuralOperatorPrior, PriorOutput
from rssr_cli.model.registry import build, register
from rssr_cli.model.resshift import (
    ResShiftDenoiser,
    chain_from_spec,
    local_error_variance,
    resshift_loss,
    resshift_sample,
    resshift_start,
)
from rssr_cli.model.samplers import DEFAULT_SAMPLER, Callback, Generators, full_chain, lr_start, randn
from rssr_cli.model.self_ensemble import self_ensemble

register("neurop_operator")(NeuralOperatorPrior)

ERROR_HEAD = "head"  # sampler.local_error: the v0 map is the card's error head's (error_head.py), not the power law

BAND_RULE_SINGLE = "independent: every band is super-resolved on its own by the single-band model (any band count)"
BAND_RULE_JOINT = "joint: the model takes exactly {c} bands together, in the training band order"

# Residual std (HR - bicubic, in LR-standardized units) measured on sample_data's Sentinel-2 crop:
# ~0.26 at x2, ~0.55 at x4, ~0.83 at x8. Scaling by 2 puts the diffusion target near unit variance.
DEFAULT_RESIDUAL_SCALE = 2.0

DEFAULT_SPEC: dict[str, Any] = {
    "operator": {
        "name": "neurop_operator",
        "args": {
            "in_channels": 1,
            "enc_width": 48,
            "enc_blocks": 6,
            "width": 48,
            "attn_layers": 2,
            "heads": 4,
            "feat_channels": 16,
        },
    },
    "prior_features": {"name": "prior_pyramid", "args": {"widths": [16, 32, 64]}},
    "denoiser": {"name": "sr3_unet", "args": {"base": 32, "mults": [1, 2, 4], "blocks": 1, "mid_blocks": 2}},
    "diffusion": {
        "schedule": {"name": "linear", "args": {"steps": 2000, "start": 1e-6, "end": 1e-2}},
        "prediction": "v",
        "loss": "l1",
        "residual_scale": DEFAULT_RESIDUAL_SCALE,
    },
    "sampler": dict(DEFAULT_SAMPLER),
}

TINY_SPEC: dict[str, Any] = {
    "operator": {
        "name": "neurop_operator",
        "args": {
            "in_channels": 1,
            "enc_width": 8,
            "enc_blocks": 1,
            "width": 8,
            "attn_layers": 1,
            "heads": 2,
            "feat_channels": 4,
        },
    },
    "prior_features": {"name": "prior_pyramid", "args": {"widths": [8, 8]}},
    "denoiser": {"name": "sr3_unet", "args": {"base": 8, "mults": [1, 2], "blocks": 1, "mid_blocks": 1}},
    "diffusion": copy.deepcopy(DEFAULT_SPEC["diffusion"]),
    "sampler": {"steps": 4, "strength": 0.4},  # a test preset's own choice: more steps, more noise to check
}


class _Windows(NamedTuple):
    """What every draw of one window batch shares, built once by SRModel.sample_draws (band-folded rows, `bands` rows
    per window)."""

    estimate: torch.Tensor  # the operator's, model units
    stats: Stats
    cond: Condition
    bands: int
    nyquist: torch.Tensor  # [rows]: each row's LR Nyquist in cycles per HR pixel
    correction: float | torch.Tensor  # _variance_correction's v0
    projection: Optional[NullSpaceProjection]  # _null_space's, applied to a chain's residual after `shaper`
    shaper: Optional[DeviationShaper]  # _deviation_shaper's
    base: torch.Tensor  # the estimate in the input's units: what a chain's residual is added to
    offset: Optional[torch.Tensor]  # _range_correction's, added after the residual


def band_rule(in_channels: int) -> str:
    return BAND_RULE_SINGLE if in_channels == 1 else BAND_RULE_JOINT.format(c=in_channels)


class SRModel(nn.Module):
    """Operator prior once per window, then k denoiser steps on the residual (DESIGN.md data flow)."""

    operator: NeuralOperatorPrior
    prior_features: _prior_features.PriorFeatures
    denoiser: Denoiser | ResShiftDenoiser
    error_head: Optional[ErrorHead]  # how wrong the prior is, per pixel (error_head.py); only where the spec has one
    card: dict[str, Any]  # set by checkpoint.load_model

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec = copy.deepcopy(spec)
        self.operator = build(spec["operator"])
        c = int(self.operator.in_channels)
        self.prior_features = build(spec["prior_features"], in_channels=c + int(self.operator.feat_channels))
        net = build(spec["denoiser"], channels=c, prior_widths=list(self.prior_features.widths))
        self._set_diffusion(net, spec["diffusion"])
        self.error_head = None
        if spec.get("error_head"):
            self.error_head = build(spec["error_head"], feat_channels=int(self.operator.feat_channels))
        self.loss_norm = spec["diffusion"].get("loss", "l1")
        self.sampler_defaults = dict(spec.get("sampler", DEFAULT_SAMPLER))

    def _set_diffusion(self, net: nn.Module, diff: dict[str, Any]) -> None:
        """The denoiser wrapper the card's process asks for, around `net`: "ddpm" (the DDPM chain, its residual in the
        LR window's standardized units) or "resshift" (residual shifting, its residual in model units times ONE global
        scale: resshift.py)."""
        self.process = diff.get("process", "ddpm")
        try:
            if self.process == "resshift":
                self.denoiser = ResShiftDenoiser(net, chain_from_spec(diff))
            elif self.process == "ddpm":
                abar = alphas_cumprod(betas_for(diff["schedule"]))
                self.denoiser = Denoiser(net, alphas_cumprod=abar, prediction=diff.get("prediction", "v"))
            else:
                raise ValueError(f"unknown process {self.process!r}")
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"bad diffusion spec in the model card: {exc}") from None
        self.residual_scale = float(diff.get("residual_scale", 1.0))

    def set_resshift(
        self, *, chain_steps: int, kappa: float, residual_scale: float, variance_correction: float = 1.0
    ) -> None:
        """Switch the denoiser to the residual-shifting process (the UNet's weights kept): the card's diffusion
        section and the sampler's default (the whole chain) follow."""
        diff = {
            "process": "resshift",
            "chain_steps": int(chain_steps),
            "kappa": float(kappa),
            "eta_last": 0.999,
            "power": 0.3,
            "residual_scale": float(residual_scale),
            "loss": "l2",
        }
        self._set_diffusion(self.denoiser.net, diff)
        self.spec["diffusion"] = diff
        self.loss_norm = "l2"
        self.sampler_defaults = {
            "steps": int(chain_steps),
            "strength": 1.0,
            "variance_correction": float(variance_correction),
        }
        self.spec["sampler"] = dict(self.sampler_defaults)

    def adopt_chain(self, diffusion: Mapping[str, Any], variance_correction: float = 1.0) -> None:
        """Give a model without a chain the residual-shifting chain a card's or state's `diffusion` section names
        (a chain trained on this model's UNet); nothing for any other section or a model that has a chain."""
        if diffusion.get("process") == "resshift" and self.process != "resshift":
            self.set_resshift(
                chain_steps=diffusion["chain_steps"],
                kappa=diffusion["kappa"],
                residual_scale=diffusion["residual_scale"],
                variance_correction=variance_correction,
            )

    def add_error_head(self, width: int = 32) -> None:
        """A new (untrained) error head, in the module and in the spec the card is written from."""
        spec = {"name": "error_head", "args": {"width": int(width)}}
        self.error_head = build(spec, feat_channels=int(self.operator.feat_channels))
        self.spec["error_head"] = spec

    @property
    def in_channels(self) -> int:
        return int(self.operator.in_channels)

    # --- bands -------------------------------------------------------------------------------------
    def fold_bands(self, lr: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor):
        """Apply the band rule: [B,C,h,w] -> [B*C,1,h,w] (band-major within a window) for a single-band model."""
        c = lr.shape[1]
        if c == self.in_channels:
            return lr, ys, xs, cell
        if self.in_channels != 1:
            raise CheckpointError(f"the model takes exactly {self.in_channels} bands, the input has {c}")
        b = lr.shape[0]
        lr = lr.reshape(b * c, 1, *lr.shape[-2:])
        return lr, ys.repeat_interleave(c, 0), xs.repeat_interleave(c, 0), cell.repeat_interleave(c, 0)

    def _unfold(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        return x.reshape(batch, -1, *x.shape[-2:])

    # --- the two stages ----------------------------------------------------------------------------
    def prior(
        self,
        lr: torch.Tensor,
        ys: torch.Tensor,
        xs: torch.Tensor,
        cell: torch.Tensor,
        stats: Optional[Stats] = None,
        *,
        features: bool = True,
    ) -> tuple[PriorOutput, Stats]:
        """Standardize the (band-folded) window and run the operator once; outputs in standardized units.

        stats: per-window-and-band (mean, std), [B, C, 1, 1] each, instead of the window's own (normalize.py).
        features=False: the estimate only (a prior-only run needs no feature map)."""
        b, c = lr.shape[:2]
        lr, ys, xs, cell = self.fold_bands(lr, ys, xs, cell)
        if stats is not None and lr.shape[0] != b:  # folded: bands became samples
            stats = Stats(stats.mean.reshape(b * c, 1, 1, 1), stats.std.reshape(b * c, 1, 1, 1))
        z, stats = standardize(lr.float(), stats)
        return self.operator(z, ys.float(), xs.float(), cell.float(), features=features), stats

    def condition(self, prior: PriorOutput) -> Condition:
        """Pad, build the prior pyramid and every block's modulation: once per window, reused at every step."""
        unet = self.denoiser.net
        estimate = pad_to_multiple(prior.estimate, unet.multiple)
        features = pad_to_multiple(prior.features, unet.multiple)
        return unet.condition(estimate, self.prior_features(estimate, features), size=tuple(prior.estimate.shape[-2:]))

    # --- inference ---------------------------------------------------------------------------------
    def sample(
        self,
        lr: torch.Tensor,
        ys: torch.Tensor,
        xs: torch.Tensor,
        cell: torch.Tensor,
        *,
        steps: Optional[int] = None,
        strength: Optional[float] = None,
        mode: str = "diffusion",
        generator: Generators = None,
        callback: Callback = None,
        stats: Optional[Stats] = None,
        tta: bool = False,
    ) -> torch.Tensor:
        """HR [B,C,H,W] in lr's units. strength < 1: LR-start sampler; strength = 1: full chain from noise.

        mode="prior" (or steps=0) returns the operator's estimate alone. `generator` is one Generator or one
        per window (B of them): each window's noise is drawn from its own generator only.
        tta: average over the 8 flips/transposes of the window (self_ensemble.py; 8x the cost).
        """
        if mode not in ("diffusion", "prior"):
            raise ValueError(f"unknown mode {mode!r}; choose diffusion or prior")
        if tta:
            options = dict(
                steps=steps, strength=strength, mode=mode, generator=generator, callback=callback, stats=stats
            )
            return self_ensemble(lambda *window: self.sample(*window, **options), lr, ys, xs, cell)  # type: ignore[arg-type]
        return self.sample_draws(
            lr,
            ys,
            xs,
            cell,
            1,
            steps=steps,
            strength=strength,
            mode=mode,
            generator=generator,
            callback=callback,
            stats=stats,
        )[0]

    def sample_draws(
        self,
        lr: torch.Tensor,
        ys: torch.Tensor,
        xs: torch.Tensor,
        cell: torch.Tensor,
        n_samples: int,
        *,
        steps: Optional[int] = None,
        strength: Optional[float] = None,
        mode: str = "diffusion",
        generator: Generators = None,
        callback: Callback = None,
        stats: Optional[Stats] = None,
    ) -> list[torch.Tensor]:
        """n_samples draws of `sample` (no self-ensemble) for one window batch: the operator, the prior pyramid and the
        blocks' modulation run once and every draw reuses them; the generators advance from draw to draw, so the
        draws are those of n_samples calls to `sample`."""
        steps = int(self.sampler_defaults["steps"] if steps is None else steps)
        strength = float(self.sampler_defaults["strength"] if strength is None else strength)
        batch = lr.shape[0]
        prior_only = mode == "prior" or steps == 0
        prior, stats = self.prior(lr, ys, xs, cell, stats, features=not prior_only)
        estimate = prior.estimate.float()
        if prior_only:
            return [self._unfold(destandardize(estimate, stats), batch)] * n_samples
        cond = self.condition(prior)
        bands = estimate.shape[0] // batch
        # each folded row's LR Nyquist in cycles per HR pixel (cell: LR pixels per HR pixel, y and x)
        nyquist = (0.5 * cell.float().min(dim=1).values).repeat_interleave(bands)
        projection = self._null_space(ys, xs, cell, (lr.shape[-2], lr.shape[-1]))
        base = destandardize(estimate, stats)
        windows = _Windows(
            estimate,
            stats,
            cond,
            bands,
            nyquist,
            self._variance_correction(prior, stats, cell),
            projection,
            self._deviation_shaper(estimate.shape, nyquist),
            base,
            self._range_correction(base, lr, projection),
        )
        return [
            self._unfold(self._draw(windows, steps, strength, generator, callback), batch) for _ in range(n_samples)
        ]

    def _draw(
        self, windows: _Windows, steps: int, strength: float, generator: Generators, callback: Callback
    ) -> torch.Tensor:
        """One draw of the card's chain around the estimate of `windows` (band-folded rows, the input's units)."""
        if self.process == "resshift":
            return self._resshift_sample(windows, steps, generator, callback)
        estimate, stats, cond = windows.estimate, windows.stats, windows.cond
        assert isinstance(self.denoiser, Denoiser)
        if strength >= 1.0:
            residual = full_chain(
                self.denoiser, estimate.shape, cond=cond, steps=steps, generator=generator, callback=callback
            )
        else:
            x0_init = torch.zeros_like(estimate)  # residual 0 = the operator's estimate itself
            residual = lr_start(
                self.denoiser,
                x0_init,
                cond=cond,
                steps=steps,
                strength=strength,
                generator=generator,
                callback=callback,
            )
        return destandardize(estimate + residual.float() / self.residual_scale, stats)

    def _resshift_sample(
        self, windows: _Windows, steps: int, generator: Generators, callback: Callback
    ) -> torch.Tensor:
        """One draw of the chain from the noised estimate, `steps` entries of it (strided), added to `windows.base`,
        then `windows.offset`. The noise of a window's rows correlates by the card's band_correlation; `nyquist` serves
        the card's correction_tilt (resshift.tilted_noise); the drawn residual gets the card's deviation_gain
        (deviation_shape.py) and is then kept out of what the input sees (null_space.py)."""
        assert isinstance(self.denoiser, ResShiftDenoiser)
        w = windows
        chain = self.denoiser.chain
        chain = chain.strided(min(steps, len(chain)))
        correlation = float(self.sampler_defaults.get("band_correlation", 0.0))
        r_T = resshift_start(
            w.estimate.shape,
            chain,
            generator=generator,
            device=w.estimate.device,
            bands=w.bands,
            band_correlation=correlation,
        )
        r0 = resshift_sample(
            self.denoiser,
            r_T,
            chain,
            cond=w.cond,
            generator=generator,
            callback=callback,
            variance_correction=w.correction,
            bands=w.bands,
            band_correlation=correlation,
            correction_tilt=float(self.sampler_defaults.get("correction_tilt", 0.0)),
            nyquist=w.nyquist,
        )
        if w.shaper is not None:  # the draw's deviation given the prior error's spectrum
            r0 = w.shaper(r0)
        if w.projection is not None:  # one projection per window: a band-folded window's rows become its channels
            r0 = w.projection(r0.reshape(r0.shape[0] // w.bands, -1, *r0.shape[-2:])).reshape(r0.shape)
        draw = w.base + r0.float() / self.residual_scale
        return draw if w.offset is None else draw + w.offset

    def _range_correction(
        self, estimate: torch.Tensor, lr: torch.Tensor, projection: Optional[NullSpaceProjection]
    ) -> Optional[torch.Tensor]:
        """w A⁺(y - A m) (the card's range_correction w; null_space.py): the share of the prior's own inconsistency with
        its input that every draw puts back, band-folded like `estimate` (m, the input's units; lr: y, [B, C, h, w]);
        None without a projection or with w = 0. The same for every draw of these windows."""
        weight = float(self.sampler_defaults.get("range_correction", 0.0))
        if projection is None or weight <= 0:
            return None
        m = estimate.reshape(lr.shape[0], -1, *estimate.shape[-2:])
        gap = lr.to(m.device).double() - projection.seen(m)
        return (weight * projection.lift(gap)).to(estimate.dtype).reshape(estimate.shape)

    def _variance_correction(self, prior: PriorOutput, stats: Stats, cell: torch.Tensor) -> float | torch.Tensor:
        """The sampler's v0: the card's number, or that number times the prior's expected squared error at each pixel,
        in residual units (the residual is in the input's units times the global scale: r = (HR - estimate) *
        residual_scale). The expected error is the error head's (sampler.local_error = "head"; cell: per window, folded
        by error_log_variance), raised to 1 + head_contrast (> 0 widens its spread between places: the head is a
        regression, smoother than the error it predicts), or, with a local_exponent > 0, the power law's
        (resshift.local_error_variance)."""
        v0 = float(self.sampler_defaults.get("variance_correction", 0.0))
        exponent = float(self.sampler_defaults.get("local_exponent", 0.0))
        if self.process != "resshift" or v0 <= 0:
            return v0
        estimate = prior.estimate.float()
        if self.sampler_defaults.get("local_error") == ERROR_HEAD:
            if self.error_head is None:
                raise CheckpointError("the card's sampler asks for the error head (local_error: head); it has none")
            log_variance = self.error_log_variance(prior, cell)
            expected = torch.exp(log_variance) * stats.std.float() ** 2 * self.residual_scale**2
            contrast = float(self.sampler_defaults.get("head_contrast", 0.0))
            # in residual units (typically ~1 by the global scale), so the power does not depend on the window's std
            return v0 * (expected ** (1.0 + contrast) if contrast > 0 else expected)
        if exponent <= 0:
            return v0
        expected = local_error_variance(
            destandardize(estimate, stats),
            exponent=exponent,
            log_scale=float(self.sampler_defaults.get("local_log_scale", 0.0)),
        )
        return v0 * expected * self.residual_scale**2

    def _null_space(
        self, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor, lr_size: tuple[int, int]
    ) -> Optional[NullSpaceProjection]:
        """The card's `null_space` (a degradation's name, null_space.KERNELS) as the projection of these windows (one
        per window, shared by its bands); None where the card names none or the model has no residual-shifting chain."""
        kind = self.sampler_defaults.get("null_space") or ""
        if self.process != "resshift" or not kind:
            return None
        return NullSpaceProjection(str(kind), ys, xs, cell.float(), lr_size)

    def _deviation_shaper(self, shape: torch.Size, nyquist: torch.Tensor) -> Optional[DeviationShaper]:
        """The card's `deviation_gain` as the filter of these windows' band-folded residuals (`shape`, rows whose LR
        Nyquists are `nyquist`); None where the card has none or the model has no residual-shifting chain."""
        gains = self.sampler_defaults.get("deviation_gain")
        if self.process != "resshift" or not gains:
            return None
        return DeviationShaper(gains, shape, nyquist)

    def sample_spread(self, lr, ys, xs, cell, *, n_samples: int, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel mean and sample standard deviation (ddof 1: an unbiased variance, as `evaluate --samples` bar 7
        measures the spread) of n_samples >= 2 draws (an uncertainty map); the generators advance."""
        if n_samples < 2:
            raise ValueError(f"a spread needs at least 2 samples, got {n_samples}")
        if kwargs.pop("tta", False):  # the self-ensemble averages over 8 views per draw: one draw at a time
            draws = torch.stack([self.sample(lr, ys, xs, cell, tta=True, **kwargs).float() for _ in range(n_samples)])
        else:
            draws = torch.stack([d.float() for d in self.sample_draws(lr, ys, xs, cell, n_samples, **kwargs)])
        return draws.mean(0), draws.std(0, correction=1)

    def error_log_variance(self, prior: PriorOutput, cell: torch.Tensor) -> torch.Tensor:
        """The error head's log E[(HR - estimate)²] for the operator's output `prior` (band-folded rows), standardized
        units; cell: per window [B, 2] or already per row (the folding repeats it for each window's rows)."""
        if self.error_head is None:
            raise ValueError("this model has no error head (add_error_head)")
        rows = prior.estimate.shape[0] // cell.shape[0]
        return self.error_head(prior.estimate, prior.features, cell.float().repeat_interleave(rows, 0)).float()

    # --- training ----------------------------------------------------------------------------------
    def error_loss(
        self, lr: torch.Tensor, hr: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor
    ) -> torch.Tensor:
        """The error head's loss (error_head.error_nll) on the prior's actual error, in the window's standardized
        units; the operator runs without gradients (it is not what this stage trains)."""
        if self.error_head is None:
            raise ValueError("this model has no error head (add_error_head)")
        with torch.no_grad():
            prior, stats = self.prior(lr, ys, xs, cell)
            estimate = prior.estimate.float()
            error = (hr.float().reshape(estimate.shape) - stats.mean) / stats.std - estimate
        return error_nll(self.error_log_variance(prior, cell), error)

    def set_objective(self, prediction: Optional[str] = None, loss: Optional[str] = None) -> None:
        """Switch what the denoiser predicts and its loss norm, in the module and in the spec the card is written from
        (e.g. v -> x0 when fine-tuning for the LR-start regime); None keeps the current one."""
        if prediction is not None:
            if not isinstance(self.denoiser, Denoiser):
                raise ValueError("a residual-shifting model always predicts r0")
            if prediction not in PREDICTIONS:
                raise ValueError(f"unknown prediction {prediction!r}; choose one of: {', '.join(PREDICTIONS)}")
            self.denoiser.prediction = prediction
            self.spec["diffusion"]["prediction"] = prediction
        if loss is not None:
            self.loss_norm = loss
            self.spec["diffusion"]["loss"] = loss

    def losses(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor,
        ys: torch.Tensor,
        xs: torch.Tensor,
        cell: torch.Tensor,
        *,
        generator: Optional[torch.Generator] = None,
        t: Optional[torch.Tensor] = None,
        noise: Optional[torch.Tensor] = None,
        t_max_fraction: float = 1.0,
        start: str = "truth",
    ) -> dict[str, torch.Tensor]:
        """{"prior": L1(estimate, HR), "diffusion": denoiser loss on the residual}, both in LR-standardized units.

        start: what the denoiser's x_t is noised from: "truth" (the DDPM forward process) or "estimate" (residual 0,
        what the LR-start sampler noises; diffusion.diffusion_loss says why).
        The residual target uses the estimate detached (the target must not chase the operator), while the
        condition is not detached, so the operator's features also learn from the diffusion loss.
        """
        if start not in TRAIN_STARTS:
            raise ValueError(f"unknown start {start!r}; choose one of: {', '.join(TRAIN_STARTS)}")
        prior, stats = self.prior(lr, ys, xs, cell)
        hr = hr.float().reshape(prior.estimate.shape)  # same band folding as lr
        if self.process == "resshift":
            assert isinstance(self.denoiser, ResShiftDenoiser)
            r0 = (hr - destandardize(prior.estimate.detach(), stats)) * self.residual_scale  # ONE global scale
            if t is None:
                t = sample_timesteps(r0.shape[0], self.denoiser.num_timesteps, generator=generator, device=r0.device)
            if noise is None:
                noise = randn(r0.shape, generator, device=r0.device)
            diff = resshift_loss(self.denoiser, r0, self.condition(prior), t, noise, self.denoiser.chain)
            return {"prior": torch.nn.functional.l1_loss(destandardize(prior.estimate, stats), hr), "diffusion": diff}
        assert isinstance(self.denoiser, Denoiser)
        hr_z = (hr - stats.mean) / stats.std
        x0 = (hr_z - prior.estimate.detach()) * self.residual_scale
        if t is None:
            t = sample_timesteps(
                x0.shape[0],
                self.denoiser.num_timesteps,
                generator=generator,
                device=x0.device,
                max_fraction=t_max_fraction,
            )
        if noise is None:
            noise = randn(x0.shape, generator, device=x0.device)
        noised = torch.zeros_like(x0) if start == "estimate" else None
        diff = diffusion_loss(self.denoiser, x0, self.condition(prior), t, noise, norm=self.loss_norm, noised=noised)
        return {"prior": torch.nn.functional.l1_loss(prior.estimate, hr_z), "diffusion": diff}


def build_sr_model(spec: Optional[dict[str, Any]] = None) -> SRModel:
    """An untrained SRModel from a spec (default: DEFAULT_SPEC)."""
    return SRModel(copy.deepcopy(spec if spec is not None else DEFAULT_SPEC))
