"""Resumable training state without pickle: tensors in safetensors, scalars and config in JSON beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from rssr_cli.core.errors import CheckpointError
from rssr_cli.io.safefiles import write_atomic


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        if name.startswith("optim."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for name, v in meta["scalars"].items():
        pid, k = name.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(
    path: Path, *, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict[str, Any]
) -> None:
    """Atomically write <path>.safetensors + <path>.json (model, EMA, optimizer, step, config)."""
    path = Path(path)
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.contiguous() for k, v in ema.state_dict().items()})
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    tensors.update(opt_tensors)
    write_atomic(path.with_suffix(".safetensors"), lambda tmp: save_file(tensors, str(tmp)))
    text = json.dumps({**meta, "optimizer": opt_meta}, indent=1)
    write_atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))


def load_ema_weights(path: Path, module: torch.nn.Module) -> int:
    """Load the EMA weights of a saved training state into `module`; returns the step they were saved at."""
    path = Path(path)
    try:
        tensors = load_file(str(path.with_suffix(".safetensors")))
        step = int(json.loads(path.with_suffix(".json").read_text())["step"])
    except Exception as exc:  # corrupt or missing file: one clear line
        raise CheckpointError(f"cannot read the training state {path}: {exc}") from None
    module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    return step


def load_training_state(
    path: Path, *, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer
) -> dict[str, Any]:
    path = Path(path)
    st, js = path.with_suffix(".safetensors"), path.with_suffix(".json")
    if not st.exists() or not js.exists():
        raise CheckpointError(f"cannot resume: {st} or {js} is missing")
    try:
        tensors = load_file(str(st))
        meta = json.loads(js.read_text())
    except Exception as exc:  # corrupt file: one clear line
        raise CheckpointError(f"cannot resume from {st}: {exc}") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    _unflatten_optimizer(opt, tensors, meta.pop("optimizer"))
    return meta
