#!/usr/bin/env bash
# A short training recipe for one CUDA GPU, sized by the clock: fine-tune the shipped model within a wall-clock
# budget (default 8 minutes, ~60 % operator prior, ~40 % denoiser in the LR-start regime: x0 from the noised estimate, as the shipped v2), using `rssr train`.
# Step counts come from a 30-step probe of each stage, so the cosine schedule ends inside the budget on any GPU.
# The weights stay those of the default architecture (~12 MB fp32, under 16 MiB).
#
#   bench/gpu_train.sh DATA_DIR VAL_DIR OUT_DIR [--device cuda] [--minutes 8] [--batch-size 64] [--tiny]
#
# --tiny: a few steps of the tiny preset (CI runs this with --device cpu so the script is known to work).
# Environment: PYTHON (default python3) runs `-m rssr_cli`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: $0 DATA_DIR VAL_DIR OUT_DIR [--device D] [--minutes M] [--batch-size B] [--tiny]" >&2; exit 2; }
DATA=$1 VAL=$2 OUT=$3; shift 3
DEVICE=cuda MINUTES=8 BATCH=64 TINY=0
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --minutes) MINUTES=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --tiny) TINY=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
rssr() { "$PY" -m rssr_cli "$@"; }

if [ "$TINY" = 1 ]; then
    rssr train "$DATA" --val "$VAL" -o "$OUT" --preset tiny --prior-steps 6 --denoiser-steps 4 --batch-size 4 \
        --val-every 3 --save-every 3 --denoiser-t-max 0.12 --denoiser-prediction x0 --denoiser-start estimate --sampler-steps 0 --sampler-strength 0.1 --device "$DEVICE" -q
    exit 0
fi

# it/s of a stage from a 30-step probe (the log's last row); the probe's weights are thrown away
rate() {
    local stage=$1 dir="$OUT/probe_$1"
    rssr train "$DATA" -o "$dir" --init models/aerial.safetensors --stage "$stage" --prior-steps 30 --denoiser-steps 30 \
        --batch-size "$BATCH" --val-every 1000000 --save-every 1000000 --device "$DEVICE" -q >/dev/null
    tail -n 1 "$dir/$stage/log.csv" | cut -d, -f4
}
PRIOR_RATE=$(rate prior)
DENOISER_RATE=$(rate denoiser)
rm -rf "$OUT"/probe_*
read -r PRIOR_STEPS DENOISER_STEPS < <("$PY" -c "
budget = $MINUTES * 60 * 0.85  # the rest: model loads, validation, writing
print(int($PRIOR_RATE * 0.6 * budget), int($DENOISER_RATE * 0.4 * budget))")
echo "probe: prior $PRIOR_RATE it/s, denoiser $DENOISER_RATE it/s -> $PRIOR_STEPS + $DENOISER_STEPS steps (batch $BATCH, $MINUTES min)"
VAL_EVERY=$(( (PRIOR_STEPS + DENOISER_STEPS) / 8 + 1 ))
rssr train "$DATA" --val "$VAL" -o "$OUT" --init models/aerial.safetensors --stage all \
    --prior-steps "$PRIOR_STEPS" --denoiser-steps "$DENOISER_STEPS" --batch-size "$BATCH" --lr 1e-4 \
    --denoiser-t-max 0.12 --denoiser-start estimate --val-every "$VAL_EVERY" --save-every "$VAL_EVERY" --device "$DEVICE" -q
echo "model: $OUT/model.safetensors ($(du -h "$OUT/model.safetensors" | cut -f1))"
