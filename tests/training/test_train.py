"""`rssr train` end to end on generated images (tiny preset), resume, and the training pieces."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.model.checkpoint import load_model
from rssr_cli.model.samplers import DEFAULT_SAMPLER
from rssr_cli.model.validation import read_safetensors_header
from rssr_cli.training.data import PatchSampler, TrainImage
from rssr_cli.training.trainer import TrainConfig, lr_at

from conftest import synthetic_image, write_raster

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        small = (rng.random((8, 8, 3)) * 255).astype("uint8")
        Image.fromarray(small).resize((64, 64), Image.BICUBIC).save(d / f"img{i}.png")
    return d


def _train(image_dir, out, *extra):
    args = [
        "train",
        str(image_dir),
        "-o",
        str(out),
        "--preset",
        "tiny",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "-q",
        *extra,
    ]
    return runner.invoke(app, args)


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_tiny_train_writes_a_loadable_model_with_card(image_dir, tmp_path):
    result = _train(
        image_dir,
        tmp_path / "run",
        "--prior-steps",
        "12",
        "--denoiser-steps",
        "8",
        "--val",
        str(image_dir),
        "--sampler-steps",
        "2",
    )
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "run" / "model.safetensors")
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["training"]["stages"]["prior"]["steps"] == 12
    assert card["training"]["stages"]["denoiser"]["steps"] == 8
    assert card["sampler"]["steps"] == 2
    lr = torch.rand(1, 3, 9, 7)
    ys = (torch.arange(20) + 0.5)[None] * 9 / 20
    xs = (torch.arange(15) + 0.5)[None] * 7 / 15
    out = model.sample(lr, ys, xs, torch.tensor([[9 / 20, 7 / 15]]), generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 20, 15) and torch.isfinite(out).all()
    log = (tmp_path / "run" / "prior" / "log.csv").read_text().splitlines()
    assert log[0] == "step,loss,lr,it_per_s,val"


def test_prior_only_model_defaults_to_the_prior(image_dir, tmp_path):
    result = _train(image_dir, tmp_path / "run", "--stage", "prior", "--prior-steps", "5")
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "run" / "model.safetensors").sampler_defaults["steps"] == 0


def test_resume_continues_from_the_saved_step(image_dir, tmp_path):
    assert _train(image_dir, tmp_path / "run", "--stage", "prior", "--prior-steps", "6").exit_code == 0
    result = _train(image_dir, tmp_path / "run", "--stage", "prior", "--prior-steps", "9", "--resume")
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["training"]["stages"]["prior"]["steps"] == 9
    steps = [line.split(",")[0] for line in (tmp_path / "run" / "prior" / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["6", "9"]  # each run logs its last step; the resumed one went on from 6, not from 0


def test_bad_training_options_are_one_line_usage_errors(image_dir, tmp_path):
    result = _train(image_dir, tmp_path / "run", "--stage", "bogus")
    assert result.exit_code == 2 and "unknown stage" in result.output
    result = _train(image_dir, tmp_path / "run", "--data-workers", "-1")
    assert result.exit_code == 2 and "--data-workers must be in 0..64" in result.output
    result = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not found" in result.output


def test_sampler_mixes_scales_and_keeps_lr_side_whole():
    rng = np.random.default_rng(1)
    img = TrainImage(rng.random((3, 256, 256)).astype(np.float32), 255, "x")
    sampler = PatchSampler([img], lr_size=32, query=24, scale_min=1.0, scale_max=8.0, seed=3)
    batch = sampler.batch(64)
    assert batch.lr.shape == (64, 1, 32, 32) and batch.hr.shape == (64, 1, 24, 24)
    assert batch.scale.min() < 3 and batch.scale.max() > 6  # continuous, mixed within one batch
    assert not torch.allclose(batch.scale, batch.scale.round())  # not integers only
    # the query block's HR centres sit on the crop's HR grid: spacing is exactly 1/scale
    np.testing.assert_allclose((batch.ys[:, 1] - batch.ys[:, 0]).numpy(), (1 / batch.scale).numpy(), rtol=1e-5)


def test_learning_rate_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=1000, lr=1e-3, warmup=100)
    assert lr_at(0, cfg) < lr_at(99, cfg) <= 1e-3
    assert lr_at(100, cfg) > lr_at(500, cfg) > lr_at(999, cfg) >= 0.05 * 1e-3 - 1e-12


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_denoiser_stage_on_a_prior_only_model_validates_a_real_sampler(image_dir, tmp_path):
    assert _train(image_dir, tmp_path / "p", "--stage", "prior", "--prior-steps", "3").exit_code == 0
    init = tmp_path / "p" / "model.safetensors"
    assert load_model(init).sampler_defaults["steps"] == 0
    result = _train(
        image_dir,
        tmp_path / "d",
        "--stage",
        "denoiser",
        "--denoiser-steps",
        "2",
        "--init",
        str(init),
        "--val",
        str(image_dir),
        "--val-every",
        "1",
    )
    assert result.exit_code == 0, result.output
    # the card keeps its default (the prior alone) unless --sampler-steps says otherwise, but validation ran the denoiser
    assert load_model(tmp_path / "d" / "model.safetensors").sampler_defaults["steps"] == 0
    last = (tmp_path / "d" / "denoiser" / "log.csv").read_text().strip().splitlines()[-1]
    scores = dict(item.split("=") for item in last.split(",")[-1].split(";"))
    assert scores["psnr_diffusion"] != scores["psnr_prior"]
    again = _train(
        image_dir,
        tmp_path / "k",
        "--stage",
        "denoiser",
        "--denoiser-steps",
        "1",
        "--init",
        str(init),
        "--sampler-steps",
        "1",
    )
    assert again.exit_code == 0 and load_model(tmp_path / "k" / "model.safetensors").sampler_defaults["steps"] == 1


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_bf16_autocast_training_on_the_cpu_writes_an_fp32_model(image_dir, tmp_path):
    result = _train(
        image_dir,
        tmp_path / "run",
        "--prior-steps",
        "4",
        "--denoiser-steps",
        "3",
        "--device",
        "cpu",
        "--precision",
        "bf16",
        "--val",
        str(image_dir),
        "--val-every",
        "3",
    )
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    settings = json.loads((tmp_path / "run" / "model.json").read_text())["training"]["settings"]
    assert (settings["device"], settings["precision"]) == ("cpu", "bf16")


@pytest.mark.parametrize(
    ("device", "precision", "message"),
    [("tpu", "auto", "unknown device"), ("cpu", "fp16", "fp32 or bf16"), ("cpu", "fp8", "unknown precision")],
)
def test_bad_training_device_or_precision_is_a_usage_error(image_dir, tmp_path, device, precision, message):
    result = _train(image_dir, tmp_path / "run", "--prior-steps", "2", "--device", device, "--precision", precision)
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_resumes_and_writes_a_cpu_loadable_model(image_dir, tmp_path):
    assert (
        _train(image_dir, tmp_path / "run", "--prior-steps", "6", "--denoiser-steps", "4", "--device", "cuda").exit_code
        == 0
    )
    result = _train(
        image_dir, tmp_path / "run", "--prior-steps", "8", "--denoiser-steps", "4", "--device", "cuda", "--resume"
    )
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "run" / "model.safetensors", device="cpu")
    assert next(model.parameters()).device.type == "cpu"


def test_denoiser_timesteps_can_be_limited_to_the_lr_start_regime():
    from rssr_cli.model.diffusion import sample_timesteps

    t = sample_timesteps(4000, 1000, generator=torch.Generator().manual_seed(0), max_fraction=0.15)
    assert int(t.max()) == 149 and int(t.min()) == 0
    full = sample_timesteps(4000, 1000, generator=torch.Generator().manual_seed(0))
    assert int(full.max()) > 900
    with pytest.raises(ValueError):
        sample_timesteps(4, 1000, max_fraction=0.0)


def test_denoiser_t_max_is_recorded_and_validated(image_dir, tmp_path):
    result = _train(
        image_dir, tmp_path / "run", "--prior-steps", "2", "--denoiser-steps", "2", "--denoiser-t-max", "0.2"
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["training"]["settings"]["denoiser_t_max"] == 0.2
    assert _train(image_dir, tmp_path / "bad", "--denoiser-t-max", "1.5").exit_code == 2


def test_denoiser_objective_switch_is_written_into_the_card(image_dir, tmp_path):
    # x0 prediction from the noised estimate (the LR-start regime): the card must say what the weights predict,
    # or the sampler would read an x0 output as v
    result = _train(
        image_dir,
        tmp_path / "run",
        "--prior-steps",
        "2",
        "--denoiser-steps",
        "2",
        "--denoiser-prediction",
        "x0",
        "--denoiser-loss",
        "l2",
        "--denoiser-start",
        "estimate",
        "--sampler-steps",
        "1",
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["diffusion"]["prediction"] == "x0" and card["diffusion"]["loss"] == "l2"
    assert card["training"]["settings"]["denoiser_start"] == "estimate" and card["sampler"]["steps"] == 1
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model.denoiser.prediction == "x0" and model.loss_norm == "l2"
    for bad in (("--denoiser-prediction", "score"), ("--denoiser-loss", "huber"), ("--denoiser-start", "noise")):
        assert _train(image_dir, tmp_path / "bad", *bad).exit_code == 2


def test_estimate_start_noises_the_estimate_not_the_truth():
    # with start="estimate" x_t = √(1−ᾱ)·ε whatever the truth: two different HR targets give the net the same input
    from model_helpers import hr_grid, tiny_model

    model = tiny_model()
    seen = []
    model.denoiser.net.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    lr = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ys, xs, cell = hr_grid(8, 8, 2.0, batch=2)
    t, noise = torch.tensor([150, 150]), torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    for hr in (torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)):
        for start in ("estimate", "truth"):
            model.losses(lr, hr, ys, xs, cell, t=t, noise=noise, start=start)
    estimate_a, truth_a, estimate_b, truth_b = seen
    assert torch.equal(estimate_a, estimate_b) and not torch.allclose(truth_a, truth_b)
    a, b = model.denoiser.coefficients(t, noise)
    torch.testing.assert_close(estimate_a, b * noise)


def _recipe_args(command: str, image_dir, scene, runs) -> list[str]:
    """One of the shipped card's `rssr train` commands on tiny data: its paths replaced, 1 step, validated every step."""
    args = shlex.split(command)[1:]  # without "rssr"
    paths = {
        "../shared/data/ucmerced/train": image_dir,
        "../shared/data/ucmerced/val": image_dir,
        "../shared/data/scenes/sentinel2_l1c_b2348_10m.tif": scene,
    }
    out = []
    for prev, arg in zip([None, *args], args):
        if arg in paths:
            arg = str(paths[arg])
        elif arg.startswith("runs/"):
            arg = str(runs / arg[len("runs/") :])
        elif prev in ("--prior-steps", "--denoiser-steps"):
            arg = "1"
        elif prev == "--batch-size":
            arg = "2"
        elif prev == "--threads":
            arg = "1"
        out.append(arg)
    return [*out, "--val-every", "1", "-q"]


