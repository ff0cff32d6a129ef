"""Patch batches drawn by worker processes while the network trains (`rssr train --data-workers N`).

On a GPU the network waits on the host: the seventh stop trained the aerial chain at 12-17 it/s at batch 64 on an
H200, where drawing a batch (numpy and small torch ops, one process) takes about half a step (BENCHMARKS.md, "GPU":
28 batches/s on the project's CPU). N worker processes draw the next batches ahead of the training step, in order.

One sequential random stream cannot be split between processes, so in this mode batch k is drawn by the sampler
reseeded from (seed, k) alone (`reseed`): what a run trains on does not depend on how many workers drew it, and a
resumed run needs only its step (`seek`). Without workers the sampler's own sequential stream is used, as before (and
a run resumed in the other mode draws other, still fresh, patches).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from multiprocessing.pool import AsyncResult
from typing import Any, Optional, Protocol

import numpy as np
import torch

from rssr_cli.training.data import BatchSource, PatchBatch


class Reseedable(BatchSource, Protocol):
    def reseed(self, entropy: tuple[int, ...]) -> None: ...


_WORKER_SAMPLER: Optional[Reseedable] = None  # each worker process's own copy (set by _start_worker)


def _start_worker(sampler: Reseedable) -> None:
    global _WORKER_SAMPLER
    # a forked worker inherits the training command's signal handling (core/interrupts.py: SIGTERM raises, a watchdog
    # reads the wakeup fd): the pool's terminate() must end it, and Ctrl-C is for the parent, which stops the pool
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # N workers beside the training process: one thread each
    _WORKER_SAMPLER = sampler


def draw_batch(sampler: Reseedable, seed: int, index: int, batch_size: int) -> PatchBatch:
    """Batch `index` of a run seeded `seed`: the same whatever process draws it."""
    sampler.reseed((seed, index))
    return sampler.batch(batch_size)


def _draw_in_worker(seed: int, index: int, batch_size: int) -> tuple[np.ndarray, ...]:
    assert _WORKER_SAMPLER is not None, "the worker was not started with a sampler"
    return tuple(t.numpy() for t in draw_batch(_WORKER_SAMPLER, seed, index, batch_size))  # arrays pickle cheaply


class PrefetchedBatches:
    """The trainer's sampler in worker mode: batch(n) returns batch 0, 1, 2, … of `draw_batch`, drawn `ahead` batches
    in advance by `workers` processes (a copy of `sampler` each). A context manager: the workers stop on exit."""

    def __init__(self, sampler: Reseedable, batch_size: int, workers: int, seed: int, *, ahead: Optional[int] = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.batch_size, self.seed = batch_size, seed
        self.ahead = ahead or 2 * workers
        self.next_index = 0
        self._pending: deque[tuple[int, AsyncResult]] = deque()
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")  # fork shares the images
        self._pool: Any = context.Pool(workers, initializer=_start_worker, initargs=(sampler,))

    def seek(self, index: int) -> None:
        """The next batch returned is batch `index` (a resumed run: its step)."""
        self._pending.clear()  # results already asked for are dropped, not waited on
        self.next_index = index

    def batch(self, batch_size: int) -> PatchBatch:
        if batch_size != self.batch_size:
            raise ValueError(f"prefetched batches hold {self.batch_size} samples, {batch_size} were asked for")
        asked = self.next_index + len(self._pending)
        while len(self._pending) < self.ahead:
            self._pending.append((asked, self._pool.apply_async(_draw_in_worker, (self.seed, asked, self.batch_size))))
            asked += 1
        index, result = self._pending.popleft()
        self.next_index = index + 1
        return PatchBatch(*(torch.from_numpy(a) for a in result.get()))

    def close(self) -> None:
        # close + join, not terminate: a worker killed while it writes a result can leave the pool's result queue
        # locked and join() waiting forever (seen in the test suite); the few batches asked ahead finish in well
        # under a second, then the workers exit
        self._pending.clear()
        self._pool.close()
        self._pool.join()

    def __enter__(self) -> "PrefetchedBatches":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
