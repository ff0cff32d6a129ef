#!/usr/bin/env bash
# Quality of a model vs bicubic/lanczos on UC Merced val (tables in BENCHMARKS.md). CPU-sized subsets:
# --limit N takes N images evenly spaced over the 16 class folders.
set -euo pipefail
MODEL=${1:-models/default.safetensors}
VAL=../shared/data/ucmerced/val
mkdir -p bench/out
# 1. the bar: prior and the default sampler vs bicubic/lanczos at every scale
rssr evaluate $VAL --model "$MODEL" --scales 2,3,4,4.5,8 --limit "${LIMIT:-48}" --json bench/out/quality_bar.json
# 2. sampler comparison at x4: prior vs LR-start k = 1, 5, 10, 20 vs full chain from pure noise (50, 200)
rssr evaluate $VAL --model "$MODEL" --scales 4 --steps 0,1,5,10,20 --full-chain 50,200 --methods bicubic \
    --limit "${LIMIT_SAMPLERS:-4}" --json bench/out/quality_samplers.json
