"""Shipped models by name, the rule that picks one per input, the tags that name it, and a batch that redoes a scene
once when the rule's pick changes. The models are tiny ones in a temporary folder (RSSR_MODELS_DIR), never the shipped
weights: `s2-10m` exists here only as a stand-in until the real one is shipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import rasterio
from affine import Affine

from rssr_cli.core.errors import CheckpointError, UsageError
from rssr_cli.model.checkpoint import save_model
from rssr_cli.model.shipped_models import is_model_name, resolve_model, shipped_models
from rssr_cli.pipeline import ModelOptions
from rssr_cli.pipeline.model_choice import model_change
from rssr_cli.pipeline.model_rule import InputFacts, choose_default_model, input_facts

from cli_helpers import one_error_line, run
from conftest import synthetic_image, write_raster
from model_helpers import tiny_model

REPO = Path(__file__).resolve().parents[2]
BOTH = ("aerial", "s2-10m")
DOMAIN = {
    "sensor": "test",
    "resolution_m": [10, 10],
    "bands": ["B04"],
    "dtypes": ["uint16"],
    "figures": "x4 +0.0 dB (tiny)",
}


def add_model(folder: Path, name: str, model_id: str, seed: int = 0) -> Path:
    """A tiny model shipped as `name` in `folder`, its card with a domain section."""
    weights = save_model(tiny_model(seed), folder / f"{name}.safetensors", model_id=model_id)
    card = json.loads(weights.with_suffix(".json").read_text())
    weights.with_suffix(".json").write_text(json.dumps({**card, "domain": {**DOMAIN, "sensor": name}}))
    return weights


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """aerial (id tiny-aerial) and s2-10m (id rssr-s2-10m-v1), both tiny; tests copy what they need."""
    folder = tmp_path_factory.mktemp("tiny_models")
    add_model(folder, "aerial", "tiny-aerial", seed=0)
    add_model(folder, "s2-10m", "rssr-s2-10m-v1", seed=1)
    return folder


@pytest.fixture
def models_dir(tiny_models, tmp_path, monkeypatch):
    """An empty registry folder (RSSR_MODELS_DIR); `install(name)` copies a tiny model into it."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("RSSR_MODELS_DIR", str(folder))
    monkeypatch.delenv("RSSR_MODEL", raising=False)

    def install(*names: str) -> Path:
        for name in names:
            for suffix in (".safetensors", ".json"):
                shutil.copy2(tiny_models / f"{name}{suffix}", folder / f"{name}{suffix}")
        return folder

    return install


UTM = "EPSG:32633"
GEO = "EPSG:4326"
FACTS_CASES = [
    # (facts, installed, expected model, words in the reason)
    (InputFacts(band_stack=True), BOTH, "s2-10m", "product or STAC item"),
    (InputFacts(dtype="uint8", descriptions=("B04", "B03", "B02"), crs=GEO), BOTH, "s2-10m", "band ids B04,B03,B02"),
    (InputFacts(dtype="float32", descriptions=("b8a", "B4")), BOTH, "s2-10m", "B8A,B04"),
    (
        InputFacts(
            dtype="uint16", descriptions=("red", "green", "blue"), crs=UTM, projected=True, pixel_size_m=(0.3, 0.3)
        ),
        BOTH,
        "aerial",
        "not Sentinel-2",
    ),
    (
        InputFacts(dtype="uint8", descriptions=("B04", None), crs=UTM, projected=True, pixel_size_m=(0.3, 0.3)),
        BOTH,
        "aerial",
        "0.3 m",
    ),
    (
        InputFacts(dtype="uint16", crs=UTM, projected=True, pixel_size_m=(10.0, 10.0)),
        BOTH,
        "s2-10m",
        "uint16 with 10 m pixels",
    ),
    (InputFacts(dtype="uint16", crs=UTM, projected=True, pixel_size_m=(5.0, 5.0)), BOTH, "s2-10m", "5 m"),
    (InputFacts(dtype="uint16", crs=UTM, projected=True, pixel_size_m=(20.0, 20.0)), BOTH, "s2-10m", "20 m"),
    (InputFacts(dtype="uint16", crs=UTM, projected=True, pixel_size_m=(4.9, 4.9)), BOTH, "aerial", "4.9 m"),
    (InputFacts(dtype="uint16", crs=UTM, projected=True, pixel_size_m=(20.5, 20.5)), BOTH, "aerial", "20.5 m"),
    (InputFacts(dtype="uint16", crs=UTM, projected=True, pixel_size_m=(10.0, 60.0)), BOTH, "aerial", "10x60 m"),
    (InputFacts(dtype="uint8", crs=UTM, projected=True, pixel_size_m=(10.0, 10.0)), BOTH, "aerial", "uint8"),
    (InputFacts(dtype="float32", crs=UTM, projected=True, pixel_size_m=(10.0, 10.0)), BOTH, "aerial", "float32"),
    (InputFacts(dtype="uint16", crs=GEO, projected=False), BOTH, "aerial", "geographic CRS"),
    (InputFacts(dtype="uint16"), BOTH, "aerial", "no CRS"),
    (InputFacts(band_stack=True), ("aerial",), "aerial", "s2-10m is not installed"),
    (InputFacts(dtype="uint8", crs=UTM, projected=True, pixel_size_m=(0.3, 0.3)), ("s2-10m",), None, "not Sentinel-2"),
    (InputFacts(band_stack=True), (), None, "not installed"),
]


