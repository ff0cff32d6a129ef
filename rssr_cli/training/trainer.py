"""The training loop: AdamW + warm-up/cosine, gradient clipping, EMA, CSV log, periodic validation and checkpoints."""

from __future__ import annotations

import contextlib
import copy
import csv
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from rssr_cli.degradation import sensor_degradation
from rssr_cli.degradation.degrade import degrade, quantize
from rssr_cli.model.device import AUTOCAST_DTYPES, resolve_device, resolve_precision
from rssr_cli.model.normalize import destandardize, standardize
from rssr_cli.model.operator import NeuralOperatorPrior, grid_tensors
from rssr_cli.model.resample import bicubic_at
from rssr_cli.scoring.metrics import psnr, shave
from rssr_cli.training.data import BatchSource, PatchBatch, TrainImage
from rssr_cli.training.state import load_training_state, save_training_state

log = logging.getLogger(__name__)

NOISE_SEED_OFFSET = 21  # the loss-noise generator's seed is the run's seed + this (not the patch sampler's stream)


@dataclass
class TrainConfig:
    steps: int = 20000
    batch_size: int = 32
    lr: float = 4e-4
    weight_decay: float = 1e-4
    warmup: int = 300
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    val_every: int = 500
    save_every: int = 250
    seed: int = 0
    threads: int = 0  # 0: all cores
    device: str = "cpu"  # resolved already ("cpu", "cuda", "cuda:1"); see resolve_training_device
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of the forward pass (the optimizer state stays fp32)
    channels_last: bool = False  # convolutions in channels-last memory format (faster with bf16 on CPU)


def resolve_training_device(device: str, precision: str) -> tuple[str, str]:
    """(device, precision) for training, validated: model.device's resolver (the one for inference too)."""
    resolved = resolve_device(device)
    return str(resolved), resolve_precision(precision, resolved, training=True)


def autocast_for(device: str, precision: str):
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def batch_to(batch: PatchBatch, device: torch.device | str) -> PatchBatch:
    return PatchBatch(*(t.to(device, non_blocking=True) for t in batch))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 5% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


def prior_loss(operator: NeuralOperatorPrior, batch: PatchBatch) -> torch.Tensor:
    """L1 between the operator's HR estimate and the HR block, in the LR window's standardized units."""
    z, stats = standardize(batch.lr)
    est = operator(z, batch.ys, batch.xs, batch.cell).estimate
    return (destandardize(est, stats) - batch.hr).abs().mean()


def _psnr(a: torch.Tensor, b: torch.Tensor, border: int) -> float:
    """metrics.psnr (data range 1) after shaving `border` px, on tensors."""
    return psnr(shave(a.cpu().numpy(), border), shave(b.cpu().numpy(), border), 1.0)


