"""Training by Wald's protocol: every coarse band of a real scene degraded by r, restored at its native
resolution from its degraded self plus the degraded guide bands. Each training crop draws its own member of the
sensor degradation family (sensor_degradation: random PSF or the box alone, sub-pixel phase, noise, 12 bits),
applied to the band and its guides alike, so the model cannot overfit one blur.

Selection: with `select` scenes (other places, e.g. other cities), every row of the training scenes is trained on
and the checkpoint is chosen on the selection scenes' whole grids; without, rows are split per scene: the top 3/4
are trained on, the next 1/8 choose the checkpoint, the rest are never used until the final report. The selection
score is the mean over bands of RMSE(guided) / RMSE(bicubic) at r = 2 and 6, under both evaluation degradations
(the matched Gaussian PSF and the plain box)."""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from rssr_cli.core.errors import CheckpointError, InputError, RssrError, UsageError
from rssr_cli.core.interrupts import interruptible
from rssr_cli.degradation import sensor_degradation as sensor
from rssr_cli.model.device import resolve_precision
from rssr_cli.sharpen.bands import BAND_RESOLUTION_M, GUIDE_BANDS, GUIDED_BANDS
from rssr_cli.sharpen.degrade import MTF_AT_NYQUIST
from rssr_cli.sharpen.model import MAX_PARAMETERS, build_sharpener, save_sharpener, spec_parameter_count
from rssr_cli.sharpen.scene import BandArray, load_scene, stats_of
from rssr_cli.sharpen.wald import DEGRADATIONS, evaluate_scene_split, rows_of_split
from rssr_cli.sharpen.wald_inputs import wald_inputs
from rssr_cli.training.trainer import autocast_for


@dataclass
class SharpenTrainConfig:
    scenes: list[str]
    out: str
    select: list[str] = field(default_factory=list)  # selection scenes (all rows); empty: the scenes' select rows
    steps: int = 3000
    batch: int = 8
    crop: int = 48
    lr: float = 1e-3
    seed: int = 0
    width: int = 32
    blocks: int = 6
    share_60m: float = 0.3
    share_smallest_ratio: float = 0.4  # of batches at r = 2 (20 m) / 6 (60 m), the ratios of --resolution 10
    eval_every: int = 250
    threads: Optional[int] = None
    precision: str = "auto"  # auto (bf16 where the CPU computes it natively) | fp32 | bf16: the forward's autocast
    degradation: str = "family"  # family (the product's) | psf (the matched Wald Gaussian only: an upper bound)
    resume: bool = False
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_config(self)


# The option names of `rssr train-sharpener`, so a refusal names what the user typed.
_OPTION = {
    "steps": "--steps",
    "batch": "--batch-size",
    "crop": "--crop",
    "width": "--width",
    "blocks": "--blocks",
    "eval_every": "--eval-every",
    "lr": "--lr",
    "threads": "--threads",
}


