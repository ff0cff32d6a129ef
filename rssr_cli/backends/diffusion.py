"""The `diffusion` SR backend: the operator-guided diffusion model behind the SRBackend interface.

Requests of identical shapes run as one batch; each request draws its noise from its own generator,
seeded from request.seed, so a window's output depends on its seed only, not on batch composition or
order (no batch-coupled layers in the model: GroupNorm/LayerNorm, per-sample attention).
"""

from __future__ import annotations

import copy
import logging
import os
from collections import defaultdict
from contextlib import nullcontext
from typing import Any, Optional, Sequence

import numpy as np
import torch

from rssr_cli.backends import NO_MODEL_HINT, check_sampler_options, default_model_path
from rssr_cli.backends.base import SRRequest
from rssr_cli.core.errors import CheckpointError, UsageError
from rssr_cli.core.threads import cpu_threads
from rssr_cli.model.checkpoint import check_bands, load_model, model_id
from rssr_cli.model.device import AUTOCAST_DTYPES, resolve_device, resolve_precision
from rssr_cli.model.normalize import Stats
from rssr_cli.model.samplers import timesteps_for
from rssr_cli.model.shipped_models import resolve_model

log = logging.getLogger(__name__)

PRECISIONS = AUTOCAST_DTYPES  # model.device: the one table of precisions
MODES = ("diffusion", "prior")


def _cpu_threads(threads: Optional[int]) -> None:
    """--threads, else OMP_NUM_THREADS, else every available core (threads.py); applied at every backend build,
    so a Dask worker started with OMP_NUM_THREADS=1 stays single-threaded."""
    torch.set_num_threads(cpu_threads(threads))


MAX_FORWARD_PIXELS = 2_000_000


def _stats_of(request: SRRequest) -> np.ndarray:
    """[bands, 2] (mean, std) to standardize with: the request's scene statistics, else the window's own."""
    if request.stats is not None:
        return np.asarray(request.stats, dtype=np.float32)
    lr = request.lr.astype(np.float64)
    return np.stack([lr.mean(axis=(-2, -1)), lr.std(axis=(-2, -1))], axis=-1).astype(np.float32)


