"""Security: nothing an attacker plants beside an output is followed, hostile model cards are refused before
anything is built, the JSON log never lands on an input or output, AOI and input files cannot hang or exhaust."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.io.destination import staging_prefix
from rssr_cli.pipeline import UpscaleSettings
from rssr_cli.pipeline.jobs import SceneJob
from rssr_cli.pipeline.locks import lock_path
from rssr_cli.pipeline.scenes import run_batch

from conftest import synthetic_image, write_raster

runner = CliRunner()
BICUBIC = UpscaleSettings(scale=2, method="bicubic", tile=16, overlap=4)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture
def scene(tmp_path) -> Path:
    return write_raster(tmp_path / "scene.tif", synthetic_image(1, 24, 20, "uint8"))


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir()
    path.write_text("precious\n")
    return path


def test_a_symlinked_lock_file_is_never_followed(scene, victim, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "scene_x2.tif"
    lock_path(dst).symlink_to(victim)
    result = run("upscale", scene, "-o", dst, "-s", "2", "-m", "bicubic")
    assert result.exit_code == 1 and "symbolic link" in one_line(result.stderr)
    assert victim.read_text() == "precious\n" and not dst.exists()
    [scene_result] = run_batch([SceneJob(scene, dst)], BICUBIC)  # batch mode: that scene fails, the victim stays
    assert scene_result.status == "failed" and "symbolic link" in scene_result.error
    assert victim.read_text() == "precious\n" and lock_path(dst).is_symlink()


def test_a_hard_linked_or_foreign_lock_file_is_refused(scene, victim, tmp_path):
    dst = tmp_path / "scene_x2.tif"
    os.link(victim, lock_path(dst))
    result = run("upscale", scene, "-o", dst, "-s", "2", "-m", "bicubic")
    assert result.exit_code == 1 and "hard-linked" in one_line(result.stderr)
    assert victim.read_text() == "precious\n"


def test_a_symlinked_staging_folder_is_neither_followed_nor_emptied(scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "scene_x2.tif"
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    (victim_dir / "keep.txt").write_text("keep")
    planted = out / (staging_prefix(dst) + "evil")
    planted.symlink_to(victim_dir, target_is_directory=True)
    result = run("upscale", scene, "-o", out, "-s", "2", "-m", "bicubic", "-q")  # batch: sweeps stale staging
    assert result.exit_code == 0, result.stderr
    assert (victim_dir / "keep.txt").read_text() == "keep" and dst.exists()


def test_model_files_are_written_through_a_private_directory(victim, tmp_path):
    from rssr_cli.model.checkpoint import save_model
    from rssr_cli.model.sr_model import TINY_SPEC, build_sr_model

    target = tmp_path / "model.safetensors"
    (tmp_path / ".model.safetensors.tmp").symlink_to(victim)  # the temporary name the old code used
    (tmp_path / ".model.json.tmp").symlink_to(victim)
    save_model(build_sr_model(TINY_SPEC), target)
    assert victim.read_text() == "precious\n" and target.is_file() and target.with_suffix(".json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == [
        "home",
        "model.json",
        "model.safetensors",
    ]


# ---- item 2: a model card is checked, from the safetensors header, before anything is built ------------------


@pytest.fixture
def saved_model(tmp_path):
    from rssr_cli.model.checkpoint import save_model

    from model_helpers import tiny_model

    weights = save_model(tiny_model(), tmp_path / "model.safetensors")
    return weights, weights.with_suffix(".json")


def edit_card(card_path: Path, part: str, **args) -> None:
    import json

    card = json.loads(card_path.read_text())
    target = card["spec"][part]["args"] if part in card["spec"] else card[part]
    target.update(args)
    card_path.write_text(json.dumps(card))


@pytest.fixture
def no_real_build(monkeypatch):
    """Fail the test if load_model builds a real (allocated) model."""
    from rssr_cli.model import checkpoint

    def refuse(*_, **__):
        raise AssertionError("load_model built the model before refusing the card")

    monkeypatch.setattr(checkpoint, "SRModel", refuse)


@pytest.mark.parametrize(
    "part, args, fragment",
    [
        ("operator", {"enc_width": 2000}, "parameters|do not match"),  # 2.2 GB RSS on the old code
        ("operator", {"enc_width": 1_000_000}, "enc_width must be an integer in 1..4096"),
        ("operator", {"heads": 0}, "heads must be an integer"),
        ("operator", {"heads": 3}, "width 8 must be divisible by operator.heads 3"),
        ("operator", {"width": "48"}, "width must be an integer"),
        ("operator", {"enc_blocks": 2.5}, "enc_blocks must be an integer"),
        ("operator", {"in_channels": True}, "in_channels must be an integer"),
        ("prior_features", {"widths": "abc"}, "widths must be a list"),
        ("denoiser", {"base": 7}, "base must be even"),
        ("denoiser", {"mults": [1, 2, 4]}, "one prior_features width per denoiser level"),
        ("denoiser", {"blocks": -1}, "blocks must be an integer"),
        ("operator", {"typo_arg": 1}, "unknown argument 'typo_arg'"),
    ],
)
def test_a_hostile_card_is_one_checkpoint_error_before_any_model_is_built(
    saved_model, no_real_build, part, args, fragment
):
    from rssr_cli.core.errors import CheckpointError
    from rssr_cli.model.checkpoint import load_model

    weights, card_path = saved_model
    edit_card(card_path, part, **args)
    with pytest.raises(CheckpointError, match=fragment):
        load_model(weights)


def test_a_bad_schedule_or_sampler_is_refused(saved_model, no_real_build):
    import json

    from rssr_cli.core.errors import CheckpointError
    from rssr_cli.model.checkpoint import load_model

    weights, card_path = saved_model
    original = card_path.read_text()
    for section, change, fragment in (
        (
            "diffusion",
            {"schedule": {"name": "linear", "args": {"steps": 10**9}}},
            "steps must be an integer in 1..100000",
        ),
        ("diffusion", {"schedule": {"name": "linear", "args": {"start": 0.5, "end": 0.1}}}, "start <= end"),
        ("diffusion", {"prediction": "noise"}, "prediction must be one of"),
        ("sampler", {"strength": 0}, "strength must be a number"),
    ):
        card = json.loads(original)
        card[section].update(change)
        card_path.write_text(json.dumps(card))
        with pytest.raises(CheckpointError, match=fragment):
            load_model(weights)


def rewrite_header(weights: Path, edit) -> None:
    """Change the safetensors JSON header (no card: the embedded description is what loads)."""
    import json
    import struct

    data = weights.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    edit(header)
    text = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length :])


def test_header_shapes_that_lie_about_sizes_are_refused_before_reading_tensors(saved_model, no_real_build):
    from rssr_cli.core.errors import CheckpointError
    from rssr_cli.model.checkpoint import load_model

    weights, card_path = saved_model
    card_path.unlink()

    def lie(header):
        name = next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 4)
        header[name]["shape"] = [100_000, 100_000, 3, 3]

    rewrite_header(weights, lie)
    with pytest.raises(CheckpointError, match="needs 360000000000 bytes"):
        load_model(weights)


def test_embedded_spec_that_does_not_match_the_tensor_shapes_is_refused(saved_model, no_real_build):
    import json

    from rssr_cli.core.errors import CheckpointError
    from rssr_cli.model.checkpoint import load_model

    weights, card_path = saved_model
    card_path.unlink()

    def wider(header):
        desc = json.loads(header["__metadata__"]["rssr"])
        desc["spec"]["operator"]["args"]["enc_width"] = 16
        header["__metadata__"]["rssr"] = json.dumps(desc)

    rewrite_header(weights, wider)
    with pytest.raises(CheckpointError, match="weights do not match the embedded spec"):
        load_model(weights)


def test_a_bad_card_is_one_line_in_upscale_batch_and_info(saved_model, scene, tmp_path):
    weights, card_path = saved_model
    edit_card(card_path, "operator", heads=0)
    out = tmp_path / "out"
    for args in (
        ("upscale", scene, "-o", tmp_path / "one.tif", "-s", "2", "--model", weights),
        ("upscale", scene, scene.parent / "*.tif", "-o", out, "-s", "2", "--model", weights),
        ("info", "--model", weights),
    ):
        result = run(*args)
        assert result.exit_code == 1 and "heads must be an integer" in one_line(result.stderr), args
    assert not (tmp_path / "one.tif").exists() and not any(out.glob("*.tif"))


# ---- item 3: the JSON log is never an input, an output or a file in the staging area --------------------------


def test_the_json_log_may_not_be_the_input_or_the_output(scene, tmp_path):
    original = scene.read_bytes()
    dst = tmp_path / "out.tif"
    for log in (scene, dst):
        result = run("upscale", scene, "-o", dst, "-s", "2", "-m", "bicubic", "--log-json", log)
        assert result.exit_code == 2 and "--log-json" in one_line(result.stderr)
        assert scene.read_bytes() == original and not dst.exists()
    alias = tmp_path / "alias.tif"
    os.link(scene, alias)  # the same file under another name is still the input
    result = run("upscale", scene, "-o", dst, "-s", "2", "-m", "bicubic", "--log-json", alias)
    assert result.exit_code == 2 and scene.read_bytes() == original


def test_the_json_log_may_not_be_an_input_output_or_staging_file_of_a_batch(scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    original = scene.read_bytes()
    for log in (scene, out / "scene_x2.tif", out / ".scene_x2.tif.lock", out / ".scene_x2.tif.rssr-abc" / "log.jsonl"):
        result = run("upscale", scene.parent / "*.tif", "-o", out, "-s", "2", "-m", "bicubic", "--log-json", log)
        assert result.exit_code == 2 and "--log-json" in one_line(result.stderr), log
        assert scene.read_bytes() == original and sorted(p.name for p in out.iterdir()) == []
    result = run(
        "upscale", scene.parent / "*.tif", "-o", out, "-s", "2", "-m", "bicubic", "-q", "--log-json", out / "log.jsonl"
    )
    assert result.exit_code == 0 and (out / "log.jsonl").read_text().count("\n") == 1  # beside the outputs is fine


def test_a_symlinked_json_log_is_refused(scene, victim, tmp_path):
    log = tmp_path / "log.jsonl"
    log.symlink_to(victim)
    result = run("upscale", scene, "-o", tmp_path / "o.tif", "-s", "2", "-m", "bicubic", "--log-json", log)
    assert result.exit_code == 2 and "symbolic link" in one_line(result.stderr)
    assert victim.read_text() == "precious\n" and not (tmp_path / "o.tif").exists()


# ---- item 4: AOI files and inputs that are devices, FIFOs or huge ---------------------------------------------


def run_cli(*args, timeout=30):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "rssr_cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "fifo"])
def test_an_aoi_that_is_not_a_regular_file_is_refused_at_once(scene, tmp_path, device):
    if device == "fifo":
        device = tmp_path / "aoi.fifo"
        os.mkfifo(device)
    result = run_cli(
        "upscale", scene, "-o", tmp_path / "o.tif", "-s", "2", "-m", "bicubic", "--aoi", device, timeout=30
    )
    assert result.returncode == 2 and "not a regular file" in one_line(result.stderr)
    assert not (tmp_path / "o.tif").exists()


def test_an_aoi_file_over_100_mb_is_refused(scene, tmp_path):
    big = tmp_path / "big.geojson"
    with open(big, "wb") as f:
        f.truncate(101 * 10**6)  # sparse: no disk used
    result = run("upscale", scene, "-o", tmp_path / "o.tif", "-s", "2", "-m", "bicubic", "--aoi", big)
    assert result.exit_code == 2 and "at most 100 MB" in one_line(result.stderr)


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_an_input_that_is_a_fifo_or_a_device_is_refused(tmp_path):
    fifo = tmp_path / "scene.tif"
    os.mkfifo(fifo)
    for source in (fifo, "/dev/zero"):
        result = run_cli("upscale", source, "-o", tmp_path / "o.tif", "-s", "2", "-m", "bicubic", timeout=30)
        assert result.returncode == 1 and "not a regular file" in one_line(result.stderr)
        result = run_cli("upscale", source, "-o", f"{tmp_path / 'out'}/", "-s", "2", "-m", "bicubic", timeout=30)
        assert result.returncode == 1 and "not a regular file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.tif").exists() and not list((tmp_path / "out").glob("*.tif"))


# ---- issue 23 item 2: signed URLs' credentials never leave the process (JSON log, info --json, output tags) -----------

SECRETS = ("hunter2", "SEKRET")


def signed(url: str) -> str:
    """`url` with a user:password and the query parameters of an S3/GCS/Azure signed URL."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://bob:hunter2@{rest}?X-Amz-Signature=SEKRET1&X-Amz-Credential=SEKRET2&X-Amz-Security-Token=SEKRET3&sig=SEKRET4&token=SEKRET5"


