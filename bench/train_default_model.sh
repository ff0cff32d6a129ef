#!/usr/bin/env bash
# How models/default.* was made (2-core CPU, no GPU). Stage 1 was run with bench/train_prior_stage1.py
# (equivalent to `rssr train ... --stage prior --prior-steps 10000 --threads 2`, same sampler, seed, schedule);
# its best EMA state (validation PSNR gain at x4) was converted to a model, then stage 2 trained the
# diffusion denoiser with the operator frozen.
set -euo pipefail
DATA=../shared/data
python bench/train_prior_stage1.py runs/prior 10000
python bench/convert_stage1.py runs/prior/best runs/prior_model
rssr train $DATA/ucmerced/train --scene $DATA/scenes/sentinel2_l1c_b2348_10m.tif --scene-fraction 0.25 \
    --val $DATA/ucmerced/val --stage denoiser --init runs/prior_model.safetensors \
    --denoiser-steps "${DENOISER_STEPS:-5000}" --batch-size 16 --threads 2 -o runs/full
