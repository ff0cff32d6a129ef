"""torch loads only where a model runs (the diffusion backend, the guided sharpener, training, evaluation): importing
the pipeline, I/O and geometry, describing a raster (`rssr info`'s library call) and a classical upscale of a plain
raster or a Sentinel-2 product never import it, nor do the same through the command line (`rssr --help`, `rssr info`,
`rssr upscale -m bicubic`) (issue 22). Checked in a fresh interpreter: this one has torch loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import s2_products as sp

LIBRARY = """
import sys

import rssr_cli.geo
import rssr_cli.io
import rssr_cli.pipeline
import rssr_cli.pipeline.api
import rssr_cli.pipeline.distributed
import rssr_cli.pipeline.info
from rssr_cli import RunRequest, UpscaleSettings, run, upscale
from rssr_cli.pipeline.info import describe_raster
"""


def torch_loaded(code: str, *args: str) -> bool:
    """Whether `code` (run in a fresh interpreter with `args` as sys.argv[1:]) ends with torch imported."""
    script = textwrap.dedent(code) + "\nprint('torch' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def test_importing_the_library_does_not_load_torch():
    assert not torch_loaded(LIBRARY)


def test_a_classical_upscale_and_a_description_do_not_load_torch(src_tif: Path, tmp_path: Path):
    describe = "describe_raster(sys.argv[1], scale=2)"
    run = 'upscale(sys.argv[1], sys.argv[2], UpscaleSettings(scale=2, method="bicubic"))'
    code = f"{LIBRARY}\n{describe}\n{run}\n"
    assert not torch_loaded(code, str(src_tif), str(tmp_path / "out.tif"))
    assert (tmp_path / "out.tif").is_file()


def test_a_classical_upscale_of_a_product_does_not_load_torch(tmp_path: Path):
    """A band stack with the 10 m guides and coarse bands: bicubic guides nothing, so the sharpener never loads."""
    product = sp.make_l1c(tmp_path / "s2")
    run = 'upscale(sys.argv[1], sys.argv[2], UpscaleSettings(scale=2, method="bicubic", bands=("B04", "B11")))'
    code = f"{LIBRARY}\n{run}\n"
    assert not torch_loaded(code, str(product), str(tmp_path / "out.tif"))
    assert (tmp_path / "out.tif").is_file()


CLI = """
import sys

from rssr_cli.cli import main

sys.argv = ["rssr", *sys.argv[1:]]
try:
    main()
except SystemExit as end:
    assert not end.code, end.code
"""


def test_the_command_line_does_not_load_torch():
    """Typer reads every command's signature at start: their defaults live in torch-free modules, and the commands
    that run a model import it in their body (`rssr evaluate --wald`, `rssr train`)."""
    assert not torch_loaded("import sys\nimport rssr_cli.cli")
    assert not torch_loaded(CLI, "--help")
    assert not torch_loaded(CLI, "evaluate", "--help")


def test_rssr_info_and_a_bicubic_upscale_do_not_load_torch(src_tif: Path, tmp_path: Path):
    assert not torch_loaded(CLI, "info", str(src_tif), "--scale", "2")
    assert not torch_loaded(CLI, "upscale", "-m", "bicubic", "-s", "2", str(src_tif), "-o", str(tmp_path / "out.tif"))
    assert (tmp_path / "out.tif").is_file()


def test_rssr_info_and_a_bicubic_upscale_of_a_product_do_not_load_torch(tmp_path: Path):
    product = sp.make_l1c(tmp_path / "s2")
    out = tmp_path / "out.tif"
    assert not torch_loaded(CLI, "info", str(product), "--bands", "B04,B11")
    assert not torch_loaded(
        CLI, "upscale", "-m", "bicubic", "-s", "2", "--bands", "B04,B11", str(product), "-o", str(out)
    )
    assert out.is_file()
