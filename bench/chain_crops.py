"""Side-by-side PNG crops for issue 21, item 5: bicubic | faithful (the prior) | realistic (one draw) | mean of K draws |
their spread | truth, at x4 on held-out images (never trained or selected on), through the training degradation.

    OMP_NUM_THREADS=1 python bench/chain_crops.py runs/calib/s2_cal.safetensors --data runs/s2corpus/eval_tiles \\
        --degradation sentinel2 --pick 0,5,9 -o docs/chains/s2.png
    OMP_NUM_THREADS=1 python bench/chain_crops.py runs/calib/aerial_cal.safetensors --data ../shared/data/ucmerced/val \\
        --held-out-of 16 --pick 3,40,77 -o docs/chains/aerial.png

--held-out-of N drops the images `rssr train --val-limit N` selects on (every (n // N)-th), so what is shown is held
out. Each row is one image's centre crop (--crop HR px) shown at --zoom (nearest); the five image panels of a row share
the truth's 1-99 % stretch (first three bands as RGB, or the band as grey); the spread panel (per-pixel std of the K
draws, all bands averaged) is stretched to its own 99th percentile, black = 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from rssr_cli.backends import SRRequest, get_backend
from rssr_cli.geo.grid import HRGrid
from rssr_cli.model.checkpoint import load_model
from rssr_cli.model.operator import grid_tensors
from rssr_cli.training.data import find_images, load_images
from rssr_cli.training.trainer import LOWRES

SCALE = 4


def held_out(paths: list[Path], selection_limit: int) -> list[Path]:
    """The images training's validation_images does not pick (every (n // limit)-th is the selection set)."""
    chosen = set(paths[:: max(1, len(paths) // max(1, selection_limit))][:selection_limit])
    return [p for p in paths if p not in chosen]


def panels_for(model, pixels: np.ndarray, levels, degradation: str, samples: int, seed: int) -> list[np.ndarray]:
    hr = torch.from_numpy(pixels)[None]
    lr, hr = LOWRES[degradation](hr, float(SCALE), levels)
    H, W = hr.shape[-2:]
    h, w = lr.shape[-2:]
    ys, xs, cell = grid_tensors(H, W, 0.0, 0.0, h / H, w / W)
    with torch.no_grad():
        prior = model.sample(lr, ys, xs, cell, mode="prior")[0].numpy()
        gen = torch.Generator().manual_seed(seed)
        draws = np.stack([d[0].numpy() for d in model.sample_draws(lr, ys, xs, cell, samples, generator=gen)])
    grid = HRGrid(height=H, width=W, y0=0.0, x0=0.0, dy=h / H, dx=w / W)
    bicubic = get_backend("bicubic").upsample([SRRequest(lr=lr[0].numpy(), grid=grid, seed=0)])[0]
    spread = draws.std(axis=0, ddof=1).mean(axis=0)
    return [bicubic, prior, draws[0], draws.mean(axis=0), spread, hr[0].numpy()]


def to_image(img: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Image.Image:
    bands = img[:3] if img.shape[0] >= 3 else img[:1]
    scaled = np.clip((bands - lo[: len(bands), None, None]) / (hi - lo)[: len(bands), None, None], 0, 1)
    pixels = (scaled * 255).astype(np.uint8)
    return Image.fromarray(pixels.transpose(1, 2, 0) if len(bands) == 3 else pixels[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a chain's model file")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--degradation", default="bicubic")
    parser.add_argument("--held-out-of", type=int, default=0, help="drop the selection set of --val-limit N")
    parser.add_argument("--pick", default="0,1,2", help="indices into the (held-out) images")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    model = load_model(args.model)
    paths = find_images([args.data])
    if args.held_out_of:
        paths = held_out(paths, args.held_out_of)
    picked = [paths[int(i)] for i in args.pick.split(",")]
    labels = [
        "bicubic",
        "faithful",
        "realistic (1 draw)",
        f"mean of {args.samples}",
        f"spread of {args.samples}",
        "truth",
    ]
    tile, gap, top = args.crop * args.zoom, 6, 16
    sheet = Image.new("RGB", (len(labels) * (tile + gap) - gap, len(picked) * (tile + top + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (path, img) in enumerate(zip(picked, load_images(picked))):
        h, w = img.pixels.shape[-2:]
        side = min(args.crop, h, w) // SCALE * SCALE
        y0, x0 = (h - side) // 2 // SCALE * SCALE, (w - side) // 2 // SCALE * SCALE
        crop = np.ascontiguousarray(img.pixels[:, y0 : y0 + side, x0 : x0 + side])
        panels = panels_for(model, crop, img.quantize_levels, args.degradation, args.samples, seed=row)
        truth = panels[-1]
        lo, hi = np.percentile(truth, 1, axis=(1, 2)), np.percentile(truth, 99, axis=(1, 2)) + 1e-6
        y = row * (tile + top + gap)
        for i, (label, panel) in enumerate(zip(labels, panels)):
            if label.startswith("spread"):
                s = panel[None]
                pic = to_image(s, np.zeros(1), np.array([np.percentile(s, 99) + 1e-9]))
            else:
                pic = to_image(panel, lo, hi)
            sheet.paste(pic.resize((tile, tile), Image.NEAREST), (i * (tile + gap), y + top))
            text = f"{label} · {path.parent.name}/{path.stem}" if i == 0 else label
            draw.text((i * (tile + gap) + 2, y + 2), text, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
