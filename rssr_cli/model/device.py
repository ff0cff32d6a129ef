"""The one device and precision resolver, for inference (backends.diffusion) and training (training.trainer) alike.

`auto` means CUDA when this machine has it, else the CPU; a precision `auto` means bf16 on CUDA, fp32 for inference
on a CPU, and bf16 for training on a CPU that computes bf16 natively (BENCHMARKS: 1.6-2.2x per step there; emulated
elsewhere, and slower). Bad values are UsageErrors, so the CLI says one line.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rssr_cli.core.errors import UsageError

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # precision name -> autocast dtype


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available else cpu; "cpu", "cuda", "cuda:N" checked (CUDA present)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if resolved.type not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    return resolved


def resolve_precision(precision: str, device: torch.device, *, training: bool = False) -> str:
    """ "auto" -> bf16 on CUDA; on a CPU fp32 (inference) or bf16 where native (training); the name checked."""
    if precision == "auto":
        native_cpu_bf16 = training and cpu_has_native_bf16()
        return "bf16" if device.type == "cuda" or native_cpu_bf16 else "fp32"
    if precision not in AUTOCAST_DTYPES:
        raise UsageError(f"unknown precision {precision!r}; choose auto, {', '.join(AUTOCAST_DTYPES)}")
    if training and precision == "fp16":  # would need a gradient scaler; bf16 has fp32's range and needs none
        raise UsageError("training runs in fp32 or bf16 (--precision fp16 is for inference)")
    return precision


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there, bf16 autocast makes a training step
    1.6-2.2x faster per pixel at the same loss curve (BENCHMARKS); elsewhere it is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
