"""Write models/default.{safetensors,json} from a trained run: set the default sampler chosen by the
sweep, record the exact training commands, data, and the measured metrics in the card.

    python bench/finalize_default_model.py runs/full/model.safetensors --steps K --strength S \
        --metrics bench/out/quality_bar.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rssr_cli.model.checkpoint import load_model, save_model

TRAINING = {
    "commands": [
        "python bench/train_prior_stage1.py runs/prior 10000   # stage 1: operator, = rssr train --stage prior --prior-steps 10000",
        "python bench/convert_stage1.py runs/prior/best runs/prior_model",
        "rssr train ../shared/data/ucmerced/train --scene ../shared/data/scenes/sentinel2_l1c_b2348_10m.tif "
        "--scene-fraction 0.25 --val ../shared/data/ucmerced/val --stage denoiser --init runs/prior_model.safetensors "
        "--denoiser-steps 5000 --batch-size 16 --threads 2 -o runs/full",
    ],
    "script": "bench/train_default_model.sh",
    "data": {
        "images": "UC Merced train split (1,200 RGB 256x256 uint8, 16 classes, images 00-74), every band a single-band sample",
        "scenes": "Sentinel-2 L1C B02 B03 B04 B08 10 m scene (1933x1947, uint16 /10000), 25% of samples",
        "validation": "UC Merced val (images 75-84); 16 of them (every 10th) for checkpoint selection",
    },
    "degradation": "anti-aliased bicubic down-sampling (rssr_cli.degrade.downsample), LR quantized to uint8 for uint8 sources",
    "scales": "per-sample uniform in [1, 8] (continuous), LR crop 32x32, HR crop round(32*s)",
    "stage_prior": "10,000 steps, batch 32, AdamW 4e-4 warm-up 300 + cosine, EMA 0.999, L1 on the estimate; best EMA by x4 val PSNR gain",
    "stage_denoiser": "5,000 steps, batch 16, operator frozen, v-prediction L1 on the residual over the estimate",
    "hardware": "2-core AMD EPYC CPU, no GPU, ~75 min (stage 1) + ~17 min (stage 2)",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_model")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--strength", type=float, required=True)
    ap.add_argument("--metrics", type=Path, nargs="*", default=[])
    ap.add_argument("--out", default="models/default.safetensors")
    args = ap.parse_args()
    model = load_model(args.run_model)
    model.sampler_defaults.update(steps=args.steps, strength=args.strength)
    metrics = {}
    for path in args.metrics:
        report = json.loads(path.read_text())
        metrics[path.stem] = {"summary": report.get("summary"), "psnr_vs_bicubic": report.get("meta", {}).get("psnr_vs_reference")}
    print(save_model(model, args.out, training=TRAINING, metrics=metrics, model_id="rssr-default-v1"))


if __name__ == "__main__":
    main()
