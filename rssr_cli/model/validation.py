"""Checks on an untrusted checkpoint made before any real tensor is allocated.

A model card or a safetensors header is user input: a width of 2000 would allocate gigabytes and a
`heads: 0` would crash deep inside torch. So, in this order: the safetensors header is parsed by hand
(8-byte length + JSON; every tensor's dtype, shape and byte range must agree with each other and with
the file size), every spec field is checked for type and range, the expected tensor shapes are derived
from the spec on torch's `meta` device (no memory: shapes only, one source of truth with the real
classes), compared with the header's shapes, and the parameter count is bounded. Only then does
checkpoint.load_model read the tensors and build the model. Every problem is one CheckpointError line.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Mapping

import torch

from rssr_cli.core.errors import CheckpointError
from rssr_cli.model.deviation_shape import GAIN_RANGE, KNOTS
from rssr_cli.model.diffusion import PREDICTIONS, SCHEDULES
from rssr_cli.model.null_space import KERNELS
from rssr_cli.model.registry import registered
from rssr_cli.model.samplers import DEFAULT_SAMPLER
from rssr_cli.model.sr_model import ERROR_HEAD, SRModel

MAX_PARAMETERS = 200_000_000  # the shipped model has ~2 M; anything this large is not an rssr model
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
MAX_WIDTH = 4096
MAX_DEPTH = 64
MAX_SCHEDULE_STEPS = 100_000
# A residual-shifting chain's sampler settings and their ranges (card, `rssr train`, training/calibration.py);
# local_exponent / local_log_scale: v0 per pixel by the prior's expected error (resshift.local_error_variance);
# correction_tilt: the correction's noise falls as f^-tilt above the LR Nyquist (resshift.tilted_noise); the string
# setting local_error = "head" takes the expected error from the card's error head instead (error_head.py);
# range_correction: the share of the prior's inconsistency with its input each draw puts back (null_space.py);
# head_contrast: the head's expected error is raised to 1 + head_contrast (SRModel._variance_correction)
CHAIN_SAMPLER_RANGES = {
    "variance_correction": (0.0, 100.0),
    "band_correlation": (0.0, 1.0),
    "local_exponent": (0.0, 2.0),
    "local_log_scale": (-50.0, 50.0),
    "correction_tilt": (0.0, 4.0),
    "range_correction": (0.0, 1.0),
    "head_contrast": (0.0, 2.0),
}
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def read_safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(tensor name -> shape, metadata) from the file's header, checked for consistency; reads no tensor data."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise _unreadable(path, "shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise _unreadable(path, f"header length {length} exceeds the file")
        try:
            header = json.loads(file.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _unreadable(path, f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _unreadable(path, "header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _unreadable(path, "metadata must map names to strings")
    shapes, ranges = {}, []
    for name, entry in header.items():
        shape, nbytes, begin, end = _tensor_entry(name, entry, path)
        if end - begin != nbytes:
            raise _unreadable(
                path, f"tensor {name!r} of shape {list(shape)} needs {nbytes} bytes, its header says {end - begin}"
            )
        shapes[name] = shape
        ranges.append((begin, end))
    data_bytes = size - 8 - length
    position = 0
    for begin, end in sorted(ranges):  # the tensors tile the data section exactly, as safetensors requires
        if begin != position:
            raise _unreadable(path, "tensor byte ranges overlap or leave gaps")
        position = end
    if position != data_bytes:
        raise _unreadable(path, f"the header describes {position} bytes of tensors, the file holds {data_bytes}")
    return shapes, metadata


def _unreadable(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt: {detail})")


def _tensor_entry(name: str, entry: Any, path: Path) -> tuple[tuple[int, ...], int, int, int]:
    try:
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_BYTES or not all(_is_int(v) and v >= 0 for v in (*shape, begin, end)) or begin > end:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise _unreadable(path, f"header entry for tensor {name!r} is malformed") from None
    return tuple(shape), math.prod(shape) * DTYPE_BYTES[dtype], begin, end


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(args: Mapping[str, Any], key: str, where: str, low: int, high: int, default: Any = None) -> int:
    value = args.get(key, default)
    if not _is_int(value) or not low <= value <= high:
        raise CheckpointError(f"model spec {where}.{key} must be an integer in {low}..{high}, got {value!r}")
    return value


def _number(
    args: Mapping[str, Any],
    key: str,
    where: str,
    low: float,
    high: float,
    default: Any = None,
    *,
    open_low: bool = False,
) -> float:
    value = args.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low < value if open_low else low <= value) or value > high:
        bound = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise CheckpointError(f"model spec {where}.{key} must be a number in {bound}, got {value!r}")
    return float(value)


def _ints(args: Mapping[str, Any], key: str, where: str, low: int, high: int, max_len: int) -> list[int]:
    values = args.get(key)
    if (
        not isinstance(values, list)
        or not 1 <= len(values) <= max_len
        or not all(_is_int(v) and low <= v <= high for v in values)
    ):
        raise CheckpointError(
            f"model spec {where}.{key} must be a list of 1..{max_len} integers in {low}..{high}, got {values!r}"
        )
    return values


def _part_args(spec: Mapping[str, Any], part: str, name: str, allowed: set[str]) -> Mapping[str, Any]:
    entry: Any = spec.get(part)
    got = entry.get("name") if isinstance(entry, dict) else None
    if got not in registered():
        raise CheckpointError(f"unknown model part {got!r}; registered: {', '.join(registered())}")
    if got != name:
        raise CheckpointError(f"model spec {part} must be a {name!r} part, got {got!r}")
    args = entry.get("args", {})
    if not isinstance(args, dict):
        raise CheckpointError(f"model spec {part}.args must be an object")
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise CheckpointError(f"model spec {part} has unknown argument {unknown[0]!r}")
    return args


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Types and ranges of every field the model classes read (sr_model, operator, prior_features, denoiser, diffusion)."""
    op = _part_args(
        spec,
        "operator",
        "neurop_operator",
        {"in_channels", "enc_width", "enc_blocks", "width", "attn_layers", "heads", "feat_channels"},
    )
    _int(op, "in_channels", "operator", 1, 64, 1)
    _int(op, "enc_width", "operator", 1, MAX_WIDTH, 48)
    _int(op, "enc_blocks", "operator", 0, MAX_DEPTH, 6)
    width = _int(op, "width", "operator", 1, MAX_WIDTH, 64)
    _int(op, "attn_layers", "operator", 0, MAX_DEPTH, 2)
    heads = _int(op, "heads", "operator", 1, MAX_WIDTH, 4)
    if width % heads:
        raise CheckpointError(f"model spec operator.width {width} must be divisible by operator.heads {heads}")
    _int(op, "feat_channels", "operator", 1, MAX_WIDTH, 16)
    prior = _part_args(spec, "prior_features", "prior_pyramid", {"widths"})
    widths = _ints(prior, "widths", "prior_features", 1, MAX_WIDTH, 8) if "widths" in prior else [16, 32, 64]
    unet = _part_args(spec, "denoiser", "sr3_unet", {"base", "mults", "blocks", "mid_blocks", "dropout"})
    base = _int(unet, "base", "denoiser", 2, MAX_WIDTH, 32)
    if base % 2:
        raise CheckpointError(
            f"model spec denoiser.base must be even (its sinusoidal embedding has base/2 pairs), got {base}"
        )
    mults = _ints(unet, "mults", "denoiser", 1, 64, 8) if "mults" in unet else [1, 2, 4]
    if base * max(mults) > MAX_WIDTH:
        raise CheckpointError(
            f"model spec denoiser.base x mults reaches {base * max(mults)} channels (at most {MAX_WIDTH})"
        )
    if len(mults) != len(widths):
        raise CheckpointError(
            f"model spec needs one prior_features width per denoiser level: {len(widths)} widths, {len(mults)} levels"
        )
    _int(unet, "blocks", "denoiser", 1, MAX_DEPTH, 1)
    _int(unet, "mid_blocks", "denoiser", 0, MAX_DEPTH, 2)
    _number(unet, "dropout", "denoiser", 0.0, 1.0, 0.0)
    _validate_diffusion(spec.get("diffusion"))
    has_error_head = bool(spec.get("error_head"))
    if has_error_head:
        head = _part_args(spec, "error_head", "error_head", {"width", "dilations"})
        _int(head, "width", "error_head", 1, MAX_WIDTH, 32)
        if "dilations" in head:
            _ints(head, "dilations", "error_head", 1, 64, MAX_DEPTH)
    sampler = spec.get("sampler", {})
    if not isinstance(sampler, dict):
        raise CheckpointError("model spec sampler must be an object")
    _int(sampler, "steps", "sampler", 0, 1000, DEFAULT_SAMPLER["steps"])
    _number(sampler, "strength", "sampler", 0.0, 1.0, DEFAULT_SAMPLER["strength"], open_low=True)
    for key, (low, high) in CHAIN_SAMPLER_RANGES.items():
        _number(sampler, key, "sampler", low, high, 0.0)
    null_space = sampler.get("null_space", "")
    if null_space not in ("", *KERNELS):
        raise CheckpointError(
            f"model spec sampler.null_space must be one of {', '.join(KERNELS)} (or absent), got {null_space!r}"
        )
    if sampler.get("range_correction", 0.0) > 0 and not null_space:
        raise CheckpointError("model spec sampler.range_correction needs the degradation it corrects by (null_space)")
    local_error = sampler.get("local_error", "")
    if local_error not in ("", ERROR_HEAD):
        raise CheckpointError(f"model spec sampler.local_error must be {ERROR_HEAD!r} (or absent), got {local_error!r}")
    if local_error == ERROR_HEAD and not has_error_head:
        raise CheckpointError("model spec sampler.local_error is 'head' but the spec has no error_head")
    if sampler.get("head_contrast", 0.0) > 0 and local_error != ERROR_HEAD:
        raise CheckpointError(
            "model spec sampler.head_contrast shapes the error head's map: it needs local_error 'head'"
        )
    gains = sampler.get("deviation_gain")
    if gains is not None and not (
        isinstance(gains, list)
        and len(gains) == len(KNOTS)
        and all(
            isinstance(g, (int, float)) and not isinstance(g, bool) and GAIN_RANGE[0] <= g <= GAIN_RANGE[1]
            for g in gains
        )
    ):
        raise CheckpointError(
            f"model spec sampler.deviation_gain must be {len(KNOTS)} numbers in [{GAIN_RANGE[0]:g}, {GAIN_RANGE[1]:g}]"
            f" (one per knot of deviation_shape.KNOTS), got {gains!r}"
        )


