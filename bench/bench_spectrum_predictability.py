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
If the ridge is far from the best predictor, the last two overstate what an exact sampler would score; `--cnn`
trains a small CNN on the same task (LR pixels in, the 12 rings out) as a check of that.
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
from rssr_cli.scoring.detail import luminance
from rssr_cli.scoring.metrics import shave
from rssr_cli.scoring.posterior import radial_spectrum

from benchlib import write_result

LR_BAND, LR_RINGS = (0.02, 0.5), 16  # cycles per LR pixel: the LR's whole spectrum but its mean
PENALTIES = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
Pair = tuple[np.ndarray, np.ndarray, str]  # truth [bands, H, W] in model units, its dtype, a name


def aerial_images(folder: Path) -> Iterator[Pair]:
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


def features(pairs: Iterator[Pair], scale: float, degrade: Callable) -> dict[str, np.ndarray]:
    """Per image: the LR's log spectrum (the input), the shaved truth's bar-1 log spectrum (the target), the LR."""
    rows: dict[str, list] = {"x": [], "y": [], "name": [], "lr": []}
    for truth, dtype, name in pairs:
        _, height, width = truth.shape
        lr = quantize(degrade(truth, lr_size(height, width, scale)), dtype)
        lr_luma = luminance(lr)
        x = np.log10(radial_spectrum(lr_luma, band=LR_BAND, rings=LR_RINGS))
        y = np.log10(radial_spectrum(luminance(shave(truth, shave_for(scale, None)))))
        if np.isfinite(x).all() and np.isfinite(y).all():  # a flat tile (no power in a ring) says nothing
            rows["x"].append(x)
            rows["y"].append(y)
            rows["name"].append(name)
            rows["lr"].append(lr_luma.astype(np.float32))
    lr_luma_list = rows.pop("lr")
    out = {key: np.array(value) for key, value in rows.items()}
    h, w = min(a.shape[0] for a in lr_luma_list), min(a.shape[1] for a in lr_luma_list)
    out["lr"] = np.stack([a[:h, :w] for a in lr_luma_list])  # a few UC Merced images are 1-9 px short: cut to the least
    return out


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


def cnn_check(train: dict, select: dict, judge: dict, steps: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """A small CNN (six 3x3 convolutions, global mean, linear) from the LR luminance to the 12 rings, L1 loss, the
    eight flips/rotations as augmentation and averaged at test; the step kept by the selection images' distance."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    h = min(d["lr"].shape[1] for d in (train, select, judge))
    w = min(d["lr"].shape[2] for d in (train, select, judge))

    def tensor(d: dict) -> torch.Tensor:
        lr = d["lr"][:, None, :h, :w]
        return torch.tensor(np.log10(np.maximum(lr, 1e-4)), dtype=torch.float32)  # log: S2 spans decades

    x = {k: tensor(d) for k, d in (("train", train), ("select", select), ("judge", judge))}
    y = {
        k: torch.tensor(d["y"], dtype=torch.float32)
        for k, d in (("train", train), ("select", select), ("judge", judge))
    }
    center, y_mean = x["train"].mean(), y["train"].mean(0)
    width = 32
    layers: list[nn.Module] = []
    for c_in, c_out, stride in (
        (1, width, 1),
        (width, width, 1),
        (width, 2 * width, 2),
        (2 * width, 2 * width, 1),
        (2 * width, 4 * width, 2),
        (4 * width, 4 * width, 1),
    ):
        layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GELU()]
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, y_mean.numel()))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps)
    rng = torch.Generator().manual_seed(seed)

    def predict(images: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            views = [torch.rot90(images, k, (2, 3)) for k in range(4)]
            views += [v.flip(3) for v in views]
            return torch.stack([net(v - center) + y_mean for v in views]).mean(0).numpy()

    best: tuple[float, np.ndarray] = (np.inf, np.empty(0))
    for step in range(1, steps + 1):
        index = torch.randint(0, len(x["train"]), (32,), generator=rng)
        batch = torch.rot90(x["train"][index], int(torch.randint(0, 4, (1,), generator=rng)), (2, 3))
        if torch.rand(1, generator=rng) < 0.5:
            batch = batch.flip(3)
        loss = (net(batch - center) + y_mean - y["train"][index]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step % 250 == 0 or step == steps:
            select_distance = float(distances(predict(x["select"]), select["y"]).mean())
            if select_distance < best[0]:
                best = (select_distance, predict(x["judge"]))
            print(f"cnn step {step}: loss {loss.item():.3f}, selection distance {select_distance:.3f}", flush=True)
    residuals = best[1] - judge["y"]
    return {
        "predicted": summary(np.abs(residuals).mean(1)),
        "exact_sampler": summary(exact_sampler_distances(residuals)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set", choices=("aerial", "s2"))
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--cnn", type=int, default=0, metavar="STEPS", help="also train the CNN check this long")
    args = parser.parse_args()
    if args.set == "aerial":
        degrade, sources = (
            bicubic_degrade,
            {
                "train": aerial_images(REPO.parent / "shared/data/ucmerced/train"),
                "select": aerial_images(REPO / "runs/aerial_cal25"),
                "judge": aerial_images(REPO / "runs/aerial_heldout2"),
            },
        )
    else:
        make_tiles(DATA, REPO / "runs/s2corpus/eval_tiles", 3)
        degrade, sources = (
            sentinel2_degrade,
            {
                "train": s2_tiles(REPO / "runs/s2corpus/train", 192),
                "select": s2_tiles(REPO / "runs/s2corpus/select", 128),
                "judge": aerial_images(REPO / "runs/s2corpus/eval_tiles"),
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
        "predicted": summary(np.abs(residuals).mean(1)),
        "exact_sampler": summary(exact_sampler_distances(residuals)),
        "level_sd_log10": float(residuals.mean(1).std()),
        # the mean of (prediction - truth) over a set: a set whose images hold more (less) unpredictable detail than
        # the training images with the same LR spectra shows a negative (positive) offset
        "set_offset_log10": {
            split: float((fits[penalty](data[split]["x"]) - data[split]["y"]).mean()) for split in ("select", "judge")
        },
    }
    if args.cnn:
        result["cnn"] = cnn_check(data["train"], data["select"], judge, args.cnn)
    print({k: v for k, v in result.items()})
    write_result(f"bench_spectrum_predictability_{args.set}", result, quick=False)


if __name__ == "__main__":
    main()