class DiffusionBackend:
    """SRBackend over a saved SRModel (operator prior + LR-start diffusion)."""

    name = "diffusion"

    def __init__(
        self,
        *,
        model: Optional[str | os.PathLike] = None,
        device: str = "auto",
        precision: str = "auto",
        steps: Optional[int] = None,
        strength: Optional[float] = None,
        mode: str = "diffusion",
        batch_size: Optional[int] = None,
        threads: Optional[int] = None,
        tta: bool = False,
        style: Optional[str] = None,
        samples: int = 1,
    ):
        # Checked before the model is found and loaded: a bad value is a usage error whatever the model.
        check_sampler_options(steps, strength, style, samples)
        path = resolve_model(model) if model is not None else default_model_path()  # a shipped model's name or a path
        if not path.with_suffix(".safetensors").is_file() and not path.is_file():
            raise CheckpointError(f"no diffusion model at {path}; {NO_MODEL_HINT}")
        self.device = resolve_device(device)
        precision = resolve_precision(precision, self.device)
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        if batch_size is not None and batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {batch_size}")
        if self.device.type == "cpu":
            _cpu_threads(threads)
        self.model = load_model(path, device=self.device)
        self.precision, self.mode, self.batch_size, self.tta = precision, mode, batch_size, bool(tta)
        self.steps = int(self.model.sampler_defaults["steps"] if steps is None else steps)
        self.strength = float(self.model.sampler_defaults["strength"] if strength is None else strength)
        self.samples = int(samples)
        if style is not None:
            self._apply_style(style, steps)
        self._check_sampler()
        log.info(
            "diffusion backend: %s on %s, %s, steps=%d strength=%g",
            model_id(self.model),
            self.device,
            precision,
            self.steps,
            self.strength,
        )

    def _apply_style(self, style: str, steps: Optional[int]) -> None:
        """--mode faithful: the prior alone (the posterior mean, best PSNR); --mode realistic: one draw of the model's
        chain (all of it unless --steps says fewer). A model without a trained chain has no realistic mode."""
        if style == "faithful":
            if steps:
                raise UsageError("--mode faithful is the prior alone: it takes no --steps")
            self.mode, self.steps = "prior", 0
            return
        if self.model.process != "resshift":
            raise UsageError(
                f"--mode realistic needs a model with a trained residual-shifting chain; {model_id(self.model)} has none "
                "(its diffusion stage does not sample the posterior: README, 'Modes')"
            )
        self.mode = "diffusion"
        self.steps = int(steps) if steps else self.model.denoiser.num_timesteps

    @property
    def style(self) -> str:
        return "realistic" if self.mode == "diffusion" and self.steps > 0 else "faithful"

    def _check_sampler(self) -> None:
        if self.samples > 1 and self.style != "realistic":
            raise UsageError("--samples K averages K samples of the chain: it needs --mode realistic")
        if self.mode == "diffusion" and self.steps > 0 and self.model.process == "resshift":
            chain = self.model.denoiser.num_timesteps  # the chain starts at the noised estimate: no strength to choose
            if self.steps > chain:
                raise UsageError(f"steps must be at most the model's chain length ({chain}), got {self.steps}")
        elif self.mode == "diffusion" and self.steps > 0:
            try:
                timesteps_for(self.strength, self.steps, self.model.denoiser.num_timesteps)
            except ValueError as exc:
                raise UsageError(str(exc)) from None

    def variant(
        self,
        *,
        steps: Optional[int] = None,
        strength: Optional[float] = None,
        mode: Optional[str] = None,
        tta: Optional[bool] = None,
    ) -> "DiffusionBackend":
        """The same loaded model with other sampler settings (no reload): prior vs k steps vs full chain side by side."""
        if mode is not None and mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        if steps is not None and steps < 0:
            raise UsageError(f"steps must be >= 0, got {steps}")
        other = copy.copy(self)
        other.steps = self.steps if steps is None else int(steps)
        other.strength = self.strength if strength is None else float(strength)
        other.mode = self.mode if mode is None else mode
        other.tta = self.tta if tta is None else bool(tta)
        other.samples = self.samples if other.mode == "diffusion" and other.steps > 0 else 1
        other._check_sampler()
        return other

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()

    @property
    def writes_spread(self) -> bool:
        """--samples K >= 2: each window's K draws give its mean and their per-pixel spread (SpreadBackend)."""
        return self.samples >= 2

    def _run(self, batch: list[SRRequest]) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
        dev, f32 = self.device, torch.float32
        lr = torch.from_numpy(np.stack([r.lr for r in batch]).astype(np.float32, copy=False)).to(dev)
        ys = torch.tensor(np.stack([r.grid.centers_y() for r in batch]), dtype=f32, device=dev)
        xs = torch.tensor(np.stack([r.grid.centers_x() for r in batch]), dtype=f32, device=dev)
        cell = torch.tensor([[r.grid.dy, r.grid.dx] for r in batch], dtype=f32, device=dev)
        generators = [torch.Generator().manual_seed(int(r.seed)) for r in batch]
        stats = None
        if any(r.stats is not None for r in batch):  # scene statistics: tile-independent standardization
            given = torch.from_numpy(np.stack([_stats_of(r) for r in batch]))[..., None, None].to(dev)
            stats = Stats(given[:, :, 0], given[:, :, 1])
        options: dict[str, Any] = dict(
            steps=self.steps, strength=self.strength, mode=self.mode, generator=generators, stats=stats, tta=self.tta
        )
        spread: Optional[torch.Tensor] = None
        with torch.inference_mode(), self._autocast():
            if self.samples == 1:
                hr = self.model.sample(lr, ys, xs, cell, **options).float()
            else:  # each window's generator advances: K different samples, reproducible per window
                hr, spread = self.model.sample_spread(lr, ys, xs, cell, n_samples=self.samples, **options)
        means = [np.ascontiguousarray(o) for o in hr.float().cpu().numpy()]
        if spread is None:
            return [(m, None) for m in means]
        return [(m, np.ascontiguousarray(s)) for m, s in zip(means, spread.float().cpu().numpy())]

    def _dispatch(self, requests: Sequence[SRRequest]) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            if r.lr.ndim != 3:
                raise UsageError(f"SR request must be [bands, h, w], got shape {r.lr.shape}")
            check_bands(self.model, r.lr.shape[0])
            groups[(r.lr.shape, r.grid.height, r.grid.width)].append(i)
        results: list[Optional[tuple[np.ndarray, Optional[np.ndarray]]]] = [None] * len(requests)
        for idx in groups.values():
            # default: the caller's batch (pipeline --batch-size), capped so one forward holds at most
            # MAX_FORWARD_PIXELS HR band-pixels (activations are ~100 floats per HR pixel and band).
            shape = requests[idx[0]]
            per_request = shape.lr.shape[0] * shape.grid.height * shape.grid.width
            step = self.batch_size or max(1, min(len(idx), MAX_FORWARD_PIXELS // max(1, per_request)))
            for k in range(0, len(idx), step):
                chunk = idx[k : k + step]
                for i, out in zip(chunk, self._run([requests[i] for i in chunk])):
                    results[i] = out
        return results  # type: ignore[return-value]

    def upsample(self, requests: Sequence[SRRequest]) -> list[np.ndarray]:
        return [mean for mean, _ in self._dispatch(requests)]

    def upsample_with_spread(self, requests: Sequence[SRRequest]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mean, spread) per request: SpreadBackend's contract, for --samples K >= 2 only."""
        if not self.writes_spread:
            raise UsageError("a spread needs K >= 2 samples per window (--mode realistic --samples K)")
        return [(mean, spread) for mean, spread in self._dispatch(requests) if spread is not None]

    def provenance(self) -> dict[str, str]:
        card = getattr(self.model, "card", {}) or {}
        diffusion = self.mode == "diffusion" and self.steps > 0
        return {
            "method": "diffusion" if diffusion else "diffusion-prior",
            "model": model_id(self.model),
            "model_sha256": str(card.get("sha256", "")),
            "steps": str(self.steps if diffusion else 0),
            "strength": f"{self.strength:g}" if diffusion else "0",
            "precision": self.precision,
            **({"tta": "8"} if self.tta else {}),  # only when on: outputs made without it keep their tags
            **self._chain_tags(),
        }

    def _chain_tags(self) -> dict[str, str]:
        """A residual-shifting model's mode, chain (T, κ) and K: what decides a realistic output besides the seed."""
        if self.model.process != "resshift":
            return {}
        diffusion = self.model.spec["diffusion"]
        return {
            "mode": self.style,
            "chain_steps": str(diffusion["chain_steps"]),
            "kappa": f"{float(diffusion['kappa']):g}",
            "samples": str(self.samples if self.style == "realistic" else 1),
        }