def _validate_diffusion(diffusion: Any) -> None:
    if isinstance(diffusion, dict) and diffusion.get("process") == "resshift":
        _validate_resshift(diffusion)
        return
    if isinstance(diffusion, dict) and diffusion.get("process", "ddpm") != "ddpm":
        raise CheckpointError(
            f"model spec diffusion.process must be ddpm or resshift, got {diffusion.get('process')!r}"
        )
    if not isinstance(diffusion, dict) or not isinstance(diffusion.get("schedule"), dict):
        raise CheckpointError("model spec diffusion must be an object with a schedule")
    schedule = diffusion["schedule"]
    name, args = schedule.get("name"), schedule.get("args", {})
    if name not in SCHEDULES or not isinstance(args, dict):
        raise CheckpointError(
            f"model spec diffusion.schedule.name must be one of {', '.join(sorted(SCHEDULES))}, got {name!r}"
        )
    where = "diffusion.schedule.args"
    _int(args, "steps", where, 1, MAX_SCHEDULE_STEPS, 2000)
    if name == "linear":
        unknown = set(args) - {"steps", "start", "end"}
        start = _number(args, "start", where, 0.0, 1.0, 1e-6, open_low=True)
        end = _number(args, "end", where, 0.0, 1.0, 1e-2, open_low=True)
        if start > end or end >= 1.0:
            raise CheckpointError(f"model spec {where}: need 0 < start <= end < 1, got start {start}, end {end}")
    else:
        unknown = set(args) - {"steps", "s", "max_beta"}
        _number(args, "s", where, 0.0, 1.0, 0.008)
        _number(args, "max_beta", where, 0.0, 0.999999, 0.999, open_low=True)
    if unknown:
        raise CheckpointError(f"model spec {where} has unknown argument {sorted(unknown)[0]!r}")
    if diffusion.get("prediction", "v") not in PREDICTIONS:
        raise CheckpointError(
            f"model spec diffusion.prediction must be one of {', '.join(PREDICTIONS)}, got {diffusion.get('prediction')!r}"
        )
    if diffusion.get("loss", "l1") not in ("l1", "l2"):
        raise CheckpointError(f"model spec diffusion.loss must be l1 or l2, got {diffusion.get('loss')!r}")
    _number(diffusion, "residual_scale", "diffusion", 0.0, 1e6, 1.0, open_low=True)


