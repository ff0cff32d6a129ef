"""`train(settings)`: the two training stages behind `rssr train`, ending in a loadable model + card.

Stage "prior": the neural operator alone, L1 on its HR estimate (the PSNR workhorse).
Stage "denoiser": prior pyramid + UNet on the diffusion loss with the operator FROZEN. Why frozen: the
operator is trained for fidelity; letting the diffusion loss move it on a CPU budget of minutes costs
prior PSNR (the estimate is what LR-start sampling starts from) for no measured gain, and freezing makes
each step cheaper (no operator backward). Stage "all" runs both in order.
Stage "error": the error head alone (model/error_head.py: how wrong the prior is, pixel by pixel, for the chain's
variance correction), on the Gaussian likelihood of the frozen operator's actual error; after the chain, on its own.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, cast

import numpy as np
import torch

from rssr_cli.core.errors import UsageError
from rssr_cli.core.interrupts import interruptible
from rssr_cli.degradation.degrade import degrade, quantize
from rssr_cli.geo.grid import check_scale_range
from rssr_cli.model.checkpoint import load_model, save_model
from rssr_cli.model.diffusion import LOSS_NORMS, PREDICTIONS, TRAIN_STARTS
from rssr_cli.model.error_head import error_nll
from rssr_cli.model.normalize import destandardize
from rssr_cli.model.operator import grid_tensors
from rssr_cli.model.samplers import DENOISER_VALIDATION_STEPS
from rssr_cli.model.sr_model import DEFAULT_SPEC, TINY_SPEC, SRModel, build_sr_model
from rssr_cli.model.validation import CHAIN_SAMPLER_RANGES
from rssr_cli.scoring.metrics import psnr, shave
from rssr_cli.scoring.posterior import posterior_image
from rssr_cli.training.data import PatchBatch, PatchSampler, SensorPatchSampler, TrainImage, find_images, load_images
from rssr_cli.training.pairs import MixedSampler, PairSampler, TrainPair, load_pair, read_pairs_file, validate_pairs
from rssr_cli.training.prefetch import PrefetchedBatches, Reseedable
from rssr_cli.training.state import load_ema_weights
from rssr_cli.training.trainer import (
    LOWRES,
    TrainConfig,
    Trainer,
    module_device,
    prior_loss,
    protocol_window,
    resolve_training_device,
    validate_prior,
)

log = logging.getLogger(__name__)

PRESETS = {"default": DEFAULT_SPEC, "tiny": TINY_SPEC}
STAGES = ("prior", "denoiser", "error", "all")
MAX_PSNR = 120.0  # dB: an exact validation image (MSE floor 1e-12) must not make the mean infinite
KEEP = ("last", "best")
PROCESSES = ("keep", "resshift")
RESIDUAL_SCALE_BATCHES = 16  # batches whose HR - estimate std sets a resshift model's global residual scale
POSTERIOR_VAL_SAMPLES = 2
RESSHIFT_PATCH = 64  # HR px
DEGRADATIONS = (
    "bicubic",
    "sentinel2",
)  # which EMA weights a stage ends with: the last step's, or the best-validated ones


@dataclass
class TrainSettings:
    data: list[Path]
    out: Path
    scenes: list[Path] = field(default_factory=list)
    scene_fraction: float = 0.25
    val: Optional[Path] = None
    val_limit: int = 16
    stage: str = "all"
    preset: str = "default"
    init: Optional[Path] = None
    prior_steps: int = 10000
    denoiser_steps: int = 4000
    error_steps: int = 3000
    error_width: int = 32  # the error head's channels (a new head; an --init model's own head keeps its width)
    batch_size: int = 32
    learning_rate: float = 4e-4
    scale_min: float = 1.0
    scale_max: float = 8.0
    lr_size: int = 32
    query: int = 24
    blur_max: float = 0.0
    noise_max: float = 0.0
    degradation: str = (
        "bicubic"  # bicubic (anti-aliased resize + --blur-max/--noise-max) | sentinel2 (sensor_degradation)
    )
    val_crop: int = 0  # validate on centre crops of at most this side (0: whole images)
    val_every: int = 500
    save_every: int = 250
    seed: int = 0
    threads: int = 0
    data_workers: int = 0  # processes drawing patch batches ahead of the step (prefetch.py); 0: in the training process
    resume: bool = False
    sampler_steps: Optional[int] = None
    sampler_strength: Optional[float] = None
    pairs: Optional[Path] = None  # PAIRS file of real LR/HR pairs (training.pairs)
    pair_share: float = 0.5  # of each batch, when synthetic data (DATA, --scene) is given too
    pairs_holdout: float = 0.2  # bottom share of each pair's LR rows, never trained on; validates
    device: str = "auto"  # auto (cuda when available) | cpu | cuda[:N]
    precision: str = "auto"  # auto (bf16 on cuda, fp32 on cpu) | fp32 | bf16
    denoiser_t_max: float = 1.0  # denoiser stage: train on t < this fraction of T (the LR-start regime: ~strength)
    denoiser_prediction: Optional[str] = None  # v | eps | x0: what the denoiser net predicts (default: the model's)
    denoiser_loss: Optional[str] = None  # l1 | l2 on that prediction (default: the model's)
    denoiser_start: str = "truth"  # x_t noised from: truth (DDPM) | estimate (what the LR-start sampler noises)
    denoiser_patch: int = 0  # denoiser stage: HR patch side (0: 64 for resshift, else max(query, lr_size))
    process: str = "keep"  # denoiser stage: keep the model's process, or switch to "resshift" (residual shifting)
    chain_steps: int = 8  # resshift: the chain's length T (NFE of a full sample)
    kappa: float = 1.0  # resshift: the noise scale κ (start noise κ·√η_T in units of the global residual std)
    variance_correction: float = 1.0  # resshift: the sampler's v0 (resshift.gaussian_posterior_variance; 0: plug-in)
    residual_scale: Optional[float] = (
        None  # resshift: the ONE global scale of HR - estimate (None: 1 / its measured std)
    )
    keep: str = "last"  # "best": each stage ends with its best-validated EMA weights (needs --val or --pairs)
    model_id: Optional[str] = None  # the card's id (default: the file's stem, "model")


def _check(s: TrainSettings) -> None:
    if s.stage not in STAGES:
        raise UsageError(f"unknown stage {s.stage!r}; choose one of: {', '.join(STAGES)}")
    if s.preset not in PRESETS:
        raise UsageError(f"unknown preset {s.preset!r}; choose one of: {', '.join(PRESETS)}")
    if not 0.0 <= s.scene_fraction < 1.0:
        raise UsageError(f"--scene-fraction must be in [0, 1), got {s.scene_fraction}")
    if s.batch_size < 1 or s.prior_steps < 0 or s.denoiser_steps < 0 or s.error_steps < 0:
        raise UsageError("--batch-size must be >= 1 and step counts >= 0")
    if not 0 <= s.data_workers <= 64:
        raise UsageError(f"--data-workers must be in 0..64, got {s.data_workers}")
    if not 1 <= s.error_width <= 1024:
        raise UsageError(f"--error-width must be in 1..1024, got {s.error_width}")
    check_scale_range(s.scale_min, s.scale_max)
    if not 0.0 < s.pair_share <= 1.0:
        raise UsageError(f"--pair-share must be in (0, 1], got {s.pair_share}")
    if not 0.0 < s.denoiser_t_max <= 1.0:
        raise UsageError(f"--denoiser-t-max must be in (0, 1], got {s.denoiser_t_max}")
    if not (s.data or s.scenes or s.pairs):
        raise UsageError("no training data given: DATA folders, --scene rasters or --pairs")
    if s.denoiser_prediction is not None and s.denoiser_prediction not in PREDICTIONS:
        raise UsageError(
            f"unknown --denoiser-prediction {s.denoiser_prediction!r}; choose one of: {', '.join(PREDICTIONS)}"
        )
    if s.denoiser_loss is not None and s.denoiser_loss not in LOSS_NORMS:
        raise UsageError(f"unknown --denoiser-loss {s.denoiser_loss!r}; choose one of: {', '.join(LOSS_NORMS)}")
    if s.denoiser_start not in TRAIN_STARTS:
        raise UsageError(f"unknown --denoiser-start {s.denoiser_start!r}; choose one of: {', '.join(TRAIN_STARTS)}")
    if s.degradation not in DEGRADATIONS:
        raise UsageError(f"unknown --degradation {s.degradation!r}; choose one of: {', '.join(DEGRADATIONS)}")
    if s.degradation != "bicubic" and (s.blur_max or s.noise_max):
        raise UsageError(
            "--blur-max/--noise-max shape the bicubic degradation; --degradation sentinel2 draws its own blur and noise"
        )
    if s.val_crop < 0:
        raise UsageError(f"--val-crop must be >= 0, got {s.val_crop}")
    if s.denoiser_patch < 0 or s.denoiser_patch == 1:
        raise UsageError(f"--denoiser-patch must be >= 2 (or 0: the default), got {s.denoiser_patch}")
    if s.process not in PROCESSES:
        raise UsageError(f"unknown --process {s.process!r}; choose one of: {', '.join(PROCESSES)}")
    low, high = CHAIN_SAMPLER_RANGES["variance_correction"]
    if not low <= s.variance_correction <= high:
        raise UsageError(f"--variance-correction must be in [{low:g}, {high:g}], got {s.variance_correction}")
    if (
        not 2 <= s.chain_steps <= 1000
        or not 0.0 < s.kappa <= 100.0
        or not (s.residual_scale is None or 0.0 < s.residual_scale < 1e6)
    ):
        raise UsageError("--chain-steps must be in 2..1000, --kappa in (0, 100], --residual-scale > 0")
    if s.keep not in KEEP:
        raise UsageError(f"unknown --keep {s.keep!r}; choose one of: {', '.join(KEEP)}")
    if s.keep == "best" and not (s.val or s.pairs):
        raise UsageError("--keep best needs validation: give --val (or --pairs)")


def _images_and_weights(s: TrainSettings) -> tuple[list[TrainImage], list[float]]:
    """Folder images sampled uniformly; GeoTIFF scenes (if any) get `scene_fraction` of all samples."""
    images = load_images(find_images(s.data)) if s.data else []
    scenes = load_images(find_images(s.scenes)) if s.scenes else []
    if not scenes or not images:
        return images + scenes, [1.0] * (len(images) + len(scenes))
    per_scene = s.scene_fraction / (1 - s.scene_fraction) * len(images) / len(scenes)
    return images + scenes, [1.0] * len(images) + [per_scene] * len(scenes)


def _validation_images(s: TrainSettings) -> list[TrainImage]:
    return validation_images(s.val, s.val_limit, s.val_crop)


def validation_images(val: Optional[Path], limit: int, crop: Optional[int]) -> list[TrainImage]:
    """The selection set: every (n // limit)-th image of `val` (n = 160 for UC Merced val: every 10th), centre-cropped
    to `crop`. One definition for checkpoint selection and the sampler's calibration (training/calibration.py)."""
    if not val:
        return []
    found = find_images([val])
    chosen = load_images(found[:: max(1, len(found) // max(1, limit))][:limit])
    return [_centre_crop(img, crop) for img in chosen] if crop else chosen


def _centre_crop(img: TrainImage, side: int) -> TrainImage:
    h, w = img.pixels.shape[-2:]
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return TrainImage(
        np.ascontiguousarray(img.pixels[:, y0 : y0 + side, x0 : x0 + side]), img.quantize_levels, img.source
    )


def _initial_model(s: TrainSettings) -> SRModel:
    if s.init is not None:
        return load_model(s.init)
    spec = copy.deepcopy(PRESETS[s.preset])
    return build_sr_model(spec)


def _stage_loss(
    stage: str, t_max_fraction: float = 1.0, start: str = "truth"
) -> Callable[[SRModel, PatchBatch, Optional[torch.Generator]], torch.Tensor]:
    """(model, batch, generator) -> the stage's loss; the generator draws the chain's timesteps and noise (the
    trainer's, saved with its state); the prior and error losses draw nothing."""

    def prior(model: SRModel, batch: PatchBatch, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return prior_loss(model.operator, batch)

    def error(model: SRModel, batch: PatchBatch, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return model.error_loss(batch.lr, batch.hr, batch.ys, batch.xs, batch.cell)

    def diffusion(model: SRModel, batch: PatchBatch, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        losses = model.losses(
            batch.lr,
            batch.hr,
            batch.ys,
            batch.xs,
            batch.cell,
            t_max_fraction=t_max_fraction,
            start=start,
            generator=generator,
        )
        return losses["diffusion"]

    return {"prior": prior, "error": error}.get(stage, diffusion)


def _freeze_for(model: SRModel, stage: str) -> None:
    model.requires_grad_(False)
    parts: dict[str, list[Optional[torch.nn.Module]]] = {
        "prior": [model.operator],
        "error": [model.error_head],
        "denoiser": [model.prior_features, model.denoiser],
    }
    for part in parts[stage]:
        if part is not None:
            part.requires_grad_(True)


@torch.no_grad()
def validate_diffusion(model: SRModel, images: list[TrainImage], scale: float) -> dict[str, float]:
    """PSNR of the card's LR-start sampler vs the prior alone, at `scale`, on a few validation images (a card whose
    default is the prior alone, steps 0, is validated at DENOISER_VALIDATION_STEPS: the denoiser must run)."""
    model.eval()
    steps = int(model.sampler_defaults.get("steps") or DENOISER_VALIDATION_STEPS)
    dev = module_device(model)
    rows: dict[str, list[float]] = {"prior": [], "diffusion": []}
    for k, img in enumerate(images):
        hr = torch.from_numpy(img.pixels)[None]
        H, W = hr.shape[-2:]
        h, w = round(H / scale), round(W / scale)
        lr = degrade(hr, (h, w), quantize_levels=img.quantize_levels).to(dev)
        hr = hr.to(dev)
        ys, xs, cell = grid_tensors(H, W, 0.0, 0.0, h / H, w / W, device=dev)
        border = math.ceil(scale)
        for mode in rows:
            sr = quantize(
                model.sample(lr, ys, xs, cell, steps=steps, mode=mode, generator=torch.Generator().manual_seed(k)), 255
            )
            score = psnr(shave(sr.cpu().numpy(), border), shave(hr.cpu().numpy(), border), 1.0)
            rows[mode].append(min(score, MAX_PSNR))
    model.train()
    prior, diff = float(np.mean(rows["prior"])), float(np.mean(rows["diffusion"]))
    return {"score": diff, "psnr_diffusion": diff, "psnr_prior": prior}


def _resumed_residual_scale(s: TrainSettings) -> Optional[float]:
    """A resumed residual-shifting run keeps the global scale its state was trained with."""
    state = s.out / "denoiser" / "last.json"
    if not (s.resume and state.exists()):
        return None
    diffusion = json.loads(state.read_text()).get("diffusion") or {}
    return float(diffusion["residual_scale"]) if diffusion.get("process") == "resshift" else None


@torch.no_grad()
def measure_residual_scale(model: SRModel, sampler, batch_size: int, device: str) -> float:
    """1 / the std of HR - the operator's estimate (model units) over a few training batches: the ONE global scale
    that brings a residual-shifting model's target to about unit variance (never a window's own statistics)."""
    model.to(device).eval()
    squares, count = 0.0, 0
    for _ in range(RESIDUAL_SCALE_BATCHES):
        b = sampler.batch(batch_size)
        prior, stats = model.prior(b.lr.to(device), b.ys.to(device), b.xs.to(device), b.cell.to(device), features=False)
        residual = b.hr.to(device).float().reshape(prior.estimate.shape) - destandardize(prior.estimate, stats)
        squares += float((residual.double() ** 2).sum())
        count += residual.numel()
    model.train()
    return 1.0 / max(math.sqrt(squares / count), 1e-6)


@torch.no_grad()
def validate_posterior(
    model: SRModel, images: list[TrainImage], scale: float, degradation: str = "bicubic"
) -> dict[str, float]:
    """A sampler's checkpoint is chosen by a proper score, never by PSNR (which rewards the no-op): the fair energy
    score of POSTERIOR_VAL_SAMPLES draws against the prior's error (score = 1 - ES/ES_prior, higher is better), with the
    issue-21 figures logged beside it: top-octave power / the truth's, spread / the prior's squared error."""
    model.eval()
    dev = module_device(model)
    rows = []
    for k, img in enumerate(images):
        lr, hr, (ys, xs, cell) = protocol_window(img, scale, degradation, dev)
        prior = model.sample(lr, ys, xs, cell, mode="prior")[0].cpu().numpy()
        gen = torch.Generator().manual_seed(k)
        draws = [d[0].cpu().numpy() for d in model.sample_draws(lr, ys, xs, cell, POSTERIOR_VAL_SAMPLES, generator=gen)]

        def lowres(x: np.ndarray) -> np.ndarray:
            return LOWRES[degradation](torch.from_numpy(x).float()[None], scale, None)[0][0].numpy()

        step = 1.0 / (img.quantize_levels or 10_000)  # uint8: /255; uint16 reflectance: 1 DN of 10,000
        rows.append(
            posterior_image(
                draws,
                prior,
                hr[0].numpy(),
                lr[0].cpu().numpy(),
                degrade=lowres,
                quant_step=step,
                border=math.ceil(scale),
                seed=k,
            )
        )
    model.train()
    es = sum(r.es_sample for r in rows) / max(sum(r.es_prior for r in rows), 1e-12)
    return {
        "score": 1.0 - es,
        "power_ratio": sum(r.power_sample for r in rows) / max(sum(r.power_truth for r in rows), 1e-12),
        "spread_ratio": sum(r.spread for r in rows) / max(sum(r.prior_error for r in rows), 1e-12),
        "mse_ratio": sum(r.mse_sample for r in rows) / max(sum(r.mse_prior for r in rows), 1e-12),
        "es_null_ratio": sum(r.es_null for r in rows) / max(sum(r.es_prior for r in rows), 1e-12),
    }


@torch.no_grad()
def validate_error_head(
    model: SRModel, images: list[TrainImage], scale: float, degradation: str = "bicubic"
) -> dict[str, float]:
    """The error head on the selection images at `scale`: its likelihood of the prior's actual error (score = -the
    mean error_nll, higher is better), and how well it knows each image's error level: predicted / actual squared
    error summed over the image, its median and the log-sd over images (what the chain's spread per image follows)."""
    if model.error_head is None:
        raise UsageError("this model has no error head")
    model.eval()
    dev = module_device(model)
    nlls, ratios = [], []
    for img in images:
        lr, hr, (ys, xs, cell) = protocol_window(img, scale, degradation, dev)
        prior, stats = model.prior(lr, ys, xs, cell)
        estimate = prior.estimate.float()
        error = (hr.to(dev).float().reshape(estimate.shape) - stats.mean) / stats.std - estimate
        log_variance = model.error_log_variance(prior, cell)
        nlls.append(float(error_nll(log_variance, error)))
        variance = stats.std.float() ** 2
        ratios.append(float((torch.exp(log_variance.float()) * variance).sum() / (error**2 * variance).sum()))
    model.train()
    logs = np.log(np.maximum(ratios, 1e-12))
    return {
        "score": -float(np.mean(nlls)),
        "nll": float(np.mean(nlls)),
        "level_median": float(np.median(ratios)),
        "level_log_sd": float(np.std(logs)),
    }


def _val_fn(stage: str, images: list[TrainImage], pairs: list[TrainPair], degradation: str = "bicubic"):
    if pairs and stage == "prior":
        # real pairs decide: the gain over bicubic on their held-out rows (x4 on the images is logged too)
        def on_pairs(model: SRModel) -> dict[str, float]:
            scores = {f"pairs_{k}" if k != "score" else k: v for k, v in validate_pairs(model.operator, pairs).items()}
            if images:
                ours, base = validate_prior(model.operator, images, 4.0)
                scores["images_x4_gain"] = ours - base
            return scores

        return on_pairs
    if not images:
        return None
    if stage == "error":
        return lambda model: validate_error_head(model, images, 4.0, degradation)
    if stage == "prior":

        def prior(model: SRModel) -> dict[str, float]:
            ours, base = validate_prior(model.operator, images, 4.0, degradation)
            return {"score": ours - base, "psnr": ours, "bicubic": base}

        return prior
    few = images[:4]  # sampling is k network evaluations per band: keep validation cheap

    def denoiser(model: SRModel) -> dict[str, float]:
        if model.process == "resshift":
            return validate_posterior(model, few, 4.0, degradation)
        return validate_diffusion(model, few, 4.0)

    return denoiser


@interruptible
def train(settings: TrainSettings, progress: Optional[Callable[[str, int, dict], None]] = None) -> Path:
    """Run the requested stage(s); writes <out>/<stage>/ (state, log.csv) and <out>/model.{safetensors,json}."""
    s = settings
    _check(s)
    device, precision = resolve_training_device(s.device, s.precision)
    log.info("training on %s, %s", device, precision)
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    images, weights = _images_and_weights(s) if (s.data or s.scenes) else ([], [])
    pairs = [load_pair(spec, s.pairs_holdout) for spec in read_pairs_file(s.pairs)] if s.pairs else []
    for pair in pairs:
        log.info(
            "pair %s: x%.3g, shift corrected %+.2f, %+.2f LR px, %.1f%% excluded as misregistered, HR = %s x LR + %s",
            pair.source,
            pair.scale,
            *pair.shift_lr_px,
            100 * pair.excluded_share,
            pair.gain,
            pair.offset,
        )
    val_images = _validation_images(s)
    model = _initial_model(s)
    # the card's sampler is set before training: the denoiser stage validates with the sampler it ships with
    if s.sampler_steps is not None:
        model.sampler_defaults["steps"] = s.sampler_steps
    if s.sampler_strength is not None:
        model.sampler_defaults["strength"] = s.sampler_strength
    channels = model.in_channels
    stages = ["prior", "denoiser"] if s.stage == "all" else [s.stage]
    history: dict[str, dict] = {}
    for stage in stages:
        steps = {"prior": s.prior_steps, "denoiser": s.denoiser_steps, "error": s.error_steps}[stage]
        if steps == 0:
            continue
        query = _patch(s, stage)
        if stage == "error" and model.error_head is None:
            model.add_error_head(s.error_width)
        sampler = _sampler(s, images, weights, pairs, channels, query, seed=s.seed + len(history))
        cfg = TrainConfig(
            steps=steps,
            batch_size=s.batch_size,
            lr=s.learning_rate,
            val_every=s.val_every,
            save_every=s.save_every,
            seed=s.seed,
            threads=s.threads,
            device=device,
            precision=precision,
            channels_last=precision == "bf16" and torch.device(device).type == "cpu",
        )
        if stage == "denoiser" and s.process == "resshift" and model.process != "resshift":
            scale = (
                s.residual_scale
                or _resumed_residual_scale(s)
                or measure_residual_scale(model, sampler, s.batch_size, device)
            )
            model.set_resshift(
                chain_steps=s.chain_steps,
                kappa=s.kappa,
                residual_scale=scale,
                variance_correction=s.variance_correction,
            )
            log.info(
                "denoiser: residual shifting, T=%d, kappa=%g, global residual scale %.4g", s.chain_steps, s.kappa, scale
            )
        elif stage == "denoiser":
            # x0 for the LR-start regime: at t <= 0.1 T the v target is almost the noise, so a v-loss spends the net on
            # re-predicting noise the sampler discards; an x0 loss is the error of the output the sampler returns
            model.set_objective(s.denoiser_prediction, s.denoiser_loss)
        _freeze_for(model, stage)
        trainer = Trainer(
            model,
            _stage_loss(stage, s.denoiser_t_max, s.denoiser_start),
            sampler,
            s.out / stage,
            cfg,
            validate=_val_fn(stage, val_images, pairs, s.degradation),
            progress=functools.partial(progress, stage) if progress else None,
            meta={"stage": stage, "settings": _jsonable(s), "diffusion": copy.deepcopy(model.spec["diffusion"])},
        )
        if s.resume and (s.out / stage / "last.json").exists():
            trainer.resume(s.out / stage / "last")
        with _prefetching(trainer, sampler, s.data_workers, s.seed + len(history)):
            trainer.run()
        model = cast(SRModel, trainer.ema.cpu())  # the EMA weights are the ones shipped; written from the CPU
        history[stage] = {"steps": trainer.step, "best_validation": trainer.best, "kept": _keep(s, stage, model)}
    if "denoiser" not in history and s.init is None and s.sampler_steps is None:
        model.sampler_defaults["steps"] = 0  # no trained denoiser: the model's default is the prior alone
    training = {
        "command": " ".join(shlex.quote(a) for a in ["rssr", *sys.argv[1:]]) if sys.argv else "",
        "settings": _jsonable(s),
        "stages": history,
        **({"pairs": [pair_record(p) for p in pairs]} if pairs else {}),
    }
    return save_model(model, s.out / "model", training=training, model_id=s.model_id)


@contextlib.contextmanager
def _prefetching(trainer: Trainer, sampler: Reseedable, workers: int, seed: int) -> Iterator[None]:
    """With workers, the trainer draws batch k from (seed, k) in worker processes (prefetch.py), from its step on (a
    resumed run continues there); the workers stop when the stage ends, however it ends."""
    if not workers:
        yield
        return
    with PrefetchedBatches(sampler, trainer.cfg.batch_size, workers, seed) as batches:
        batches.seek(trainer.step)
        trainer.sampler = batches
        try:
            yield
        finally:
            trainer.sampler = sampler


def _patch(s: TrainSettings, stage: str) -> int:
    """A stage's HR patch side: the prior's query block; for the denoiser the UNet needs room to see context (and
    GroupNorm statistics over a patch closer to an inference window's): 64 for a residual-shifting chain (and for the
    error head, whose receptive field is 35-45 px), max(query, lr_size) for the older DDPM stage; --denoiser-patch
    overrides both."""
    if stage == "prior":
        return s.query
    if s.denoiser_patch:
        return s.denoiser_patch
    return RESSHIFT_PATCH if s.process == "resshift" or stage == "error" else max(s.query, s.lr_size)


def _keep(s: TrainSettings, stage: str, model: SRModel) -> str:
    """With keep="best", load the stage's best-validated EMA weights into `model`; says which weights it holds."""
    best = s.out / stage / "best"
    if s.keep != "best" or not best.with_suffix(".json").exists():
        if s.keep == "best":
            log.warning("stage %s never validated (fewer steps than --val-every): keeping its last weights", stage)
        return "last"
    step = load_ema_weights(best, model)
    return f"best (step {step})"


def _sampler(s: TrainSettings, images, weights, pairs: list[TrainPair], channels: int, query: int, seed: int):
    """Synthetic patches (DATA, --scene), real pairs, or both mixed in every batch (pair_share)."""
    synthetic = real = None
    if images:
        kind = SensorPatchSampler if s.degradation == "sentinel2" else PatchSampler
        synthetic = kind(
            images,
            weights,
            lr_size=s.lr_size,
            query=query,
            scale_min=s.scale_min,
            scale_max=s.scale_max,
            channels=channels,
            blur_max=s.blur_max,
            noise_max=s.noise_max,
            seed=seed,
        )
    if pairs:
        if channels != 1:
            raise UsageError("--pairs trains single-band models (every band a sample); this model has several channels")
        real = PairSampler(pairs, lr_size=s.lr_size, query=query, seed=seed)
    if synthetic is not None and real is not None:
        return MixedSampler(real, synthetic, s.pair_share)
    return real if real is not None else synthetic


def pair_record(pair: TrainPair) -> dict:
    """What the model card says about each training pair."""
    return {
        "pair": pair.source,
        "scale": round(pair.scale, 6),
        "shift_corrected_lr_px": [round(v, 3) for v in pair.shift_lr_px],
        "excluded_as_misregistered": round(pair.excluded_share, 4),
        "hr_from_lr_gain": [round(v, 6) for v in pair.gain],
        "hr_from_lr_offset": [round(v, 6) for v in pair.offset],
        "train_lr_rows": pair.train_rows,
        "lr_rows": int(pair.lr.shape[-2]),
    }


def _jsonable(s: TrainSettings) -> dict:
    return {
        k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
        for k, v in asdict(s).items()
    }
