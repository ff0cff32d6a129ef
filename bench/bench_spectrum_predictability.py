"""How much of bar 1's spectrum can the input tell? (issue 21)

    python bench/bench_spectrum_predictability.py aerial|s2 [--scale 4]

Bar 1 asks each image's sample spectrum (radial log10 power in 12 rings over 0.125-0.5 cyc/px, scoring.posterior)
to lie within 0.1 of its truth's (mean |log10| over the rings). At x4 the whole band lies above the LR's Nyquist, so
a sampler knows the truth's spectrum only as far as the LR predicts it. This fits a ridge from the LR's own radial
log spectrum (16 rings over 0.02-0.5 cyc/LR px) to the truth's 12 rings on the training images, chooses its penalty
on the selection images, and reports on the judged images, as bar 1 scores them (mean over images):
- `constant`: the training images' mean spectrum for every image;
- `predicted`: the ridge's spectrum, i.e. a sampler whose every draw has exactly the predicted spectrum;
- `level_sd_log10`: the spread over images of the mean residual (prediction - truth), the per-image level left unknown;
- `exact_sampler`: an exact posterior sampler emulated: the prediction plus another judged image's residual (the
  residuals standing for the posterior's spread of the spectrum given y, taken the same for every y). The sample and
  the truth are then two draws given y, which is what bar 1 compares.
If the ridge is far from the best predictor, the last two overstate what an exact sampler would score; `--mlp`
fits a nonlinear model on more of what the LR shows (its spectrum plus local contrast, gradients, direction, tails
and colour detail) as a check of that.
Sets (x4): aerial = UC Merced train / runs/aerial_cal25 / runs/aerial_heldout2 under the bicubic degradation;
s2 = bench/s2_corpus.py's train cities and select cities cut into 256 px tiles / bench_s2.py's 72 evaluation tiles,
under the sensor degradation. Truth and LR as `rssr evaluate` makes them (protocol.load_image, quantize, shave).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from bench_s2 import DATA, REPO, TILE, make_tiles

from rssr_cli.evaluation.protocol import bicubic_degrade, load_image, lr_size, sentinel2_degrade, shave_for
from rssr_cli.io.images import read_pixels
from rssr_cli.io.radiometry import quantize, to_model_units
from rssr_cli.scoring.detail import _windowed_spectrum, luminance
from rssr_cli.scoring.metrics import shave
from rssr_cli.scoring.posterior import radial_spectrum

from benchlib import write_result

LR_BAND, LR_RINGS = (0.02, 0.5), 16  # cycles per LR pixel: the LR's whole spectrum but its mean
PENALTIES = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
Pair = tuple[np.ndarray, str, str]  # truth [bands, H, W] in model units, its dtype, a name


def reference_images(folder: Path) -> Iterator[Pair]:
    """Every image file under `folder` as `rssr evaluate` loads it."""
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".tif"}):
        image = load_image(path)
        yield image.data, image.dtype, path.name


def s2_tiles(folder: Path, stride: int) -> Iterator[Pair]:
    """Every TILE x TILE tile at `stride` of each band file, in model units as load_image would give it."""
    for path in sorted(folder.iterdir()):
        pixels = read_pixels(path)
        data = to_model_units(pixels)
        _, h, w = data.shape
        for y in range(0, h - TILE + 1, stride):
            for x in range(0, w - TILE + 1, stride):
                yield data[:, y : y + TILE, x : x + TILE], str(pixels.dtype), f"{path.name}:{y},{x}"


def image_statistics(lr: np.ndarray) -> np.ndarray:
    """More of what the LR shows than its spectrum: direction, local contrast, gradients, tails, colour detail."""
    luma = luminance(lr)
    power = np.abs(_windowed_spectrum(luma)) ** 2
    fy, fx = np.abs(np.fft.fftfreq(luma.shape[0]))[:, None], np.abs(np.fft.fftfreq(luma.shape[1]))[None, :]
    top = np.hypot(fy, fx) >= 0.25
    anisotropy = np.log10(power[top & (fx > fy)].mean() / power[top & (fy > fx)].mean())
    h, w = (luma.shape[0] // 4) * 4, (luma.shape[1] // 4) * 4
    blocks = luma[:h, :w].reshape(h // 4, 4, w // 4, 4).std(axis=(1, 3))
    gradient = np.hypot(*np.gradient(luma))
    laplacian = luma[1:-1, 1:-1] * 4 - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    kurt = np.mean(laplacian**4) / max(np.mean(laplacian**2) ** 2, 1e-24)
    colour = np.zeros(8)  # colour detail: the two chroma planes' spectra (zeros for one band)
    if lr.shape[0] == 3:
        chroma = (lr[0] - lr[1], lr[2] - lr[1])
        colour = np.log10(np.concatenate([radial_spectrum(c, band=LR_BAND, rings=4) for c in chroma]) + 1e-20)
    eps = 1e-12
    return np.array(
        [
            anisotropy,
            *np.log10(np.percentile(blocks, [10, 50, 90]) + eps),
            *np.log10(np.percentile(gradient, [50, 90, 99]) + eps),
            np.log10(kurt),
            np.log10(luma.std() + eps),
            np.log10(abs(luma.mean()) + eps),
            *colour,
        ]
    )


def features(pairs: Iterator[Pair], scale: float, degrade: Callable) -> dict[str, np.ndarray]:
    """Per image: the LR's log spectrum (`x`, the ridge's input), more LR statistics (`more`, the MLP check's input
    beside x) and the shaved truth's bar-1 log spectrum (`y`, the target)."""
    rows: dict[str, list] = {"x": [], "more": [], "y": [], "name": []}
    for truth, dtype, name in pairs:
        _, height, width = truth.shape
        lr = quantize(degrade(truth, lr_size(height, width, scale)), dtype)
        x = np.log10(radial_spectrum(luminance(lr), band=LR_BAND, rings=LR_RINGS))
        more = image_statistics(lr)
        y = np.log10(radial_spectrum(luminance(shave(truth, shave_for(scale, None)))))
        if np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(more).all():  # a flat tile says nothing
            rows["x"].append(x)
            rows["more"].append(more)
            rows["y"].append(y)
            rows["name"].append(name)
    return {key: np.array(value) for key, value in rows.items()}


