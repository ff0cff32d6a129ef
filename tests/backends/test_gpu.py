"""Accelerator checks (`gpu` marker): reduced precision vs fp32, device vs CPU, seeds deterministic.

They run on the device named by RSSR_CHECK_DEVICE (default cuda; skipped without CUDA). bench/gpu_check.sh
runs them; in CI it runs them with RSSR_CHECK_DEVICE=cpu on a tiny model so the script is known to work
before a GPU is ever seen. Tolerances are in the model's normalized units (reflectance-like, data range ~1):
  fp32 on the device vs fp32 on the CPU    max |d| <= 1e-3   (kernel order only)
  bf16 autocast vs fp32 (same device)      mean |d| <= 1e-2, PSNR >= 35 dB
  fp16 autocast vs fp32 (same device)      mean |d| <= 5e-3, PSNR >= 40 dB
  same seed twice (same device)            max |d| <= 1e-5
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from rssr_cli.backends.base import SRRequest
from rssr_cli.backends.diffusion import DiffusionBackend
from rssr_cli.geo.grid import HRGrid
from rssr_cli.model.checkpoint import save_model
from rssr_cli.model.sr_model import TINY_SPEC, build_sr_model

pytestmark = pytest.mark.gpu

DEVICE = os.environ.get("RSSR_CHECK_DEVICE", "cuda")
MODEL = os.environ.get("RSSR_CHECK_MODEL")  # default: a tiny random model (the shipped one on a GPU: see gpu_check.sh)
TOLERANCES = {"bf16": (1e-2, 35.0), "fp16": (5e-3, 40.0)}


def _device_or_skip() -> str:
    if torch.device(DEVICE).type == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA (set RSSR_CHECK_DEVICE=cpu to run these checks on the CPU)")
    return DEVICE


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    if MODEL:
        return MODEL
    torch.manual_seed(0)
    model = build_sr_model(TINY_SPEC)
    model.sampler_defaults.update({"steps": 2, "strength": 0.3})
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny")


def _requests(n: int = 3, size: int = 24, scale: float = 4.0) -> list[SRRequest]:
    rng = np.random.default_rng(0)
    hr = round(size * scale)
    grid = HRGrid(height=hr, width=hr, y0=0.0, x0=0.0, dy=size / hr, dx=size / hr)
    lr = [(0.3 + 0.2 * rng.random((1, size, size))).astype(np.float32) for _ in range(n)]
    return [SRRequest(lr=a, grid=grid, seed=17 + i) for i, a in enumerate(lr)]


def _run(model_path, device: str, precision: str) -> np.ndarray:
    backend = DiffusionBackend(model=model_path, device=device, precision=precision)
    return np.stack(backend.upsample(_requests()))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def test_device_fp32_matches_the_cpu(model_path):
    device = _device_or_skip()
    on_device, on_cpu = _run(model_path, device, "fp32"), _run(model_path, "cpu", "fp32")
    assert np.abs(on_device - on_cpu).max() <= 1e-3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_stays_close_to_fp32(model_path, precision):
    device = _device_or_skip()
    reference, reduced = _run(model_path, device, "fp32"), _run(model_path, device, precision)
    mean_tol, min_psnr = TOLERANCES[precision]
    assert np.isfinite(reduced).all()
    assert np.abs(reduced - reference).mean() <= mean_tol
    assert _psnr(reduced, reference) >= min_psnr


def test_same_seed_gives_the_same_output(model_path):
    device = _device_or_skip()
    first, second = _run(model_path, device, "fp32"), _run(model_path, device, "fp32")
    assert np.abs(first - second).max() <= 1e-5