def check_config(config: SharpenTrainConfig) -> None:
    """Every option in range before a file is read (UsageError naming the option): the one home of this rule."""
    minimum = {"steps": 1, "batch": 1, "crop": 8, "width": 1, "blocks": 0, "eval_every": 1, "threads": 1}
    for name, low in minimum.items():
        value = getattr(config, name)
        if name == "threads" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{_OPTION[name]} must be a whole number >= {low}, not {value!r}")
    for name in ("lr", "share_60m", "share_smallest_ratio"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(f"{_OPTION.get(name, name)} must be a finite number, not {value!r}")
    if config.lr <= 0:
        raise UsageError(f"--lr must be > 0, not {config.lr!r}")
    if not (0 <= config.share_60m <= 1 and 0 <= config.share_smallest_ratio <= 1):
        raise UsageError("share_60m and share_smallest_ratio are shares between 0 and 1")
    parameters = spec_parameter_count({"width": config.width, "blocks": config.blocks})
    if parameters > MAX_PARAMETERS:
        raise UsageError(
            f"--width {config.width} --blocks {config.blocks} make {parameters:,} parameters; a sharpener holds at most {MAX_PARAMETERS:,}"
        )
    resolve_precision(config.precision, torch.device("cpu"), training=True)  # the name checked
    if config.degradation not in TRAIN_DEGRADATIONS:
        raise UsageError(f"--degradation must be one of {', '.join(TRAIN_DEGRADATIONS)}, not {config.degradation!r}")
    if isinstance(config.scenes, (str, bytes)) or not config.scenes:
        raise UsageError("scenes must be a list of at least one scene")


def scene_stats(scene: dict[str, BandArray]) -> dict[str, tuple[float, float]]:
    return {name: stats_of(b.values, b.valid) for name, b in scene.items()}


DEGRADATION_CARD = (
    f"sensor_degradation family, one member per crop for the band and its guides: system MTF at the coarse Nyquist "
    f"uniform in {sensor.SYSTEM_MTF_RANGE} (Gaussian then the pixel's box), or the box alone with probability "
    f"{sensor.BOX_SHARE}; sub-pixel grid phase; noise std up to {sensor.NOISE_STD_MAX} reflectance; 12-bit quantization"
)
PSF_CARD = (
    f"the matched Gaussian of Wald's psf protocol only (MTF {MTF_AT_NYQUIST} at the coarse Nyquist, sampled at the pixel "
    "centres, no noise), the band and its guides alike; selected on the psf score alone. An upper bound for a known blur, not a "
    "product model: it rings under any other blur (BENCHMARKS.md)"
)
# --degradation: its card text. family: every crop its own member of the sensor family (what a product model trains
# on); psf: the one blur that Wald's psf protocol applies, to measure what knowing the blur exactly is worth.
TRAINING_DEGRADATION_CARDS = {"family": DEGRADATION_CARD, "psf": PSF_CARD}
TRAIN_DEGRADATIONS = tuple(TRAINING_DEGRADATION_CARDS)
# Wald ratios trained: 20 m bands at output pixels 10, 8, 6.7, 5, 4, 3.3, 2.5 m; 60 m bands at 10, 7.5, 6, 5 m.
TRAIN_RATIOS = {20: (2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0), 60: (6.0, 8.0, 10.0, 12.0)}


def crop_for(resolution: int, config: SharpenTrainConfig) -> int:
    return config.crop if resolution == 20 else max(16, config.crop * 2 // 3)


def _fits(band: BandArray, crop: int, split: str) -> bool:
    top, bottom = rows_of_split(band.values.shape[0], split)
    return bottom - top >= crop and band.values.shape[1] >= crop


def _scene_bands(scene: dict[str, BandArray], resolution: int) -> list[str]:
    """The scene's guided bands of one native resolution (none when a guide is missing)."""
    if not all(g in scene for g in GUIDE_BANDS):
        return []
    return [n for n in GUIDED_BANDS if n in scene and BAND_RESOLUTION_M[n] == resolution]


def trainable_groups(
    scenes: Sequence[dict[str, BandArray]], config: SharpenTrainConfig, split: str = "train"
) -> list[int]:
    """The band groups (20, 60 m) of which some scene holds a band whose training rows fit a crop."""
    groups = []
    for resolution in (20, 60):
        crop = crop_for(resolution, config)
        if any(_fits(scene[n], crop, split) for scene in scenes for n in _scene_bands(scene, resolution)):
            groups.append(resolution)
    if not groups:
        raise InputError(f"the scenes are too small for --crop {config.crop}: no band's training rows hold a crop")
    return groups


def make_batch(
    scenes: Sequence[dict[str, BandArray]],
    stats: Sequence[dict[str, tuple[float, float]]],
    config: SharpenTrainConfig,
    rng: random.Random,
    groups: Sequence[int] = (20, 60),
    split: str = "train",
):
    """One batch at one ratio and one band group, cropped from the training rows, each crop's band and guides
    degraded by a member of the sensor family drawn for that crop (wald_inputs): inputs, truth, validity."""
    if len(groups) == 1:
        resolution = groups[0]
    else:
        resolution = 60 if rng.random() < config.share_60m else 20
    ratios = TRAIN_RATIOS[resolution]
    ratio = ratios[0] if rng.random() < config.share_smallest_ratio else rng.choice(ratios)
    crop = crop_for(resolution, config)
    items: list[tuple] = []
    attempts = 0
    while len(items) < config.batch:
        attempts += 1
        if attempts > 1000 * config.batch:
            raise ValueError(
                f"no {crop} px crop of {resolution} m bands fits the training rows of these scenes; lower crop"
            )
        i = rng.randrange(len(scenes))
        names = [n for n in _scene_bands(scenes[i], resolution) if _fits(scenes[i][n], crop, split)]
        if not names:
            continue
        name = rng.choice(names)
        band = scenes[i][name]
        top, bottom = rows_of_split(band.values.shape[0], split)
        r, c = rng.randrange(top, bottom - crop + 1), rng.randrange(0, band.values.shape[1] - crop + 1)
        if band.valid[r : r + crop, c : c + crop].mean() < 0.9:
            continue
        member_seed = rng.getrandbits(64)  # drawn in both modes: family and psf runs crop the same places
        member = sensor.draw(np.random.default_rng(member_seed)) if config.degradation == "family" else None
        noise = torch.Generator().manual_seed(rng.getrandbits(63))
        inputs = wald_inputs(
            band, [scenes[i][g] for g in GUIDE_BANDS], ratio, (r, c, crop, crop), member=member, generator=noise
        )
        m, s = stats[i][name]
        g_stats = np.array([stats[i][g] for g in GUIDE_BANDS], dtype=np.float32)
        standard_guides = (inputs.guides - g_stats[:, 0, None, None]) / g_stats[:, 1, None, None]
        items.append(
            ((inputs.band_up - m) / s, standard_guides, (inputs.truth - m) / s, inputs.valid, GUIDED_BANDS.index(name))
        )
    k = rng.randrange(8)  # flips and transposes: the ground has no preferred orientation
    aug = lambda a: _dihedral(a, k)  # noqa: E731
    band_up = torch.from_numpy(aug(np.stack([i[0] for i in items])[:, None]).astype(np.float32))
    guides = torch.from_numpy(aug(np.stack([i[1] for i in items])).astype(np.float32))
    truth = torch.from_numpy(aug(np.stack([i[2] for i in items])[:, None]).astype(np.float32))
    valid = torch.from_numpy(aug(np.stack([i[3] for i in items])[:, None]))
    index = torch.tensor([i[4] for i in items])
    scale = torch.full((len(items),), float(ratio))
    guide_ratio = scale * 10.0 / resolution
    return band_up, guides, index, scale, guide_ratio, truth, valid


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of the last two axes."""
    if k & 4:
        a = np.swapaxes(a, -1, -2)
    if k & 2:
        a = a[..., ::-1, :]
    if k & 1:
        a = a[..., :, ::-1]
    return np.ascontiguousarray(a)


@interruptible
def train_sharpener(config: SharpenTrainConfig, log: Callable[[str], None] = print) -> Path:
    """Train, evaluate on the selection rows every eval_every steps, keep the best; returns the best model's path."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    scenes = [load_scene(s) for s in config.scenes]
    stats = [scene_stats(s) for s in scenes]
    if config.select:
        selection = [load_scene(s) for s in config.select]
        selection_stats = [scene_stats(s) for s in selection]
        train_split, select_split = "all", "all"
    else:
        selection, selection_stats, train_split, select_split = scenes, stats, "train", "select"
    groups = trainable_groups(scenes, config, train_split)
    selection_degradations = ("psf",) if config.degradation == "psf" else tuple(DEGRADATIONS)
    log(f"{len(scenes)} training scenes ({train_split} rows), {len(selection)} selection scenes ({select_split} rows)")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(config.precision, torch.device("cpu"), training=True)
    model = build_sharpener({"width": config.width, "blocks": config.blocks})
    if precision == "bf16":  # with bf16 autocast, channels-last convolutions are the fast CPU path (BENCHMARKS.md)
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (torch's stubs omit it)
    log(f"training in {precision}")
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / config.steps)))
    )
    state_path, start, best = out / "state.pt", 0, {"score": float("inf")}
    if config.resume and state_path.exists():
        try:
            state = torch.load(state_path, weights_only=True)
            (
                model.load_state_dict(state["model"]),
                opt.load_state_dict(state["opt"]),
                sched.load_state_dict(state["sched"]),
            )
            start, best = state["step"], state["best"]
            rng.setstate(state["rng"])
        except Exception as exc:  # a truncated or foreign file, another --width/--blocks: torch raises many kinds
            raise CheckpointError(
                f"cannot resume from {state_path} ({type(exc).__name__}): delete it, or run without --resume"
            ) from None
        log(f"resumed at step {start}")
    history: list[dict] = []
    started, running = time.perf_counter(), 0.0
    for step in range(start + 1, config.steps + 1):
        band_up, guides, index, scale, guide_ratio, truth, valid = make_batch(
            scenes, stats, config, rng, groups, train_split
        )
        with autocast_for("cpu", precision):
            pred = model(band_up, guides, index, scale, guide_ratio)
        loss = ((pred.float() - truth).abs() * valid).sum() / valid.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * float(loss.detach()) if step > start + 1 else float(loss.detach())
        if step % config.eval_every == 0 or step == config.steps:
            model.eval()
            with torch.no_grad():
                scores = [
                    evaluate_scene_split(model, s, st, select_split, selection_degradations)
                    for s, st in zip(selection, selection_stats)
                ]
            model.train()
            score = float(np.mean([sc["score"] for sc in scores]))
            entry = {
                "step": step,
                "loss": running,
                "score": score,
                "seconds": round(time.perf_counter() - started, 1),
                "per_scene": scores,
            }
            history.append(entry)
            log(json.dumps({k: v for k, v in entry.items() if k != "per_scene"}) + " " + json.dumps(scores[0]["bands"]))
            if score < best["score"]:
                best = {"score": score, "step": step}
                save_sharpener(
                    model,
                    out / "best",
                    {
                        "training": {
                            **asdict(config),
                            "precision": precision,
                            "best_step": step,
                            "select_score": score,
                            "degradation": TRAINING_DEGRADATION_CARDS[config.degradation],
                        }
                    },
                )
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "step": step,
                    "best": best,
                    "rng": rng.getstate(),
                },
                state_path,
            )
            with open(out / "history.jsonl", "a") as fh:
                fh.write(json.dumps(entry) + "\n")
    if not (out / "best.safetensors").is_file():  # every selection score was NaN, or --resume past --steps
        raise RssrError(
            f"no model was written to {out}: no step scored a finite selection error (run ended at step {max(start, config.steps)})"
        )
    return out / "best.safetensors"


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenes", nargs="+")
    parser.add_argument("--out", required=True)
    for name, default in (
        ("steps", 3000),
        ("batch", 8),
        ("crop", 48),
        ("seed", 0),
        ("width", 32),
        ("blocks", 6),
        ("eval-every", 250),
        ("threads", 0),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--degradation", default="family", choices=TRAIN_DEGRADATIONS)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--select", action="append", default=[])
    args = parser.parse_args(argv)
    config = SharpenTrainConfig(
        scenes=args.scenes,
        out=args.out,
        select=args.select,
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        seed=args.seed,
        width=args.width,
        blocks=args.blocks,
        eval_every=args.eval_every,
        threads=args.threads or None,
        precision=args.precision,
        degradation=args.degradation,
        resume=args.resume,
    )
    train_sharpener(config)


if __name__ == "__main__":
    main()
