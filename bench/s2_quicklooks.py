"""PNG quicklooks at 1:1 of real native Sentinel-2 bands (issue 20): the 10 m bands at x4 (bicubic | aerial model |
S2 model), and the 20 m B8A and B11 at 10 m and at 5 m (bicubic | guided | the 10 m guide B08).

    python bench/s2_quicklooks.py [--city beirut] [--model models/s2-10m.safetensors] [--baseline models/aerial.safetensors]
                                  [--sharpener PATH]

No degradation: the input is the real bands of an evaluation city (never trained or selected on). Three 40 x 40
crops of the 10 m grid (400 m) found by their content: the brightest target (the brightest RGB pixel: rings show
here), a shore (the sharpest dark/bright edge in B08: water vs land) and a flat field (the most uniform vegetated
block: invented texture shows here). Writes to docs/quicklooks/:
- <city>_<what>.png: B04 B03 B02 as RGB (a 2-98 % stretch shared by the panels) at x4, output pixels 1:1 (2.5 m);
  the backends on the arrays, CONTEXT pixels around the crop cut away after.
- <city>_<what>_guided.png (10 m, each pixel shown 4x4) and <city>_<what>_guided_5m.png (5 m, shown 2x2): what
  `rssr upscale FOLDER -b B8A,B11,B08 --aoi CROP` writes (the band folder is a product), through the library's
  one call: the guided bands with every step after the network (back-projection, the guide-supported bound), the
  guides super-resolved by --model at 5 m; bicubic from the same call with -m bicubic --no-guidance. Prints, per
  band, the ring share over the crop (bounds.ring_share) and the output's extremes against the native pixels'.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image, ImageDraw

from rssr_cli.backends import SRRequest, get_backend
from rssr_cli.geo.grid import HRGrid
from rssr_cli.sharpen.bands import SHARPENER_ENV

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/s2_oscd"
CROP = 40  # native px
SCALE = 4
CONTEXT = 8  # native px read around the crop and cut away after super-resolution
BANDS = ("B8A", "B11", "B08")  # the guided sheets: B08 (the finest) sets the output grid, --scale is relative to it


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


def product_run(folder: Path, out: Path, window: tuple[int, int, int], **settings: Any) -> np.ndarray:
    """`rssr upscale FOLDER --aoi ...` through the library (rssr_cli.upscale, the CLI's one call), the output read
    back as float32 [B, h, w]. `window` (row, col, side) is in pixels of the folder's 10 m grid; the AOI is that
    window shrunk by a tenth of a pixel, so it selects exactly its pixels (and, at 5 m, every centre is inside it). An AOI does not change a band's values
    (the tiles and the guides read carry their halo beyond it: issue 22)."""
    from shapely.geometry import box

    from rssr_cli import upscale
    from rssr_cli.io.aoi import AreaOfInterest

    with rasterio.open(next(folder.glob("*_B08.tif"))) as src:
        t, crs = src.transform, src.crs
    row, col, side = window
    (x0, y0), (x1, y1) = t * (col + 0.1, row + 0.1), t * (col + side - 0.1, row + side - 0.1)
    aoi = AreaOfInterest(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), crs)
    upscale(folder, out, aoi=aoi, threads=1, overwrite=True, **settings)
    with rasterio.open(out) as result:
        values = result.read()
        if (values == result.nodata).any():  # outside the AOI (L1C data is never 0): the window missed a pixel
            raise RuntimeError(f"{out}: nodata in the AOI's window {window}")
        return values.astype(np.float32)


def native_figures(folder: Path, name: str, window: tuple[int, int, int], img: np.ndarray) -> str:
    """What a guided sheet shows, in numbers, over the crop: issue 20's ring share (output pixels outside their
    native 3 x 3 range widened by 10 % of the band's 1-99 % range: bounds.ring_share) and the output's extremes
    against the native pixels' (a 20 m band; its grid shares the 10 m grid's corner, as the dataset's files do)."""
    from rssr_cli.sharpen.bounds import RING_MARGIN, band_range, ring_share

    with rasterio.open(next(folder.glob(f"*_{name}.tif"))) as src:
        band = src.read(1).astype(np.float32)
    row, col, side = window
    per_native = 2 * img.shape[0] // side  # output pixels per 20 m pixel
    rows = (row * per_native // 2 + np.arange(img.shape[0])) // per_native
    cols = (col * per_native // 2 + np.arange(img.shape[1])) // per_native
    r0, c0 = rows[0] - 1, cols[0] - 1  # one native pixel around: each output pixel's whole 3 x 3 neighbourhood
    native = band[r0 : rows[-1] + 2, c0 : cols[-1] + 2]
    margin = RING_MARGIN * band_range(band, np.ones(band.shape, bool))
    share = ring_share(img, native, np.ones(native.shape, bool), rows - r0, cols - c0, margin)
    return (
        f"ring {100 * share:.1f} %, {img.min():.0f}-{img.max():.0f} DN (native {native.min():.0f}-{native.max():.0f})"
    )


def guided_panels(
    folder: Path, window: tuple[int, int, int], model: Path, work: Path
) -> tuple[dict[str, list], list[str]]:
    """B8A and B11 (20 m) at 10 m and at 5 m over `window`, each through the product (`rssr upscale` of the band
    folder with an AOI): bicubic (--method bicubic --no-guidance) | guided (the default run: the shipped sharpener
    and the steps after its network, B02 B03 B04 B08 as guides, super-resolved by `model` at 5 m) | the real
    10 m guide B08 (at 5 m by nearest, 2x2 copies of each pixel: what the guide supports)."""
    from rssr_cli import ModelOptions

    with rasterio.open(next(folder.glob("*_B08.tif"))) as src:
        ten_metres = (abs(src.transform.a), abs(src.transform.e))  # the 10 m grid's pixel, in its CRS units
    out: dict[str, list] = {}
    figures: list[str] = []
    guide_10m = None
    for label, target in (("10 m", {"resolution": ten_metres}), ("5 m", {"scale": 2.0})):
        bicubic = product_run(
            folder, work / "bicubic.tif", window, bands=BANDS, method="bicubic", guidance=False, **target
        )
        guided = product_run(
            folder, work / "guided.tif", window, bands=BANDS, model=ModelOptions(model=model), **target
        )
        if guide_10m is None:
            guide_10m = guided[2]  # at 10 m the guide is copied unchanged: the native B08
        factor = guided.shape[1] // guide_10m.shape[0]
        guide = np.kron(guide_10m, np.ones((factor, factor), np.float32))
        if not bicubic.shape[1:] == guided.shape[1:] == guide.shape:
            raise RuntimeError(f"{label}: the runs' grids differ: {bicubic.shape}, {guided.shape}, {guide.shape}")
        out[label] = [
            (f"B8A bicubic {label}", bicubic[0]),
            (f"B8A guided {label}", guided[0]),
            (f"B11 bicubic {label}", bicubic[1]),
            (f"B11 guided {label}", guided[1]),
            ("B08 guide" + (" 10 m" if factor == 1 else f" 10 m, nearest x{factor}"), guide),
        ]
        for i, name in enumerate(BANDS[:2]):
            figures.append(
                f"  {name} at {label}: bicubic {native_figures(folder, name, window, bicubic[i])}; "
                f"guided {native_figures(folder, name, window, guided[i])}"
            )
    return out, figures


def grey_sheet(panels: list, zoom: int) -> Image.Image:
    """Panels side by side, each pixel drawn as zoom x zoom (nearest: no resampling); a band's bicubic and guided
    panels share a 2-98 % stretch (the bicubic's), so an overshoot shows as clipped white or black."""
    side, gap, top = panels[0][1].shape[0] * zoom, 6, 16
    sheet = Image.new("RGB", (len(panels) * (side + gap) - gap, side + top), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(panels):
        ref = panels[i - i % 2][1] if i < 4 else img
        lo, hi = np.percentile(ref, 2), np.percentile(ref, 98) + 1e-6
        grey = (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
        sheet.paste(Image.fromarray(grey).resize((side, side), Image.Resampling.NEAREST), (i * (side + gap), top))
        draw.text((i * (side + gap) + 2, 2), label, fill="black")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--city", default="beirut")
    parser.add_argument("--model", type=Path, default=REPO / "models/s2-10m.safetensors")
    parser.add_argument("--baseline", type=Path, default=REPO / "models/aerial.safetensors")
    parser.add_argument("--out", type=Path, default=REPO / "docs/quicklooks")
    parser.add_argument("--sharpener", type=Path, help="another guided sharpener (default: the product's rule)")
    args = parser.parse_args()
    if args.sharpener is not None:
        os.environ[SHARPENER_ENV] = str(args.sharpener)  # how the product is pointed at one (README)
    folder = sorted((DATA / args.city).glob("imgs_*"))[0]
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
        with tempfile.TemporaryDirectory() as work:
            sheets, figures = guided_panels(folder, (y, x, CROP), args.model, Path(work))
        print("\n".join(figures))
        for label, suffix, zoom in (("10 m", "guided", 4), ("5 m", "guided_5m", 2)):
            guided = args.out / f"{args.city}_{what}_{suffix}.png"
            grey_sheet(sheets[label], zoom).save(guided, optimize=True)
            print(f"wrote {guided}")


if __name__ == "__main__":
    main()