@pytest.mark.shipped_model  # about the shipped model(s) itself (conftest's guard)
@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_the_shipped_model_is_made_by_its_cards_rssr_train_commands(image_dir, tmp_path):
    """The card's commands (1 step each, tiny data) give the shipped architecture, spec, sampler and id."""
    shipped = json.loads((REPO / "models" / "aerial.json").read_text())
    commands = shipped["training"]["commands"]
    assert commands and all(c.startswith("rssr train ") for c in commands)  # `rssr train` alone, no scripts
    scene = tmp_path / "scene.tif"
    write_raster(scene, synthetic_image(2, 80, 80, "uint16"))
    for command in commands:
        result = runner.invoke(app, _recipe_args(command, image_dir, scene, tmp_path / "runs"))
        assert result.exit_code == 0, result.output
    last_out = shlex.split(commands[-1])[shlex.split(commands[-1]).index("-o") + 1]
    made = tmp_path / "runs" / last_out[len("runs/") :] / "model"
    card = json.loads(made.with_suffix(".json").read_text())
    for key in ("format", "id", "spec", "channels", "band_rule", "normalization", "diffusion", "sampler"):
        assert card[key] == shipped[key], key
    shapes, _ = read_safetensors_header(made.with_suffix(".safetensors"))
    assert shapes == read_safetensors_header(REPO / "models" / "aerial.safetensors")[0]
    prior = json.loads((tmp_path / "runs" / "prior" / "model.json").read_text())
    assert prior["training"]["stages"]["prior"]["kept"] == "best (step 1)"
    assert load_model(made.with_suffix(".safetensors")).sampler_defaults == DEFAULT_SAMPLER


