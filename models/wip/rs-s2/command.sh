#!/bin/bash
# issue 21: residual-shifting chain on the Sentinel-2 model's (frozen) operator
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=1 exec .venv/bin/rssr train runs/s2corpus/train --scene ../shared/data/scenes/sentinel2_l1c_b2348_10m.tif --scene-fraction 0.2 \
  --val runs/s2corpus/select --val-crop 96 --stage denoiser --init runs/s2-10m-v1.safetensors --process resshift --chain-steps 8 --kappa 1.0 --variance-correction 1.0 \
  --denoiser-steps 20000 --batch-size 16 --lr 2e-4 --scale-min 2 --scale-max 8 --degradation sentinel2 --threads 1 --val-every 500 \
  --save-every 250 --keep best --model-id rssr-s2-10m-resshift-wip -o runs/rs-s2 "$@"
