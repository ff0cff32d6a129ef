"""Training images and the per-sample random-scale patch sampler (HR crop -> LR at a continuous scale)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, NamedTuple, Optional, Protocol, Sequence

import numpy as np
import torch

from rssr_cli.core.errors import UsageError
from rssr_cli.degradation import sensor_degradation
from rssr_cli.degradation.degrade import degrade
from rssr_cli.geo.grid import check_scale_range, pixel_centres
from rssr_cli.io import images


@dataclass(frozen=True)
class TrainImage:
    """One training image: float32 [C,H,W] in normalized units, and its quantization step (uint8 sources)."""

    pixels: np.ndarray
    quantize_levels: Optional[int]
    source: str


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files under the given folders (recursively, images.find_images) or the files themselves."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += images.find_images(p)
        elif images.is_image(p) and p.exists():
            found.append(p)
        else:
            raise UsageError(f"training data not found or not an image: {p}")
    if not found:
        raise UsageError("no training images found in: " + ", ".join(map(str, paths)))
    return found


def load_images(paths: Sequence[Path], *, limit: Optional[int] = None) -> list[TrainImage]:
    loaded = []
    for p in paths[:limit]:
        pixels, dtype = images.read_model_units(p)
        loaded.append(TrainImage(pixels, 255 if dtype == "uint8" else None, str(p)))
    return loaded


def reseeded(entropy: tuple[int, ...]) -> tuple[np.random.Generator, int]:
    """A numpy generator and a torch seed, both from `entropy` (numpy's SeedSequence: independent streams)."""
    sequence = np.random.SeedSequence(entropy)
    return np.random.default_rng(sequence), int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class PatchBatch(NamedTuple):
    lr: torch.Tensor  # [B, C, l, l]
    ys: torch.Tensor  # [B, q] HR pixel centres of the query block, in LR pixels
    xs: torch.Tensor  # [B, q]
    cell: torch.Tensor  # [B, 2]
    hr: torch.Tensor  # [B, C, q, q] target HR block
    scale: torch.Tensor  # [B] effective scale of each sample


class BatchSource(Protocol):
    """What the trainer draws from: a sampler here or in pairs.py, or prefetch.PrefetchedBatches."""

    def batch(self, batch_size: int) -> PatchBatch: ...


@dataclass
class PatchSampler:
    """Draws batches that mix scales: every sample has its own s in [scale_min, scale_max].

    Each sample is one band (the model's band rule: bands are super-resolved independently) unless
    `channels` > 1. The LR crop is always lr_size x lr_size (whole pixels, so batches stack); the HR crop is
    round(lr_size * s) px, so the effective scale is hr_crop / lr_size; a random query x query block of
    the HR crop is the target (LIIF-style sub-sampling keeps the HR side bounded at large s).
    """

    images: list[TrainImage]
    weights: Optional[list[float]] = None
    lr_size: int = 32
    query: int = 24
    scale_min: float = 1.0
    scale_max: float = 8.0
    channels: int = 1
    blur_max: float = 0.0
    noise_max: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        w = np.asarray(self.weights if self.weights is not None else [1.0] * len(self.images), dtype=np.float64)
        self.p = w / w.sum()
        check_scale_range(self.scale_min, self.scale_max)

    def rng_state(self) -> tuple[dict, torch.Tensor]:
        """The data and noise RNG states (JSON-able dict, tensor): saved with the training state, so a resumed run
        draws the patches and noise it would have drawn, not the first ones again."""
        return dict(self.rng.bit_generator.state), self.generator.get_state()

    def set_rng_state(self, numpy_state: dict, torch_state: torch.Tensor) -> None:
        self.rng.bit_generator.state = numpy_state
        self.generator.set_state(torch_state)

    def reseed(self, entropy: tuple[int, ...]) -> None:
        """Both streams restarted from `entropy` alone (training/prefetch.py: batch k of a run drawn from (seed, k))."""
        self.rng, torch_seed = reseeded(entropy)
        self.generator.manual_seed(torch_seed)

    def _sample_one(self):
        img = self.images[self.rng.choice(len(self.images), p=self.p)]
        _, h, w = img.pixels.shape
        s = self.rng.uniform(self.scale_min, self.scale_max)
        hr_size = int(np.clip(round(self.lr_size * s), self.query + 1, min(h, w)))
        return self._crop(img, hr_size), hr_size, img.quantize_levels

    def _crop(self, img: TrainImage, size: int) -> np.ndarray:
        """A random size x size crop of one band (or all, for a multi-channel model), randomly rotated and flipped."""
        c, h, w = img.pixels.shape
        y0, x0 = self.rng.integers(0, h - size + 1), self.rng.integers(0, w - size + 1)
        if self.channels == 1:
            bands = [int(self.rng.integers(0, c))]
        elif c == self.channels:
            bands = list(range(c))
        else:
            raise UsageError(f"image {img.source} has {c} bands, the model expects {self.channels}")
        crop = np.rot90(img.pixels[bands, y0 : y0 + size, x0 : x0 + size], int(self.rng.integers(0, 4)), axes=(1, 2))
        return np.ascontiguousarray(crop[:, :, ::-1] if self.rng.random() < 0.5 else crop)

    def batch(self, batch_size: int) -> PatchBatch:
        lrs, ys, xs, cells, hrs, scales = [], [], [], [], [], []
        l, q = self.lr_size, self.query
        for _ in range(batch_size):
            crop, hr_size, levels = self._sample_one()
            hr = torch.from_numpy(crop)[None]
            blur = float(self.rng.uniform(0, self.blur_max)) if self.blur_max > 0 else 0.0
            noise = float(self.rng.uniform(0, self.noise_max)) if self.noise_max > 0 else 0.0
            lrs.append(
                degrade(hr, (l, l), blur_sigma=blur, noise_std=noise, quantize_levels=levels, generator=self.generator)[
                    0
                ]
            )
            qy, qx = self.rng.integers(0, hr_size - q + 1, size=2)
            step = l / hr_size
            ys.append(pixel_centres(q, step, first=qy))
            xs.append(pixel_centres(q, step, first=qx))
            cells.append((step, step))
            hrs.append(hr[0, :, qy : qy + q, qx : qx + q])
            scales.append(hr_size / l)
        f32 = torch.float32
        return PatchBatch(
            torch.stack(lrs),
            torch.tensor(np.array(ys), dtype=f32),
            torch.tensor(np.array(xs), dtype=f32),
            torch.tensor(cells, dtype=f32),
            torch.stack(hrs),
            torch.tensor(scales, dtype=f32),
        )


@dataclass
class SensorPatchSampler(PatchSampler):
    """PatchSampler whose LR is the real sensor's degradation of the HR crop (sensor_degradation: a random PSF member,
    the box aggregate on a grid at a random sub-pixel phase, noise, 12-bit quantization) instead of a bicubic resize.

    The HR crop carries a margin of the PSF's reach around the LR footprint, so no LR pixel sees padding; the target
    is a query x query block of whole HR pixels inside the footprint, located for the model exactly (any phase)."""

    def batch(self, batch_size: int) -> PatchBatch:
        lrs, ys, xs, cells, hrs, scales = [], [], [], [], [], []
        l, q = self.lr_size, self.query
        for _ in range(batch_size):
            img = self.images[self.rng.choice(len(self.images), p=self.p)]
            member = sensor_degradation.draw(self.rng)
            s = max(
                float(self.rng.uniform(self.scale_min, self.scale_max)), (q + 1) / l
            )  # the target block fits (PatchSampler's rule)
            margin = sensor_degradation.gaussian_radius(sensor_degradation.gaussian_sigma(s, member.gaussian_mtf)) + 2
            room = min(img.pixels.shape[-2:]) - 2 * margin - 1
            if l * s > room:  # a small image: the largest scale it holds
                s = room / l
            if l * s < q + 1:
                raise UsageError(f"image {img.source} is too small for {l} px LR crops")
            size = int(np.ceil(l * s)) + 1 + 2 * margin
            crop = self._crop(img, size)
            origin = (margin + member.origin[0], margin + member.origin[1])
            placed = replace(member, origin=origin)
            hr = torch.from_numpy(crop)[None]
            lrs.append(sensor_degradation.degrade(hr, s, (l, l), placed, generator=self.generator)[0])
            first = [int(self.rng.integers(int(np.ceil(o)), int(np.floor(o + l * s)) - q + 1)) for o in origin]
            ys.append(sensor_degradation.lr_centres_of_hr(q, s, origin[0], first[0]).numpy())
            xs.append(sensor_degradation.lr_centres_of_hr(q, s, origin[1], first[1]).numpy())
            cells.append((1.0 / s, 1.0 / s))
            hrs.append(hr[0, :, first[0] : first[0] + q, first[1] : first[1] + q])
            scales.append(s)
        f32 = torch.float32
        return PatchBatch(
            torch.stack(lrs),
            torch.tensor(np.array(ys), dtype=f32),
            torch.tensor(np.array(xs), dtype=f32),
            torch.tensor(cells, dtype=f32),
            torch.stack(hrs),
            torch.tensor(scales, dtype=f32),
        )
