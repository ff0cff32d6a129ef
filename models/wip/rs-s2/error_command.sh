#!/bin/bash
# issue 21: the s2 chain's error head (model/error_head.py) on its frozen operator; --init is the chain exported from
# state (models/wip/README.md: runs/rs-s2/model.safetensors); 4000 steps, kept at step 3500 (best selection NLL)
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=1 exec .venv/bin/rssr train runs/s2corpus/train --scene ../shared/data/scenes/sentinel2_l1c_b2348_10m.tif --scene-fraction 0.2 \
  --val runs/s2corpus/select --val-crop 96 --stage error --init runs/rs-s2/model.safetensors --error-steps 4000 --batch-size 16 \
  --lr 2e-3 --scale-min 2 --scale-max 8 --degradation sentinel2 --threads 1 --val-every 500 --save-every 250 --keep best \
  --model-id rssr-s2-10m-resshift-wip -o runs/rs-s2-eh "$@"
