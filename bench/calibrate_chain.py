"""Choose a residual-shifting chain's sampler settings (variance correction v0, band correlation of the noise) on the
selection set and write them into its card (issue 21, "v0 per model"; rssr_cli/training/calibration.py says why).

    OMP_NUM_THREADS=1 python bench/calibrate_chain.py runs/rs-s2/best_model.safetensors \\
        --val runs/s2corpus/select --val-crop 96 --degradation sentinel2 -o runs/rs-s2/calibrated

--device: where the draws run (auto picks CUDA when present); on this project's 2-core CPU one v0 candidate takes
~28 min on 64 whole aerial images, one core.

Use the run's own --val, --val-crop and --val-limit (its command.sh): the selection images, never held-out ones.
Every combination of --grid (v0), --correlations and --tilts is a candidate (with --null-space, each draw's deviation
projected out of what the input sees, calibrated that way; --range-correction w: each draw also puts back w of the
prior's own inconsistency with its input, null_space.py). --local first fits how the prior's error grows with its
local detail on the same images (calibration.fit_local_error) and makes v0 a multiplier of that expected error
(--local-exponent: another exponent, LocalErrorFit.at_exponent); --error-head makes v0 a multiplier of the model's
learned error head's expected error instead (`rssr train --stage error`, model/error_head.py), raised to 1 + c for
each of --head-contrasts (c > 0 widens the map's spread between places). --shape then, with
the chosen settings, sets the band correlation to the prior error's own across bands
(calibration.fit_band_correlation) and fits deviation gains that give the draws' deviations the prior error's spectrum
ring by ring (calibration.fit_deviation_gain, model/deviation_shape.py). Prints one row per candidate (score = 1 - ES/ES_prior,
higher is better) and writes OUT.{safetensors,json} with the best and a `calibration` record in the card's training
section.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rssr_cli.core.errors import UsageError
from rssr_cli.model.checkpoint import load_model, save_model
from rssr_cli.model.deviation_shape import KNOTS
from rssr_cli.model.device import resolve_device
from rssr_cli.model.null_space import KERNELS
from rssr_cli.training.api import validate_posterior, validation_images
from rssr_cli.training.calibration import (
    CRITERIA,
    calibrate_sampler,
    fit_band_correlation,
    fit_deviation_gain,
    fit_local_error,
    set_sampler_defaults,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a chain's model file (bench/export_state.py makes one from a state)")
    parser.add_argument("--val", type=Path, required=True, help="the run's selection images (its --val)")
    parser.add_argument("--val-crop", type=int, default=0)
    parser.add_argument("--val-limit", type=int, default=16)
    parser.add_argument("--degradation", default="bicubic")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--grid", default="0,0.5,1,1.5,2,3", help="candidate v0, comma-separated")
    parser.add_argument("--correlations", default="0", help="candidate band correlations, comma-separated")
    parser.add_argument("--local", action="store_true", help="v0 per pixel by the prior's expected local error")
    parser.add_argument(
        "--error-head",
        action="store_true",
        help="v0 per pixel by the model's error head (it must have one: rssr train --stage error)",
    )
    parser.add_argument(
        "--head-contrasts",
        default="0",
        help="with --error-head: candidate head contrasts c (v0 x E^(1+c), E the head's expected squared residual; "
        "SRModel._variance_correction), comma-separated",
    )
    parser.add_argument(
        "--tilts", default="0", help="candidate correction tilts (resshift.tilted_noise), comma-separated"
    )
    parser.add_argument(
        "--null-space",
        default="",
        choices=("", *KERNELS),
        help="keep each draw's deviation out of what the input sees under this degradation (model/null_space.py); "
        "calibrated with it and written into the card",
    )
    parser.add_argument(
        "--range-correction",
        type=float,
        default=0.0,
        help="with --null-space: the share of the prior's own inconsistency with its input every draw puts back "
        "(1: each draw reproduces its input under that degradation; null_space.py), calibrated with it",
    )
    parser.add_argument(
        "--criterion",
        default="energy",
        choices=sorted(CRITERIA),
        help="energy: the best energy score; spread: spread/error closest to 1 (calibration.py)",
    )
    parser.add_argument(
        "--local-exponent",
        type=float,
        default=None,
        help="with --local: this exponent instead of the fitted one, the log scale pivoted at the mean log detail",
    )
    parser.add_argument(
        "--shape",
        action="store_true",
        help="after the grid: band correlation = the prior error's, deviation gains fitted to its spectrum",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when present), cpu or cuda[:N]: where the draws run (the figures are computed on the CPU); "
        "a GPU draws other noise than a CPU, so a card records where it was calibrated",
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except UsageError as exc:
        parser.error(str(exc))
    if args.range_correction and not args.null_space:
        parser.error("--range-correction needs --null-space (the degradation it corrects by)")
    if not 0.0 <= args.range_correction <= 1.0:
        parser.error("--range-correction must be in [0, 1]")
    if args.local and args.error_head:
        parser.error("--local fits a power law, --error-head uses the learned head: choose one")
    head_contrasts = [float(h) for h in args.head_contrasts.split(",")]
    if any(h > 0 for h in head_contrasts) and not args.error_head:  # numbers, so "0.0" is no contrast either
        parser.error("--head-contrasts shapes the error head's map: it needs --error-head")
    model = load_model(args.model, device=device)
    if args.error_head and model.error_head is None:
        parser.error(f"{args.model} has no error head (rssr train --stage error --init {args.model})")
    model.sampler_defaults["null_space"] = args.null_space
    model.sampler_defaults["range_correction"] = args.range_correction
    if args.error_head:
        model.sampler_defaults["local_error"] = "head"
    else:
        model.sampler_defaults.pop("local_error", None)
        model.sampler_defaults.pop("head_contrast", None)
    images = validation_images(args.val, args.val_limit, args.val_crop)
    local: dict[str, float] = {"local_exponent": 0.0}
    fit = None
    if args.local:
        fit = fit_local_error(model, images, args.scale, args.degradation)
        if args.local_exponent is not None:
            fit = fit.at_exponent(args.local_exponent)
        local = fit.settings
        print(
            f"local error fit over {fit.blocks} blocks: exponent {fit.exponent:.3f}, log scale {fit.log_scale:.3f}, "
            f"correlation {fit.correlation:.3f}"
        )
    contrasts = [{"head_contrast": h} for h in head_contrasts] if args.error_head else [{}]
    grid = [
        {"variance_correction": float(v), "band_correlation": float(c), "correction_tilt": float(tilt), **local, **h}
        for v in args.grid.split(",")
        for h in contrasts
        for c in args.correlations.split(",")
        for tilt in args.tilts.split(",")
    ]
    best, candidates = calibrate_sampler(model, images, grid, args.scale, args.degradation, args.criterion)
    print(
        "| v0 | head contrast | band correlation | tilt | score (1 - ES/ES_prior) | null's score "
        "| top-octave power / truth | spread / prior error | MSE / prior |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for c in candidates:
        f = c.figures
        mark = " **(chosen)**" if c.settings == best else ""
        print(
            f"| {c.settings['variance_correction']:g}{mark} | {c.settings.get('head_contrast', 0.0):g} | "
            f"{c.settings['band_correlation']:g} | "
            f"{c.settings['correction_tilt']:g} | {f['score']:.4f} | "
            f"{1 - f['es_null_ratio']:.4f} | "
            f"{f['power_ratio']:.3f} | {f['spread_ratio']:.3f} | {f['mse_ratio']:.3f} |"
        )
    card = json.loads(args.model.with_suffix(".json").read_text())
    set_sampler_defaults(model, best)
    shape = None
    if args.shape:
        correlation = fit_band_correlation(model, images, args.scale, args.degradation)
        if correlation is not None:
            set_sampler_defaults(model, {"band_correlation": correlation})
        gain_fit = fit_deviation_gain(model, images, args.scale, args.degradation)
        set_sampler_defaults(model, gain_fit.settings)
        figures = validate_posterior(model, images, args.scale, args.degradation)
        print(f"band correlation of the prior's error: {correlation}")
        print("deviation power / prior error power per ring (rows: fitting rounds; columns: knots x LR Nyquist)")
        print("| round | " + " | ".join(f"{k:g}" for k in KNOTS) + " |")
        for i, row in enumerate(gain_fit.ratios):
            print(f"| {i} | " + " | ".join(f"{r:.3f}" for r in row) + " |")
        print("gains:", " ".join(f"{g:.3f}" for g in gain_fit.gains))
        print(
            f"shaped: score {figures['score']:.4f}, power / truth {figures['power_ratio']:.3f}, "
            f"spread / error {figures['spread_ratio']:.3f}, MSE / prior {figures['mse_ratio']:.3f}"
        )
        shape = {"band_correlation": correlation, "ring_ratios": gain_fit.ratios, "figures": figures}
    training = dict(card.get("training") or {})
    training["calibration"] = {
        "chosen": best,
        "criterion": args.criterion,
        "error_head": args.error_head,
        "local_error_fit": None
        if fit is None
        else {"correlation": fit.correlation, "blocks": fit.blocks, "exponent_given": args.local_exponent},
        "selection": {"val": str(args.val), "val_crop": args.val_crop, "val_limit": args.val_limit},
        "degradation": args.degradation,
        "scale": args.scale,
        "device": device.type,
        "candidates": [{**c.settings, **c.figures} for c in candidates],
        "shape": shape,
    }
    path = save_model(model, args.out, training=training, metrics=card.get("metrics"), model_id=card.get("id"))
    print(f"wrote {path} ({model.sampler_defaults})")


if __name__ == "__main__":
    main()
