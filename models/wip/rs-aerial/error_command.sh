#!/bin/bash
# issue 21: the aerial chain's error head (model/error_head.py) on its frozen operator; --init is the chain exported
# from state at step 5500 (models/wip/README.md: runs/rs-aerial/model.safetensors); 4000 steps, kept at 4000
cd "$(dirname "$0")/../../.."  # the repository root
OMP_NUM_THREADS=1 exec .venv/bin/rssr train ../shared/data/ucmerced/train --val ../shared/data/ucmerced/val --val-crop 128 \
  --stage error --init runs/rs-aerial/model.safetensors --error-steps 4000 --batch-size 16 --lr 2e-3 --scale-min 2 --scale-max 8 \
  --threads 1 --val-every 500 --save-every 250 --keep best --model-id rssr-aerial-resshift-wip -o runs/rs-aerial-eh "$@"
