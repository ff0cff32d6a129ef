"""Batches drawn by worker processes (training/prefetch.py): batch k is the same whoever draws it, in order, from any
step on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rssr_cli.training.data import PatchSampler, SensorPatchSampler, TrainImage
from rssr_cli.training.pairs import MixedSampler
from rssr_cli.training.prefetch import PrefetchedBatches, draw_batch


def _images() -> list[TrainImage]:
    rng = np.random.default_rng(3)
    return [TrainImage(rng.random((2, 96, 96)).astype(np.float32), 4095, f"img{i}") for i in range(3)]


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", [PatchSampler, SensorPatchSampler])
def test_batch_k_is_the_same_in_any_process_and_for_any_worker_count(kind):
    sampler = kind(_images(), lr_size=16, query=12, scale_min=2.0, scale_max=4.0, noise_max=0.01, seed=5)
    expected = [draw_batch(sampler, 7, k, 4) for k in range(5)]
    assert not _equal(expected[0], expected[1])  # batches differ from each other
    for workers in (1, 3):
        with PrefetchedBatches(sampler, 4, workers, 7) as batches:
            got = [batches.batch(4) for _ in range(5)]
        assert all(_equal(g, e) for g, e in zip(got, expected)), workers
    with PrefetchedBatches(sampler, 4, 2, 7) as batches:
        batches.batch(4)
        batches.seek(3)  # a resumed run at step 3
        assert _equal(batches.batch(4), expected[3]) and _equal(batches.batch(4), expected[4])
    assert not _equal(draw_batch(sampler, 8, 0, 4), expected[0])  # another seed, other batches


def test_a_mixed_sampler_reseeds_both_parts():
    synthetic = PatchSampler(_images(), lr_size=16, query=12, scale_min=2.0, scale_max=3.0, seed=1)
    other = PatchSampler(_images(), lr_size=16, query=12, scale_min=2.0, scale_max=3.0, seed=2)
    mixed = MixedSampler(other, synthetic, 0.5)  # (a PatchSampler stands in for the pairs: same contract)
    first = draw_batch(mixed, 0, 0, 4)
    mixed.batch(4)  # whatever was drawn in between
    assert _equal(draw_batch(mixed, 0, 0, 4), first)


def test_the_batch_size_is_fixed_and_workers_are_at_least_one():
    sampler = PatchSampler(_images(), lr_size=16, query=12, scale_min=2.0, scale_max=3.0)
    with pytest.raises(ValueError, match="workers"):
        PrefetchedBatches(sampler, 4, 0, 0)
    with PrefetchedBatches(sampler, 4, 1, 0) as batches, pytest.raises(ValueError, match="4 samples"):
        batches.batch(8)
