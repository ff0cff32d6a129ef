"""What a fidelity measurement says (fidelity.py measures it): the report, its JSON/tags, and the thresholds
a cron job sets. The figures' definitions travel in every JSON report (DEFINITIONS)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from rssr_cli.core.errors import FidelityError, UsageError
from rssr_cli.evaluation.jsonsafe import finite_or_none

FORMAT = "rssr-fidelity/1"
NOISE_CELL = 32  # LR side of the cells the noise level is estimated in
NOISE_PERCENTILE = 10  # of the cell estimates: the flattest cells, where edges do not leak into the estimate
DEVIATION_SIGMAS = 3.0
DEFAULT_SAMPLES = 4


@dataclass(frozen=True)
class FidelityChecks:
    """Limits a cron job sets: an output beyond any of them is not written (exit 1)."""

    max_shift: Optional[float] = None  # LR pixels, magnitude of the measured shift
    max_consistency_error: Optional[float] = None  # relative degrade-back error of the worst band

    def __post_init__(self) -> None:
        for name, value in (("--max-shift", self.max_shift), ("--max-consistency-error", self.max_consistency_error)):
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise UsageError(f"{name} must be a non-negative number, got {value}")


@dataclass(frozen=True)
class FidelityOptions:
    """What `--report` and the thresholds ask for."""

    write_report: bool = False  # sidecar JSON + quick-look PNG beside the output
    samples: int = DEFAULT_SAMPLES  # for the uncertainty crop
    checks: FidelityChecks = field(default_factory=FidelityChecks)

    def __post_init__(self) -> None:
        if not 2 <= self.samples <= 64:
            raise UsageError(f"--report-samples must be between 2 and 64, got {self.samples}")


@dataclass(frozen=True)
class BandFidelity:
    band: int  # 1-based in the source
    description: Optional[str]
    consistency_l1: float  # stored units
    consistency_relative: float  # consistency_l1 / (p99 - p1)
    value_range: tuple[float, float]  # p1, p99 of the LR values
    noise_sigma: float  # stored units, after the quantization floor
    deviating_fraction: float
    uncertainty_mean: float  # stored units, on the crop
    uncertainty_p95: float


@dataclass(frozen=True)
class Shift:
    dy: float
    dx: float
    blocks: int  # blocks that were measured (median over them)

    @property
    def magnitude(self) -> float:
        return math.hypot(self.dy, self.dx)


@dataclass(frozen=True)
class UncertaintyCrop:
    lr_window: tuple[int, int, int, int]  # col_off, row_off, width, height in the source
    out_window: tuple[int, int, int, int]  # in the written output
    samples: int
    deterministic: bool  # every sample identical


@dataclass(frozen=True)
class FidelityReport:
    source: str
    output: str
    method: str
    scale_xy: tuple[float, float]
    lr_pixels_compared: int
    bands: tuple[BandFidelity, ...]
    spectral_angle_deg: Optional[float]
    shift: Optional[Shift]
    uncertainty: Optional[UncertaintyCrop]
    checks: FidelityChecks
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def worst_consistency(self) -> float:
        return max((b.consistency_relative for b in self.bands), default=math.nan)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["shift_lr_px"] = None if self.shift is None else {**asdict(self.shift), "magnitude": self.shift.magnitude}
        del data["shift"]
        return finite_or_none({"format": FORMAT, **data, "passed": self.passed, "definitions": DEFINITIONS})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def tags(self) -> dict[str, str]:
        """Key figures for the output's GDAL metadata (RSSR_FIDELITY_*), so a reader needs no sidecar."""
        per_band = lambda key: ",".join(f"{getattr(b, key):.4g}" for b in self.bands)  # noqa: E731
        tags = {
            "RSSR_FIDELITY_CONSISTENCY": per_band("consistency_relative"),
            "RSSR_FIDELITY_DEVIATING": per_band("deviating_fraction"),
            "RSSR_FIDELITY_UNCERTAINTY": per_band("uncertainty_mean"),
            "RSSR_FIDELITY_SHIFT_LR_PX": "none" if self.shift is None else f"{self.shift.dy:.3f},{self.shift.dx:.3f}",
        }
        if self.spectral_angle_deg is not None:
            tags["RSSR_FIDELITY_SAM_DEG"] = f"{self.spectral_angle_deg:.4g}"
        return tags

    def figures(self) -> dict:
        """The key figures in a few numbers (a batch's JSON log line)."""
        return finite_or_none(
            {
                "consistency": self.worst_consistency,
                "shift_lr_px": None if self.shift is None else round(self.shift.magnitude, 4),
                "deviating": max((b.deviating_fraction for b in self.bands), default=math.nan),
                "passed": self.passed,
            }
        )

    def summary(self) -> str:
        shift = "not measured" if self.shift is None else f"{self.shift.magnitude:.2f} LR px"
        return f"consistency {self.worst_consistency:.2%} of range (worst band), shift {shift}, " + (
            f"deviating {max(b.deviating_fraction for b in self.bands):.1%}" if self.bands else "no pixel compared"
        )

    def raise_if_failed(self) -> None:
        if self.failures:
            raise FidelityError(
                f"{self.output}: fidelity check failed ({'; '.join(self.failures)}); nothing written", self.figures()
            )


DEFINITIONS = {
    "consistency_l1": "mean |area average of the SR pixels over each LR pixel - LR value|, stored units",
    "consistency_relative": "consistency_l1 / (p99 - p1 of the LR band)",
    "deviating_fraction": f"share of LR pixels whose degrade-back error exceeds {DEVIATION_SIGMAS:g} x noise_sigma",
    "noise_sigma": f"LR noise level: Immerkaer 1996 on {NOISE_CELL}x{NOISE_CELL} px cells, {NOISE_PERCENTILE}th percentile "
    "over cells (the flattest ones); at least 0.5 for integer data",
    "spectral_angle_deg": "mean angle between degrade-back and LR band vectors (scale/offset applied)",
    "shift_lr_px": "median shift (phase correlation + Lucas-Kanade) of degrade-back vs LR over textured blocks; + = SR lower/right",
    "uncertainty": "per-pixel std over several seeds on one crop (stored units); 0 for deterministic methods",
    "quicklook": "PNG panels, left to right: LR (pixel-replicated), SR, uncertainty (max over bands of std / band "
    "range; black 0, white its 99th percentile)",
}


def check(report: FidelityReport, output: str) -> FidelityReport:
    """The report with its output path and the threshold failures filled in."""
    checks, failures = report.checks, []
    if not report.lr_pixels_compared and (checks.max_shift is not None or checks.max_consistency_error is not None):
        failures.append("no valid pixel to compare")
    if checks.max_consistency_error is not None and report.worst_consistency > checks.max_consistency_error:
        failures.append(
            f"consistency error {report.worst_consistency:.4g} > --max-consistency-error {checks.max_consistency_error:g}"
        )
    if checks.max_shift is not None and report.shift is not None and report.shift.magnitude > checks.max_shift:
        failures.append(f"shift {report.shift.magnitude:.3g} LR px > --max-shift {checks.max_shift:g}")
    return replace(report, output=output, failures=tuple(failures))
