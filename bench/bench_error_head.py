"""How well the prior's error is known before any draw: a model's learned error head (model/error_head.py) against the
local-detail power law (resshift.local_error_variance, fitted on the selection images), on held-out images.

    OMP_NUM_THREADS=1 python bench/bench_error_head.py runs/eh-s2/model.safetensors --select runs/s2corpus/select \\
        --select-crop 96 --data runs/s2corpus/eval_tiles --degradation sentinel2

Per image (file), at --scale: predicted / actual squared error of the prior summed over the image (the level the
chain's spread per image follows; 1 is right), then over images: the median, the log-sd (how far a single image's
level is off), the correlation of the log ratio with the log error (negative: the large errors are under-predicted),
and the median over images of the correlation of log predicted with log actual error over 8 x 8 blocks (where in an
image). Rows per folder of --data (a city) give the median ratio. The law's exponent and scale are fitted on the
selection images as `calibrate_chain.py --local` does; the head's global level is free (v0 calibrates it), so the
log-sd and the correlations are what compare.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from rssr_cli.model.checkpoint import load_model
from rssr_cli.model.normalize import destandardize
from rssr_cli.model.resshift import local_error_variance
from rssr_cli.scoring.posterior import block_means
from rssr_cli.training.api import validation_images
from rssr_cli.training.calibration import FIT_BLOCK, fit_local_error
from rssr_cli.training.data import find_images, load_images
from rssr_cli.training.trainer import protocol_window


@torch.no_grad()
def predictions(model, image, scale: float, degradation: str, law) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The prior's squared error and each predictor's expected squared error, [bands, H, W] in the input's units, border
    shaved (ceil(scale) px, as the chain's figures)."""
    lr, hr, (ys, xs, cell) = protocol_window(image, scale, degradation)
    prior, stats = model.prior(lr, ys, xs, cell)
    estimate = destandardize(prior.estimate.float(), stats)
    error = (hr.float().reshape(estimate.shape) - estimate) ** 2
    found = {
        "head": torch.exp(model.error_log_variance(prior, cell)) * stats.std.float() ** 2,
        "law": local_error_variance(estimate, exponent=law.exponent, log_scale=law.log_scale),
    }
    b = math.ceil(scale)
    shave = (slice(None), 0, slice(b, -b), slice(b, -b))
    return error[shave].numpy(), {k: v[shave].numpy() for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a model with an error head (rssr train --stage error)")
    parser.add_argument("--select", type=Path, required=True, help="the selection images the law is fitted on")
    parser.add_argument("--select-crop", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True, help="held-out images (folders: one row each)")
    parser.add_argument("--degradation", default="bicubic")
    parser.add_argument("--scale", type=float, default=4.0)
    args = parser.parse_args()
    model = load_model(args.model).eval()
    if model.error_head is None:
        parser.error(f"{args.model} has no error head (rssr train --stage error)")
    law = fit_local_error(model, validation_images(args.select, 16, args.select_crop), args.scale, args.degradation)
    files = find_images([args.data])
    ratios: dict[str, list[float]] = {"head": [], "law": []}
    blocks: dict[str, list[float]] = {"head": [], "law": []}
    errors = []
    for image in load_images(files):
        error, predicted = predictions(model, image, args.scale, args.degradation, law)
        errors.append(float(error.sum()))
        error_blocks = block_means(error, FIT_BLOCK).ravel()
        for name, p in predicted.items():
            ratios[name].append(float(p.sum() / max(error.sum(), 1e-30)))
            p_blocks = block_means(p, FIT_BLOCK).ravel()
            keep = (error_blocks > 0) & (p_blocks > 0)
            blocks[name].append(float(np.corrcoef(np.log(error_blocks[keep]), np.log(p_blocks[keep]))[0, 1]))
    print(f"{len(files)} images at x{args.scale:g}; law fitted on {args.select}: exponent {law.exponent:.3f}")
    print("| predictor | median predicted / actual | log-sd over images | corr(log ratio, log error) | block corr |")
    print("|---|---|---|---|---|")
    for name in ratios:
        r = np.log(ratios[name])
        print(
            f"| {name} | {np.exp(np.median(r)):.2f} | {r.std():.3f} | {np.corrcoef(r, np.log(errors))[0, 1]:+.2f} | "
            f"{np.median(blocks[name]):.3f} |"
        )
    groups = sorted({f.parent.name for f in files})
    if len(groups) > 1:
        print("\n| folder | images | head: median predicted / actual | law |")
        print("|---|---|---|---|")
        for g in groups:
            k = [i for i, f in enumerate(files) if f.parent.name == g]
            head, law_ratio = (np.median(np.array(ratios[n])[k]) for n in ("head", "law"))
            print(f"| {g} | {len(k)} | {head:.2f} | {law_ratio:.2f} |")


if __name__ == "__main__":
    main()
