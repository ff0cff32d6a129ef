"""Paired training (`rssr train --pairs`): the PAIRS file, co-registration with a known shift, harmonization with a
known gain/offset, the sampler's geometry under flips/rotations, nodata and hold-out exclusion, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from typer.testing import CliRunner

from rssr_cli.cli import app
from rssr_cli.core.errors import InputError, UsageError
from rssr_cli.training.data import PatchSampler, TrainImage
from rssr_cli.training.pairs import MixedSampler, PairSampler, PairSpec, load_pair, read_pairs_file, validate_pairs

from conftest import write_raster
from model_helpers import tiny_model

runner = CliRunner()
LR_PIXEL = 20.0
ORIGIN = (500_000.0, 4_000_000.0)


def field(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A scene in LR-pixel units: most variance at long wavelengths (30-90 LR px), like real imagery, plus
    texture at 5-6 LR px."""
    out = np.zeros(np.broadcast(y, x).shape)
    waves = [
        (0.03, 0.01, 0.5, 2.0),
        (0.01, 0.025, 1.3, 1.5),
        (0.21, 0.05, 0.3, 0.5),
        (0.04, 0.17, 1.1, 0.4),
        (0.13, 0.11, 2.0, 0.3),
    ]
    for fy, fx, phase, amplitude in waves:
        out += amplitude * np.sin(2 * np.pi * (fy * y + fx * x) + phase)
    return 0.3 + 0.03 * out


def pixel_means(edges: np.ndarray, shift=(0.0, 0.0), sub: int = 6) -> np.ndarray:
    """field() averaged over square pixels whose edges (LR px units) are given, content moved by shift."""
    n, size = len(edges) - 1, edges[1] - edges[0]
    offsets = (np.arange(sub) + 0.5) / sub * size
    y = (edges[:-1, None] + offsets[None, :]).ravel() - shift[0]
    x = (edges[:-1, None] + offsets[None, :]).ravel() - shift[1]
    return field(y[:, None], x[None, :]).reshape(n, sub, n, sub).mean(axis=(1, 3))


def reflectance(values: np.ndarray) -> np.ndarray:
    """Model units -> uint16 digital numbers (/10000 on reading: radiometry's fixed rule)."""
    return np.rint(values * 10_000).astype(np.uint16)


def write_pair(
    tmp_path: Path, *, ratio: float = 2.5, shift=(0.0, 0.0), gain=1.0, offset=0.0, size=96, hr_offset=0.3, name="p"
):
    """Two sensors seeing field(): LR pixels of LR_PIXEL, HR pixels of LR_PIXEL/ratio on a grid offset by
    hr_offset HR px, the HR content displaced by `shift` LR px, radiometry HR = gain * LR + offset (pixel
    means, as sensors integrate). uint16 reflectance rasters (x 10000), so model units are the values above."""
    lr = reflectance(pixel_means(np.arange(size + 1, dtype=float))[None])
    n = int(size * ratio) - 2
    hr_px = LR_PIXEL / ratio
    hr = gain * pixel_means((np.arange(n + 1) + hr_offset) / ratio, shift) + offset
    lr_path = write_raster(
        tmp_path / f"{name}_lr.tif", lr, transform=Affine(LR_PIXEL, 0, ORIGIN[0], 0, -LR_PIXEL, ORIGIN[1])
    )
    hr_t = Affine(hr_px, 0, ORIGIN[0] + hr_offset * hr_px, 0, -hr_px, ORIGIN[1] - hr_offset * hr_px)
    hr_path = write_raster(tmp_path / f"{name}_hr.tif", reflectance(hr[None]), transform=hr_t)
    return lr_path, hr_path


