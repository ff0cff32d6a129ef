#!/usr/bin/env bash
# Everything a GPU session should run, as one command (see BENCHMARKS.md "GPU"):
#   1. the short training recipe (bench/gpu_train.sh),
#   2. the `gpu`-marked tests: device vs CPU, bf16/fp16 vs fp32 within stated tolerances, seeds deterministic,
#      and CUDA training with resume,
#   3. the throughput table (output Mpix/s at x4 by batch size and precision; a full Sentinel-2 tile projected),
#   4. the new model vs the shipped one on the validation images (x4, detail metrics included).
# Results go to OUT (<= 8 files: what the device tool brings back).
#
#   bench/gpu_check.sh                                   # on a CUDA machine: data from .carry/ (bench/gpu_carry.sh)
#   bench/gpu_check.sh --device cpu --tiny --data D --val V --out O   # CI: the same steps, tiny, on the CPU
#
# On the bare device machine: wheels in .carry/whl (bench/gpu_carry.sh) are installed to /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda TINY=0 DATA=.carry/data/train VAL=.carry/data/val OUTDIR=${OUT:-bench/out/gpu_check} MINUTES=${GPU_TRAIN_MINUTES:-5}
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --tiny) TINY=1; shift ;;
        --data) DATA=$2; shift 2 ;;
        --val) VAL=$2; shift 2 ;;
        --out) OUTDIR=$2; shift 2 ;;
        --minutes) MINUTES=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUTDIR"
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1
if ! "$PYTHON" -c "import rasterio, rio_cogeo, shapely" 2>/dev/null; then
    [ -d .carry/whl ] || { echo "rasterio/rio-cogeo/shapely missing and no .carry/whl: run bench/gpu_carry.sh first" >&2; exit 1; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .carry/whl/*.whl
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PYTHON" -c "import rssr_cli" 2>/dev/null || export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # not installed: the checkout
LOG="$OUTDIR/log.txt"
: > "$LOG"
say() { echo "== $*" | tee -a "$LOG"; }

say "environment $(date -u +%FT%TZ)"
{ "$PYTHON" -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; } 2>&1 | tee -a "$LOG"

say "1. training recipe ($DEVICE)"
TRAIN=${TRAIN_DIR:-$(mktemp -d)/train}  # outside OUT: only the model and its log come back
start=$(date +%s)
if [ "$TINY" = 1 ]; then bench/gpu_train.sh "$DATA" "$VAL" "$TRAIN" --device "$DEVICE" --tiny 2>&1 | tee -a "$LOG"
else bench/gpu_train.sh "$DATA" "$VAL" "$TRAIN" --device "$DEVICE" --minutes "$MINUTES" 2>&1 | tee -a "$LOG"; fi
say "training took $(( $(date +%s) - start )) s"
cp "$TRAIN/model.safetensors" "$TRAIN/model.json" "$OUTDIR/"
cat "$TRAIN"/*/log.csv > "$OUTDIR/train_log.csv"

say "2. gpu-marked tests"
if [ "$TINY" = 1 ]; then CHECK_MODEL=$TRAIN/model.safetensors; else CHECK_MODEL=models/aerial.safetensors; fi
RSSR_CHECK_DEVICE=$DEVICE RSSR_CHECK_MODEL=$CHECK_MODEL "$PYTHON" -m pytest -m gpu -p no:cacheprovider tests/backends/test_gpu.py tests/training/test_train.py 2>&1 | tee -a "$LOG"

say "3. throughput"
if [ "$TINY" = 1 ]; then
    "$PYTHON" bench/bench_throughput.py --device "$DEVICE" --model "$CHECK_MODEL" --size 32 --batches 1 2 --precisions fp32 --repeats 1 --json "$OUTDIR/throughput.json" 2>&1 | tee -a "$LOG"
else
    "$PYTHON" bench/bench_throughput.py --device "$DEVICE" --json "$OUTDIR/throughput.json" 2>&1 | tee -a "$LOG"
fi

say "4. new model vs the shipped one (x4, validation images)"
LIMIT=$([ "$TINY" = 1 ] && echo 2 || echo 32)
"$PYTHON" -m rssr_cli evaluate "$VAL" --model "$TRAIN/model.safetensors" -s 4 --limit "$LIMIT" --device "$DEVICE" --methods bicubic --json "$OUTDIR/eval_new.json" 2>&1 | tee -a "$LOG"
if [ "$TINY" = 0 ]; then
    "$PYTHON" -m rssr_cli evaluate "$VAL" --model models/aerial.safetensors -s 4 --limit "$LIMIT" --device "$DEVICE" --methods bicubic --json "$OUTDIR/eval_default.json" 2>&1 | tee -a "$LOG"
fi
say "done: $(ls "$OUTDIR" | tr '\n' ' ')"
