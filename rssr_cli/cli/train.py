"""`rssr train`: parses options into TrainSettings and calls training.api.train (registered in cli/app.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rssr_cli.cli.common import EXIT_CODES_HELP, Quiet, Verbose, cli_session, stdout


def train_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Run folder: per-stage state, log.csv, and the final model.safetensors + model.json."
        ),
    ],
    data: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Folders (searched recursively) or files of training images: PNG, JPEG, TIFF, GeoTIFF.",
            show_default=False,
        ),
    ] = None,
    scenes: Annotated[
        Optional[list[Path]], typer.Option("--scene", help="GeoTIFF scene sampled by random windows (repeatable).")
    ] = None,
    scene_fraction: Annotated[float, typer.Option(help="Share of samples drawn from --scene rasters.")] = 0.25,
    val: Annotated[
        Optional[Path], typer.Option(help="Folder of validation images (PSNR at x4 logged every --val-every steps).")
    ] = None,
    stage: Annotated[
        str,
        typer.Option(
            help="prior | denoiser | all (both) | error (the error head alone: how wrong the prior is, per pixel, for a chain's variance correction; on an --init model)."
        ),
    ] = "all",
    preset: Annotated[str, typer.Option(help="Architecture: default | tiny (tests, smoke runs).")] = "default",
    init: Annotated[
        Optional[Path],
        typer.Option(help="Start from this rssr model (fine-tune, or train the denoiser of a prior-stage model)."),
    ] = None,
    prior_steps: Annotated[int, typer.Option(help="Optimizer steps of the prior stage.")] = 10000,
    denoiser_steps: Annotated[int, typer.Option(help="Optimizer steps of the denoiser stage.")] = 4000,
    error_steps: Annotated[int, typer.Option(help="Optimizer steps of the error stage.")] = 3000,
    error_width: Annotated[int, typer.Option(help="Error stage: channels of a new error head.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Single-band samples per step.")] = 32,
    learning_rate: Annotated[
        float, typer.Option("--lr", help="Peak AdamW learning rate (warm-up, cosine decay).")
    ] = 4e-4,
    scale_min: Annotated[
        float, typer.Option(help="Per-sample scale is drawn uniformly from [scale-min, scale-max].")
    ] = 1.0,
    scale_max: Annotated[float, typer.Option()] = 8.0,
    blur_max: Annotated[float, typer.Option(help="Max Gaussian PSF sigma (HR px) added before downsampling.")] = 0.0,
    noise_max: Annotated[float, typer.Option(help="Max LR noise std (normalized units).")] = 0.0,
    degradation: Annotated[
        str,
        typer.Option(
            help="How LR samples are made: bicubic (anti-aliased resize, + --blur-max/--noise-max) | sentinel2 (the sensor model: a random PSF with the Sentinel-2 MTF range or the box aggregate, sub-pixel phase, noise, 12-bit quantization; validation at x4 with Gaussian MTF 0.3 + box)."
        ),
    ] = "bicubic",
    val_crop: Annotated[
        int, typer.Option(help="Validate on centre crops of at most this many pixels a side (0: whole images).")
    ] = 0,
    sampler_steps: Annotated[Optional[int], typer.Option(help="Default sampler steps written into the card.")] = None,
    sampler_strength: Annotated[
        Optional[float], typer.Option(help="Default sampler strength (t0/T) written into the card.")
    ] = None,
    pairs: Annotated[
        Optional[Path],
        typer.Option(
            "--pairs",
            help="File of real LR/HR pairs, one per line: 'LR HR [LR_BANDS HR_BANDS]' (e.g. 'l8_B4.tif l8_B8.tif 1 1'). Co-registered by georeferencing plus a measured shift, harmonized per band to the LR's radiometry.",
            show_default=False,
        ),
    ] = None,
    pair_share: Annotated[
        float,
        typer.Option(
            help="Share of each batch drawn from --pairs when DATA/--scene are given too (the rest: synthetic degradations)."
        ),
    ] = 0.5,
    pairs_holdout: Annotated[
        float, typer.Option(help="Bottom share of each pair's rows kept out of training; validation scores it.")
    ] = 0.2,
    val_every: Annotated[int, typer.Option(help="Validate (and keep the best weights) every N steps.")] = 500,
    save_every: Annotated[int, typer.Option(help="Write <out>/<stage>/last.* every N steps (for --resume).")] = 250,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads (0: all cores).")] = 0,
    data_workers: Annotated[
        int,
        typer.Option(
            help="Processes that draw patch batches ahead of the training step (for a GPU, which otherwise waits on "
            "the sampler). 0: drawn in the training process. With workers, batch k comes from (seed, k) alone."
        ),
    ] = 0,
    denoiser_t_max: Annotated[
        float,
        typer.Option(
            help="Denoiser stage: train only on timesteps t < this fraction of T (the LR-start sampler's regime is t <= strength*T)."
        ),
    ] = 1.0,
    denoiser_prediction: Annotated[
        Optional[str],
        typer.Option(
            help="Denoiser stage: what the net predicts, v | eps | x0 (default: the --init model's, or v).",
            show_default=False,
        ),
    ] = None,
    denoiser_loss: Annotated[
        Optional[str],
        typer.Option(
            help="Denoiser stage: l1 | l2 on that prediction (default: the --init model's, or l1).", show_default=False
        ),
    ] = None,
    denoiser_start: Annotated[
        str,
        typer.Option(
            help="Denoiser stage: x_t noised from the truth (DDPM) or from the estimate (what the LR-start sampler's first step sees)."
        ),
    ] = "truth",
    process: Annotated[
        str,
        typer.Option(
            help="Denoiser stage: keep the model's diffusion process, or resshift: residual shifting from the noised prior estimate (a posterior sampler; issue 21)."
        ),
    ] = "keep",
    denoiser_patch: Annotated[
        int,
        typer.Option(
            help="Denoiser and error stages: HR patch side in px (0: 64 for resshift and the error head, else 32)."
        ),
    ] = 0,
    chain_steps: Annotated[
        int, typer.Option(help="resshift: the chain's length T (network calls per full sample).")
    ] = 8,
    kappa: Annotated[
        float,
        typer.Option(
            help="resshift: the noise scale kappa, in units of the global residual std (the perception-distortion knob)."
        ),
    ] = 1.0,
    variance_correction: Annotated[
        float,
        typer.Option(
            help="resshift: the sampler's variance correction v0 (each step also draws what the r0 estimate leaves out, for a N(0, v0) residual; 0: the plain plug-in sampler, under-dispersed)."
        ),
    ] = 1.0,
    residual_scale: Annotated[
        Optional[float],
        typer.Option(
            help="resshift: the global scale of HR - estimate (default: 1 / its std measured on the first training batches).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when available) | cpu | cuda[:N].")] = "auto",
    precision: Annotated[
        str,
        typer.Option(
            help="auto (bf16 on CUDA and on CPUs with native bf16, AVX512-BF16/AMX; fp32 elsewhere) | fp32 | bf16: autocast of the forward pass."
        ),
    ] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from <out>/<stage>/last.*")] = False,
    keep: Annotated[
        str,
        typer.Option(
            help="Weights each stage ends with: last | best (the best-validated EMA; needs --val or --pairs)."
        ),
    ] = "last",
    model_id: Annotated[Optional[str], typer.Option(help="The model card's id (default: model).")] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Train an rssr model on your own imagery (CPU or CUDA; same command)."""
    with cli_session(verbose):
        from rssr_cli.training.api import TrainSettings, train  # lazy: torch, only for this command

        settings = TrainSettings(
            data=list(data or []),
            out=out,
            pairs=pairs,
            pair_share=pair_share,
            pairs_holdout=pairs_holdout,
            scenes=list(scenes or []),
            scene_fraction=scene_fraction,
            val=val,
            stage=stage,
            preset=preset,
            init=init,
            prior_steps=prior_steps,
            denoiser_steps=denoiser_steps,
            error_steps=error_steps,
            error_width=error_width,
            batch_size=batch_size,
            learning_rate=learning_rate,
            scale_min=scale_min,
            scale_max=scale_max,
            blur_max=blur_max,
            noise_max=noise_max,
            degradation=degradation,
            val_crop=val_crop,
            sampler_steps=sampler_steps,
            sampler_strength=sampler_strength,
            seed=seed,
            threads=threads,
            data_workers=data_workers,
            resume=resume,
            device=device,
            precision=precision,
            denoiser_t_max=denoiser_t_max,
            denoiser_prediction=denoiser_prediction,
            denoiser_loss=denoiser_loss,
            denoiser_start=denoiser_start,
            val_every=val_every,
            save_every=save_every,
            keep=keep,
            model_id=model_id,
            process=process,
            denoiser_patch=denoiser_patch,
            chain_steps=chain_steps,
            kappa=kappa,
            variance_correction=variance_correction,
            residual_scale=residual_scale,
        )

        def report(stage_name: str, step: int, info: dict) -> None:
            if not quiet:
                stdout.print(f"[{stage_name}] step {step}: loss {info['loss']:.4f}, {info['it/s']:.2f} it/s")

        path = train(settings, progress=report)
        if not quiet:
            stdout.print(f"model written: {path} (+ {path.with_suffix('.json').name})")