def test_pairs_file_parsing(tmp_path):
    (tmp_path / "sub").mkdir()
    f = tmp_path / "pairs.txt"
    f.write_text("# comment\n\nsub/a.tif /abs/b.tif   # trailing\nc.tif d.tif 4,3,2 1,2,3\n")
    pairs = read_pairs_file(f)
    assert pairs[0] == PairSpec(tmp_path / "sub/a.tif", Path("/abs/b.tif"))
    assert (pairs[1].lr_bands, pairs[1].hr_bands) == ((4, 3, 2), (1, 2, 3))
    for bad, message in [
        ("a.tif", "expected"),
        ("a b 1,2 1", "2 LR band"),
        ("a b x 1", "bands"),
        ("# none\n", "lists no pair"),
    ]:
        f.write_text(bad + "\n")
        with pytest.raises(UsageError, match=message):
            read_pairs_file(f)
    with pytest.raises(UsageError, match="no such file"):
        read_pairs_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("ratio, shift", [(2.0, (0.0, 0.0)), (2.5, (0.4, -0.25)), (3.0, (-1.2, 0.6))])
def test_load_pair_measures_the_shift_and_fits_the_radiometry(tmp_path, ratio, shift):
    lr, hr = write_pair(tmp_path, ratio=ratio, shift=shift, gain=1.6, offset=0.05)
    pair = load_pair(PairSpec(lr, hr), holdout=0.25)
    assert pair.scale == pytest.approx(ratio)
    assert pair.shift_lr_px == (pytest.approx(shift[0], abs=0.05), pytest.approx(shift[1], abs=0.05))
    assert pair.gain[0] == pytest.approx(1.6, rel=0.03) and pair.offset[0] == pytest.approx(0.05, abs=0.01)
    assert pair.train_rows == round(pair.lr.shape[-2] * 0.75) and pair.lr.shape[-2] >= 90
    # after the correction, the harmonized HR at a pixel shows the LR scene at that pixel
    cy, cx = pair.grid.centers_y() + pair.lr_window[1], pair.grid.centers_x() + pair.lr_window[0]
    inner = (slice(10, -10), slice(10, -10))
    expected = field(cy[:, None], cx[None, :])
    assert np.abs(pair.hr[0] - expected)[inner].max() < 0.01


@pytest.mark.slow  # > 5 s (pytest --durations, issue 22); `make test-fast` leaves it out
def test_content_that_moved_between_acquisitions_is_excluded_not_corrected(tmp_path):
    """Like clouds between two bands: a third of the scene shows a 1 px shift, the rest lines up."""
    size, ratio = 192, 2.0
    lr = pixel_means(np.arange(size + 1, dtype=float))[None].astype(np.float32)
    edges = np.arange(int(size * ratio) + 1) / ratio
    hr = pixel_means(edges)
    hr[:, 256:] = pixel_means(edges, shift=(1.0, 0.0))[:, 256:]  # LR columns 128.. moved down by 1 px
    lr_path = write_raster(tmp_path / "lr.tif", lr, transform=Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1]))
    hr_path = write_raster(
        tmp_path / "hr.tif", hr[None].astype(np.float32), transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])
    )
    pair = load_pair(PairSpec(lr_path, hr_path))
    assert pair.shift_lr_px == (0.0, 0.0)
    assert pair.excluded_share == pytest.approx(1 / 3, abs=0.02)
    assert pair.lr_valid[:, :128].all() and not pair.lr_valid[:, 128:].any()


def test_sampler_coordinates_follow_every_flip_and_rotation(tmp_path):
    rng = np.random.default_rng(1)
    lr = rng.random((1, 64, 64)).astype(np.float32)
    hr = np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2)  # nearest x2: HR pixel = the LR pixel under its centre
    lr_path = write_raster(tmp_path / "lr.tif", lr, transform=Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1]))
    hr_path = write_raster(tmp_path / "hr.tif", hr, transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]))
    pair = load_pair(PairSpec(lr_path, hr_path), holdout=0.0)
    assert pair.shift_lr_px == (pytest.approx(0, abs=0.02), pytest.approx(0, abs=0.02))
    batch = PairSampler([pair], lr_size=16, query=12, seed=0).batch(64)
    assert batch.lr.shape == (64, 1, 16, 16) and batch.hr.shape == (64, 1, 12, 12)
    assert np.allclose(batch.scale.numpy(), 2.0)
    for b in range(64):
        rows = np.floor(batch.ys[b].numpy()).astype(int)
        cols = np.floor(batch.xs[b].numpy()).astype(int)
        want = batch.lr[b, 0].numpy()[np.ix_(rows, cols)]
        np.testing.assert_allclose(batch.hr[b, 0].numpy(), want, atol=0.02)  # 0.02: the fitted gain/offset


