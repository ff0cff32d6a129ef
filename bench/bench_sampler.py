"""Patch batches per second that the training sampler draws, in the training process and with worker processes
(`rssr train --data-workers`, training/prefetch.py): the ceiling a GPU's training steps cannot pass.

    OMP_NUM_THREADS=1 python bench/bench_sampler.py ../shared/data/ucmerced/train --limit 200 --workers 0,1,2

Patches as bench/gpu_chain.sh trains them: 64² HR, scales 2-8, one band each, bicubic degradation, batch 64.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rssr_cli.training.data import PatchSampler, find_images, load_images
from rssr_cli.training.prefetch import PrefetchedBatches, draw_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated; 0: in this process")
    args = parser.parse_args()
    images = load_images(find_images([args.data])[: args.limit])
    sampler = PatchSampler(images, lr_size=32, query=64, scale_min=2.0, scale_max=8.0, seed=0)
    print(f"{len(images)} images, batch {args.batch_size} of 64² HR patches")
    for workers in (int(w) for w in args.workers.split(",")):
        if workers == 0:
            start = time.perf_counter()
            for k in range(args.batches):
                draw_batch(sampler, 0, k, args.batch_size)
        else:
            with PrefetchedBatches(sampler, args.batch_size, workers, 0) as batches:
                batches.batch(args.batch_size)  # the pool started and filled
                start = time.perf_counter()
                for _ in range(args.batches):
                    batches.batch(args.batch_size)
        rate = args.batches / (time.perf_counter() - start)
        print(f"workers {workers}: {rate:.1f} batches/s ({rate * args.batch_size:.0f} patches/s)")


if __name__ == "__main__":
    main()
