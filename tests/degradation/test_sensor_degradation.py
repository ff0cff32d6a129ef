"""The sensor degradation (issue 20 item 1): the MTF measured on what it applies, exact grid geometry at any scale and
phase, the member family, and the training/evaluation paths that use it (sampler, resume RNG, bf16, rssr evaluate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.core.errors import UsageError
from rssr_cli.degradation import degrade as synthetic_degrade
from rssr_cli.degradation import sensor_degradation as sd
from rssr_cli.model import device as model_device
from rssr_cli.model.resample import bicubic_at
from rssr_cli.sharpen import degrade as sharpen_degrade
from rssr_cli.training import trainer
from rssr_cli.training.data import SensorPatchSampler, TrainImage

from conftest import write_raster

runner = CliRunner()


@pytest.mark.parametrize("scale", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("gaussian_mtf", [0.2, 0.3, 0.5, 1.0])
def test_the_measured_mtf_at_the_coarse_nyquist_is_the_members(scale, gaussian_mtf):
    member = sd.SensorDraw(gaussian_mtf)
    assert sd.measured_system_mtf(scale, member) == pytest.approx(member.system_mtf, abs=0.003)


def test_the_box_member_is_the_pixel_aggregate():
    assert sd.SensorDraw(1.0).system_mtf == pytest.approx(2 / np.pi)
    assert sd.gaussian_sigma(4, 1.0) == 0.0
    # a non-integer scale still aggregates exactly (within the fine pixels' own aggregate)
    assert sd.measured_system_mtf(4.5, sd.SensorDraw(1.0)) == pytest.approx(2 / np.pi, abs=0.03)


def test_the_evaluation_member_is_gaussian_mtf_0_3_and_the_box():
    assert sd.EVALUATION.gaussian_mtf == 0.3 and sd.EVALUATION.noise_std == 0 and sd.EVALUATION.levels is None
    assert sd.measured_system_mtf(4, sd.EVALUATION) == pytest.approx(0.3 * 2 / np.pi, abs=0.003)


def test_box_weights_are_exact_overlaps():
    w = sd.box_weights(3, 2.5, 0.3, 10).numpy()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w[0, :3], [0.7 / 2.5, 1 / 2.5, 0.8 / 2.5], atol=1e-6)
    np.testing.assert_allclose(w[1, 2:6], [0.2 / 2.5, 1 / 2.5, 1 / 2.5, 0.3 / 2.5], atol=1e-6)


@pytest.mark.parametrize("scale,origin", [(4.0, (0.0, 0.0)), (3.3, (0.4, 0.9)), (2.0, (0.5, 0.25))])
def test_a_ramp_is_sampled_at_the_coarse_pixel_centres(scale, origin):
    """A symmetric PSF leaves a linear ramp's value at each coarse centre: the grid sits where SensorDraw says (exactly
    when coarse edges fall on fine edges; within 0.05 fine px when they cut fine pixels, whose values are their means)."""
    size = 80
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    ramp = torch.from_numpy((0.01 * yy + 0.003 * xx).astype(np.float32))[None, None]
    member = sd.SensorDraw(0.3, (20 + origin[0], 20 + origin[1]))
    lr = sd.degrade(ramp, scale, (8, 8), member)[0, 0].numpy()
    cy = member.origin[0] + (np.arange(8) + 0.5) * scale
    cx = member.origin[1] + (np.arange(8) + 0.5) * scale
    exact = float(scale).is_integer() and origin == (0.0, 0.0)
    np.testing.assert_allclose(lr, 0.01 * cy[:, None] + 0.003 * cx[None, :], atol=2e-5 if exact else 0.05 * 0.013)


def test_constant_in_constant_out_and_quantization_is_12_bit():
    flat = torch.full((1, 1, 64, 64), 0.1234)
    member = sd.SensorDraw(0.25, (3.0, 5.0), 0.0, sd.LEVELS_12BIT)
    lr = sd.degrade(flat, 3.7, (10, 10), member)
    np.testing.assert_allclose(lr.numpy(), round(0.1234 * 4095) / 4095, atol=1e-6)


def test_draws_span_the_published_range_and_the_box_member():
    rng = np.random.default_rng(0)
    members = [sd.draw(rng) for _ in range(3000)]
    boxes = sum(m.gaussian_mtf == 1.0 for m in members) / len(members)
    assert abs(boxes - sd.BOX_SHARE) < 0.03
    systems = [m.system_mtf for m in members if m.gaussian_mtf < 1.0]
    assert min(systems) >= sd.SYSTEM_MTF_RANGE[0] - 1e-9 and max(systems) <= sd.SYSTEM_MTF_RANGE[1] + 1e-9
    assert all(0 <= m.noise_std <= sd.NOISE_STD_MAX and m.levels == sd.LEVELS_12BIT for m in members)
    assert all(0 <= o < 1 for m in members for o in m.origin)


def _ramp_image(size: int = 160) -> TrainImage:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return TrainImage((0.2 + 0.001 * yy + 0.0004 * xx).astype(np.float32)[None], None, "ramp")


def test_the_sensor_sampler_tells_the_model_the_exact_geometry(monkeypatch):
    """Without noise/quantization, bicubic of the LR at the told HR centres reproduces a ramp's HR block: the query
    positions, the crop margin and the phase agree (rotations and flips keep a ramp a ramp)."""
    noiseless = lambda rng: sd.SensorDraw(float(rng.uniform(0.3, 1.0)), (float(rng.random()), float(rng.random())))  # noqa: E731
    monkeypatch.setattr(sd, "draw", noiseless)
    sampler = SensorPatchSampler([_ramp_image()], lr_size=16, query=12, scale_min=1.5, scale_max=6.0, seed=1)
    batch = sampler.batch(6)
    assert batch.lr.shape == (6, 1, 16, 16) and batch.hr.shape == (6, 1, 12, 12)
    np.testing.assert_allclose(batch.cell[:, 0].numpy(), 1 / batch.scale.numpy(), rtol=1e-6)
    error = (bicubic_at(batch.lr, batch.ys, batch.xs) - batch.hr).abs()[:, 0]
    inside = lambda c: (c > 1.5) & (c < 16 - 2.5)  # noqa: E731  (bicubic's 4 taps all inside the LR crop)
    mask = inside(batch.ys)[:, :, None] & inside(batch.xs)[:, None, :]
    assert mask.sum() > 300 and error[mask].max() < 0.05 * 0.0014  # 0.05 fine px: fine pixels cut by coarse edges


def test_the_sampler_rng_state_round_trips():
    a = SensorPatchSampler([_ramp_image()], lr_size=16, query=12, scale_min=1.5, scale_max=4.0, seed=3)
    a.batch(2)
    state = a.rng_state()
    expected = a.batch(3)
    b = SensorPatchSampler([_ramp_image()], lr_size=16, query=12, scale_min=1.5, scale_max=4.0, seed=99)
    b.set_rng_state(json.loads(json.dumps(state[0])), torch.tensor(state[1].tolist(), dtype=torch.uint8))
    got = b.batch(3)
    for x, y in zip(expected, got):
        assert torch.equal(x, y)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_training_precision_follows_native_bf16(monkeypatch, native):
    monkeypatch.setattr(model_device, "cpu_has_native_bf16", lambda: native)
    assert trainer.resolve_training_device("cpu", "auto") == ("cpu", "bf16" if native else "fp32")
    assert trainer.resolve_training_device("cpu", "fp32") == ("cpu", "fp32")


def test_one_device_resolver_for_inference_and_training():
    """model.device is the one resolver (issue 22): the same refusals whoever asks, and "auto" precision differs
    only where documented (a CPU's native bf16 serves training, not inference)."""
    cpu = torch.device("cpu")
    assert model_device.resolve_device("cpu") == cpu and model_device.resolve_precision("auto", cpu) == "fp32"
    for bad in ("tpu", "cuda:x", ""):
        with pytest.raises(UsageError, match="unknown device"):
            model_device.resolve_device(bad)
    with pytest.raises(UsageError, match="unknown precision 'fp64'; choose auto, fp32, bf16, fp16"):
        model_device.resolve_precision("fp64", cpu)
    with pytest.raises(UsageError, match="fp32 or bf16"):
        trainer.resolve_training_device("cpu", "fp16")
    assert model_device.resolve_precision("fp16", cpu) == "fp16"  # inference may
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            model_device.resolve_device("cuda:0")


def _s2_folder(tmp_path, n=2, size=128):
    rng = np.random.default_rng(0)
    folder = tmp_path / "s2"
    folder.mkdir()
    for i in range(n):
        base = rng.random((size // 8, size // 8))
        img = np.kron(base, np.ones((8, 8))) * 3000 + 500 + rng.random((size, size)) * 200
        write_raster(folder / f"city_{i}_B04.tif", img[None].astype("uint16"))
    return folder


def test_train_with_the_sensor_degradation_resumes_where_it_stopped(tmp_path):
    data = _s2_folder(tmp_path)
    base = [
        "train",
        str(data),
        "--preset",
        "tiny",
        "--stage",
        "prior",
        "--batch-size",
        "2",
        "--scale-max",
        "3",
        "--threads",
        "1",
        "--degradation",
        "sentinel2",
        "--precision",
        "fp32",
        "--save-every",
        "2",
        "-q",
    ]
    whole = runner.invoke(app, [*base, "--prior-steps", "4", "-o", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    first = runner.invoke(app, [*base, "--prior-steps", "2", "-o", str(tmp_path / "split")])
    assert first.exit_code == 0, first.output
    state = json.loads((tmp_path / "split" / "prior" / "last.json").read_text())
    assert state["step"] == 2 and "sampler_rng" in state  # (the learning rate is still warming up: same in both runs)
    second = runner.invoke(app, [*base, "--prior-steps", "4", "--resume", "-o", str(tmp_path / "split")])
    assert second.exit_code == 0, second.output
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "whole" / "prior" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "prior" / "last.safetensors"))
    for name in a:
        if name.startswith("ema."):
            torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)


def test_bf16_training_follows_the_fp32_loss_curve(tmp_path):
    """Ten steps from one initialisation and one data stream: the bf16 (channels-last) losses stay within 1 % of
    fp32's (measured on the CPU this project trains on: <= 0.2 %)."""
    data = _s2_folder(tmp_path)
    curves = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        args = [
            "train",
            str(data),
            "--preset",
            "tiny",
            "--stage",
            "prior",
            "--batch-size",
            "4",
            "--scale-max",
            "3",
            "--threads",
            "1",
            "--degradation",
            "sentinel2",
            "--precision",
            precision,
            "--prior-steps",
            "10",
            "-q",
            "-o",
            str(out),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        curves[precision] = float((out / "prior" / "log.csv").read_text().splitlines()[-1].split(",")[1])
    assert curves["bf16"] == pytest.approx(curves["fp32"], rel=0.01)


def test_evaluate_with_the_sensor_degradation(tmp_path, monkeypatch):
    monkeypatch.setenv("RSSR_MODEL", str(tmp_path / "absent.safetensors"))  # classical methods only
    data = _s2_folder(tmp_path, n=1, size=64)
    out = tmp_path / "eval.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(data),
            "--degradation",
            "sentinel2",
            "-s",
            "2,4",
            "-m",
            "bicubic,nearest",
            "--json",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["degradation"] == "sentinel2_degrade"
    psnr = {(r["scale"], r["backend"]): r["psnr"] for r in report["summary"]}
    assert psnr[(2.0, "bicubic")] > psnr[(4.0, "bicubic")]
    bad = runner.invoke(app, ["evaluate", str(data), "--degradation", "gauss", "-m", "bicubic"])
    assert bad.exit_code == 2 and "unknown --degradation" in bad.output


def test_a_target_block_larger_than_the_lowest_scale_footprint_raises_the_scale_instead_of_failing():
    """A 64 px denoiser patch from 32 px LR crops at x2 does not fit (64 < 65): the sample's scale rises to fit it,
    as PatchSampler does, instead of refusing the image."""
    sampler = SensorPatchSampler([_ramp_image()], lr_size=16, query=40, scale_min=1.5, scale_max=3.0, seed=5)
    batch = sampler.batch(8)
    assert batch.hr.shape == (8, 1, 40, 40) and float(batch.scale.min()) >= 41 / 16


def test_one_psf_module():
    """sensor_degradation holds the one Gaussian PSF (issue 22): the training degradation (degrade.py) and Wald's
    protocol (sharpen/degrade.py) blur with it instead of keeping their own copies."""
    assert synthetic_degrade.gaussian_blur is sd.gaussian_blur
    assert sharpen_degrade.gaussian_blur is sd.gaussian_blur
    x = torch.rand(1, 2, 24, 24, generator=torch.Generator().manual_seed(0))
    blurred = synthetic_degrade.degrade(x, (12, 12), blur_sigma=1.3)
    assert torch.allclose(blurred, synthetic_degrade.downsample(sd.gaussian_blur(x, 1.3), (12, 12)))
