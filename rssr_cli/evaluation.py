"""Evaluation: quality on synthetic LR/HR pairs, on real cross-resolution pairs, and fidelity to the input.

Returns data (dataclasses with `to_json`/`to_dict`), never prints; the CLI or a bench script renders it.
Torch is imported only by the default degradation, so the module loads without it.

Protocol of `evaluate_folder` (per image, per scale s, per backend):
1. HR = the whole image, normalized (uint8 /255, uint16 /10000); data_range for the scores is 1.
2. LR size = (round(H/s), round(W/s)); LR = anti-aliased bicubic resize of HR (rssr_cli.degrade),
   clipped and quantized to the image's dtype, as a stored LR file would be.
3. SR on the HR grid: HRGrid(H, W, y0=0, x0=0, dy=h/H, dx=w/W), the same geometry the product uses
   (rssr_cli.grid), so SR pixel (i, j) sits exactly on HR pixel (i, j) at any real scale.
4. SR clipped to [0, dtype max] and quantized (uint8: round(x*255)/255), as a user's output file is.
5. PSNR and SSIM (rssr_cli.metrics) over all bands, after shaving `ceil(s)` HR pixels from every side
   (the LIIF/EDSR benchmark convention "shave = scale", rounded up for non-integer scales): the outer
   pixels depend on how each method pads the border, which says nothing about its quality.
6. Seconds = wall time of the backend's `upsample` call for that image.
Scores are averaged per (scale, backend) over images (mean of per-image PSNR, the usual convention).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from affine import Affine

from .backends.base import SRBackend, SRRequest
from .backends.classical import ClassicalBackend
from .detail import detail_score, summarize_detail
from .errors import InputError
from .grid import HRGrid
from .metrics import Consistency, consistency, degrade_back, measure_shift, psnr, shave, ssim

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DTYPE_DIVISORS = {"uint8": 255.0, "uint16": 10_000.0}
DEFAULT_SCALES = (2.0, 3.0, 4.0, 4.5, 8.0)
SUMMARY_COLUMNS = ("scale", "method", "PSNR (dB)", "SSIM", "s / image", "images")

Degrade = Callable[[np.ndarray, tuple[int, int]], np.ndarray]
Progress = Callable[[int, int], None]


def bicubic_degrade(hr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Default degradation: rssr_cli.degrade.downsample (anti-aliased bicubic) on a float [C, H, W] array."""
    import torch

    from .degrade import downsample

    x = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[None]
    with torch.no_grad():
        return downsample(x, size)[0].numpy()


# ---------------------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class LoadedImage:
    """A reference image normalized to model units, with the dtype it was stored in."""

    name: str
    data: np.ndarray  # float32 [bands, H, W]
    dtype: str


