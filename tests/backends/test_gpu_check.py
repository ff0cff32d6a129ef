"""bench/gpu_check.sh runs end to end on the CPU (tiny model, tiny data), so it is known to work before a GPU is seen."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _images(folder: Path, n: int, seed: int, size: int = 48) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "class").mkdir(parents=True)
    for i in range(n):
        small = (rng.random((8, 8, 3)) * 255).astype("uint8")
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / "class" / f"img{i}.png")
    return folder


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    data, val, out = _images(tmp_path / "train", 3, 0), _images(tmp_path / "val", 2, 1), tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "TRAIN_DIR": str(tmp_path / "run")}
    cmd = [
        "bash",
        "bench/gpu_check.sh",
        "--device",
        "cpu",
        "--tiny",
        "--data",
        str(data),
        "--val",
        str(val),
        "--out",
        str(out),
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["eval_new.json", "log.txt", "model.json", "model.safetensors", "throughput.json", "train_log.csv"]
    log = (out / "log.txt").read_text()
    assert (
        re.search(r"\b[1-9]\d* passed", log) and " failed" not in log
    )  # the gpu-marked tests ran (on the CPU) and passed
    throughput = json.loads((out / "throughput.json").read_text())
    assert throughput["device"] == "cpu" and len(throughput["rows"]) == 2 and throughput["date"]
    assert all(r["mpix_s"] > 0 for r in throughput["rows"])
    evaluation = json.loads((out / "eval_new.json").read_text())
    assert evaluation["meta"]["images"] == 2 and evaluation["detail"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_chain_continues_a_chain_and_selects_by_the_proper_score_on_the_cpu(tmp_path):
    data, val = _images(tmp_path / "train", 3, 0, 160), _images(tmp_path / "val", 2, 1, 160)  # HR crops to 128² at x8
    prior = tmp_path / "prior"
    made = subprocess.run(
        [sys.executable, "-m", "rssr_cli", "train", str(data), "-o", str(prior), "--preset", "tiny", "--stage", "prior"]
        + ["--prior-steps", "2", "--batch-size", "2", "--threads", "1", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    out = tmp_path / "chain"
    cmd = ["bash", "bench/gpu_chain.sh", str(prior / "model.safetensors"), str(val), str(out), str(data)]
    cmd += ["--device", "cpu", "--steps", "2", "--batch-size", "2", "--data-workers", "2"]
    result = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    card = json.loads((out / "model.json").read_text())
    assert card["diffusion"]["process"] == "resshift" and card["diffusion"]["chain_steps"] == 8
    assert card["id"] == "rssr-aerial-resshift-gpu" and "--keep best" in card["training"]["command"]
    log = (out / "denoiser" / "log.csv").read_text().splitlines()
    assert len(log) == 3 and all("score=" in row for row in log[1:])  # validated at every step (--steps 2: every 1)