@pytest.mark.parametrize("facts, installed, expected, words", FACTS_CASES)
def test_the_rule_as_a_table(facts, installed, expected, words):
    choice = choose_default_model(facts, installed)
    assert choice.name == expected and choice.by == "rule"
    assert words in choice.reason, choice.reason
    assert choice.tag().startswith("rule: ")


def test_input_facts_read_the_header_in_metres(tmp_path):
    data = synthetic_image(2, 16, 16, "uint16")
    utm = write_raster(tmp_path / "utm.tif", data, descriptions=["B04", "B08"])
    feet = write_raster(
        tmp_path / "ft.tif", data, crs="EPSG:2263", transform=Affine(30.0, 0, 1e6, 0, -30.0, 2e5)
    )  # US survey ft
    geo = write_raster(tmp_path / "geo.tif", data, crs="EPSG:4326", transform=Affine(1e-4, 0, 10, 0, -1e-4, 45))
    assert input_facts(utm) == InputFacts(
        dtype="uint16", descriptions=("B04", "B08"), crs="EPSG:32633", projected=True, pixel_size_m=(10.0, 10.0)
    )
    assert input_facts(feet).pixel_size_m == pytest.approx((9.144, 9.144), abs=1e-3)  # 30 ft: Sentinel-2-like
    assert choose_default_model(input_facts(feet), BOTH).name == "s2-10m"
    assert input_facts(geo).pixel_size_m is None and choose_default_model(input_facts(geo), BOTH).name == "aerial"
    assert input_facts(tmp_path / "S2X.SAFE.zip").band_stack  # a product is known by its name


def test_the_registry_reads_cards_and_checks_their_domain(models_dir, tmp_path):
    folder = models_dir("aerial", "s2-10m")
    (folder / "notes.json").write_text('{"format": "something else"}')  # not a model card
    (folder / "orphan.json").write_text((folder / "aerial.json").read_text())  # no weights beside it
    models = shipped_models()
    assert list(models) == ["aerial", "s2-10m"]
    assert models["s2-10m"].id == "rssr-s2-10m-v1" and models["s2-10m"].domain.resolution_m == (10.0, 10.0)
    assert resolve_model("s2-10m") == folder / "s2-10m.safetensors" and resolve_model("./x.safetensors") == Path(
        "x.safetensors"
    )
    assert is_model_name("aerial") and not is_model_name("runs/m") and not is_model_name("m.safetensors")
    card = json.loads((folder / "aerial.json").read_text())
    (folder / "aerial.json").write_text(json.dumps({**card, "domain": {**DOMAIN, "resolution_m": [20, 10]}}))
    with pytest.raises(CheckpointError, match="aerial.json has a bad domain section: 'resolution_m' min 20"):
        shipped_models()


def test_the_shipped_card_states_its_domain():
    aerial = shipped_models(REPO / "models")["aerial"]
    assert aerial.id == "rssr-default-v2" and aerial.domain is not None and "uint8" in aerial.domain.dtypes
    assert "s2-10m" not in shipped_models(REPO / "models") or (REPO / "models" / "s2-10m.json").is_file()


