"""Wald's reduced-resolution protocol (Wald et al. 1997, as DSen2 evaluates): every band degraded by r, restored
to its native resolution, compared with itself. Metrics per band (RMSE in stored units, SRE in dB) and per band
group (SAM in degrees, ERGAS), for bicubic, the unguided single-band model and the guided model."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from rssr_cli.backends.base import SRRequest
from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.core.errors import InputError
from rssr_cli.core.interrupts import interruptible
from rssr_cli.degradation.sensor_degradation import SensorDraw
from rssr_cli.geo.grid import HRGrid
from rssr_cli.sharpen.apply import find_sharpener
from rssr_cli.sharpen.bands import BAND_RESOLUTION_M, GUIDE_BANDS, guided_scale_ok
from rssr_cli.sharpen.bounds import BOUND_MARGIN, band_range
from rssr_cli.sharpen.model import GuidedSharpener, load_sharpener
from rssr_cli.sharpen.predict import consistent_and_bounded, sharpen_array
from rssr_cli.sharpen.scene import BandArray, load_scene, stats_of
from rssr_cli.sharpen.wald_inputs import BOX, WaldInputs, wald_inputs

log = logging.getLogger(__name__)

SPLITS = {
    "train": (0.0, 0.75),
    "select": (0.75, 0.875),
    "test": (0.875, 1.0),
    "all": (0.0, 1.0),
}  # row fractions of every scene
GROUP_RATIO = {20: 2.0, 60: 6.0}  # DSen2's: 40 -> 20 m and 360 -> 60 m
# How Wald's protocol degrades (wald_inputs): psf, the matched Gaussian (MTF 0.25 at the coarse Nyquist, sampled at the
# coarse pixel centres); box, the plain block mean (a product resampled by averaging: the blur a model must not assume)
DEGRADATIONS: dict[str, Optional[SensorDraw]] = {"psf": None, "box": BOX}


def degradation_member(name: str) -> Optional[SensorDraw]:
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown Wald degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name]


def rows_of_split(height: int, split: str) -> tuple[int, int]:
    lo, hi = SPLITS[split]
    return int(round(lo * height)), int(round(hi * height))


MIN_WALD_PX = 4  # a degraded band's side below this holds nothing to restore (and the models need a window)


def check_wald_size(scene: dict[str, BandArray], source: str, split: str) -> dict[str, BandArray]:
    """The scene without the coarse bands whose `split` rows, degraded by their Wald ratio (20 m by 2, 60 m by 6),
    would keep fewer than MIN_WALD_PX px a side (a small crop's 60 m group; logged); a scene where no coarse band
    fits is one InputError, not a reshape error deep in a model."""
    kept, small = dict(scene), []
    for name, band in scene.items():
        if name not in BAND_RESOLUTION_M:
            continue
        ratio = GROUP_RATIO[BAND_RESOLUTION_M[name]]
        top, bottom = rows_of_split(band.values.shape[0], split)
        rows, cols = int((bottom - top) // ratio), int(band.values.shape[1] // ratio)
        if min(rows, cols) < MIN_WALD_PX:
            small.append(f"{name} ({rows} x {cols} px at 1/{ratio:g})")
            del kept[name]
    if small and not any(name in BAND_RESOLUTION_M for name in kept):
        raise InputError(
            f"{source} is too small for Wald's protocol: {', '.join(small)} (at least {MIN_WALD_PX} px a side)"
            f"{'; try --wald-split all' if split != 'all' else ''}"
        )
    if small:
        log.warning("%s: too small for Wald's protocol, left out: %s", source, ", ".join(small))
    return kept


def rmse(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a[valid].astype(np.float64) - b[valid]) ** 2)))


def sre(estimate: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """Signal-to-reconstruction error (dB): 10 log10(mean(truth)^2 / MSE) (Lanaras et al. 2018)."""
    mse = float(np.mean((estimate[valid].astype(np.float64) - truth[valid]) ** 2))
    return 10 * math.log10(float(np.mean(truth[valid], dtype=np.float64)) ** 2 / max(mse, 1e-12))


def sam_degrees(estimates: Sequence[np.ndarray], truths: Sequence[np.ndarray], valid: np.ndarray) -> float:
    """Mean spectral angle (degrees) between estimated and true spectra of the valid pixels."""
    e = np.stack([x[valid] for x in estimates]).astype(np.float64)
    t = np.stack([x[valid] for x in truths]).astype(np.float64)
    cos = (e * t).sum(0) / np.maximum(np.linalg.norm(e, axis=0) * np.linalg.norm(t, axis=0), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())


def ergas(rmses: Sequence[float], means: Sequence[float], ratio: float) -> float:
    """100 (h/l) sqrt(mean_b (RMSE_b / mean_b)^2), h/l = 1/r."""
    return float(100.0 / ratio * math.sqrt(np.mean([(r / max(m, 1e-12)) ** 2 for r, m in zip(rmses, means)])))


Method = Callable[[str, WaldInputs], np.ndarray]


def bicubic_method(_name: str, inputs: WaldInputs) -> np.ndarray:
    return inputs.bicubic  # `rssr upscale -m bicubic`'s kernel, not the sharpener's input (band_up)


def guided_method(model: GuidedSharpener, stats: dict[str, tuple[float, float]]) -> Method:
    guide_stats = np.array([stats[g] for g in GUIDE_BANDS], dtype=np.float32)

    def run(name: str, inputs: WaldInputs) -> np.ndarray:
        if not guided_scale_ok(name, inputs.ratio):
            return inputs.band_up
        resolution = BAND_RESOLUTION_M[name]
        out = sharpen_array(
            model,
            name,
            inputs.band_up,
            inputs.guides,
            scale=inputs.ratio,
            guide_ratio=inputs.ratio * 10.0 / resolution,
            band_stats=stats[name],
            guide_stats=guide_stats,
        )
        y0, x0, dy, dx = inputs.lr_window
        ys = y0 + (np.arange(out.shape[0]) + 0.5) * dy
        xs = x0 + (np.arange(out.shape[1]) + 0.5) * dx
        native_valid = np.ones(inputs.lr.shape, bool)
        margin = BOUND_MARGIN * band_range(inputs.lr, native_valid)
        return consistent_and_bounded(
            out, inputs.lr, native_valid, ys, xs, inputs.ratio, margin, inputs.guides, guide_stats[:, 1]
        )

    return run


@dataclass
class GroupScores:
    resolution: int
    ratio: float
    bands: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # band -> method -> {rmse, sre}
    group: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> {sam, ergas, rmse}


def evaluate_group(
    scene: dict[str, BandArray],
    resolution: int,
    ratio: float,
    methods: dict[str, Method],
    split: str = "test",
    degradation: str = "psf",
) -> Optional[GroupScores]:
    """Wald at `ratio` on the `split` rows of every band of one native resolution present in the scene."""
    member = degradation_member(degradation)
    names = [n for n in scene if BAND_RESOLUTION_M.get(n) == resolution]
    if not names or not all(g in scene for g in GUIDE_BANDS):
        return None
    scores = GroupScores(resolution, ratio)
    guides = [scene[g] for g in GUIDE_BANDS]
    outputs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    truths, valid = [], None
    for name in names:
        band = scene[name]
        top, bottom = rows_of_split(band.values.shape[0], split)
        inputs = wald_inputs(band, guides, ratio, (top, 0, bottom - top, band.values.shape[1]), member=member)
        valid = inputs.valid if valid is None else valid & inputs.valid
        truths.append(inputs.truth)
        scores.bands[name] = {}
        for method, run in methods.items():
            out = run(name, inputs)
            outputs[method].append(out)
            scores.bands[name][method] = {
                "rmse": rmse(out, inputs.truth, inputs.valid),
                "sre": sre(out, inputs.truth, inputs.valid),
            }
    assert valid is not None
    for method in methods:
        band_rmse = [scores.bands[n][method]["rmse"] for n in names]
        means = [float(np.mean(t[valid])) for t in truths]
        scores.group[method] = {
            "rmse": float(np.sqrt(np.mean(np.square(band_rmse)))),
            "sam": sam_degrees(outputs[method], truths, valid),
            "ergas": ergas(band_rmse, means, ratio),
        }
    return scores


def evaluate_scene_split(
    model: GuidedSharpener,
    scene: dict[str, BandArray],
    stats,
    split: str,
    degradations: Sequence[str] = tuple(DEGRADATIONS),
) -> dict:
    """The selection score used in training: mean over bands and degradations of RMSE(guided) / RMSE(bicubic) at
    r = 2 and 6; bands: the per-band ratio averaged over the degradations."""
    methods = {"bicubic": bicubic_method, "guided": guided_method(model, stats)}
    ratios: list[float] = []
    per_band: dict[str, list[float]] = {}
    for degradation in degradations:
        for resolution, ratio in GROUP_RATIO.items():
            scores = evaluate_group(scene, resolution, ratio, methods, split, degradation)
            if scores is None:
                continue
            for name, by_method in scores.bands.items():
                r = by_method["guided"]["rmse"] / max(by_method["bicubic"]["rmse"], 1e-9)
                ratios.append(r)
                per_band.setdefault(name, []).append(r)
    bands = {name: round(float(np.mean(r)), 3) for name, r in per_band.items()}
    return {"score": float(np.mean(ratios)) if ratios else float("inf"), "bands": bands}


# ---------------------------------------------------------------------------------------------- the report


def unguided_method(backend) -> Method:
    """The single-band model (no guidance) at the Wald ratio, through the SR backend interface."""

    def run(_name: str, inputs: WaldInputs) -> np.ndarray:
        y0, x0, dy, dx = inputs.lr_window
        grid = HRGrid(inputs.truth.shape[0], inputs.truth.shape[1], y0, x0, dy, dx)
        return backend.upsample([SRRequest(inputs.lr[None].astype(np.float32), grid, seed=0)])[0][0]

    return run


@dataclass
class WaldReport:
    source: str
    split: str
    groups: list[GroupScores]
    methods: list[str]
    degradation: str = "psf"

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "split": self.split,
            "degradation": self.degradation,
            "methods": self.methods,
            "groups": [
                {"resolution": g.resolution, "ratio": g.ratio, "bands": g.bands, "group": g.group} for g in self.groups
            ],
        }


def wald_report(
    scene: dict[str, BandArray],
    *,
    source: str,
    methods: dict[str, Method],
    split: str = "test",
    ratios: Optional[dict[int, float]] = None,
    degradation: str = "psf",
) -> WaldReport:
    """Wald's protocol on one scene for every band group it has (20 m at r = 2, 60 m at r = 6 by default).

    split: "test" (the rows never trained on nor selected on: the bottom eighth) or "all" (a scene never seen);
    degradation: a DEGRADATIONS name."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    degradation_member(degradation)
    ratios = dict(GROUP_RATIO if ratios is None else ratios)
    groups = []
    for resolution, ratio in ratios.items():
        scores = evaluate_group(scene, resolution, ratio, methods, split, degradation)
        if scores is not None:
            groups.append(scores)
    return WaldReport(source, split, groups, list(methods), degradation)


@interruptible
def evaluate_wald(
    source: str,
    *,
    split: str = "test",
    sharpener: Optional[str] = None,
    unguided: bool = True,
    model: Optional[str] = None,
    device: str = "auto",
    threads: Optional[int] = None,
    degradation: str = "psf",
) -> WaldReport:
    """`rssr evaluate --wald`: bicubic, the unguided single-band model (`model`, else the default) and the guided model
    on a product, STAC item or folder of band files, by Wald's protocol with the `degradation` (DEGRADATIONS)."""
    degradation_member(degradation)
    scene = load_scene(source)
    scene = check_wald_size(scene, source, split)
    stats = {name: stats_of(b.values, b.valid) for name, b in scene.items()}
    methods: dict[str, Method] = {"bicubic": bicubic_method}
    if unguided:
        methods["unguided"] = unguided_method(DiffusionBackend(model=model, device=device, threads=threads))
    guided = load_sharpener(sharpener) if sharpener else find_sharpener()
    if guided is not None:
        methods["guided"] = guided_method(guided, stats)
    return wald_report(scene, source=source, methods=methods, split=split, degradation=degradation)