def test_the_redaction_rule():
    from rssr_cli.core.messages import redact, user_text

    assert redact(signed("https://h/x.tif")) == (
        "https://***@h/x.tif?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Security-Token=***&sig=***&token=***"
    )
    assert redact("cannot read s3://b/k?key=abc: 403") == "cannot read s3://b/k?key=***: 403"
    assert redact("https://h/x.tif?se=2030&sp=r") == "https://h/x.tif?se=2030&sp=r"  # not secrets: kept
    assert user_text("a\x1b[2J\nb\u202e") == "a\\x1b[2J\\nb\\u202e"


def test_signed_urls_are_redacted_in_the_json_log_info_json_and_the_output_tags(tmp_path):
    import json

    import rasterio

    import s2_products as sp
    from http_range_server import serve_directory

    www = tmp_path / "www"
    www.mkdir()
    write_raster(www / "src.tif", synthetic_image(1, 24, 20, "uint8"))
    sp._write_band(sp.band_path("B04"), www / "B04.tif")
    with serve_directory(www, tmp_path / "requests.jsonl") as server:
        url = signed(server.url("src.tif"))
        log = tmp_path / "log.jsonl"
        result = run("upscale", url, "-o", tmp_path / "out.tif", "-s", "2", "-m", "bicubic", "--log-json", log, "-q")
        assert result.exit_code == 0, result.output
        [line] = log.read_text().splitlines()
        assert json.loads(line)["input"].startswith("http://***@127.0.0.1")
        result = run("info", url, "--json")
        assert result.exit_code == 0 and "http://***@127.0.0.1" in json.loads(result.stdout)["path"]
        result = run("info", url)
        assert result.exit_code == 0 and "http://***@" in result.stdout
        outputs = [log.read_text(), result.stdout, run("info", url, "--json").stdout]
        # a local STAC item whose asset hrefs are signed URLs (as Planetary Computer signs them)
        item = tmp_path / "item.json"
        asset = {"href": signed(server.url("B04.tif")), "type": "image/tiff", "eo:bands": [{"name": "red"}]}
        item.write_text(
            json.dumps({"type": "Feature", "id": "x", "properties": {}, "geometry": None, "assets": {"red": asset}})
        )
        result = run("upscale", item, "-b", "red", "-o", tmp_path / "stack.tif", "-s", "2", "-m", "bicubic", "-q")
        assert result.exit_code == 0, result.output
        with rasterio.open(tmp_path / "stack.tif") as out:
            tags = out.tags(1)
            outputs += [json.dumps(out.tags()), json.dumps(tags)]
        assert tags["RSSR_SOURCE"].startswith("http://***@127.0.0.1")
    for text in outputs:
        assert not any(secret in text for secret in SECRETS), text


