"""`--mode faithful|realistic` and `--samples K` (issue 21): the prior vs a draw of a residual-shifting chain, tagged."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from rssr_cli.model.checkpoint import save_model

from cli_helpers import upscale_with_model
from model_helpers import tiny_chain, tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {
        "chain": save_model(tiny_chain(seed=2), folder / "chain.safetensors", model_id="tiny-chain"),
        "ddpm": save_model(tiny_model(seed=3), folder / "ddpm.safetensors", model_id="tiny-ddpm"),
    }


def _upscale(src, dst, model, *extra):
    return upscale_with_model(src, dst, model, "--overwrite", *extra)


def _read(path):
    with rasterio.open(path) as d:
        return d.read().astype(np.float64), d.tags()


def test_faithful_is_the_prior_and_realistic_draws_a_tagged_seeded_sample(make_raster, tmp_path, models):
    src = make_raster(2, 24, 20, "uint16")
    runs = {}
    for name, extra in {
        "faithful": ["--mode", "faithful"],
        "a": ["--mode", "realistic", "--seed", "1"],
        "b": ["--mode", "realistic", "--seed", "1"],
        "c": ["--mode", "realistic", "--seed", "2"],
        "mean": ["--mode", "realistic", "--seed", "1", "--samples", "3"],
    }.items():
        result = _upscale(src, tmp_path / f"{name}.tif", models["chain"], *extra)
        assert result.exit_code == 0, result.output
        runs[name] = _read(tmp_path / f"{name}.tif")
    (faithful, ft), (a, at), (b, _), (c, _), (mean, mt) = (runs[k] for k in ("faithful", "a", "b", "c", "mean"))
    assert ft["RSSR_MODE"] == "faithful" and ft["RSSR_STEPS"] == "0" and ft["RSSR_METHOD"] == "diffusion-prior"
    assert (
        at["RSSR_MODE"] == "realistic"
        and at["RSSR_STEPS"] == "4"
        and at["RSSR_CHAIN_STEPS"] == "4"
        and at["RSSR_KAPPA"] == "1"
    )
    assert at["RSSR_SAMPLES"] == "1" and mt["RSSR_SAMPLES"] == "3"
    np.testing.assert_array_equal(a, b)  # the seed decides the sample
    assert not np.array_equal(a, c) and not np.array_equal(a, faithful)
    # the mean of 3 samples lies closer to the prior than one sample does (the samples scatter around it)
    assert np.abs(mean - faithful).mean() < np.abs(a - faithful).mean()


def test_realistic_needs_a_trained_chain_and_samples_need_realistic(make_raster, tmp_path, models):
    src = make_raster(1, 16, 16, "uint8")
    result = _upscale(src, tmp_path / "x.tif", models["ddpm"], "--mode", "realistic")
    assert result.exit_code == 2 and "residual-shifting chain" in result.output and not (tmp_path / "x.tif").exists()
    result = _upscale(src, tmp_path / "y.tif", models["chain"], "--mode", "faithful", "--samples", "2")
    assert result.exit_code == 2 and "--mode realistic" in result.output
    for bad in (["--mode", "dreamy"], ["--mode", "realistic", "--samples", "0"]):
        result = _upscale(src, tmp_path / "z.tif", models["chain"], *bad)
        assert result.exit_code == 2 and result.output.count("error:") == 1


def test_a_chain_models_card_default_is_a_realistic_sample_of_the_whole_chain(make_raster, tmp_path, models):
    src = make_raster(1, 16, 16, "uint8")
    assert _upscale(src, tmp_path / "d.tif", models["chain"]).exit_code == 0
    _, tags = _read(tmp_path / "d.tif")
    assert tags["RSSR_MODE"] == "realistic" and tags["RSSR_STEPS"] == "4"


def test_a_chain_card_with_an_error_head_and_a_range_correction_runs_tiled_and_reproduces_its_input(
    make_raster, tmp_path
):
    """The fourth stop's sampler settings together (learned error head as the v0 map, deviation gains, null-space
    projection, range correction 1) through the whole pipeline, several windows: finite output, and a sample seen
    through the bicubic degradation is its input within a few DN (uint16 rounding, window seams) where the faithful
    output (the tiny untrained prior) is hundreds of DN off."""
    chain = tiny_chain(seed=5)
    chain.add_error_head(width=4)
    chain.sampler_defaults.update(
        variance_correction=1.0,
        local_error="head",
        null_space="bicubic",
        range_correction=1.0,
        deviation_gain=[1.5, 1.2, 1.0, 0.9, 0.8, 0.8],
    )
    model = save_model(chain, tmp_path / "head.safetensors", model_id="tiny-chain-head")
    src = make_raster(2, 30, 26, "uint16")
    common = ["--tile", "16", "--overlap", "4"]
    runs = {}
    for name, extra in {"faithful": ["--mode", "faithful"], "draw": ["--mode", "realistic", "--seed", "3"]}.items():
        result = _upscale(src, tmp_path / f"{name}.tif", model, *common, *extra)
        assert result.exit_code == 0, result.output
        runs[name] = _read(tmp_path / f"{name}.tif")[0]
    with rasterio.open(src) as d:
        lr = d.read().astype(np.float64)
    from rssr_cli.degradation.degrade import downsample

    def gap(hr):
        seen = downsample(torch.from_numpy(hr)[None].float(), lr.shape[-2:])[0].double().numpy()
        return np.abs(seen - lr)[:, 2:-2, 2:-2].mean()  # away from the raster's edges

    assert np.isfinite(runs["draw"]).all() and not np.array_equal(runs["draw"], runs["faithful"])
    assert gap(runs["draw"]) < 0.05 * gap(runs["faithful"])  # without the range correction: equal
