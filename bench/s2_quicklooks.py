"""PNG quicklooks at 1:1 of real native Sentinel-2 bands (issue 20): the 10 m bands at x4 (bicubic | aerial model |
S2 model) and the 20 m B8A and B11 guided to 10 m (bicubic | guided | the 10 m guide B08).

    python bench/s2_quicklooks.py [--city beirut] [--model models/s2-10m.safetensors] [--baseline models/aerial.safetensors]

No degradation: the input is the real 10 m bands (B04 B03 B02 as RGB, a 2-98 % stretch shared by the panels) of an
evaluation city (never trained or selected on), output pixels shown 1:1 (2.5 m). Three crops found by their content:
the brightest target (a roof: rings show here), a shore (the sharpest dark/bright edge in B08: water vs land) and a
flat field (the most uniform vegetated block: invented texture shows here). Writes docs/quicklooks/<city>_<what>.png
and <city>_<what>_guided.png (the 20 m bands' grid taken as sharing the 10 m grid's corner, as the dataset's files do).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw

from rssr_cli.backends import SRRequest, get_backend
from rssr_cli.geo.grid import HRGrid

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/s2_oscd"
CROP = 40  # native px
SCALE = 4
CONTEXT = 8  # native px read around the crop and cut away after super-resolution


def read_bands(city: str, names=("B04", "B03", "B02", "B08")) -> np.ndarray:
    folder = sorted((DATA / city).glob("imgs_*"))[0]
    out = []
    for name in names:
        with rasterio.open(next(folder.glob(f"*_{name}.tif"))) as src:
            out.append(src.read(1).astype(np.float32) / 10000.0)
    return np.stack(out)


def find_crops(bands: np.ndarray) -> dict[str, tuple[int, int]]:
    """Top-left corners (native px) of the three crops, away from the image border."""
    red, nir = bands[0], bands[3]
    h, w = red.shape
    lo, hi_y, hi_x = CONTEXT + CROP // 2, h - CONTEXT - CROP // 2, w - CONTEXT - CROP // 2
    inner = np.zeros_like(red, bool)
    inner[lo:hi_y, lo:hi_x] = True
    bright = np.unravel_index(np.argmax(np.where(inner, bands[:3].mean(0), -1)), red.shape)
    edge = np.abs(np.diff(nir, axis=1, append=nir[:, -1:])) * (np.minimum(nir, np.roll(nir, -1, 1)) < 0.06)
    shore = np.unravel_index(np.argmax(np.where(inner, edge, -1)), red.shape)
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    k = 12
    best, field = np.inf, (lo, lo)
    for y in range(lo, hi_y, 6):
        for x in range(lo, hi_x, 6):
            block = nir[y - k // 2 : y + k // 2, x - k // 2 : x + k // 2]
            if ndvi[y, x] > 0.5 and block.std() < best:
                best, field = block.std(), (y, x)
    return {
        name: (int(c[0]) - CROP // 2, int(c[1]) - CROP // 2)
        for name, c in (("bright", bright), ("shore", shore), ("field", field))
    }


def super_resolve(backend, lr: np.ndarray) -> np.ndarray:
    h, w = lr.shape[-2:]
    grid = HRGrid(height=h * SCALE, width=w * SCALE, y0=0.0, x0=0.0, dy=1 / SCALE, dx=1 / SCALE)
    return backend.upsample([SRRequest(lr=lr, grid=grid, seed=0)])[0]


def to_rgb(img: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (
        (np.clip((img[:3] - lo[:, None, None]) / (hi - lo)[:, None, None], 0, 1) * 255)
        .astype(np.uint8)
        .transpose(1, 2, 0)
    )


def guided_sheet(city: str, y: int, x: int, sharpener_path: Path) -> Image.Image:
    """B8A and B11 (20 m) to 10 m over the crop: bicubic | guided (the product's steps) | B08 (the guide)."""
    import torch

    from rssr_cli.sharpen.bands import GUIDE_BANDS
    from rssr_cli.sharpen.bounds import BOUND_MARGIN, band_range
    from rssr_cli.sharpen.degrade import sample_at
    from rssr_cli.sharpen.model import load_sharpener
    from rssr_cli.sharpen.predict import consistent_and_bounded, sharpen_array
    from rssr_cli.sharpen.scene import load_stack_bands, stats_of

    scene = load_stack_bands(sorted((DATA / city).glob("imgs_*"))[0], names=[*GUIDE_BANDS, "B8A", "B11"])
    model = load_sharpener(sharpener_path)
    y0, x0 = (y - CONTEXT) // 2 * 2, (x - CONTEXT) // 2 * 2  # even: the 20 m grid's pixel edges
    side = CROP + 2 * CONTEXT
    guides = np.stack([scene[g].values[y0 : y0 + side, x0 : x0 + side] for g in GUIDE_BANDS]).astype(np.float32)
    guide_stats = np.array([stats_of(scene[g].values, scene[g].valid) for g in GUIDE_BANDS], dtype=np.float32)
    panels = []
    for name in ("B8A", "B11"):
        band = scene[name]
        native = band.values[y0 // 2 : (y0 + side) // 2, x0 // 2 : (x0 + side) // 2].astype(np.float32)
        valid = band.valid[y0 // 2 : (y0 + side) // 2, x0 // 2 : (x0 + side) // 2]
        pos = (np.arange(side) + 0.5) / 2
        t = torch.from_numpy(pos).float()[None]
        up = sample_at(torch.from_numpy(native)[None, None], t, t)[0, 0].numpy()
        out = sharpen_array(
            model,
            name,
            up,
            guides,
            scale=2.0,
            guide_ratio=1.0,
            band_stats=stats_of(band.values, band.valid),
            guide_stats=guide_stats,
        )
        out = consistent_and_bounded(
            out,
            native,
            valid,
            pos,
            pos,
            2.0,
            BOUND_MARGIN * band_range(band.values, band.valid),
            guides,
            guide_stats[:, 1],
        )
        panels.append((f"{name} bicubic", up))
        panels.append((f"{name} guided", out))
    panels.append(("B08 (guide, 10 m)", guides[3]))
    cut = slice(CONTEXT, CONTEXT + CROP)
    zoom, gap, top = 4, 6, 16  # 10 m pixels shown 4x (nearest) so the 40 px crop is visible; 1:1 in pixels otherwise
    tile = CROP * zoom
    sheet = Image.new("RGB", (len(panels) * (tile + gap) - gap, tile + top), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(panels):
        crop = img[cut, cut]
        ref = panels[i - i % 2][1][cut, cut] if i < 4 else crop  # bicubic and guided of one band share a stretch
        lo, hi = np.percentile(ref, 2), np.percentile(ref, 98) + 1e-6
        grey = (np.clip((crop - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
        sheet.paste(Image.fromarray(grey).resize((tile, tile), Image.NEAREST), (i * (tile + gap), top))
        draw.text((i * (tile + gap) + 2, 2), label, fill="black")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--city", default="beirut")
    parser.add_argument("--model", type=Path, default=REPO / "models/s2-10m.safetensors")
    parser.add_argument("--baseline", type=Path, default=REPO / "models/aerial.safetensors")
    parser.add_argument("--out", type=Path, default=REPO / "docs/quicklooks")
    parser.add_argument("--sharpener", type=Path, default=REPO / "models/sharpen.safetensors")
    args = parser.parse_args()
    bands = read_bands(args.city)
    panels = {"bicubic": get_backend("bicubic")}
    if args.baseline.exists():
        panels["aerial model"] = get_backend("diffusion", model=args.baseline, mode="prior", device="cpu")
    panels["S2 model"] = get_backend("diffusion", model=args.model, mode="prior", device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    for what, (y, x) in find_crops(bands).items():
        lr = bands[:3, y - CONTEXT : y + CROP + CONTEXT, x - CONTEXT : x + CROP + CONTEXT]
        cut = slice(CONTEXT * SCALE, (CONTEXT + CROP) * SCALE)
        outs = {name: super_resolve(b, np.ascontiguousarray(lr))[:, cut, cut] for name, b in panels.items()}
        lo = np.percentile(lr.reshape(3, -1), 2, axis=1)
        hi = np.percentile(lr.reshape(3, -1), 98, axis=1) + 1e-6
        side, gap, top = CROP * SCALE, 6, 16
        sheet = Image.new("RGB", (len(outs) * (side + gap) - gap, side + top), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (name, img) in enumerate(outs.items()):
            sheet.paste(Image.fromarray(to_rgb(img, lo, hi)), (i * (side + gap), top))
            draw.text((i * (side + gap) + 2, 2), f"{name} x{SCALE}", fill="black")
        path = args.out / f"{args.city}_{what}.png"
        sheet.save(path, optimize=True)
        print(f"wrote {path} (native crop at row {y}, col {x})")
        guided = args.out / f"{args.city}_{what}_guided.png"
        guided_sheet(args.city, y, x, args.sharpener).save(guided, optimize=True)
        print(f"wrote {guided}")


if __name__ == "__main__":
    main()
