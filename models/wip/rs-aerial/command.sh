#!/bin/bash
# issue 21: residual-shifting chain on the aerial model's (frozen) operator; selection on every 10th UC Merced val image (--lr 2e-4 until step 2500, 1e-4 since 2026-12-03)
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=1 exec .venv/bin/rssr train ../shared/data/ucmerced/train --val ../shared/data/ucmerced/val --val-crop 128 \
  --stage denoiser --init models/aerial.safetensors --process resshift --chain-steps 8 --kappa 1.0 --variance-correction 1.0 \
  --denoiser-steps 20000 --batch-size 16 --lr 1e-4 --scale-min 2 --scale-max 8 --threads 1 --val-every 500 \
  --save-every 250 --keep best --model-id rssr-aerial-resshift-wip -o runs/rs-aerial "$@"
