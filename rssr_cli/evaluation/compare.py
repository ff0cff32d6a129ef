"""What `rssr evaluate` runs: the backends to compare, over a folder of HR images or a real LR/HR pair.

- `model_backends`: one loaded model as several named backends: "model-prior" (the operator's estimate),
  "model-k{k}" (LR-start sampler, k denoiser steps at `strength`), "model-full{n}" (full chain from
  pure noise, n steps). The model is loaded once and shared.
- `compare_on_folder`: protocol.evaluate_folder over those backends plus classical methods.
- `compare_on_pair`: pairs.evaluate_pairs for each backend on one real LR/HR pair.
- `--samples K` (folder only): every model variant is also judged as a posterior sampler against
  "model-prior" (posterior.py's seven bars; deterministic variants are not re-run for their K samples).
(`evaluate --fidelity` is fidelity_files.fidelity_of_files: no backend runs.)
Returns data; the CLI renders it. ΔPSNR is always against REFERENCE_METHOD (bicubic) at the same scale.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, cast

from rssr_cli.backends import SRBackend, backend_names, default_model_path, get_backend
from rssr_cli.core.errors import CheckpointError, InputError, UsageError
from rssr_cli.core.interrupts import interruptible
from rssr_cli.evaluation.jsonsafe import finite_or_none
from rssr_cli.evaluation.pairs import PairScore, evaluate_pairs
from rssr_cli.evaluation.protocol import (
    DEFAULT_SCALES,
    DEGRADATIONS,
    EvaluationReport,
    PosteriorSpec,
    Progress,
    evaluate_folder,
)
from rssr_cli.geo.grid import check_scale
from rssr_cli.io.images import find_images
from rssr_cli.scoring.detail import Interval, summarize_detail
from rssr_cli.scoring.posterior import summarize_posterior

if TYPE_CHECKING:  # torch is optional: the diffusion backend is imported only where it runs
    from rssr_cli.backends.diffusion import DiffusionBackend

MODEL_PREFIX = "model"
REFERENCE_METHOD = "bicubic"
DEFAULT_METHODS = ("bicubic", "lanczos")
COMPARISON_COLUMNS = ("scale", "method", "PSNR (dB)", f"ΔPSNR vs {REFERENCE_METHOD}", "SSIM", "s / image", "images")
DETAIL_COLUMNS = ("scale", "method", "HF energy", "HF error", "HF corr", "improve %", "omit %", "halluc %")
PAIRED_COLUMNS = ("scale", "method", "vs", "ΔPSNR (dB)", "ΔHF energy", "ΔHF error", "ΔHF corr")
POSTERIOR_COLUMNS = ("scale", "method", "bar", "figure", "mean [95 % CI]", "rule", "pass")
PAIR_COLUMNS = (
    "method",
    "PSNR (dB)",
    f"ΔPSNR vs {REFERENCE_METHOD}",
    "SSIM",
    "gain",
    "offset",
    "shift dy, dx (HR px)",
    "s",
)


# ------------------------------------------------------------------------------------------ backends


@dataclass(frozen=True)
class CompareSettings:
    """Which backends to compare; model variants only when `model` is set (see find_model).

    steps: LR-start step counts (0 = the prior, which is always included); () = the model card's default.
    strength: LR-start noise strength t0/T; None = the card's. full_chain: step counts from pure noise.
    samples: K >= 2 judges every model variant as a posterior sampler with K samples per image (folder
    mode; needs a model); 0 = not.
    """

    model: Optional[Path] = None
    steps: tuple[int, ...] = ()
    strength: Optional[float] = None
    full_chain: tuple[int, ...] = ()
    tta: bool = False  # also every LR-start variant with the 8-way self-ensemble ("-tta")
    methods: tuple[str, ...] = DEFAULT_METHODS
    device: str = "auto"
    threads: Optional[int] = None
    seed: int = 0
    degradation: str = "bicubic"  # protocol.DEGRADATIONS: how HR images become LR in folder mode
    samples: int = 0

    def __post_init__(self) -> None:
        if self.degradation not in DEGRADATIONS:
            raise UsageError(f"unknown --degradation {self.degradation!r}; choose one of: {', '.join(DEGRADATIONS)}")
        if any(k < 0 for k in self.steps):
            raise UsageError(f"--steps must be >= 0, got {','.join(map(str, self.steps))}")
        if any(n < 1 for n in self.full_chain):
            raise UsageError(f"--full-chain step counts must be >= 1, got {','.join(map(str, self.full_chain))}")
        if self.strength is not None and not 0.0 < self.strength <= 1.0:
            raise UsageError(f"--strength must be in (0, 1], got {self.strength:g}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if not self.methods and self.model is None:
            raise UsageError("nothing to evaluate: no model and no --methods")
        if self.samples == 1 or self.samples < 0:
            raise UsageError(f"--samples must be >= 2 (samples per image to judge a sampler by), got {self.samples}")
        if self.samples and self.model is None:
            raise UsageError("--samples judges the model's sampler: give --model (no default model was found)")


def find_model(model: Optional[Path]) -> Optional[Path]:
    """The model to evaluate: `model` when given (loading fails loudly if it is missing), else the
    default model when its file exists and the diffusion backend is installed, else None."""
    if model is not None:
        return Path(model)
    try:
        default = default_model_path()
    except CheckpointError:  # no bundled model and no RSSR_MODEL: the CLI says it evaluates classical methods only
        return None
    return default if default.is_file() and "diffusion" in backend_names() else None


def model_backends(
    model: Path,
    steps: Sequence[int] = (),
    strength: Optional[float] = None,
    full_chain: Sequence[int] = (),
    device: str = "auto",
    *,
    threads: Optional[int] = None,
    tta: bool = False,
) -> dict[str, SRBackend]:
    """{"model-prior", "model-k{k}" per k in steps (default: the card's), "model-full{n}" per n}: one model, loaded once.
    tta: also "model-prior-tta" and "model-k{k}-tta", the same with the 8-way self-ensemble."""
    prior = cast(
        "DiffusionBackend", get_backend("diffusion", model=model, device=device, mode="prior", threads=threads)
    )
    backends: dict[str, SRBackend] = {f"{MODEL_PREFIX}-prior": prior}
    for k in steps or (prior.steps,):
        if k > 0:
            backends[f"{MODEL_PREFIX}-k{k}"] = prior.variant(mode="diffusion", steps=k, strength=strength)
    for n in full_chain:
        backends[f"{MODEL_PREFIX}-full{n}"] = prior.variant(mode="diffusion", steps=n, strength=1.0)
    if tta:
        for name in [name for name in backends if "-full" not in name]:
            backends[f"{name}-tta"] = cast("DiffusionBackend", backends[name]).variant(tta=True)
    return backends


def build_backends(settings: CompareSettings) -> dict[str, SRBackend]:
    """Model variants (when settings.model is set) followed by the classical methods, in order."""
    classical = {name: get_backend(name) for name in settings.methods}  # unknown names fail before the model loads
    if settings.model is None:
        return classical
    models = model_backends(
        settings.model,
        settings.steps,
        settings.strength,
        settings.full_chain,
        settings.device,
        threads=settings.threads,
        tta=settings.tta,
    )
    return {**models, **classical}


def posterior_spec(backends: Mapping[str, SRBackend], samples: int) -> Optional[PosteriorSpec]:
    """Every model variant judged against "model-prior" with `samples` samples per image; None when samples is 0.
    The prior and the prior-only/0-step variants are deterministic: their one output stands for the K samples."""
    if not samples:
        return None
    models = [name for name in backends if name.startswith(f"{MODEL_PREFIX}-")]
    repeated = [name for name in models if _deterministic(backends[name])]
    return PosteriorSpec(samples, f"{MODEL_PREFIX}-prior", tuple(models), tuple(repeated))


def _deterministic(backend: SRBackend) -> bool:
    return getattr(backend, "mode", None) == "prior" or getattr(backend, "steps", None) == 0


def provenance(backends: Mapping[str, SRBackend]) -> dict[str, dict[str, str]]:
    return {name: dict(backend.provenance()) for name, backend in backends.items()}


def _set_threads(threads: Optional[int]) -> None:
    """--threads for torch (the degradations and the model). Torch loads here, when a comparison runs: the CLI
    imports this module at start for its defaults and tables, and `rssr` starts without torch (issue 22)."""
    if threads is not None:
        import torch  # lazy: see the docstring

        torch.set_num_threads(threads)


# -------------------------------------------------------------------------------------------- folder


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    if not scales:
        raise UsageError("no scale given")
    return tuple(check_scale(s) for s in scales)


@interruptible
def compare_on_folder(
    hr_dir: Path,
    settings: CompareSettings,
    scales: Sequence[float] = DEFAULT_SCALES,
    *,
    limit: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> EvaluationReport:
    """Degrade every image under hr_dir at every scale, super-resolve with every backend, score (protocol.py)."""
    scales = check_scales(scales)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    if not find_images(Path(hr_dir)):  # before the model loads
        raise InputError(f"no PNG/JPEG/TIFF images under {hr_dir}")
    _set_threads(settings.threads)
    backends = build_backends(settings)
    spec = posterior_spec(backends, settings.samples)
    report = evaluate_folder(
        hr_dir,
        backends,
        scales,
        limit=limit,
        progress=progress,
        seed=settings.seed,
        degrade=DEGRADATIONS[settings.degradation],
        posterior=spec,
    )
    report.meta.update(
        model=str(settings.model) if settings.model is not None else None,
        samples=settings.samples,
        reference=REFERENCE_METHOD,
        psnr_vs_reference=[
            {"scale": scale, "backend": name, "delta_psnr": delta}
            for (scale, name), delta in psnr_gains(report).items()
        ],
        provenance=provenance(backends),
    )
    return report


def psnr_gains(report: EvaluationReport, reference: str = REFERENCE_METHOD) -> dict[tuple[float, str], float]:
    """{(scale, backend): mean PSNR - reference's mean PSNR at that scale}, for scales where the reference ran."""
    summary = report.summary()
    ref = {s.scale: s.psnr for s in summary if s.backend == reference}
    return {(s.scale, s.backend): s.psnr - ref[s.scale] for s in summary if s.scale in ref}


def _signed(delta: Optional[float]) -> str:
    return f"{delta:+.2f}" if delta is not None and math.isfinite(delta) else "-"


def comparison_rows(report: EvaluationReport, reference: str = REFERENCE_METHOD) -> list[tuple[str, ...]]:
    """Formatted cells matching COMPARISON_COLUMNS (ΔPSNR "-" where the reference did not run)."""
    gains = psnr_gains(report, reference)
    return [
        (
            f"x{s.scale:g}",
            s.backend,
            f"{s.psnr:.2f}",
            _signed(gains.get((s.scale, s.backend))),
            f"{s.ssim:.4f}",
            f"{s.seconds:.4f}",
            str(s.images),
        )
        for s in report.summary()
    ]


def _ci(interval: Interval, fmt: str = "{:.3f}", factor: float = 1.0) -> str:
    if not math.isfinite(interval.mean):
        return "-"
    text = fmt.format(interval.mean * factor)
    if math.isfinite(interval.low):
        text += " [" + fmt.format(interval.low * factor) + ", " + fmt.format(interval.high * factor) + "]"
    return text


def detail_rows(report: EvaluationReport) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Cells for DETAIL_COLUMNS (means with 95 % CIs) and PAIRED_COLUMNS (paired differences with CIs)."""
    summaries = summarize_detail(report.rows, report.scales, report.backends)
    means = [
        (
            f"x{d.scale:g}",
            d.backend,
            *(_ci(d.figures[n]) for n in ("hf_energy_ratio", "hf_error_ratio", "hf_correlation")),
            *(_ci(d.figures[n], "{:.1f}", 100.0) for n in ("improvement", "omission", "hallucination")),
        )
        for d in summaries
    ]
    paired = [
        (
            f"x{d.scale:g}",
            d.backend,
            ref,
            _ci(deltas["psnr"], "{:+.2f}"),
            *(_ci(deltas[n], "{:+.3f}") for n in ("hf_energy_ratio", "hf_error_ratio", "hf_correlation")),
        )
        for d in summaries
        for ref, deltas in d.versus.items()
    ]
    return means, paired


def posterior_rows(report: EvaluationReport) -> list[tuple[str, ...]]:
    """Cells for POSTERIOR_COLUMNS: one line per figure of each bar, then the count of bars passed, per (scale, method)."""
    rows: list[tuple[str, ...]] = []
    for cell in summarize_posterior(report.rows, report.scales, report.backends):
        for bar in cell.bars:
            for f in bar.figures:
                verdict = "-" if f.rule == "reference" else ("pass" if f.passed else "FAIL")
                rows.append((f"x{cell.scale:g}", cell.backend, str(bar.number), f.name, _ci(f.value), f.rule, verdict))
        rows.append(
            (f"x{cell.scale:g}", cell.backend, "all", "bars passed", f"{cell.passed} / {len(cell.bars)}", "", "")
        )
    return rows


def posterior_legend(report: EvaluationReport) -> str:
    """The bars' names, one line, for under the table."""
    cells = summarize_posterior(report.rows, report.scales, report.backends)
    return "bars: " + "; ".join(f"{b.number} {b.name}" for b in cells[0].bars) if cells else ""


# ---------------------------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class PairComparison:
    """Every backend's PairScore on one real LR/HR pair."""

    lr: str
    hr: str
    scores: dict[str, PairScore]
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def geometry(self) -> PairScore:
        """Any score: they all share the windows, scale and shave."""
        return next(iter(self.scores.values()))

    def rows(self, reference: str = REFERENCE_METHOD) -> list[tuple[str, ...]]:
        """Formatted cells matching PAIR_COLUMNS."""
        ref = self.scores.get(reference)
        out: list[tuple[str, ...]] = []
        for name, s in self.scores.items():
            delta = s.psnr - ref.psnr if ref is not None else None
            out.append(
                (
                    name,
                    f"{s.psnr:.2f}",
                    _signed(delta),
                    f"{s.ssim:.4f}",
                    ", ".join(f"{g:.4g}" for g in s.gain),
                    ", ".join(f"{o:.4g}" for o in s.offset),
                    f"{s.shift_hr_px[0]:+.2f}, {s.shift_hr_px[1]:+.2f}",
                    f"{s.seconds:.3f}",
                )
            )
        return out

    def to_json(self) -> str:
        doc = {
            "lr": self.lr,
            "hr": self.hr,
            "reference": REFERENCE_METHOD,
            "provenance": self.provenance,
            "scores": {name: asdict(score) for name, score in self.scores.items()},
        }
        return json.dumps(finite_or_none(doc), indent=2, allow_nan=False)


@interruptible
def compare_on_pair(
    lr_path: Path,
    hr_path: Path,
    settings: CompareSettings,
    *,
    lr_bands: Optional[Sequence[int]] = None,
    hr_bands: Optional[Sequence[int]] = None,
    border: Optional[int] = None,
) -> PairComparison:
    """pairs.evaluate_pairs with every backend of `settings` (co-registration and scoring: see there)."""
    if settings.samples:
        raise UsageError("--samples needs HR_DIR mode (the truth and the degradation of every image are known there)")
    for path in (lr_path, hr_path):
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}")
    _set_threads(settings.threads)
    backends = build_backends(settings)
    scores = {
        name: evaluate_pairs(
            lr_path, hr_path, backend, lr_bands=lr_bands, hr_bands=hr_bands, border=border, seed=settings.seed
        )
        for name, backend in backends.items()
    }
    return PairComparison(str(lr_path), str(hr_path), scores, provenance(backends))
