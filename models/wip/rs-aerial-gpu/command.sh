#!/bin/bash
# issue 21: the aerial chain (rs-aerial, step 7000) continued on one NVIDIA H200 (2026-12-04), in two device calls of
# bench/gpu_chain.sh; the device tool carried the wheels, the chain and UC Merced train images (.devB: 89 images;
# call 2 also the 506 of .devA, copied to the device's /tmp by a call before it: 595 in all = the first 37-38 images
# by sorted name of each of the 16 classes, 75 each, filled class by class to the 64 MiB a call carries) and the 16 selection images (every 10th of UC Merced val, as rs-aerial's --val).
# Call 1 (init: rs-aerial step 7000, exported with bench/export_state.py), 1130 steps, kept step 189 (log_call1.csv) = ema_call1.*, the chosen one
#   (higher proper score on the 64-image calibration split, 0.2544 vs 0.2437; BENCHMARKS.md, "The aerial chain trained on a GPU"):
#   bench/gpu_chain.sh .devB/init/model.safetensors .devB/val /tmp/chain .devB/train --minutes 4 --batch-size 64
# Call 2 (init: call 1's model), 4500 steps, kept step 3004 (log_call2.csv) = ema_call2.*:
#   bench/gpu_chain.sh .devB/init/model.safetensors .devB/val /tmp/chain .devB/train /tmp/trainA --steps 4500 --batch-size 64
# i.e. rssr train DATA... --stage denoiser --init INIT --process resshift --chain-steps 8 --kappa 1.0
#   --variance-correction 1.0 --scale-min 2 --scale-max 8 --batch-size 64 --device cuda --val VAL --val-crop 128
#   --denoiser-steps N --lr 1e-4 --val-every N/6+1 --save-every N/6+1 --keep best
# Rebuild the model here (the optimizer state stayed on the device; continue with --init, not --resume):
#   python bench/wip_state.py unpack-model models/wip/rs-aerial-gpu/ema_call1 runs/gpu/run1 --init models/aerial.safetensors
# (until 362dd16 the --init was rs-aerial's exported CPU state: the same tensors; that state is retired since)
cd "$(dirname "$0")/../../.."  # the repository root
exec bench/gpu_chain.sh "$@"
