"""A world where the posterior is known exactly, for the posterior-sampler bars (evaluation/posterior.py).

The LR y (SCALE x SCALE box averages) fixes a smooth base and, per SCALE x SCALE block, whether it is
textured (where the base is bright: a fifth of the blocks). A textured block holds c + p1, c - p1, c + p2
or c - p2 with equal probability (c, p1, p2 per block, known, zero-mean: the box average cannot see them,
p1 orthogonal to p2, |p| = |c|). So the posterior mean is base + c in textured blocks and an exact
posterior sample is base + a fresh draw from the pool of four in every textured block.
With `levels`, p1 and p2 are scaled by one factor per image drawn from `levels`, which the LR cannot see either:
an exact sample draws its own factor, so its spectrum's level and the truth's are two independent draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE = 4
BANDS = 3


@dataclass(frozen=True)
class World:
    truth: np.ndarray  # [C, H, W]
    prior: np.ndarray  # the exact posterior mean
    lr: np.ndarray
    textured: np.ndarray  # [Hb, Wb] bool
    common: np.ndarray  # [Hb, Wb, S, S]
    pool: np.ndarray  # [Hb, Wb, 2, S, S] (p1, p2)
    levels: tuple[float, ...] = (1.0,)  # the pool's scale, one per image, uniform over these

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One exact posterior sample."""
        return self.prior + self._texture(rng)

    def _texture(self, rng: np.random.Generator) -> np.ndarray:
        hb, wb = self.textured.shape
        pick = rng.integers(0, 2, size=(hb, wb))
        sign = rng.choice([-1.0, 1.0], size=(hb, wb))
        p = np.take_along_axis(self.pool, pick[:, :, None, None, None], axis=2)[:, :, 0] * sign[:, :, None, None]
        p = p * self.textured[:, :, None, None]
        if len(self.levels) > 1:
            p = p * rng.choice(self.levels)
        plane = p.transpose(0, 2, 1, 3).reshape(hb * SCALE, wb * SCALE)
        return np.broadcast_to(plane, self.prior.shape) * BAND_GAIN[:, None, None]


BAND_GAIN = np.array([1.0, 0.9, 1.1])


def box_down(img: np.ndarray) -> np.ndarray:
    c, h, w = img.shape
    return img.reshape(c, h // SCALE, SCALE, w // SCALE, SCALE).mean(axis=(2, 4))


def make_world(
    seed: int, size: int = 128, amplitude: float = 0.08, spread: float = 1.0, levels: tuple[float, ...] = (1.0,)
) -> World:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.5 + sum(
        0.08 * rng.standard_normal() * np.cos(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
        for fy, fx in rng.integers(-3, 4, size=(6, 2))
    )
    base = np.stack([base * g for g in (1.0, 0.95, 1.05)])
    hb = wb = size // SCALE
    centre = base[0, SCALE // 2 :: SCALE, SCALE // 2 :: SCALE]
    textured = centre > np.quantile(centre, 0.8)

    def zero_mean(a):
        return a - a.mean(axis=(-2, -1), keepdims=True)

    c = zero_mean(rng.standard_normal((hb, wb, SCALE, SCALE)))
    p1 = zero_mean(rng.standard_normal((hb, wb, SCALE, SCALE)))
    p2 = zero_mean(rng.standard_normal((hb, wb, SCALE, SCALE)))
    p2 = p2 - (p1 * p2).sum(axis=(-2, -1), keepdims=True) / (p1 * p1).sum(axis=(-2, -1), keepdims=True) * p1

    def unit(a, norm):
        return a * norm / np.sqrt((a * a).sum(axis=(-2, -1), keepdims=True))

    c, p1, p2 = unit(c, amplitude * SCALE), unit(p1, spread * amplitude * SCALE), unit(p2, spread * amplitude * SCALE)
    common = (c * textured[:, :, None, None]).transpose(0, 2, 1, 3).reshape(size, size)
    prior = base + np.broadcast_to(common, base.shape) * BAND_GAIN[:, None, None]
    world = World(np.empty(0), prior, np.empty(0), textured, c, np.stack([p1, p2], axis=2), levels)
    truth = world.draw(rng)
    return World(truth, prior, box_down(truth), textured, c, world.pool, levels)
