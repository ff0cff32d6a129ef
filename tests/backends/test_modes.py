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