def test_keep_best_needs_validation(image_dir, tmp_path):
    result = _train(image_dir, tmp_path / "run", "--stage", "prior", "--prior-steps", "2", "--keep", "best")
    assert result.exit_code == 2 and "--keep best needs validation" in result.output


def test_resshift_denoiser_stage_measures_a_global_scale_validates_by_a_proper_score_and_writes_its_chain(
    image_dir, tmp_path
):
    assert _train(image_dir, tmp_path / "p", "--stage", "prior", "--prior-steps", "3").exit_code == 0
    init = tmp_path / "p" / "model.safetensors"
    result = _train(
        image_dir,
        tmp_path / "r",
        "--stage",
        "denoiser",
        "--denoiser-steps",
        "2",
        "--init",
        str(init),
        "--process",
        "resshift",
        "--chain-steps",
        "4",
        "--kappa",
        "0.5",
        "--denoiser-patch",
        "32",
        "--val",
        str(image_dir),
        "--val-every",
        "1",
    )
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "r" / "model.safetensors")
    card = json.loads((tmp_path / "r" / "model.json").read_text())
    diffusion = card["diffusion"]
    assert diffusion["process"] == "resshift" and diffusion["chain_steps"] == 4 and diffusion["kappa"] == 0.5
    assert (
        model.process == "resshift"
        and model.sampler_defaults["steps"] == 4
        and model.sampler_defaults["variance_correction"] == 1.0
    )
    # the scale is 1 / the measured std of HR - estimate: finite, positive, and the same for every window
    assert 0 < diffusion["residual_scale"] < 1e6
    last = (tmp_path / "r" / "denoiser" / "log.csv").read_text().strip().splitlines()[-1]
    scores = dict(item.split("=") for item in last.split(",")[-1].split(";"))
    assert {"score", "power_ratio", "spread_ratio", "mse_ratio", "es_null_ratio"} <= set(scores)
    # two draws from different generators differ (a sampler, not a regression head), and steps stride the chain
    lr = torch.rand(1, 3, 9, 7)
    ys = (torch.arange(20) + 0.5)[None] * 9 / 20
    xs = (torch.arange(15) + 0.5)[None] * 7 / 15
    cell = torch.tensor([[9 / 20, 7 / 15]])
    with torch.no_grad():
        a = model.sample(lr, ys, xs, cell, generator=torch.Generator().manual_seed(0))
        b = model.sample(lr, ys, xs, cell, generator=torch.Generator().manual_seed(1))
        c = model.sample(lr, ys, xs, cell, steps=2, generator=torch.Generator().manual_seed(0))
    assert a.shape == c.shape == (1, 3, 20, 15) and torch.isfinite(a).all() and torch.isfinite(c).all()
    assert not torch.equal(a, b)


