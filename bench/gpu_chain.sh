#!/usr/bin/env bash
# Continue the aerial residual-shifting chain (issue 21) on one CUDA GPU within a wall-clock budget: the same objective
# and settings as models/wip/rs-aerial/command.sh (T 8, kappa 1, scales 2-8, 64² HR patches, selection by the chain's
# bar-based score on the 16 selection images), a larger batch, and a fresh cosine schedule sized by a 30-step probe
# so it ends inside the budget. INIT is the chain exported from its wip state (bench/export_state.py).
#
#   bench/gpu_chain.sh INIT VAL OUT DATA_DIR... [--device cuda] [--minutes 4.5] [--batch-size 64] [--steps N]
#                      [--data-workers 8]
#
# --steps N: skip the probe and train N steps (a CPU smoke run: --device cpu --steps 4).
# --data-workers W: processes drawing the patch batches ahead of the step (the seventh stop's GPU waited on the one
# sampler process: 14-17 it/s at batch 64); 0 draws them in the training process.
# Environment: PYTHON (default python3) runs `-m rssr_cli`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { echo "usage: $0 INIT VAL OUT DATA_DIR... [--device D] [--minutes M] [--batch-size B] [--steps N] [--data-workers W]" >&2; exit 2; }
INIT=$1 VAL=$2 OUT=$3; shift 3
DATA=() DEVICE=cuda MINUTES=4.5 BATCH=64 STEPS=0 WORKERS=8
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --minutes) MINUTES=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --data-workers) WORKERS=$2; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) DATA+=("$1"); shift ;;
    esac
done
PY=${PYTHON:-python3}
chain() {  # the chain's settings, as models/wip/rs-aerial/command.sh
    "$PY" -m rssr_cli train "${DATA[@]}" --stage denoiser --init "$INIT" --process resshift --chain-steps 8 --kappa 1.0 \
        --variance-correction 1.0 --scale-min 2 --scale-max 8 --batch-size "$BATCH" --device "$DEVICE" \
        --data-workers "$WORKERS" -q "$@"
}
if [ "$STEPS" = 0 ]; then
    chain -o "$OUT/probe" --denoiser-steps 30 --val-every 1000000 --save-every 1000000 >/dev/null
    RATE=$(tail -n 1 "$OUT/probe/denoiser/log.csv" | cut -d, -f4)
    rm -rf "$OUT/probe"
    STEPS=$("$PY" -c "print(int($RATE * $MINUTES * 60 * 0.85))")  # the rest: loads, validation, writing
    echo "probe: $RATE it/s at batch $BATCH -> $STEPS steps in $MINUTES min"
fi
EVERY=$(( STEPS / 6 + 1 ))
chain -o "$OUT" --val "$VAL" --val-crop 128 --denoiser-steps "$STEPS" --lr 1e-4 --val-every "$EVERY" --save-every "$EVERY" \
    --keep best --model-id rssr-aerial-resshift-gpu
echo "model: $OUT/model.safetensors ($(du -h "$OUT/model.safetensors" | cut -f1))"
