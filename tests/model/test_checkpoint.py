"""Checkpoint format: safetensors + JSON card, bit-exact round trip, one clear CheckpointError per broken case."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from rssr_cli.core.errors import CheckpointError
from rssr_cli.model.checkpoint import FORMAT, build, check_bands, load_model, save_model, sha256_file
from rssr_cli.model.registry import registered

from model_helpers import hr_grid, tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture()
def saved(tmp_path, model):
    path = save_model(model, tmp_path / "model.safetensors", training={"steps": 3}, metrics={"psnr_x4": 30.0})
    return path, path.with_suffix(".json")


def _sample(m):
    lr = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    ys, xs, cell = hr_grid(9, 7, 3.5, batch=2)
    with torch.no_grad():
        gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
        return m.sample(lr, ys, xs, cell, steps=3, strength=0.4, generator=gens)


def test_round_trip_bit_exact(model, saved):
    weights, card_path = saved
    loaded = load_model(weights)
    assert torch.equal(_sample(model), _sample(loaded))
    card = json.loads(card_path.read_text())
    assert card["format"] == FORMAT and card["sha256"] == sha256_file(weights)
    assert card["channels"] == 1 and card["band_rule"].startswith("independent")
    assert set(card["spec"]) == {"operator", "prior_features", "denoiser"}
    assert card["diffusion"]["schedule"]["name"] == "linear" and card["sampler"]["steps"] == 4
    assert card["training"] == {"steps": 3} and card["metrics"] == {"psnr_x4": 30.0}
    assert loaded.card["id"] == "model"


def test_weights_file_runs_alone(model, saved):
    """The spec is in the safetensors metadata: without its card the file still loads (and is not pickle)."""
    weights, card_path = saved
    card_path.unlink()
    assert torch.equal(_sample(model), _sample(load_model(weights)))
    header_len = struct.unpack("<Q", weights.read_bytes()[:8])[0]
    header = json.loads(weights.read_bytes()[8 : 8 + header_len])
    assert json.loads(header["__metadata__"]["rssr"])["format"] == FORMAT


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nothing.safetensors")


def test_truncated_file(saved):
    weights, card_path = saved
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(weights)
    card_path.unlink()  # without a card, the safetensors parser catches it
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(weights)


def test_corrupted_bytes(saved):
    weights, _ = saved
    data = bytearray(weights.read_bytes())
    data[-50] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its card"):
        load_model(weights)


def test_garbage_header_without_card(saved):
    weights, card_path = saved
    card_path.unlink()
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(weights)


def test_card_edited_to_different_shapes(saved):
    weights, card_path = saved
    card = json.loads(card_path.read_text())
    card["spec"]["denoiser"]["args"]["base"] = 16
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="weights do not match the model card"):
        load_model(weights)


def test_card_edited_schedule_disagrees_with_weights(saved):
    weights, card_path = saved
    card = json.loads(card_path.read_text())
    card["diffusion"]["schedule"]["args"]["steps"] = 1000
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="disagree on 'diffusion'"):
        load_model(weights)


def test_unknown_spec_name(saved):
    weights, card_path = saved
    card = json.loads(card_path.read_text())
    card["spec"]["denoiser"]["name"] = "transformer9000"
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="unknown model part 'transformer9000'; registered: .*sr3_unet"):
        load_model(weights)


def test_card_not_json(saved):
    weights, card_path = saved
    card_path.write_text("{oops")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_model(weights)


def test_band_mismatch(tmp_path):
    joint = tiny_model(operator={"in_channels": 3})
    loaded = load_model(save_model(joint, tmp_path / "rgb.safetensors"))
    check_bands(loaded, 3)
    with pytest.raises(CheckpointError, match="takes 3 bands together; the input has 4"):
        check_bands(loaded, 4)
    for n in (1, 3, 4, 13):
        check_bands(tiny_model(), n)  # single-band model: any count, band by band


def test_registry_build():
    assert {"neurop_operator", "prior_pyramid", "sr3_unet"} <= set(registered())
    assert build({"name": "prior_pyramid", "args": {"widths": [4, 8]}}, in_channels=3).widths == (4, 8)
    with pytest.raises(CheckpointError, match="registered:"):
        build({"name": "nope", "args": {}})
    with pytest.raises(CheckpointError, match="cannot build"):
        build({"name": "prior_pyramid", "args": {"wdiths": [4]}}, in_channels=3)


def test_one_default_sampler_and_it_is_the_shipped_models(saved):
    """DEFAULT_SAMPLER is read by the default spec, the card loader and the spec validation alike, and equals
    the sampler the shipped model's card measured best."""
    from pathlib import Path

    from rssr_cli.model.samplers import DEFAULT_SAMPLER
    from rssr_cli.model.sr_model import DEFAULT_SPEC

    card = json.loads((Path(__file__).resolve().parents[2] / "models" / "aerial.json").read_text())
    assert DEFAULT_SPEC["sampler"] == DEFAULT_SAMPLER == card["sampler"]
    weights, card_path = saved
    doc = json.loads(card_path.read_text())
    del doc["sampler"]  # a card that names no sampler gets the default
    card_path.write_text(json.dumps(doc))
    assert load_model(weights).sampler_defaults == DEFAULT_SAMPLER
