#!/usr/bin/env bash
# Quality of a model vs bicubic/lanczos on UC Merced val (tables in BENCHMARKS.md; render them with
# bench/quality_table.py bench/out/quality_bar.json). CPU-sized subsets: --limit N takes N images evenly
# spaced over the 16 class folders. Writes bench/out/quality_bar.json and quality_samplers.json.
#
#   bench/bench_quality.sh [--quick] [MODEL]     (--quick: 4 images at x2 and x4; 1 image, k = 0, 2 and a 5-step full chain for the samplers; make bench)
set -euo pipefail
QUICK=""
if [[ "${1:-}" == "--quick" ]]; then QUICK=--quick; shift; fi
MODEL=${1:-models/aerial.safetensors}
VAL=${VAL:-../shared/data/ucmerced/val}
PY=${PYTHON:-python}
mkdir -p bench/out
if [[ -n "$QUICK" ]]; then
    SCALES=2,4 LIMIT=${LIMIT:-4} LIMIT_SAMPLERS=${LIMIT_SAMPLERS:-1} STEPS=0,2 FULL=5
else
    SCALES=2,3,4,4.5,8 LIMIT=${LIMIT:-48} LIMIT_SAMPLERS=${LIMIT_SAMPLERS:-4} STEPS=0,1,5,10,20 FULL=50,200
fi
# 1. the bar: prior and the default sampler vs bicubic/lanczos at every scale
"$PY" -m rssr_cli evaluate "$VAL" --model "$MODEL" --scales "$SCALES" --limit "$LIMIT" -q --json bench/out/.quality_bar.json
"$PY" bench/benchlib.py quality_bar bench/out/.quality_bar.json $QUICK
# 2. sampler comparison at x4: prior vs LR-start k steps vs the full chain from pure noise
"$PY" -m rssr_cli evaluate "$VAL" --model "$MODEL" --scales 4 --steps "$STEPS" --full-chain "$FULL" --methods bicubic \
    --limit "$LIMIT_SAMPLERS" -q --json bench/out/.quality_samplers.json
"$PY" bench/benchlib.py quality_samplers bench/out/.quality_samplers.json $QUICK
"$PY" bench/quality_table.py bench/out/quality_bar.json bench/out/quality_samplers.json