def test_resshift_options_are_validated(image_dir, tmp_path):
    for args, message in [
        (["--process", "ddim"], "--process"),
        (["--chain-steps", "1"], "--chain-steps"),
        (["--kappa", "0"], "--kappa"),
    ]:
        result = _train(image_dir, tmp_path / "x", "--prior-steps", "1", *args)
        assert result.exit_code == 2 and message in result.output


def _tiny_chain_stage(image_dir, tmp_path) -> list[str]:
    """A 2-step tiny prior in tmp_path/p, and the options that train a 3-step chain on it."""
    assert _train(image_dir, tmp_path / "p", "--stage", "prior", "--prior-steps", "2").exit_code == 0
    init = str(tmp_path / "p" / "model.safetensors")
    return [
        "--stage",
        "denoiser",
        "--init",
        init,
        "--process",
        "resshift",
        "--chain-steps",
        "3",
        "--denoiser-patch",
        "24",
    ]


def test_a_resumed_resshift_run_keeps_its_global_residual_scale(image_dir, tmp_path):
    common = [*_tiny_chain_stage(image_dir, tmp_path), "--save-every", "1"]
    assert _train(image_dir, tmp_path / "r", *common, "--denoiser-steps", "1").exit_code == 0
    first = json.loads((tmp_path / "r" / "denoiser" / "last.json").read_text())["diffusion"]["residual_scale"]
    state = tmp_path / "r" / "denoiser" / "last.json"
    meta = json.loads(state.read_text())
    meta["diffusion"]["residual_scale"] = 7.25  # what the state was trained with wins over a fresh measurement
    state.write_text(json.dumps(meta))
    assert _train(image_dir, tmp_path / "r", *common, "--denoiser-steps", "2", "--resume").exit_code == 0
    assert (
        first != 7.25 and json.loads((tmp_path / "r" / "model.json").read_text())["diffusion"]["residual_scale"] == 7.25
    )