def evenly_spaced(items: list, limit: Optional[int]) -> list:
    """`limit` items spread over the list (first and regular strides), or all of them."""
    if limit is None or limit >= len(items):
        return list(items)
    return [items[(i * len(items)) // limit] for i in range(max(0, limit))]


def find_images(folder: Path) -> list[Path]:
    """Image files under folder (recursively), in a stable order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_pixels(path: Path) -> np.ndarray:
    """Stored pixels as [bands, H, W]: rasterio for TIFF (any band count), pillow otherwise (alpha dropped)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():  # plain TIFF benchmarks carry no georeferencing, and need none
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.read()
    from PIL import Image

    with Image.open(path) as img:
        if img.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr"):
            img = img.convert("RGB" if img.mode != "LA" else "L")
        a = np.asarray(img)
    if a.dtype == np.int32 and a.max(initial=0) <= 65535 and a.min(initial=0) >= 0:
        a = a.astype(np.uint16)  # pillow opens 16-bit PNGs as mode "I"
    return a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)


def load_image(path: Path, name: Optional[str] = None) -> LoadedImage:
    """Read and normalize one reference image (uint8 /255, uint16 /10000)."""
    pixels = _read_pixels(Path(path))
    dtype = str(pixels.dtype)
    if dtype not in DTYPE_DIVISORS:
        raise InputError(f"{path}: unsupported dtype {dtype} for evaluation (uint8 or uint16)")
    data = (pixels.astype(np.float32) / DTYPE_DIVISORS[dtype]).astype(np.float32)
    return LoadedImage(name or Path(path).name, data, dtype)


def quantize(x: np.ndarray, dtype: str) -> np.ndarray:
    """Clip to the dtype's range and round to its levels, in normalized units (float32)."""
    divisor = DTYPE_DIVISORS[dtype]
    top = np.iinfo(np.dtype(dtype)).max / divisor
    return (np.round(np.clip(x, 0.0, top) * divisor) / divisor).astype(np.float32)


def lr_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(round(H/s), round(W/s)): the LR that the product would upscale back to H x W."""
    return max(1, round(height / scale)), max(1, round(width / scale))


def hr_grid_on_image(height: int, width: int, lr_shape: tuple[int, int]) -> HRGrid:
    """The grid that puts SR pixel (i, j) on HR pixel (i, j) when the LR covers the same extent."""
    h, w = lr_shape
    return HRGrid(height=height, width=width, y0=0.0, x0=0.0, dy=h / height, dx=w / width)


def shave_for(scale: float, border: Optional[int]) -> int:
    """The border crop in HR pixels: `border` when given, else ceil(scale)."""
    return int(math.ceil(scale)) if border is None else int(border)


# ------------------------------------------------------------------------------------------ folder eval


@dataclass(frozen=True)
class ImageScore:
    """One image at one scale by one backend (sizes are (height, width); shave in HR pixels)."""

    image: str
    scale: float
    backend: str
    psnr: float
    ssim: float
    seconds: float
    hr_size: tuple[int, int]
    lr_size: tuple[int, int]
    shave: int
    detail: Optional[dict] = None  # detail.DetailScore.as_dict(): HF energy/error/correlation, opensr-test shares


@dataclass(frozen=True)
class ScaleSummary:
    """Means over the images of one (scale, backend) cell."""

    scale: float
    backend: str
    psnr: float
    ssim: float
    seconds: float
    images: int


@dataclass
class EvaluationReport:
    """Per-image rows plus how they were made; `summary()` gives the per (scale, backend) means."""

    rows: list[ImageScore]
    scales: tuple[float, ...]
    backends: tuple[str, ...]
    border_rule: str
    degradation: str
    meta: dict = field(default_factory=dict)

    def summary(self) -> list[ScaleSummary]:
        out = []
        for scale in self.scales:
            for backend in self.backends:
                rows = [r for r in self.rows if r.scale == scale and r.backend == backend]
                if rows:
                    out.append(_summarize(scale, backend, rows))
        return out

    def summary_rows(self) -> list[tuple[str, ...]]:
        """Formatted cells matching SUMMARY_COLUMNS, e.g. for `rich.table.Table.add_row(*row)`."""
        return [
            (f"x{s.scale:g}", s.backend, f"{s.psnr:.2f}", f"{s.ssim:.4f}", f"{s.seconds:.4f}", str(s.images))
            for s in self.summary()
        ]

    def to_dict(self) -> dict:
        return {
            "scales": list(self.scales),
            "backends": list(self.backends),
            "border_rule": self.border_rule,
            "degradation": self.degradation,
            "meta": self.meta,
            "summary": [asdict(s) for s in self.summary()],
            "detail": [asdict(d) for d in summarize_detail(self.rows, self.scales, self.backends)],
            "rows": [asdict(r) for r in self.rows],
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        """Strict JSON: non-finite numbers (PSNR of identical images) become null."""
        return json.dumps(finite_or_none(self.to_dict()), indent=indent, allow_nan=False)


def _summarize(scale: float, backend: str, rows: list[ImageScore]) -> ScaleSummary:
    return ScaleSummary(
        scale=scale,
        backend=backend,
        psnr=float(np.mean([r.psnr for r in rows])),
        ssim=float(np.mean([r.ssim for r in rows])),
        seconds=float(np.mean([r.seconds for r in rows])),
        images=len(rows),
    )


def finite_or_none(obj):
    """A JSON-safe copy: non-finite floats become None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def score_image(
    image: LoadedImage,
    scale: float,
    backends: Mapping[str, SRBackend],
    *,
    degrade: Degrade,
    border: Optional[int],
    seed: int,
) -> list[ImageScore]:
    """Degrade one image by `scale`, super-resolve it with every backend, score each result."""
    _, height, width = image.data.shape
    size = lr_size(height, width, scale)
    lr = quantize(degrade(image.data, size), image.dtype)
    grid = hr_grid_on_image(height, width, size)
    cut = shave_for(scale, border)
    reference = shave(image.data, cut)
    request = SRRequest(lr=lr, grid=grid, seed=seed)
    interpolated = shave(quantize(ClassicalBackend("bicubic").upsample([request])[0], image.dtype), cut)
    scores = []
    for name, backend in backends.items():
        start = time.perf_counter()
        sr = backend.upsample([request])[0]
        seconds = time.perf_counter() - start
        sr = shave(quantize(sr, image.dtype), cut)
        scores.append(
            ImageScore(image.name, float(scale), name, psnr(sr, reference, 1.0), ssim(sr, reference, 1.0),
                       seconds, (height, width), size, cut, _detail_or_none(sr, reference, interpolated))
        )
    return scores


def _detail_or_none(sr: np.ndarray, hr: np.ndarray, interpolated: np.ndarray) -> Optional[dict]:
    """Detail figures (detail.py), or None for an image too small to have a spectrum after shaving."""
    if min(hr.shape[-2:]) < 8:
        return None
    return detail_score(sr, hr, interpolated).as_dict()


def evaluate_folder(
    hr_dir: Path | str,
    backends: Mapping[str, SRBackend],
    scales: Sequence[float] = DEFAULT_SCALES,
    *,
    border: Optional[int] = None,
    limit: Optional[int] = None,
    progress: Optional[Progress] = None,
    degrade: Optional[Degrade] = None,
    seed: int = 0,
) -> EvaluationReport:
    """Score every backend on every image under hr_dir at every scale (protocol: module docstring).

    border: HR pixels shaved from each side before scoring (None: ceil(scale)).
    limit: `limit` images evenly spaced over the sorted paths (so a subset still spans every class
    folder). progress(done, total) after each image.
    degrade: HR [C,H,W] float, (h, w) -> LR [C,h,w] float (default: anti-aliased bicubic).
    """
    root = Path(hr_dir)
    paths = evenly_spaced(find_images(root), limit)
    if not paths:
        raise InputError(f"no PNG/JPEG/TIFF images under {root}")
    degrade = degrade or bicubic_degrade
    rows: list[ImageScore] = []
    for index, path in enumerate(paths):
        image = load_image(path, name=path.relative_to(root).as_posix())
        for scale in scales:
            rows += score_image(image, scale, backends, degrade=degrade, border=border, seed=seed + index)
        if progress is not None:
            progress(index + 1, len(paths))
    rule = f"shave {border} px" if border is not None else "shave ceil(scale) px"
    name = getattr(degrade, "__name__", type(degrade).__name__)
    return EvaluationReport(rows, tuple(float(s) for s in scales), tuple(backends), rule, name,
                            {"hr_dir": str(root), "images": len(paths)})


# --------------------------------------------------------------------------------------------- fidelity


@dataclass(frozen=True)
class Fidelity:
    """Agreement of an SR image with its own LR input (no HR needed)."""

    consistency: Consistency
    shift: tuple[float, float]  # (dy, dx) in LR pixels by which the SR content is displaced vs the input

    def to_dict(self) -> dict:
        return {**self.consistency.as_dict(), "shift_lr_px": list(self.shift)}


def fidelity(sr: np.ndarray, lr: np.ndarray) -> Fidelity:
    """Degrade-back consistency and phase-correlation shift of sr [C,H,W] against lr [C,h,w] (same units).

    Both must cover the same extent (the rssr output grid). The shift is measured between
    degrade_back(sr) and lr: positive dy/dx means the SR content sits lower/further right than the input.
    """
    back = degrade_back(sr, np.shape(lr))
    return Fidelity(consistency(sr, lr), measure_shift(back, lr))


# ------------------------------------------------------------------------------------------ real pairs


@dataclass(frozen=True)
class PairGeometry:
    """The common area of an LR and an HR raster: integer windows into each and the SR grid on the LR window."""

    lr_window: tuple[int, int, int, int]  # col_off, row_off, width, height
    hr_window: tuple[int, int, int, int]
    grid: HRGrid


def _inner_window(bounds: tuple[float, float, float, float], transform) -> tuple[int, int, int, int]:
    """Pixels of `transform`'s grid lying entirely inside bounds (west, south, east, north)."""
    from rasterio.windows import from_bounds

    win = from_bounds(*bounds, transform=transform)
    eps = 1e-6  # float noise on edges that coincide with pixel edges
    c0, r0 = math.ceil(win.col_off - eps), math.ceil(win.row_off - eps)
    c1, r1 = math.floor(win.col_off + win.width + eps), math.floor(win.row_off + win.height + eps)
    return c0, r0, max(0, c1 - c0), max(0, r1 - r0)


def _window_bounds(win: tuple[int, int, int, int], transform) -> tuple[float, float, float, float]:
    from rasterio.windows import Window, bounds

    return bounds(Window(*win), transform)


def plan_pair(lr_transform, lr_shape: tuple[int, int], hr_transform, hr_shape: tuple[int, int]) -> PairGeometry:
    """Co-register an LR and an HR raster in one CRS by their georeferencing (north-up grids).

    LR window: LR pixels entirely inside both rasters. HR window: HR pixels entirely inside the LR
    window. The SR grid is the HR window's grid expressed in the LR window's pixel coordinates, so the
    SR lands exactly on the HR raster's pixels even when the two grids are not aligned.
    """
    from rasterio.transform import array_bounds

    for t in (lr_transform, hr_transform):
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise InputError("pair evaluation needs north-up rasters (no rotation, no flip)")
    lw, ls, le, ln = array_bounds(*lr_shape, lr_transform)
    hw, hs, he, hn = array_bounds(*hr_shape, hr_transform)
    common = (max(lw, hw), max(ls, hs), min(le, he), min(ln, hn))
    lr_win = _clip_window(_inner_window(common, lr_transform), lr_shape)
    if lr_win[2] < 2 or lr_win[3] < 2:
        raise InputError("the LR and HR rasters share less than 2x2 LR pixels")
    hr_win = _clip_window(_inner_window(_window_bounds(lr_win, lr_transform), hr_transform), hr_shape)
    lr_t = lr_transform @ Affine.translation(lr_win[0], lr_win[1])
    hr_t = hr_transform @ Affine.translation(hr_win[0], hr_win[1])
    x0, y0 = ~lr_t @ (hr_t.c, hr_t.f)
    grid = HRGrid(height=hr_win[3], width=hr_win[2], y0=float(y0), x0=float(x0),
                  dy=hr_t.e / lr_t.e, dx=hr_t.a / lr_t.a)
    return PairGeometry(lr_win, hr_win, grid)


def _clip_window(win: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    c0, r0 = max(0, win[0]), max(0, win[1])
    c1, r1 = min(shape[1], win[0] + win[2]), min(shape[0], win[1] + win[3])
    return c0, r0, max(0, c1 - c0), max(0, r1 - r0)


def linear_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band least-squares gain and offset with target ~= gain * source + offset ([C,H,W] each)."""
    gains, offsets = [], []
    for s, t in zip(source.reshape(len(source), -1), target.reshape(len(target), -1)):
        design = np.stack([s, np.ones_like(s)], axis=1)
        (g, o), *_ = np.linalg.lstsq(design, t, rcond=None)
        gains.append(g)
        offsets.append(o)
    return np.asarray(gains), np.asarray(offsets)


@dataclass(frozen=True)
class PairScore:
    """SR of a real LR raster scored against a real HR raster of the same area."""

    psnr: float
    ssim: float
    data_range: float  # in HR stored units
    gain: tuple[float, ...]  # radiometric fit HR ~= gain * SR + offset (SR in model units)
    offset: tuple[float, ...]
    shift_hr_px: tuple[float, float]  # (dy, dx) displacement of the fitted SR vs HR, HR pixels
    scale: tuple[float, float]  # (sy, sx) = LR pixel size / HR pixel size
    lr_window: tuple[int, int, int, int]
    hr_window: tuple[int, int, int, int]
    shave: int
    seconds: float

    def to_json(self) -> str:
        return json.dumps(finite_or_none(asdict(self)), allow_nan=False)


def _model_units(data: np.ndarray, dtype: str) -> np.ndarray:
    """LR stored values -> model units with the product's radiometry rules."""
    from .radiometry import fixed_radiometry, normalize, robust_radiometry, uses_robust_range

    if uses_robust_range(dtype):
        rad = robust_radiometry(data, np.ones(data.shape, dtype=bool))
    else:
        rad = fixed_radiometry(dtype, len(data))
    return normalize(data, rad)


def evaluate_pairs(
    lr_path: Path | str,
    hr_path: Path | str,
    backend: SRBackend,
    *,
    lr_bands: Optional[Sequence[int]] = None,
    hr_bands: Optional[Sequence[int]] = None,
    border: Optional[int] = None,
    data_range: Optional[float] = None,
    seed: int = 0,
) -> PairScore:
    """Super-resolve the LR raster onto the HR raster's grid over their common area and score it.

    The rasters must share a CRS; bands are paired in order (select with 1-based lr_bands/hr_bands).
    Before scoring, SR is matched to HR by a per-band least-squares linear fit (sensors differ in
    gain and offset; what is scored is spatial detail, not calibration). Border: ceil(scale) HR px
    unless given. data_range: the HR's max - min over the scored pixels unless given. Nodata is not
    handled: choose pairs whose common area is fully valid.
    """
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(lr_path) as lr_src, rasterio.open(hr_path) as hr_src:
        if lr_src.crs != hr_src.crs:
            raise InputError(f"CRS differ: {lr_src.crs} vs {hr_src.crs}; reproject one raster first")
        geo = plan_pair(lr_src.transform, lr_src.shape, hr_src.transform, hr_src.shape)
        lr_idx = list(lr_bands or range(1, lr_src.count + 1))
        hr_idx = list(hr_bands or range(1, hr_src.count + 1))
        if len(lr_idx) != len(hr_idx):
            raise InputError(f"band counts differ ({len(lr_idx)} vs {len(hr_idx)}); pass lr_bands/hr_bands (--lr-bands/--hr-bands)")
        lr = _model_units(lr_src.read(lr_idx, window=Window(*geo.lr_window)), lr_src.dtypes[lr_idx[0] - 1])
        hr = hr_src.read(hr_idx, window=Window(*geo.hr_window)).astype(np.float64)
    start = time.perf_counter()
    sr = backend.upsample([SRRequest(lr=lr, grid=geo.grid, seed=seed)])[0].astype(np.float64)
    seconds = time.perf_counter() - start
    scale = (1.0 / geo.grid.dy, 1.0 / geo.grid.dx)
    cut = shave_for(max(scale), border)
    sr_s, hr_s = shave(sr, cut), shave(hr, cut)
    gain, offset = linear_fit(sr_s, hr_s)
    fitted = gain[:, None, None] * sr_s + offset[:, None, None]
    peak = float(hr_s.max() - hr_s.min()) if data_range is None else float(data_range)
    return PairScore(
        psnr=psnr(fitted, hr_s, peak), ssim=ssim(fitted, hr_s, peak), data_range=peak,
        gain=tuple(map(float, gain)), offset=tuple(map(float, offset)),
        shift_hr_px=measure_shift(fitted, hr_s), scale=scale,
        lr_window=geo.lr_window, hr_window=geo.hr_window, shave=cut, seconds=seconds,
    )
