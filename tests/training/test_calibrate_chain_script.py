"""bench/calibrate_chain.py end to end on a tiny chain: the chosen v0 and where it was calibrated travel with the card;
a device this machine lacks is one clear line and no card; on CUDA the same candidates score as on the CPU (the
draws' noise comes from CPU generators either way)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rssr_cli.model.checkpoint import save_model

from model_helpers import tiny_chain

ROOT = Path(__file__).resolve().parents[2]


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(5)
    val = tmp_path / "val"
    val.mkdir()
    for i in range(2):
        small = (rng.random((8, 8, 3)) * 255).astype("uint8")
        Image.fromarray(small).resize((32, 32), Image.BICUBIC).save(val / f"img{i}.png")
    return save_model(tiny_chain(), tmp_path / "chain"), val


def _calibrate(model: Path, val: Path, out: Path, device: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "calibrate_chain.py"), str(model), "--val", str(val), "--val-limit",
         "2", "--grid", "0.5,2", "--device", device, "-o", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip


def test_the_chosen_v0_and_the_device_travel_with_the_card(tmp_path):
    model, val = _setup(tmp_path)
    done = _calibrate(model, val, tmp_path / "calibrated", "cpu")
    assert done.returncode == 0, done.stderr
    card = json.loads((tmp_path / "calibrated.json").read_text())
    record = card["training"]["calibration"]
    assert record["device"] == "cpu"
    assert [c["variance_correction"] for c in record["candidates"]] == [0.5, 2.0]
    assert card["sampler"]["variance_correction"] == record["chosen"]["variance_correction"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_one_line_and_no_card(tmp_path):
    model, val = _setup(tmp_path)
    done = _calibrate(model, val, tmp_path / "calibrated", "cuda")
    assert done.returncode == 2
    assert "CUDA is not available" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("calibrated*"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_candidates_score_as_on_the_cpu(tmp_path):
    model, val = _setup(tmp_path)
    figures = {}
    for device in ("cpu", "cuda"):
        done = _calibrate(model, val, tmp_path / device, device)
        assert done.returncode == 0, done.stderr
        record = json.loads((tmp_path / f"{device}.json").read_text())["training"]["calibration"]
        assert record["device"] == device
        figures[device] = [(c["score"], c["spread_ratio"]) for c in record["candidates"]]
    np.testing.assert_allclose(figures["cuda"], figures["cpu"], rtol=0.02, atol=0.005)
