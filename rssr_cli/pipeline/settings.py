"""What decides a run, as values validated when they are built: UpscaleSettings (with its typed ModelOptions),
and what a run returns (UpscaleResult). A bad value is a UsageError here, before any file is opened."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from rssr_cli.backends import (
    CLASSICAL_METHODS,
    SRBackend,
    backend_names,
    check_method_options,
    check_sampler_options,
    get_backend,
)
from rssr_cli.core.errors import UsageError
from rssr_cli.core.threads import available_cores
from rssr_cli.core.value_types import check_field_types
from rssr_cli.evaluation.fidelity_report import FidelityOptions, FidelityReport
from rssr_cli.geo.grid import check_resolution, check_scale
from rssr_cli.io.aoi import AreaOfInterest
from rssr_cli.io.cog_profiles import DEFAULT_PROFILE, get_profile
from rssr_cli.model.shipped_models import is_model_name, shipped_model
from rssr_cli.pipeline.model_rule import ModelChoice

Progress = Callable[[int, int], None]  # (windows done, windows total)

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 32
DEFAULT_BATCH_SIZE = 4
MIN_TILE = 8

# The method used when none is given. Never a silent fallback to a classical method: if no model can be
# found, building the backend fails with one line naming --model, RSSR_MODEL and --method bicubic.
DEFAULT_METHOD = "diffusion"

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ModelOptions:
    """How the model runs (the diffusion method; classical methods refuse every field but `device`, which they
    ignore). None means the model card's default (steps, strength) or the automatic choice."""

    device: str = "auto"  # auto | cpu | cuda[:N]
    model: Optional[str | Path] = (
        None  # a shipped model's name or a checkpoint path; None: $RSSR_MODEL, else by the input (model_rule.RULE)
    )
    steps: Optional[int] = None
    strength: Optional[float] = None
    precision: Optional[str] = None
    tta: bool = False  # self-ensemble over the 8 flips/transposes of each window (8x the cost)
    style: Optional[str] = (
        None  # --mode: faithful (the prior: the posterior mean) | realistic (a sample); None: the card's
    )
    samples: int = 1  # --samples K: the mean of K realistic samples

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.device.split(":")[0] not in DEVICES:
            raise UsageError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICES)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        check_sampler_options(self.steps, self.strength, self.style, self.samples)
        if self.model is not None and is_model_name(self.model):
            shipped_model(os.fspath(self.model))  # an unknown name is a usage error listing the shipped ones

    @property
    def uses_gpu(self) -> bool:
        return self.device.startswith("cuda")

    def factory_kwargs(self) -> dict[str, Any]:
        """Keyword options for the backend factory: the model's only when given, so classical methods never see them."""
        given = {
            "model": self.model,
            "steps": self.steps,
            "strength": self.strength,
            "precision": self.precision,
            "tta": True if self.tta else None,
            "style": self.style,
            "samples": self.samples if self.samples > 1 else None,
        }
        return {"device": self.device, **{k: v for k, v in given.items() if v is not None}}


@dataclass(frozen=True)
class UpscaleSettings:
    """Everything that decides an upscale run; the CLI builds one of these from its flags.

    Give exactly one of `scale` (any real > 1) or `resolution` (target pixel size in CRS units: square, or (x, y));
    which one is checked when a run starts (`require_target`), every value given is checked here.
    `method=None` means DEFAULT_METHOD (diffusion); `model` says how the model runs (ModelOptions).
    `bands` are 1-based numbers or band names (descriptions; B04, red, ... for products); None means every data
    band (an alpha band becomes the output mask), or the four 10 m bands of a Sentinel-2 product; ("all",) all bands.
    `aoi`: write only the output grid's window around this area, pixels outside it invalid (region.py).
    `fidelity`: measure the output against its input (fidelity.py), tag it, optionally write the sidecar
    report, and refuse to write it when a threshold is exceeded.
    `threads`: torch's thread count and GDAL_NUM_THREADS for the run (threads.py says what None means).
    `nodata`: pixels of this value are invalid (filled before the backend, nodata in the output, which
    carries this nodata value), in place of the file's own nodata or mask; for files that declare none.
    """

    scale: Optional[float] = None
    resolution: Optional[float | tuple[float, float]] = None
    method: Optional[str] = None
    model: ModelOptions = field(default_factory=ModelOptions)
    tile: Optional[int] = None  # None: auto_tiling() for the method and scale
    overlap: Optional[int] = None
    batch_size: int = DEFAULT_BATCH_SIZE
    bands: Optional[tuple[int | str, ...]] = None
    seed: int = 0
    overwrite: bool = False
    profile: str = DEFAULT_PROFILE
    creation_options: Mapping[str, str] = field(default_factory=dict)
    aoi: Optional[AreaOfInterest] = None
    fidelity: Optional[FidelityOptions] = None
    threads: Optional[int] = None  # CPU threads for the model and GDAL; None: OMP_NUM_THREADS, else all cores
    nodata: Optional[float] = None  # declared nodata value (files that carry none); None: the file's own
    guidance: Optional[bool] = (
        None  # band stacks: coarse bands guided by the 10 m bands (None: not a stack / default on)
    )
    model_choice: Optional[ModelChoice] = None  # which model this scene runs and why (pipeline.model_choice sets it)

    def __post_init__(self) -> None:
        if isinstance(self.bands, list):  # a list reads as naturally as a tuple; the value stays hashable
            object.__setattr__(self, "bands", tuple(self.bands))
        check_field_types(self)
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if self.threads is not None and self.threads > available_cores():
            # more threads than the CPUs this process may use only contend; under a process limit, creating
            # them fails and the run crashes (issue 23 item 15)
            object.__setattr__(self, "threads", available_cores())
        if self.method is not None:
            if not self.method.strip():  # an empty string must not quietly mean "the default method"
                raise UsageError(f"--method is empty; choose one of: {', '.join(backend_names())}")
            check_method_options(self.method, self.model.factory_kwargs())
        check_target(self.scale, self.resolution)
        check_tiling(self.tile, self.overlap)
        get_profile(self.profile)

    def require_target(self) -> None:
        """A run needs exactly one of scale or resolution (a default UpscaleSettings() has neither)."""
        if (self.scale is None) == (self.resolution is None):
            raise UsageError("give exactly one of --scale or --resolution")

    def target_resolution(self) -> float | tuple[float, float]:
        """The resolution of settings that give no scale (require_target's rule: the one of the two given)."""
        if self.resolution is None:
            raise UsageError("give exactly one of --scale or --resolution")
        return self.resolution


