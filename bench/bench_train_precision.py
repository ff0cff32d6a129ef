"""Training step cost, fp32 vs bf16 autocast + channels-last on this CPU, at the same loss curve (issue 19 item 3).

    python bench/bench_train_precision.py [--quick] [--steps 30] [--threads 1]

Both precisions start from the same weights and see the same batches (drawn once, in advance): the prior stage
(operator, L1) and the denoiser stage (prior pyramid + UNet, x0/L1 from the estimate, t < 0.12 T, as rssr-default-v2
was trained), default architecture, batch 32 (prior) / 16 (denoiser), LR 32 px. Blocks of 5 steps alternate between
the two precisions so that a change in the machine's load hits both alike; the figures are the median seconds per
step, their ratio, and the largest relative difference between the two loss curves.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rssr_cli.model.checkpoint import load_model
from rssr_cli.model.device import cpu_has_native_bf16
from rssr_cli.training.api import _freeze_for, _stage_loss
from rssr_cli.training.data import PatchSampler, find_images, load_images
from rssr_cli.training.trainer import autocast_for

from benchlib import write_result

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/ucmerced/train"


def run_stage(stage: str, steps: int, batch: int) -> dict:
    images = load_images(find_images([DATA])[::12])
    sampler = PatchSampler(images, lr_size=32, query=24 if stage == "prior" else 32, seed=0)
    batches = [sampler.batch(batch) for _ in range(steps)]
    base = load_model(REPO / "models/aerial.safetensors")
    if stage == "denoiser":
        base.set_objective("x0", "l1")
    loss_fn = _stage_loss(stage, 0.12, "estimate")
    runs = {}
    for precision in ("fp32", "bf16"):
        model = copy.deepcopy(base)
        _freeze_for(model, stage)
        if precision == "bf16":
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        params = [p for p in model.parameters() if p.requires_grad]
        runs[precision] = {
            "model": model,
            "opt": torch.optim.AdamW(params, lr=1e-4),
            "params": params,
            "times": [],
            "losses": [],
        }
    for start in range(0, steps, 5):
        for precision, run in runs.items():
            for b in batches[start : start + 5]:
                torch.manual_seed(len(run["losses"]))  # the denoiser's t and noise: the same draw for both precisions
                t0 = time.perf_counter()
                with autocast_for("cpu", precision):
                    loss = loss_fn(run["model"], b).float()
                run["opt"].zero_grad(set_to_none=True)
                loss.backward()
                run["opt"].step()
                run["times"].append(time.perf_counter() - t0)
                run["losses"].append(loss.item())
    fp32, bf16 = runs["fp32"], runs["bf16"]
    rel = [abs(a - b) / abs(a) for a, b in zip(fp32["losses"], bf16["losses"])]
    out = {
        "steps": steps,
        "batch": batch,
        "fp32_s_per_step": statistics.median(fp32["times"]),
        "bf16_s_per_step": statistics.median(bf16["times"]),
        "loss_fp32_mean": float(np.mean(fp32["losses"])),
        "loss_bf16_mean": float(np.mean(bf16["losses"])),
        "max_rel_loss_difference": max(rel),
        "mean_rel_loss_difference": float(np.mean(rel)),
    }
    out["speedup"] = out["fp32_s_per_step"] / out["bf16_s_per_step"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = 10 if args.quick else args.steps
    figures = {"native_bf16": cpu_has_native_bf16(), "threads": args.threads}
    for stage, batch in (("prior", 32), ("denoiser", 16)):
        figures[stage] = run_stage(stage, steps, batch)
        print(stage, {k: round(v, 4) if isinstance(v, float) else v for k, v in figures[stage].items()}, flush=True)
    write_result("bench_train_precision", figures, quick=args.quick)


if __name__ == "__main__":
    main()