class Ridge:
    """Standardised inputs, unpenalised mean, one penalty."""

    def __init__(self, x: np.ndarray, y: np.ndarray, penalty: float):
        self.mu, self.sd, self.y_mean = x.mean(0), x.std(0) + 1e-12, y.mean(0)
        a = (x - self.mu) / self.sd
        self.weights = np.linalg.solve(a.T @ a + penalty * np.eye(a.shape[1]), a.T @ (y - self.y_mean))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mu) / self.sd) @ self.weights + self.y_mean


def distances(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Bar 1's figure per image: mean over rings of |log10 S_hat - log10 S_truth|."""
    return np.abs(predicted - truth).mean(axis=1)


def exact_sampler_distances(residuals: np.ndarray) -> np.ndarray:
    """Per image i: mean over j != i of bar 1's figure for a draw predicted + residual_j against truth predicted +
    residual_i."""
    n = len(residuals)
    pairwise = np.abs(residuals[:, None, :] - residuals[None, :, :]).mean(axis=2)
    return (pairwise.sum(axis=1) - np.diag(pairwise)) / (n - 1)


def summary(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "share_le_0.1": float((values <= 0.1).mean()),
    }


def residual_figures(residuals: np.ndarray) -> dict:
    """A predictor's figures on the judged images from its residuals (prediction - truth, [images, rings])."""
    return {
        "predicted": summary(np.abs(residuals).mean(axis=1)),
        "exact_sampler": summary(exact_sampler_distances(residuals)),
        "level_sd_log10": float(residuals.mean(axis=1).std()),
    }


def mlp_check(train: dict, select: dict, judge: dict, steps: int, seeds: int = 5) -> dict:
    """A nonlinear check of the ridge: an MLP (two hidden layers of 64, GELU, weight decay, L1 loss = bar 1's
    figure) on the LR spectrum plus `image_statistics`, full-batch Adam; per seed the step kept by the selection
    images' distance, the judged prediction averaged over the seeds."""
    import torch
    from torch import nn

    def inputs(d: dict) -> np.ndarray:
        return np.concatenate([d["x"], d["more"]], axis=1)

    mu, sd = inputs(train).mean(0), inputs(train).std(0) + 1e-12
    x = {
        k: torch.tensor((inputs(d) - mu) / sd, dtype=torch.float32)
        for k, d in (("t", train), ("s", select), ("j", judge))
    }
    y_train = torch.tensor(train["y"], dtype=torch.float32)
    y_mean = y_train.mean(0)
    predictions = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        width = x["t"].shape[1]
        net = nn.Sequential(
            nn.Linear(width, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, y_mean.numel())
        )
        opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-2)
        best: tuple[float, np.ndarray] = (np.inf, np.empty(0))
        for step in range(1, steps + 1):
            loss = (net(x["t"]) + y_mean - y_train).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 25 == 0:
                with torch.no_grad():
                    select_distance = float(distances((net(x["s"]) + y_mean).numpy(), select["y"]).mean())
                    if select_distance < best[0]:
                        best = (select_distance, (net(x["j"]) + y_mean).numpy())
        print(f"mlp seed {seed}: selection distance {best[0]:.3f}", flush=True)
        predictions.append(best[1])
    return residual_figures(np.mean(predictions, axis=0) - judge["y"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set", choices=("aerial", "s2"))
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--mlp", type=int, default=0, metavar="STEPS", help="also fit the MLP check this long")
    args = parser.parse_args()
    if args.set == "aerial":
        degrade, sources = (
            bicubic_degrade,
            {
                "train": reference_images(REPO.parent / "shared/data/ucmerced/train"),
                "select": reference_images(REPO / "runs/aerial_cal25"),
                "judge": reference_images(REPO / "runs/aerial_heldout2"),
            },
        )
    else:
        make_tiles(DATA, REPO / "runs/s2corpus/eval_tiles", 3)
        degrade, sources = (
            sentinel2_degrade,
            {
                "train": s2_tiles(REPO / "runs/s2corpus/train", 192),
                "select": s2_tiles(REPO / "runs/s2corpus/select", 128),
                "judge": reference_images(REPO / "runs/s2corpus/eval_tiles"),
            },
        )
    data = {split: features(pairs, args.scale, degrade) for split, pairs in sources.items()}
    counts = {split: len(d["y"]) for split, d in data.items()}
    print("images", counts, flush=True)
    fits = {p: Ridge(data["train"]["x"], data["train"]["y"], p) for p in PENALTIES}
    penalty = min(PENALTIES, key=lambda p: distances(fits[p](data["select"]["x"]), data["select"]["y"]).mean())
    judge = data["judge"]
    residuals = fits[penalty](judge["x"]) - judge["y"]
    result = {
        "set": args.set,
        "scale": args.scale,
        "images": counts,
        "penalty": penalty,
        "constant": summary(distances(np.broadcast_to(data["train"]["y"].mean(0), judge["y"].shape), judge["y"])),
        **residual_figures(residuals),
        # the mean of (prediction - truth) over a set: a set whose images hold more (less) unpredictable detail than
        # the training images with the same LR spectra shows a negative (positive) offset
        "set_offset_log10": {
            split: float((fits[penalty](data[split]["x"]) - data[split]["y"]).mean()) for split in ("select", "judge")
        },
    }
    if args.mlp:
        result["mlp"] = mlp_check(data["train"], data["select"], judge, args.mlp)
    print(result)
    write_result(f"bench_spectrum_predictability_{args.set}", result, quick=False)


if __name__ == "__main__":
    main()