def check_target(scale: Optional[float], resolution: Optional[float | tuple[float, float]]) -> None:
    """Every scale or pixel size that no raster could make valid (the rest depends on the raster: grid.py)."""
    if scale is not None and resolution is not None:
        raise UsageError("give exactly one of --scale or --resolution")
    if scale is not None:
        check_scale(scale)
    if resolution is not None:
        check_resolution(resolution)


def check_tiling(tile: Optional[int], overlap: Optional[int]) -> None:
    """--tile and --overlap as given (auto_tiling fills in what is not)."""
    if tile is not None and tile < MIN_TILE:
        raise UsageError(f"--tile must be at least {MIN_TILE} px, got {tile}")
    if overlap is not None and (overlap < 0 or (tile is not None and 2 * overlap > tile)):
        limit = f" ({tile // 2})" if tile is not None else ""
        raise UsageError(f"--overlap must be between 0 and half the tile{limit}, got {overlap}")


# HR side of a model window's core: bounds a window's memory whatever the scale. 1024 since the operator runs one band in
# row blocks (memory no longer grows with the window): the halo's share of the work falls from 2.2x to 1.5x at x4.5
# (the README demo: 3.8x less CPU than 512 with the old operator, output within 0.22 DN mean; BENCHMARKS, issue 19).
MODEL_WINDOW_HR_PX = 1024


def auto_tiling(method: str, scale: float, tile: Optional[int], overlap: Optional[int]) -> tuple[int, int]:
    """Fill in tile/overlap left unset. Classical methods: 256/32. A model's cost and memory grow with the
    HR pixels of a window (its attention and UNet run on the whole HR window), so its LR tile shrinks as
    the scale grows: about MODEL_WINDOW_HR_PX HR px per core side, overlap a quarter of the tile (<= 32)."""
    if tile is None:
        tile = (
            DEFAULT_TILE
            if method in CLASSICAL_METHODS
            else int(min(DEFAULT_TILE, max(32, round(MODEL_WINDOW_HR_PX / scale))))
        )
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, tile // 4)
    return tile, overlap


def run_method(settings: UpscaleSettings) -> str:
    return settings.method or DEFAULT_METHOD


def build_backend(method: str, settings: UpscaleSettings) -> SRBackend:
    """The backend of a run: settings.model, plus --threads for a model's CPU threads (the classical
    resamplers are numpy: GDAL_NUM_THREADS is all --threads means to them)."""
    options = settings.model.factory_kwargs()
    if settings.threads is not None and method not in CLASSICAL_METHODS:
        options["threads"] = settings.threads
    return get_backend(method, **options)


@dataclass(frozen=True)
class BandMade:
    """How one output band of a band stack is made (or, for `rssr info`, would be)."""

    band: str
    method: str  # copy | guided | the run's method (diffusion, bicubic, ...) | read (a guide only read: not output)
    scale: float  # the band's native pixel / the output pixel (1: copied)
    guided_by: tuple[str, ...] = ()  # the guide bands of a guided band
    model: Optional[str] = None  # the sharpener of a guided band, the model of a diffusion band; None otherwise

    def summary(self) -> str:
        """`B11 guided x2`, `B04 copied`, `B05 diffusion x2`, `B08 read`."""
        if self.method == "copy":
            return f"{self.band} copied"
        return f"{self.band} read" if self.method == "read" else f"{self.band} {self.method} x{self.scale:.4g}"


@dataclass(frozen=True)
class UpscaleResult:
    """What was written."""

    dst: Path
    width: int
    height: int
    bands: int
    dtype: str
    scale_x: float
    scale_y: float
    method: str
    windows: int
    skipped_windows: int  # entirely nodata: never sent to the backend
    seconds: float
    outside_aoi_windows: int = 0  # windows of the full-scene tiling whose patch misses the AOI: never read
    fidelity: Optional[FidelityReport] = None
    bands_made: tuple[BandMade, ...] = ()  # a band stack's bands, each as made (empty for a single raster: one method)
    guides_only: tuple[BandMade, ...] = ()  # a band stack's guide bands read but not output
    spread: Optional[Path] = None  # the spread side-car written beside dst (--samples K >= 2), else None

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / self.seconds if self.seconds > 0 else math.inf
