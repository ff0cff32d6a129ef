"""The `diffusion` SR backend: shapes for 1/3/4/13 bands, per-window seeds, batch-composition independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.windows import Window

from rssr_cli.backends import SRRequest, backend_names, get_backend
from rssr_cli.core.errors import CheckpointError, UsageError
from rssr_cli.geo.grid import hr_grid_for, plan_output_grid
from rssr_cli.model.checkpoint import save_model

from model_helpers import tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_model(tiny_model(), tmp_path_factory.mktemp("m") / "tiny.safetensors", model_id="tiny-test")


def _backend(path, **options):
    return get_backend("diffusion", model=path, device="cpu", threads=1, steps=3, strength=0.4, **options)


def _request(bands: int, seed: int, *, scale: float = 3.5, size: tuple[int, int] = (40, 30), window=(5, 3, 11, 9)):
    grid = plan_output_grid(size[1], size[0], Affine.identity(), scale=scale)
    _, hr = hr_grid_for(Window(*window), grid)
    rng = np.random.default_rng(seed)
    lr = rng.random((bands, window[3], window[2]), dtype=np.float32)
    return SRRequest(lr=lr, grid=hr, seed=seed)


def test_registered():
    assert "diffusion" in backend_names()


@pytest.mark.parametrize("bands", [1, 3, 4, 13])
def test_shapes_and_dtype(model_path, bands):
    req = _request(bands, seed=1)
    (out,) = _backend(model_path).upsample([req])
    assert out.shape == (bands, req.grid.height, req.grid.width) and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_seed_determinism(model_path):
    backend = _backend(model_path)
    a, b = backend.upsample([_request(3, seed=5)]), backend.upsample([_request(3, seed=5)])
    assert np.array_equal(a[0], b[0])
    other = SRRequest(lr=_request(3, seed=5).lr, grid=_request(3, seed=5).grid, seed=6)
    assert not np.array_equal(a[0], backend.upsample([other])[0])


def test_output_independent_of_batch_composition(model_path):
    backend = _backend(model_path)
    target = _request(4, seed=7)
    alone = backend.upsample([target])[0]
    others = [_request(4, seed=s) for s in (8, 9)]
    odd_shape = _request(4, seed=10, window=(0, 0, 13, 12))
    for batch, pos in (
        ([others[0], target, others[1]], 1),
        ([odd_shape, *others, target], 3),
        ([target, odd_shape], 0),
    ):
        out = backend.upsample(batch)
        assert [o.shape for o in out] == [(4, r.grid.height, r.grid.width) for r in batch]
        np.testing.assert_allclose(out[pos], alone, rtol=0, atol=1e-5)
    small_batches = _backend(model_path, batch_size=1).upsample([others[0], target])
    np.testing.assert_allclose(small_batches[1], alone, rtol=0, atol=1e-5)


def test_prior_mode_is_deterministic(model_path):
    backend = _backend(model_path, mode="prior")
    a = backend.upsample([_request(2, seed=1)])[0]
    b = backend.upsample([SRRequest(_request(2, seed=1).lr, _request(2, seed=1).grid, seed=99)])[0]
    assert np.array_equal(a, b)
    assert backend.provenance()["method"] == "diffusion-prior" and backend.provenance()["steps"] == "0"


def test_provenance(model_path):
    prov = _backend(model_path).provenance()
    assert prov["method"] == "diffusion" and prov["model"] == "tiny-test" and len(prov["model_sha256"]) == 64
    assert prov["steps"] == "3" and prov["strength"] == "0.4" and prov["precision"] == "fp32"
    assert all(isinstance(v, str) for v in prov.values())


def test_missing_model(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="RSSR_MODEL"):
        get_backend("diffusion", model=tmp_path / "absent.safetensors", device="cpu", threads=1)
    monkeypatch.setenv("RSSR_MODEL", str(tmp_path / "also_absent.safetensors"))
    with pytest.raises(CheckpointError, match="also_absent"):
        get_backend("diffusion", device="cpu", threads=1)


def test_env_model(model_path, monkeypatch):
    monkeypatch.setenv("RSSR_MODEL", str(model_path))
    assert get_backend("diffusion", device="cpu", threads=1).provenance()["model"] == "tiny-test"


def test_band_mismatch_with_joint_model(tmp_path):
    path = save_model(tiny_model(operator={"in_channels": 3}), tmp_path / "rgb.safetensors")
    backend = _backend(path)
    assert backend.upsample([_request(3, seed=1)])[0].shape[0] == 3
    with pytest.raises(CheckpointError, match="takes 3 bands"):
        backend.upsample([_request(4, seed=1)])


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "fp8"},
        {"mode": "dream"},
        {"strength": 1.5},
        {"steps": 50, "strength": 0.01},
        {"steps": -1},
        {"steps": 0, "strength": 0.0},
    ],
)
def test_bad_options(model_path, options):
    kwargs = {"model": model_path, "device": "cpu", "threads": 1, "steps": 3, "strength": 0.4, **options}
    with pytest.raises(UsageError):
        get_backend("diffusion", **kwargs)