def _validate_resshift(diffusion: dict) -> None:
    """A residual-shifting chain: its length, κ, the schedule's end and power, the global residual scale."""
    unknown = set(diffusion) - {"process", "chain_steps", "kappa", "eta_last", "power", "residual_scale", "loss"}
    if unknown:
        raise CheckpointError(f"model spec diffusion has unknown entry {sorted(unknown)[0]!r}")
    _int(diffusion, "chain_steps", "diffusion", 2, 1000, 8)
    _number(diffusion, "kappa", "diffusion", 0.0, 100.0, 1.0, open_low=True)
    _number(diffusion, "eta_last", "diffusion", 0.0, 1.0, 0.999, open_low=True)
    _number(diffusion, "power", "diffusion", 0.0, 10.0, 0.3, open_low=True)
    _number(diffusion, "residual_scale", "diffusion", 0.0, 1e6, 1.0, open_low=True)
    if diffusion.get("loss", "l2") not in ("l1", "l2"):
        raise CheckpointError(f"model spec diffusion.loss must be l1 or l2, got {diffusion.get('loss')!r}")


def expected_shapes(spec: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes the spec implies, from a model built on the meta device (allocates nothing)."""
    try:
        with torch.device("meta"):
            model = SRModel(dict(spec))
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"cannot build the model from its spec: {exc}") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_weights_match(spec: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], source: str) -> None:
    """The header's tensors are exactly those the spec implies, and the model stays under MAX_PARAMETERS."""
    stored = sum(math.prod(s) for s in shapes.values())
    if stored > MAX_PARAMETERS:
        raise CheckpointError(f"the weights file holds {stored:,} values; an rssr model has at most {MAX_PARAMETERS:,}")
    expected = expected_shapes(spec)
    implied = sum(math.prod(s) for s in expected.values())
    if implied > MAX_PARAMETERS:
        raise CheckpointError(f"the {source} describes a model of {implied:,} parameters; at most {MAX_PARAMETERS:,}")
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise CheckpointError(f"weights do not match the {source}: {what} ({len(missing) + len(extra)} key(s) differ)")
    for key, shape in expected.items():
        if tuple(shapes[key]) != shape:
            raise CheckpointError(
                f"weights do not match the {source}: {key} is {tuple(shapes[key])}, the {source} implies {shape}"
            )
