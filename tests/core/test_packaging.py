"""The default model travels with the package, and without a model there is an error, never a silent fallback."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

import rssr_cli
from rssr_cli import backends
from rssr_cli.core.errors import CheckpointError
from rssr_cli.pipeline import upscale

from cli_helpers import one_error_line, run
from conftest import synthetic_image, write_raster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_model_anywhere(monkeypatch, tmp_path):
    """No RSSR_MODEL, and no shipped model (an empty models folder)."""
    monkeypatch.delenv("RSSR_MODEL", raising=False)
    (tmp_path / "no_models").mkdir()
    monkeypatch.setenv("RSSR_MODELS_DIR", str(tmp_path / "no_models"))


def test_without_a_model_the_default_method_is_an_error_not_bicubic(no_model_anywhere, src_tif, tmp_path):
    with pytest.raises(CheckpointError, match="--method bicubic"):
        upscale(src_tif, tmp_path / "api.tif", scale=2)
    result = run("upscale", src_tif, "-o", tmp_path / "out.tif", "-s", "2")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "--model" in line and "RSSR_MODEL" in line and "--method bicubic" in line
    assert not (tmp_path / "out.tif").exists()
    # batch mode: refused before any scene, output names use the method that was asked for (diffusion)
    result = run("upscale", src_tif, "-o", f"{tmp_path / 'batch'}/", "-s", "2")  # the slash: a Path would drop it
    assert result.exit_code == 1 and "--method bicubic" in one_error_line(result)
    assert not list((tmp_path / "batch").glob("*.tif"))
    # info --model names the same ways out
    result = run("info", "--model")
    assert result.exit_code == 1 and "RSSR_MODEL" in one_error_line(result)
    # a classical method still runs
    assert run("upscale", src_tif, "-o", tmp_path / "b.tif", "-s", "2", "-m", "bicubic", "-q").exit_code == 0


def test_a_missing_rssr_model_file_is_named(monkeypatch, src_tif, tmp_path):
    monkeypatch.setenv("RSSR_MODEL", str(tmp_path / "gone.safetensors"))
    result = run("upscale", src_tif, "-o", tmp_path / "out.tif", "-s", "2")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "gone.safetensors" in line and "--method bicubic" in line


def test_an_editable_install_finds_the_repository_model(monkeypatch):
    monkeypatch.delenv("RSSR_MODEL", raising=False)
    assert backends.default_model_path() == REPO / "models" / "aerial.safetensors"


def _copy_project(dest: Path) -> Path:
    """The files a build needs, copied so the build never writes build/ or *.egg-info into the checkout."""
    dest.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "rssr_cli", dest / "rssr_cli", ignore=ignore)
    shutil.copytree(REPO / "models", dest / "models", ignore=ignore)
    return dest


@pytest.mark.slow
@pytest.mark.shipped_model  # it packs the shipped models into a wheel and runs the default one
def test_an_installed_wheel_carries_the_default_model_and_uses_it(tmp_path):
    """Build the wheel, install it (no editable link to the checkout) into a fresh venv, run from elsewhere."""
    project = _copy_project(tmp_path / "project")
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", str(project), "-w", str(dist)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("rssr-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # typed (PEP 561) and licensed
        names = archive.namelist()
    assert {
        "rssr_cli/models/aerial.safetensors",
        "rssr_cli/models/aerial.json",
        "rssr_cli/models/sharpen.safetensors",
    } <= set(names)
    assert "rssr_cli/py.typed" in names and any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # Dependencies (torch, rasterio, ...) come from this environment's site-packages through a .pth file:
    # only plain paths, so the checkout's editable-install hook (itself a .pth there) is not run.
    venv_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (venv_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_raster(elsewhere / "in.tif", synthetic_image(1, 32, 32, "uint16"))
    env = {k: v for k, v in os.environ.items() if k not in ("RSSR_MODEL", "RSSR_MODELS_DIR", "PYTHONPATH")}
    located = subprocess.run(
        [str(python), "-c", "import rssr_cli.backends as b; print(b.__file__); print(b.default_model_path())"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in located), located  # the installed copy, not the checkout
    assert located[1].endswith("rssr_cli/models/aerial.safetensors")

    result = subprocess.run(
        [str(venv / "bin" / "rssr"), "upscale", "in.tif", "-s", "2", "-o", "out.tif", "-q", "--device", "cpu"],
        cwd=elsewhere,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with rasterio.open(elsewhere / "out.tif") as out:
        tags = out.tags()
        assert out.shape == (64, 64) and np.ptp(out.read()) > 0
    card = json.loads((REPO / "models" / f"{tags['RSSR_MODEL_NAME']}.json").read_text())  # the model the rule picked
    assert tags["RSSR_MODEL_CHOICE"].startswith("rule: ")
    assert tags["RSSR_METHOD"] == ("diffusion" if card["sampler"]["steps"] else "diffusion-prior")  # the card's default
    assert tags["RSSR_MODEL_SHA256"] == card["sha256"] and tags["RSSR_STEPS"] == str(card["sampler"]["steps"])


def test_without_torch_the_diffusion_method_says_what_is_missing(monkeypatch):
    from rssr_cli.core.errors import UsageError

    monkeypatch.delitem(backends._FACTORIES, "diffusion")
    with pytest.raises(UsageError, match="needs torch.*--method bicubic"):
        backends.get_backend("diffusion")


def test_one_version_string():
    """pyproject.toml carries no version of its own: it reads rssr_cli.__version__ (issue 22), so the installed
    metadata, `rssr --version` and the provenance tags cannot disagree."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rssr_cli.core.version.__version__"}
    assert importlib.metadata.version("rssr") == rssr_cli.__version__