def test_an_unknown_model_name_is_one_usage_line_listing_the_names(models_dir, src_tif, tmp_path):
    models_dir("aerial", "s2-10m")
    with pytest.raises(UsageError, match="unknown model 'nope'; shipped models: aerial, s2-10m"):
        ModelOptions(model="nope")
    for args in (
        ("upscale", src_tif, "-s", "2", "-o", tmp_path / "o.tif", "--model", "nope"),
        ("info", "--model", "nope"),
    ):
        result = run(*args)
        assert result.exit_code == 2
        assert "shipped models: aerial, s2-10m" in one_error_line(result)
    assert not (tmp_path / "o.tif").exists()


def test_info_lists_the_models_and_says_which_one_an_input_gets(models_dir, make_raster):
    models_dir("aerial", "s2-10m")
    result = run("info", "--models")
    assert result.exit_code == 0, result.output
    assert "aerial" in result.output and "rssr-s2-10m-v1" in result.output and "x4 +0.0 dB (tiny)" in result.output
    assert "s2-10m for Sentinel-2 inputs" in result.output  # the rule
    listed = json.loads(run("info", "--models", "--json").stdout)
    assert [m["name"] for m in listed["models"]] == ["aerial", "s2-10m"] and listed["models"][1]["domain"]["bands"] == [
        "B04"
    ]
    assert run("info", "--models", "x.tif").exit_code == 2

    s2 = make_raster(1, 16, 16, "uint16", name="s2.tif")
    aerial = make_raster(3, 16, 16, "uint8", name="rgb.tif", transform=Affine(0.3, 0, 0, 0, -0.3, 0))
    assert "model       s2-10m (rule: Sentinel-2 input: uint16 with 10 m pixels" in run("info", s2).output
    report = json.loads(run("info", aerial, "--json").stdout)
    assert report["model"]["name"] == "aerial" and report["model"]["reason"].startswith(
        "not Sentinel-2: uint8 with 0.3 m pixels"
    )
    shown = run("info", "--model", "s2-10m")
    assert shown.exit_code == 0 and "(shipped as s2-10m)" in shown.output and "resolution_m" in shown.output


def test_without_s2_10m_installed_sentinel2_inputs_fall_back_to_aerial_and_say_so(models_dir, make_raster, tmp_path):
    models_dir("aerial")
    s2 = make_raster(1, 16, 16, "uint16", name="s2.tif")
    assert "s2-10m is not installed, so aerial" in run("info", s2).output
    assert run("upscale", s2, "-s", "2", "-o", tmp_path / "o.tif", "-q").exit_code == 0
    with rasterio.open(tmp_path / "o.tif") as out:
        tags = out.tags()
    assert tags["RSSR_MODEL"] == "tiny-aerial" and tags["RSSR_MODEL_NAME"] == "aerial"
    assert "s2-10m is not installed" in tags["RSSR_MODEL_CHOICE"]


def test_the_output_names_the_model_the_rule_or_the_user_chose(models_dir, make_raster, tmp_path, monkeypatch):
    models_dir("aerial", "s2-10m")
    s2 = make_raster(1, 16, 16, "uint16", name="s2.tif")
    rgb = make_raster(1, 16, 16, "uint8", name="rgb.tif", transform=Affine(0.3, 0, 0, 0, -0.3, 0))

    def tags_of(src: Path, *extra: object) -> dict:
        out = tmp_path / f"{src.stem}_{len(list(tmp_path.glob('*_*.tif')))}_out.tif"
        result = run("upscale", src, "-s", "2", "-o", out, "-q", *extra)
        assert result.exit_code == 0, result.output
        with rasterio.open(out) as dataset:
            return dataset.tags()

    tags = tags_of(s2)
    assert (tags["RSSR_MODEL"], tags["RSSR_MODEL_NAME"]) == ("rssr-s2-10m-v1", "s2-10m")
    assert tags["RSSR_MODEL_CHOICE"].startswith("rule: Sentinel-2 input: uint16 with 10 m pixels")
    assert tags_of(rgb)["RSSR_MODEL"] == "tiny-aerial"
    forced = tags_of(s2, "--model", "aerial")
    assert (forced["RSSR_MODEL"], forced["RSSR_MODEL_NAME"], forced["RSSR_MODEL_CHOICE"]) == (
        "tiny-aerial",
        "aerial",
        "--model",
    )
    monkeypatch.setenv("RSSR_MODEL", "s2-10m")  # RSSR_MODEL takes a name too, and overrides the rule
    by_env = tags_of(rgb)
    assert (by_env["RSSR_MODEL"], by_env["RSSR_MODEL_CHOICE"]) == ("rssr-s2-10m-v1", "RSSR_MODEL")
    assert "overrides the rule (which picks aerial" in run("info", rgb).output