def test_the_error_stage_trains_the_error_head_alone_and_writes_it_into_the_card(image_dir, tmp_path):
    assert _train(image_dir, tmp_path / "p", "--stage", "prior", "--prior-steps", "2").exit_code == 0
    init = tmp_path / "p" / "model.safetensors"
    before = load_model(init)
    assert before.error_head is None
    result = _train(
        image_dir,
        tmp_path / "e",
        "--stage",
        "error",
        "--init",
        str(init),
        "--error-steps",
        "3",
        "--error-width",
        "6",
        "--denoiser-patch",
        "24",
        "--val",
        str(image_dir),
        "--val-every",
        "3",
    )
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "e" / "model.safetensors")
    card = json.loads((tmp_path / "e" / "model.json").read_text())
    assert model.error_head is not None and card["spec"]["error_head"]["args"]["width"] == 6
    assert card["training"]["stages"]["error"]["steps"] == 3
    for name, tensor in before.operator.state_dict().items():  # the operator is frozen: the head learns its error
        torch.testing.assert_close(model.operator.state_dict()[name], tensor)
    last = (tmp_path / "e" / "error" / "log.csv").read_text().strip().splitlines()[-1]
    scores = dict(item.split("=") for item in last.split(",")[-1].split(";"))
    assert {"score", "nll", "level_median", "level_log_sd"} <= set(scores)
    assert float(scores["score"]) == pytest.approx(-float(scores["nll"]))
    bad = _train(image_dir, tmp_path / "x", "--stage", "error", "--init", str(init), "--error-width", "0")
    assert bad.exit_code == 2 and "--error-width" in bad.output


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_resumed_chain_run_draws_the_noise_an_uninterrupted_one_draws(image_dir, tmp_path, workers):
    """Issue 21: a resumed run continues the chain's timestep and noise stream (and the patches) where it stopped,
    so 2 + 2 steps end on the weights 4 steps in one run reach; before, every resume re-drew the first steps' noise.
    The same with patches drawn by worker processes (--data-workers: batch k from (seed, k))."""
    common = [*_tiny_chain_stage(image_dir, tmp_path), "--residual-scale", "10", "--precision", "fp32"]
    common += ["--save-every", "2", "--data-workers", workers]
    assert _train(image_dir, tmp_path / "whole", *common, "--denoiser-steps", "4").exit_code == 0
    assert _train(image_dir, tmp_path / "split", *common, "--denoiser-steps", "2").exit_code == 0
    assert "noise_rng" in json.loads((tmp_path / "split" / "denoiser" / "last.json").read_text())
    assert _train(image_dir, tmp_path / "split", *common, "--denoiser-steps", "4", "--resume").exit_code == 0
    from safetensors.torch import load_file

    whole = load_file(str(tmp_path / "whole" / "denoiser" / "last.safetensors"))
    split = load_file(str(tmp_path / "split" / "denoiser" / "last.safetensors"))
    trained = [name for name in whole if name.startswith("model.denoiser.")]
    assert trained
    for name in trained:
        assert torch.equal(split[name], whole[name]), name  # the same ops on the same draws: bit for bit