def bicubic_lowres(hr: torch.Tensor, scale: float, levels: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The classical protocol: anti-aliased bicubic down-sampling to round(H / scale), quantized like the source."""
    H, W = hr.shape[-2:]
    return degrade(hr, (round(H / scale), round(W / scale)), quantize_levels=levels), hr


def sensor_lowres(hr: torch.Tensor, scale: float, levels: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The sensor protocol (sensor_degradation.EVALUATION: Gaussian MTF 0.3 + the s x s box) at an integer scale;
    the HR is cropped to a multiple of it, so the LR grid is the HR's exactly."""
    s = int(round(scale))
    h, w = hr.shape[-2] // s, hr.shape[-1] // s
    hr = hr[..., : h * s, : w * s]
    return sensor_degradation.degrade(hr, s, (h, w)), hr


LOWRES = {"bicubic": bicubic_lowres, "sentinel2": sensor_lowres}


def protocol_window(img: TrainImage, scale: float, degradation: str = "bicubic", device=None):
    """One image as one window of the protocol (LOWRES): its LR [1, C, h, w] and that window's HR grid (ys, xs, cell)
    on `device`, and the HR it is judged against [1, C, H, W] (on the CPU)."""
    lr, hr = LOWRES[degradation](torch.from_numpy(img.pixels)[None], scale, img.quantize_levels)
    H, W = hr.shape[-2:]
    grid = grid_tensors(H, W, 0.0, 0.0, lr.shape[-2] / H, lr.shape[-1] / W, device=device)
    return lr.to(device), hr, grid


@torch.no_grad()
def validate_prior(
    operator: NeuralOperatorPrior, images: list[TrainImage], scale: float, degradation: str = "bicubic"
) -> tuple[float, float]:
    """Mean PSNR (model, bicubic) at `scale` over whole images, bands as single-band samples; uint8 sources are scored
    on uint8-quantized outputs. `degradation` names the LR protocol (LOWRES)."""
    operator.eval()
    dev = module_device(operator)
    ours, base = [], []
    for img in images:
        lr, hr = LOWRES[degradation](
            torch.from_numpy(img.pixels)[:, None], scale, img.quantize_levels
        )  # bands as batch
        H, W = hr.shape[-2:]
        h, w = lr.shape[-2:]
        lr, hr = lr.to(dev), hr.to(dev)
        ys, xs, cell = grid_tensors(H, W, 0.0, 0.0, h / H, w / W, batch=hr.shape[0], device=dev)
        z, stats = standardize(lr)
        sr = destandardize(operator(z, ys, xs, cell).estimate, stats)
        bic = bicubic_at(lr, ys, xs)
        border = math.ceil(scale)
        if img.quantize_levels:
            sr, bic = quantize(sr, img.quantize_levels), quantize(bic, img.quantize_levels)
        ours.append(_psnr(sr, hr, border))
        base.append(_psnr(bic, hr, border))
    operator.train()
    return float(np.mean(ours)), float(np.mean(base))


@dataclass
class Trainer:
    """Optimizes `module` on batches from `sampler` with `loss_fn`; writes <out>/last.* and a CSV log."""

    module: nn.Module
    loss_fn: Callable[[Any, PatchBatch, torch.Generator], torch.Tensor]  # (module, batch, noise generator) -> loss
    sampler: BatchSource
    out_dir: Path
    cfg: TrainConfig
    validate: Optional[Callable[[Any], dict[str, float]]] = None  # (EMA module) -> scores
    progress: Optional[Callable[[int, dict[str, float]], None]] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.module.to(self.cfg.device)
        if (
            self.cfg.channels_last
        ):  # the convolutions' weights; activations follow them (same values, faster bf16 kernels)
            self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (torch's stubs omit it)
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.ema = copy.deepcopy(self.module).requires_grad_(False)
        # the loss's own randomness (a chain's timesteps and noise): a CPU generator, saved with the state, so a
        # resumed run draws what an uninterrupted one would (the global RNG is reseeded by every start)
        self.noise = torch.Generator().manual_seed(NOISE_SEED_OFFSET + self.cfg.seed)
        self.step = 0
        self.best: Optional[float] = None

    def resume(self, path: Path) -> None:
        meta = load_training_state(path, model=self.module, ema=self.ema, opt=self.opt)
        self.step = int(meta["step"])
        self.best = meta.get("best")
        rng = meta.get("sampler_rng")
        if rng is not None and hasattr(self.sampler, "set_rng_state"):
            self.sampler.set_rng_state(rng["numpy"], torch.tensor(rng["torch"], dtype=torch.uint8))
        noise = meta.get("noise_rng")  # absent in states saved before it was kept: those go on from the seed's stream
        if noise is not None:
            self.noise.set_state(torch.tensor(noise, dtype=torch.uint8))

    def _save(self, name: str) -> None:
        meta = {"step": self.step, "best": self.best, "config": asdict(self.cfg), **self.meta}
        if hasattr(self.sampler, "rng_state"):
            numpy_state, torch_state = self.sampler.rng_state()
            meta["sampler_rng"] = {"numpy": numpy_state, "torch": torch_state.tolist()}
        meta["noise_rng"] = self.noise.get_state().tolist()
        save_training_state(self.out_dir / name, model=self.module, ema=self.ema, opt=self.opt, meta=meta)

    def run(self) -> None:
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        log_path = self.out_dir / "log.csv"
        new_log = not log_path.exists()
        with open(log_path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_log:
                writer.writerow(["step", "loss", "lr", "it_per_s", "val"])
            t0, losses = time.time(), []
            while self.step < self.cfg.steps:
                for g in self.opt.param_groups:
                    g["lr"] = lr_at(self.step, self.cfg)
                batch = batch_to(self.sampler.batch(self.cfg.batch_size), self.cfg.device)
                with autocast_for(self.cfg.device, self.cfg.precision):
                    loss = self.loss_fn(self.module, batch, self.noise).float()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
                self.opt.step()
                ema_update(self.ema, self.module, self.cfg.ema_decay if self.step > self.cfg.warmup else 0.0)
                self.step += 1
                losses.append(loss.item())
                val = ""
                if self.validate and self.step % self.cfg.val_every == 0:
                    scores = self.validate(self.ema)
                    val = ";".join(f"{k}={v:.4f}" for k, v in scores.items())
                    key = scores.get("score")
                    if key is not None and (self.best is None or key > self.best):
                        self.best = key
                        self._save("best")
                if self.step % 50 == 0 or val or self.step == self.cfg.steps:
                    rate = len(losses) / (time.time() - t0)
                    writer.writerow(
                        [self.step, f"{np.mean(losses):.6f}", f"{lr_at(self.step, self.cfg):.2e}", f"{rate:.2f}", val]
                    )
                    fh.flush()
                    if self.progress:
                        self.progress(self.step, {"loss": float(np.mean(losses)), "it/s": rate})
                    t0, losses = time.time(), []
                if self.step % self.cfg.save_every == 0:
                    self._save("last")
            self._save("last")
