"""The folder benchmark: degrade HR images, super-resolve them with every backend, score against the HR.

Returns data (dataclasses with `to_json`/`to_dict`), never prints; the CLI or a bench script renders it.
Torch is imported only when an image is degraded (degradation/arrays.py), so the module loads without it: the
CLI imports it at start (issue 22).

Protocol of `evaluate_folder` (per image, per scale s, per backend):
1. HR = the whole image in model units (radiometry.to_model_units: uint8 /255, uint16 /10000); data_range
   for the scores is 1.
2. LR size = (round(H/s), round(W/s)); LR = anti-aliased bicubic resize of HR (rssr_cli.degradation.degrade),
   clipped and quantized to the image's dtype, as a stored LR file would be.
3. SR on the HR grid: HRGrid(H, W, y0=0, x0=0, dy=h/H, dx=w/W), the same geometry the product uses
   (rssr_cli.geo.grid), so SR pixel (i, j) sits exactly on HR pixel (i, j) at any real scale.
4. SR clipped to [0, dtype max] and quantized (radiometry.quantize; uint8: round(x*255)/255), as a user's
   output file is.
5. PSNR and SSIM (rssr_cli.scoring.metrics) over all bands, after shaving `ceil(s)` HR pixels from every side
   (the LIIF/EDSR benchmark convention "shave = scale", rounded up for non-integer scales): the outer
   pixels depend on how each method pads the border, which says nothing about its quality.
6. Seconds = wall time of the backend's `upsample` call for that image.
Scores are averaged per (scale, backend) over images (mean of per-image PSNR, the usual convention).
7. With a PosteriorSpec (`rssr evaluate --samples K`): each candidate backend draws K samples of the image
   (seeds posterior.sample_seed(image seed, k); sample 0 is the scored output), quantized like step 4, and
   posterior.py's seven bars judge them against the prior backend's output, the HR, the LR and the
   degradation above (one quantisation step of the image's dtype for bar 6).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from rssr_cli.backends.base import SRBackend, SRRequest
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.core.errors import InputError
from rssr_cli.evaluation.jsonsafe import finite_or_none
from rssr_cli.geo.grid import HRGrid
from rssr_cli.io.images import find_images, read_pixels
from rssr_cli.io.radiometry import FIXED_DIVISORS, quantize, to_model_units
from rssr_cli.scoring.detail import detail_score, summarize_detail
from rssr_cli.scoring.metrics import psnr, shave, ssim
from rssr_cli.scoring.posterior import posterior_image, sample_seed, summarize_posterior

QUANTIZED_DTYPES = ("uint8", "uint16")  # what a benchmark's LR and SR are stored as
DEFAULT_SCALES = (2.0, 3.0, 4.0, 4.5, 8.0)
SUMMARY_COLUMNS = ("scale", "method", "PSNR (dB)", "SSIM", "s / image", "images")

Degrade = Callable[[np.ndarray, tuple[int, int]], np.ndarray]
Progress = Callable[[int, int], None]


def bicubic_degrade(hr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Default degradation: rssr_cli.degradation.degrade.downsample (anti-aliased bicubic) on a float [C, H, W] array."""
    from rssr_cli.degradation import arrays  # lazy: torch loads when an image is degraded, not when `rssr` starts

    return arrays.bicubic(hr, size)