train_command.__doc__ = (train_command.__doc__ or "") + f"\n\n{EXIT_CODES_HELP}"


def train_sharpener_command(
    scenes: Annotated[
        list[str],
        typer.Argument(
            help="Sentinel-2 scenes with all bands: .SAFE, .SAFE.zip, STAC item, or a folder of single-band files named ..._B05.jp2."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Run folder: best.safetensors (the model), state.pt (for --resume), history.jsonl."
        ),
    ],
    steps: Annotated[int, typer.Option(help="Optimizer steps (cosine learning-rate decay over them).")] = 4000,
    batch_size: Annotated[int, typer.Option(help="Crops per step (one band group and one Wald ratio per step).")] = 12,
    crop: Annotated[
        int, typer.Option(help="Crop side in native pixels of the 20 m bands (60 m bands: 2/3 of it).")
    ] = 48,
    width: Annotated[int, typer.Option(help="Channels of the network.")] = 32,
    blocks: Annotated[int, typer.Option(help="Residual blocks (receptive radius 2 + 2*blocks output px).")] = 6,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak Adam learning rate.")] = 1e-3,
    eval_every: Annotated[
        int, typer.Option(help="Score the selection rows (Wald, r = 2 and 6) and keep the best every N steps.")
    ] = 250,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads (0: all cores).")] = 0,
    precision: Annotated[
        str,
        typer.Option(
            help="auto (bf16 autocast where the CPU computes bf16 natively, else fp32), fp32 or bf16: the forward pass's numerics."
        ),
    ] = "auto",
    degradation: Annotated[
        str,
        typer.Option(
            help="family (default: every crop its own member of the sensor model; what a product model needs) or psf (only the matched Gaussian of `rssr evaluate --wald --degradation psf`, selected on it: what knowing the blur exactly is worth; such a model rings under any other blur)."
        ),
    ] = "family",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from <out>/state.pt.")] = False,
    select: Annotated[
        Optional[list[str]],
        typer.Option(
            "--select",
            metavar="SCENE",
            help="A selection scene (repeatable): the checkpoint is chosen on these scenes' whole grids and every row of the training scenes is trained on.",
            show_default=False,
        ),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Train the guided band-sharpening model by Wald's protocol on real Sentinel-2 scenes, every crop degraded by its
    own member of the sensor model (random PSF or box, sub-pixel phase, noise, 12 bits). Without --select, rows are
    split per scene: top 3/4 trained on, next 1/8 selects the checkpoint, last 1/8 never used (`rssr evaluate --wald`
    scores it); with --select, the training scenes are used whole and the selection scenes choose the checkpoint."""
    with cli_session(verbose):
        from rssr_cli.sharpen.train import SharpenTrainConfig, train_sharpener  # lazy: torch, only for this command

        config = SharpenTrainConfig(
            scenes=list(scenes),
            out=str(out),
            select=list(select or []),
            steps=steps,
            batch=batch_size,
            crop=crop,
            lr=learning_rate,
            seed=seed,
            width=width,
            blocks=blocks,
            eval_every=eval_every,
            threads=threads or None,
            precision=precision,
            degradation=degradation,
            resume=resume,
        )
        path = train_sharpener(config, log=(lambda _line: None) if quiet else stdout.print)
        if not quiet:
            stdout.print(f"model written: {path}")


train_sharpener_command.__doc__ = (train_sharpener_command.__doc__ or "") + f"\n\n{EXIT_CODES_HELP}"