def test_sampler_never_draws_nodata_or_held_out_rows(tmp_path):
    rng = np.random.default_rng(2)
    lr = 0.2 + 0.5 * rng.random((1, 80, 64))
    lr[:, 60:] += 5.0  # the held-out rows (holdout 0.25 -> rows 60..79) are recognizable
    lr = reflectance(lr)
    lr[:, 5:20, 5:30] = 0  # nodata
    hr = np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2)
    lr_path = write_raster(tmp_path / "lr.tif", lr, nodata=0, transform=Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1]))
    hr_path = write_raster(tmp_path / "hr.tif", hr, transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]))
    pair = load_pair(PairSpec(lr_path, hr_path), holdout=0.25)
    batch = PairSampler([pair], lr_size=16, query=12, seed=0).batch(128)
    assert batch.lr.min() >= 0.2 - 1e-6 and batch.lr.max() < 1.0
    assert batch.hr.min() > 0.1 and batch.hr.max() < 1.1


def test_pair_problems_are_one_clear_error(tmp_path):
    lr, hr = write_pair(tmp_path)
    with pytest.raises(InputError, match="not finer"):
        load_pair(PairSpec(hr, lr))
    other = write_raster(
        tmp_path / "utm34.tif", rasterio.open(hr).read(), crs="EPSG:32634", transform=rasterio.open(hr).transform
    )
    with pytest.raises(InputError, match="CRS differ"):
        load_pair(PairSpec(lr, other))
    with pytest.raises(UsageError, match="holdout"):
        load_pair(PairSpec(lr, hr), holdout=0.95)
    with pytest.raises(UsageError, match="band"):
        load_pair(PairSpec(lr, hr, (1,), (1, 1)))


def test_mixed_batches_and_validation(tmp_path):
    lr, hr = write_pair(tmp_path, ratio=2.0)
    pair = load_pair(PairSpec(lr, hr))
    rng = np.random.default_rng(0)
    synthetic = PatchSampler(
        [TrainImage(rng.random((1, 96, 96)).astype(np.float32), None, "noise")],
        lr_size=16,
        query=12,
        scale_min=1.5,
        scale_max=3.0,
    )
    batch = MixedSampler(PairSampler([pair], lr_size=16, query=12), synthetic, 0.25).batch(8)
    assert batch.lr.shape == (8, 1, 16, 16) and batch.hr.shape == (8, 1, 12, 12)
    assert np.allclose(batch.scale[:2].numpy(), 2.0)
    scores = validate_pairs(tiny_model().operator, [pair])
    assert set(scores) == {"score", "psnr", "bicubic"} and np.isfinite(scores["score"])
    assert scores["score"] == pytest.approx(scores["psnr"] - scores["bicubic"])


def test_cli_train_on_pairs_records_them_in_the_card(tmp_path):
    lr, hr = write_pair(tmp_path, ratio=2.0, shift=(0.3, 0.0), gain=1.2, offset=0.02)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{lr.name} {hr.name} 1 1\n")
    out = tmp_path / "run"
    args = [
        "train",
        "--pairs",
        str(pairs),
        "-o",
        str(out),
        "--preset",
        "tiny",
        "--stage",
        "prior",
        "--prior-steps",
        "6",
        "--batch-size",
        "4",
        "--val-every",
        "3",
        "--threads",
        "1",
        "-q",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model.json").read_text())
    [record] = card["training"]["pairs"]
    assert record["scale"] == 2.0 and record["shift_corrected_lr_px"][0] == pytest.approx(0.3, abs=0.05)
    assert record["hr_from_lr_gain"][0] == pytest.approx(1.2, rel=0.03)
    assert "pairs_psnr" in (out / "prior" / "log.csv").read_text()
    missing = runner.invoke(app, ["train", "--pairs", str(tmp_path / "nope.txt"), "-o", str(out), "-q"])
    assert missing.exit_code == 2 and "no such file" in missing.output
    nothing = runner.invoke(app, ["train", "-o", str(out), "-q"])
    assert nothing.exit_code == 2 and "no training data" in nothing.output
