"""bench/wip_state.py pack-model / unpack-model: a model trained elsewhere (a GPU machine) committed as its trained parts
in bf16, rebuilt with the frozen parts of --init."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rssr_cli.model.checkpoint import load_model, save_model
from rssr_cli.model.sr_model import TINY_SPEC, build_sr_model

ROOT = Path(__file__).resolve().parents[2]


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/wip_state.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # ~9 s: four script runs (> 5 s, issue 22); `make test-fast` leaves it out
def test_pack_model_keeps_the_trained_parts_in_bf16_and_unpack_model_rebuilds_a_loadable_model(tmp_path):
    torch.manual_seed(0)
    init = build_sr_model(TINY_SPEC)
    init.set_resshift(chain_steps=4, kappa=1.0, residual_scale=2.0)
    save_model(init, tmp_path / "init")
    trained = build_sr_model(TINY_SPEC)
    trained.set_resshift(chain_steps=4, kappa=1.0, residual_scale=2.0)
    trained.operator.load_state_dict(init.operator.state_dict())  # the stage froze the operator
    save_model(trained, tmp_path / "trained", training={"command": "rssr train …"}, model_id="chain-gpu")
    packed = _script(
        "pack-model", str(tmp_path / "trained.safetensors"), str(tmp_path / "wip" / "ema"), "--frozen", "operator"
    )
    assert packed.returncode == 0, packed.stderr
    tensors = load_file(str(tmp_path / "wip" / "ema.safetensors"))
    assert tensors and not any(k.startswith("operator.") for k in tensors)
    assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.bfloat16}
    rebuilt = _script(
        "unpack-model",
        str(tmp_path / "wip" / "ema"),
        str(tmp_path / "new" / "rebuilt"),
        "--init",
        str(tmp_path / "init"),
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    model = load_model(tmp_path / "new" / "rebuilt")
    card = json.loads((tmp_path / "new" / "rebuilt.json").read_text())
    assert card["id"] == "chain-gpu" and card["training"]["command"] == "rssr train …"
    want, got = trained.state_dict(), model.state_dict()
    for name, value in want.items():
        if name.startswith("operator."):
            assert torch.equal(got[name], value)  # from --init, exact
        elif value.is_floating_point():
            assert torch.allclose(got[name], value, rtol=1e-2, atol=1e-3)  # bf16 rounding only
    first = next(k for k in want if k.startswith("denoiser."))
    assert not torch.equal(got[first], init.state_dict()[first])  # the trained parts are not --init's
    # the operator the chain was trained on, without a chain: it takes the packed chain's settings
    operator_only = build_sr_model(TINY_SPEC)
    operator_only.operator.load_state_dict(init.operator.state_dict())
    save_model(operator_only, tmp_path / "operator_only")
    again = _script(
        "unpack-model",
        str(tmp_path / "wip" / "ema"),
        str(tmp_path / "again"),
        "--init",
        str(tmp_path / "operator_only"),
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["diffusion"] == card["diffusion"]
    assert all(torch.equal(v, got[k]) for k, v in load_model(tmp_path / "again").state_dict().items())
    other = build_sr_model(TINY_SPEC)
    other.set_resshift(chain_steps=3, kappa=1.0, residual_scale=2.0)
    save_model(other, tmp_path / "other")
    wrong = _script(
        "unpack-model", str(tmp_path / "wip" / "ema"), str(tmp_path / "wrong"), "--init", str(tmp_path / "other")
    )
    assert wrong.returncode != 0 and "another diffusion" in wrong.stderr  # a chain rebuilt on another chain
    assert not list(tmp_path.glob("wrong*"))