def test_network_reads_have_timeouts_by_default_and_the_environment_wins(monkeypatch):
    """Issue 23 item 14: GDAL waits forever on a hung URL by default; rssr sets timeouts unless the user set them."""
    from rssr_cli.io.raster_io import GDAL_HTTP_TIMEOUTS, gdal_config

    for key in GDAL_HTTP_TIMEOUTS:
        monkeypatch.delenv(key, raising=False)
    config = gdal_config()
    assert int(config["GDAL_HTTP_TIMEOUT"]) > 0 and int(config["GDAL_HTTP_CONNECTTIMEOUT"]) > 0
    assert int(config["GDAL_HTTP_LOW_SPEED_TIME"]) > 0
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "600")
    assert "GDAL_HTTP_TIMEOUT" not in gdal_config()  # the environment's 600 s holds (GDAL reads it itself)


@pytest.mark.slow  # a CLI subprocess per case, ~5 s (10 s on a busy box)
@pytest.mark.parametrize("command", ["info", "upscale"])
def test_a_signal_wins_while_gdal_waits_on_a_hung_url(tmp_path, command):
    """Issue 23 item 14: a server that accepts and never answers holds GDAL in a C call, where Python's handler
    cannot run; SIGTERM still ends the run within seconds: exit 143, one line, no traceback, nothing written."""
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    connected, held = threading.Event(), []

    def accept() -> None:
        try:
            held.append(server.accept()[0])
        except OSError:
            return
        connected.set()

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/scene.tif"
    args = (
        ["info", url]
        if command == "info"
        else ["upscale", url, "-o", str(tmp_path / "out" / "sr.tif"), "-s", "2", "-m", "bicubic"]
    )
    (tmp_path / "out").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("GDAL_HTTP_TIMEOUT", None)
    proc = subprocess.Popen([sys.executable, "-m", "rssr_cli", *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert connected.wait(60), "rssr never connected"
        time.sleep(1)  # GDAL is now waiting for the response
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
        for conn in held:
            conn.close()
    assert proc.stderr is not None
    said = proc.stderr.read()
    assert proc.returncode == 143 and elapsed < 5, (proc.returncode, elapsed, said)
    assert said.strip().splitlines()[-1].startswith("error: interrupted by SIGTERM") and "Traceback" not in said
    assert list((tmp_path / "out").iterdir()) == []
