"""Pack a training state for `models/wip/` (small enough to commit each session) and unpack it to resume.

    python bench/wip_state.py pack runs/rs-s2/denoiser/last models/wip/rs-s2/state --frozen operator
    python bench/wip_state.py unpack models/wip/rs-s2/state runs/rs-s2/denoiser/last --init models/s2-10m.safetensors
    python bench/wip_state.py pack-model runs/gpu/run1.safetensors models/wip/rs-aerial-gpu/ema_call1 --frozen operator
    python bench/wip_state.py unpack-model models/wip/rs-aerial-gpu/ema_call1 runs/gpu/run1 --init models/aerial.safetensors

pack keeps what a resumed run cannot rebuild: the trained parts' weights (fp32) and optimizer moments (fp32, exact
resume), their EMA in bf16 (the issue's rule: EMA weights in bf16 each session), the step, the RNG states and the
run's settings; it drops the parts the stage froze (`--frozen operator`: they are the --init model's, unchanged).
unpack fills the frozen parts (model and EMA) back from the --init model and the EMA back to fp32: `rssr train …
--resume` then continues (the EMA's bf16 rounding, ~3 significant digits, is the only difference from the state).
pack-model / unpack-model do the same for an exported model (a run whose training state stayed elsewhere, e.g. on a
GPU machine): its trained parts in bf16 and its card; unpack-model fills the frozen parts from --init and writes a
loadable model with the packed card's id, training record and metrics; an --init without a chain (the operator the
chain was trained on) takes the packed chain's settings, an --init with another chain is refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rssr_cli.model.checkpoint import describe, load_model, save_model


def pack(state: Path, out: Path, frozen: list[str]) -> None:
    tensors = load_file(str(state.with_suffix(".safetensors")))
    dropped = tuple(f"{kind}.{part}." for kind in ("model", "ema") for part in frozen)
    kept = {}
    for name, value in tensors.items():
        if name.startswith(dropped):
            continue
        kept[name] = value.to(torch.bfloat16) if name.startswith("ema.") and value.is_floating_point() else value
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(out.with_suffix(".safetensors")))
    meta = json.loads(state.with_suffix(".json").read_text())
    meta["wip_packed"] = {"frozen": frozen, "ema_dtype": "bfloat16"}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    print(
        f"packed {state} -> {out}.safetensors ({out.with_suffix('.safetensors').stat().st_size / 2**20:.1f} MiB, step {meta['step']})"
    )


def unpack(packed: Path, state: Path, init: Path) -> None:
    tensors = load_file(str(packed.with_suffix(".safetensors")))
    meta = json.loads(packed.with_suffix(".json").read_text())
    frozen = meta.pop("wip_packed", {}).get("frozen", [])
    base = load_model(init).state_dict()
    for name, value in base.items():
        if name.split(".", 1)[0] in frozen:
            tensors[f"model.{name}"] = value.clone()
            tensors[f"ema.{name}"] = value.clone()
    tensors = {k: (v.float() if k.startswith("ema.") and v.dtype == torch.bfloat16 else v) for k, v in tensors.items()}
    state.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(state.with_suffix(".safetensors")))
    state.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    log = packed.parent / "log.csv"
    if log.exists():
        shutil.copy(log, state.parent / "log.csv")
    print(f"unpacked {packed} -> {state} (step {meta['step']})")


def pack_model(model_path: Path, out: Path, frozen: list[str]) -> None:
    tensors = load_file(str(model_path.with_suffix(".safetensors")))
    kept = {
        name: (value.to(torch.bfloat16) if value.is_floating_point() else value)
        for name, value in tensors.items()
        if name.split(".", 1)[0] not in frozen
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(out.with_suffix(".safetensors")))
    card = json.loads(model_path.with_suffix(".json").read_text())
    card["wip_packed"] = {"frozen": frozen, "dtype": "bfloat16", "sha256_of_the_packed_model": card.pop("sha256", None)}
    out.with_suffix(".json").write_text(json.dumps(card, indent=1))
    print(
        f"packed {model_path} -> {out}.safetensors ({out.with_suffix('.safetensors').stat().st_size / 2**20:.1f} MiB)"
    )


def unpack_model(packed: Path, out: Path, init: Path) -> None:
    card = json.loads(packed.with_suffix(".json").read_text())
    model = load_model(init)
    # an --init without a chain (the operator the chain was trained on, e.g. models/aerial.safetensors) takes the
    # packed chain's own settings; an --init with another chain is refused below
    model.adopt_chain(card.get("diffusion") or {}, (card.get("sampler") or {}).get("variance_correction", 1.0))
    tensors = {
        k: v.float() if v.dtype == torch.bfloat16 else v
        for k, v in load_file(str(packed.with_suffix(".safetensors"))).items()
    }
    missing = set(tensors) - set(model.state_dict())
    if missing:
        raise SystemExit(f"{packed}: parts the --init model lacks: {sorted(missing)[:3]}")
    model.load_state_dict(tensors, strict=False)
    made = json.loads(json.dumps(describe(model, model_id=str(card.get("id")))))  # as its card would hold it
    for key in ("diffusion", "sampler"):  # the chain's settings come from --init: they must be the packed model's
        if made.get(key) != card.get(key):
            raise SystemExit(f"{packed}: --init {init} has another {key} ({made.get(key)} vs {card.get(key)})")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, out, training=card.get("training"), metrics=card.get("metrics"), model_id=card.get("id"))
    print(f"unpacked {packed} -> {out}.safetensors ({len(tensors)} tensors from the pack, the rest from {init})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("state", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--frozen", action="append", default=[], help="a top-level part the stage froze (operator)")
    u = sub.add_parser("unpack")
    u.add_argument("packed", type=Path)
    u.add_argument("state", type=Path)
    u.add_argument("--init", type=Path, required=True)
    pm = sub.add_parser("pack-model")
    pm.add_argument("model", type=Path, help="model path (with or without .safetensors)")
    pm.add_argument("out", type=Path)
    pm.add_argument("--frozen", action="append", default=[], help="a top-level part the stage froze (operator)")
    um = sub.add_parser("unpack-model")
    um.add_argument("packed", type=Path)
    um.add_argument("out", type=Path, help="output path without suffix")
    um.add_argument("--init", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.state, args.out, args.frozen)
    elif args.command == "unpack":
        unpack(args.packed, args.state, args.init)
    elif args.command == "pack-model":
        pack_model(args.model, args.out, args.frozen)
    else:
        unpack_model(args.packed, args.out, args.init)


if __name__ == "__main__":
    main()