def test_a_batch_redoes_a_scene_once_when_the_rule_picks_a_new_model(models_dir, make_raster, tmp_path):
    """A cron job that ran with the old default: the Sentinel-2 scene is redone once with s2-10m and its line and log
    say why; the aerial scene is skipped; the next run skips both."""
    models_dir("aerial")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.move(make_raster(1, 16, 16, "uint16", name="s2.tif"), inputs / "s2.tif")
    shutil.move(
        make_raster(1, 16, 16, "uint8", name="rgb.tif", transform=Affine(0.3, 0, 0, 0, -0.3, 0)), inputs / "rgb.tif"
    )
    out, log = tmp_path / "out", tmp_path / "log.jsonl"

    def cron() -> dict[str, dict]:
        start = len(log.read_text().splitlines()) if log.exists() else 0
        result = run("upscale", inputs, "-o", out, "-s", "2", "--log-json", log)
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in log.read_text().splitlines()[start:]]
        return {
            Path(line["input"]).name: {**line, "stderr": " ".join(result.stderr.split())} for line in lines
        }  # unwrapped

    first = cron()
    assert {name: line["status"] for name, line in first.items()} == {"rgb.tif": "done", "s2.tif": "done"}
    models_dir("s2-10m")  # the new shipped model lands
    second = cron()
    assert second["rgb.tif"]["status"] == "skipped"
    assert second["s2.tif"]["status"] == "done"
    assert second["s2.tif"]["note"] == "model changed: tiny-aerial -> rssr-s2-10m-v1"
    assert "model changed: tiny-aerial -> rssr-s2-10m-v1" in second["s2.tif"]["stderr"]
    with rasterio.open(out / "s2_x2.tif") as dataset:
        assert dataset.tags()["RSSR_MODEL"] == "rssr-s2-10m-v1"
    assert {line["status"] for line in cron().values()} == {"skipped"}


def test_an_output_made_with_a_named_model_is_not_redone_by_the_rule(models_dir, make_raster, tmp_path):
    models_dir("aerial", "s2-10m")
    src = make_raster(1, 16, 16, "uint16", name="s2.tif")
    out = tmp_path / "out"
    assert run("upscale", src, "-o", f"{out}/", "-s", "2", "--model", "aerial", "-q").exit_code == 0
    result = run("upscale", src, "-o", f"{out}/", "-s", "2")
    assert result.exit_code == 1 and "made by a different request" in result.stderr  # the user's choice is kept


def test_model_change_counts_outputs_made_before_choices_were_recorded_when_their_model_was_shipped(models_dir):
    from rssr_cli.pipeline.model_rule import ModelChoice

    models_dir("aerial", "s2-10m")
    aerial = shipped_models()["aerial"]
    wanted = {
        "RSSR_METHOD": "diffusion-prior",
        "RSSR_MODEL": "rssr-s2-10m-v1",
        "RSSR_MODEL_SHA256": "new",
        "RSSR_SCALE": "2",
    }
    legacy = {**wanted, "RSSR_MODEL": aerial.id, "RSSR_MODEL_SHA256": aerial.sha256}  # no RSSR_MODEL_CHOICE tag
    rule = ModelChoice("s2-10m", "Sentinel-2 input")
    assert model_change(legacy, wanted, rule) == f"model changed: {aerial.id} -> rssr-s2-10m-v1"
    assert model_change({**legacy, "RSSR_MODEL_SHA256": "a-file-of-yours"}, wanted, rule) is None
    assert model_change({**legacy, "RSSR_SCALE": "4"}, wanted, rule) is None  # another request, not only the model
    assert model_change({**legacy, "RSSR_METHOD": "bicubic"}, wanted, rule) is None
    assert model_change(legacy, wanted, ModelChoice("s2-10m", "--model s2-10m", "--model")) is None
