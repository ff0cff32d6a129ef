"""What issue 20's top-octave bar costs the 10 m model's gain over bicubic (x4, the evaluation cities' tiles).

    python bench/bench_top_octave_cost.py [--model models/s2-10m.safetensors] [--scale 4] [--ratio 0.5]

Issue 20 asks the 10 m bands at x4 for a gain over bicubic >= +1.5 dB *and* a top-octave (0.25-0.5 cyc/px) power
between 0.5 and 1.3 of the truth's. If the model's output m is the posterior mean E[x|y], every estimator is
x^ = m + d with d a function of the input (and of independent noise), and per frequency band
E|x^ - x|^2 = E|m - x|^2 + E|d|^2: the cross term vanishes. Raising the top octave's power from P(m) to
ratio * P(x) needs |d|^2 >= (sqrt(ratio * P(x)) - sqrt(P(m)))^2 there (d aligned with m at best), all of it added
to the MSE. This prints, per city (tiles and degradation of bench_s2.py), the model's gain and that bound on the gain
of any output with the asked top-octave power built on it. Plain FFT over the shaved tile (Parseval, no window:
detail.py's figure uses a Hann window, so its ratios differ a little).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import numpy as np
from bench_s2 import DATA, REPO, make_tiles

from rssr_cli.backends.base import SRRequest
from rssr_cli.evaluation.compare import CompareSettings, build_backends
from rssr_cli.evaluation.protocol import hr_grid_on_image, load_image, lr_size, sentinel2_degrade, shave_for
from rssr_cli.io.radiometry import quantize
from rssr_cli.scoring.detail import BAND as TOP_OCTAVE  # 0.25-0.5 cycles per HR pixel, radial
from rssr_cli.scoring.detail import band_mask
from rssr_cli.scoring.metrics import shave

from benchlib import write_result


def band_power(plane: np.ndarray, band: tuple[float, float] = TOP_OCTAVE) -> float:
    """Mean power per pixel of a plane's (mean removed) spectrum in a radial band: sum |F|^2 / N^2 (Parseval)."""
    spectrum = np.fft.fft2(plane - plane.mean())
    return float((np.abs(spectrum[band_mask(plane.shape, band)]) ** 2).sum() / plane.size**2)


def added_mse(truth_power: float, estimate_power: float, ratio: float) -> float:
    """The least |d|^2 in the band that takes the band's power from estimate_power to ratio * truth_power."""
    return max(0.0, math.sqrt(ratio * truth_power) - math.sqrt(estimate_power)) ** 2


def tile_figures(path: Path, backends: dict, scale: float, ratio: float) -> dict[str, float]:
    image = load_image(path)
    _, height, width = image.data.shape
    size = lr_size(height, width, scale)
    lr = quantize(sentinel2_degrade(image.data, size), image.dtype)
    request = SRRequest(lr=lr, grid=hr_grid_on_image(height, width, size), seed=0)
    cut = shave_for(scale, None)
    truth = shave(image.data, cut)[0].astype(np.float64)
    outputs = {
        name: shave(quantize(backend.upsample([request])[0], image.dtype), cut)[0].astype(np.float64)
        for name, backend in backends.items()
    }
    model, bicubic = outputs["model-prior"], outputs["bicubic"]
    mse_model, mse_bicubic = float(((model - truth) ** 2).mean()), float(((bicubic - truth) ** 2).mean())
    p_truth, p_model = band_power(truth), band_power(model)
    extra = added_mse(p_truth, p_model, ratio)
    return {
        "gain_db": 10 * math.log10(mse_bicubic / mse_model),
        "bound_db": 10 * math.log10(mse_bicubic / (mse_model + extra)),
        "top_power_ratio": p_model / p_truth,
        "truth_top_power_over_mse": p_truth / mse_model,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/s2-10m.safetensors")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--ratio", type=float, default=0.5, help="the top-octave power asked, over the truth's")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    settings = CompareSettings(
        model=args.model, steps=(0,), methods=("bicubic",), device="cpu", threads=args.threads, degradation="sentinel2"
    )
    backends = build_backends(settings)
    folders = make_tiles(DATA, REPO / "runs/s2corpus/eval_tiles", 3)
    cities: dict[str, dict[str, float]] = {}
    for city, folder in folders.items():
        rows = [tile_figures(path, backends, args.scale, args.ratio) for path in sorted(folder.glob("*.tif"))]
        cities[city] = {key: statistics.mean(row[key] for row in rows) for key in rows[0]} | {"tiles": len(rows)}
        print(city, {key: round(value, 4) for key, value in cities[city].items()}, flush=True)
    mean = {key: statistics.mean(c[key] for c in cities.values()) for key in ("gain_db", "bound_db")}
    print("mean over cities", {key: round(value, 4) for key, value in mean.items()})
    write_result(
        "bench_top_octave_cost",
        {"scale": args.scale, "ratio": args.ratio, "cities": cities, "mean_over_cities": mean},
        quick=False,
    )


if __name__ == "__main__":
    main()