def sentinel2_degrade(hr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The sensor protocol (sensor_degradation.EVALUATION: Gaussian PSF of MTF 0.3 at the LR Nyquist, then the
    pixel's box aggregate) on a float [C, H, W] array, at the scale H/h, W/w of each axis."""
    from rssr_cli.degradation import arrays  # lazy: as bicubic_degrade's

    return arrays.sentinel2(hr, size)


DEGRADATIONS: dict[str, Degrade] = {"bicubic": bicubic_degrade, "sentinel2": sentinel2_degrade}


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


def load_image(path: Path, name: Optional[str] = None) -> LoadedImage:
    """Read one reference image and map it to model units with the product's rule (radiometry.py). Declared
    scales/offsets are not applied: scores and quantization are in the dtype's own levels."""
    pixels = read_pixels(Path(path))
    dtype = str(pixels.dtype)
    if dtype not in QUANTIZED_DTYPES:
        raise InputError(f"{path}: unsupported dtype {dtype} for evaluation (uint8 or uint16)")
    return LoadedImage(name or Path(path).name, to_model_units(pixels), dtype)


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
class PosteriorSpec:
    """Which backends are judged as posterior samplers (posterior.py), with how many samples, against which prior.

    repeated: candidates known to be deterministic: their one output stands for all K samples (not re-run)."""

    samples: int
    prior: str
    candidates: tuple[str, ...]
    repeated: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ValueError(f"a posterior evaluation needs K >= 2 samples, got {self.samples}")


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
    posterior: Optional[dict] = None  # posterior.PosteriorImage.as_dict() when evaluated with --samples K


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
            "posterior": [p.as_dict() for p in summarize_posterior(self.rows, self.scales, self.backends)],
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


def score_image(
    image: LoadedImage,
    scale: float,
    backends: Mapping[str, SRBackend],
    *,
    degrade: Degrade,
    border: Optional[int],
    seed: int,
    posterior: Optional[PosteriorSpec] = None,
) -> list[ImageScore]:
    """Degrade one image by `scale`, super-resolve it with every backend, score each result (and judge the
    posterior spec's candidates as samplers)."""
    _, height, width = image.data.shape
    size = lr_size(height, width, scale)
    lr = quantize(degrade(image.data, size), image.dtype)
    grid = hr_grid_on_image(height, width, size)
    cut = shave_for(scale, border)
    reference = shave(image.data, cut)
    request = SRRequest(lr=lr, grid=grid, seed=seed)
    interpolated = shave(quantize(ClassicalBackend("bicubic").upsample([request])[0], image.dtype), cut)
    scores: list[ImageScore] = []
    outputs: dict[str, np.ndarray] = {}
    for name, backend in backends.items():
        start = time.perf_counter()
        sr = backend.upsample([request])[0]
        seconds = time.perf_counter() - start
        outputs[name] = quantize(sr, image.dtype)
        sr = shave(outputs[name], cut)
        scores.append(
            ImageScore(
                image.name,
                float(scale),
                name,
                psnr(sr, reference, 1.0),
                ssim(sr, reference, 1.0),
                seconds,
                (height, width),
                size,
                cut,
                _detail_or_none(sr, reference, interpolated),
            )
        )
    if posterior is None or min(reference.shape[-2:]) < 8:
        return scores
    judged = {
        name: _posterior_of(name, backends[name], outputs, image, lr, request, posterior, degrade, cut)
        for name in posterior.candidates
        if name in backends
    }
    return [replace(s, posterior=judged[s.backend]) if s.backend in judged else s for s in scores]


def _posterior_of(
    name: str,
    backend: SRBackend,
    outputs: Mapping[str, np.ndarray],
    image: LoadedImage,
    lr: np.ndarray,
    request: SRRequest,
    spec: PosteriorSpec,
    degrade: Degrade,
    cut: int,
) -> dict:
    """K samples of one candidate (sample 0: the output already scored) judged by posterior.py against the prior."""
    if spec.prior not in outputs:
        raise ValueError(f"the posterior evaluation's prior {spec.prior!r} is not among the backends")
    samples = [outputs[name]]
    for k in range(1, spec.samples):
        if name in spec.repeated:
            samples.append(outputs[name])
        else:
            draw = backend.upsample([replace(request, seed=sample_seed(request.seed, k))])[0]
            samples.append(quantize(draw, image.dtype))
    size = lr.shape[-2:]
    figures = posterior_image(
        samples,
        outputs[spec.prior],
        image.data,
        lr,
        degrade=lambda hr: degrade(hr, (size[0], size[1])),
        quant_step=1.0 / FIXED_DIVISORS[image.dtype],
        border=cut,
        seed=request.seed,
    )
    return figures.as_dict()


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
    posterior: Optional[PosteriorSpec] = None,
) -> EvaluationReport:
    """Score every backend on every image under hr_dir at every scale (protocol: module docstring).

    border: HR pixels shaved from each side before scoring (None: ceil(scale)).
    limit: `limit` images evenly spaced over the sorted paths (so a subset still spans every class
    folder). progress(done, total) after each image.
    degrade: HR [C,H,W] float, (h, w) -> LR [C,h,w] float (default: anti-aliased bicubic).
    posterior: also judge these backends as posterior samplers (protocol step 7).
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
            rows += score_image(
                image, scale, backends, degrade=degrade, border=border, seed=seed + index, posterior=posterior
            )
        if progress is not None:
            progress(index + 1, len(paths))
    rule = f"shave {border} px" if border is not None else "shave ceil(scale) px"
    name = getattr(degrade, "__name__", type(degrade).__name__)
    return EvaluationReport(
        rows, tuple(float(s) for s in scales), tuple(backends), rule, name, {"hr_dir": str(root), "images": len(paths)}
    )
