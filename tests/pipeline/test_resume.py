"""Issue 23 item 24(b): an interrupted scene resumes at the tile-row level from its kept staging folder when the
request and the input are unchanged (pipeline/resume.py); anything else starts it again from zero."""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import rasterio
import rasterio.windows

from rssr_cli.backends import get_backend
from rssr_cli.core.errors import Interrupted, OutputError
from rssr_cli.io.aoi import load_aoi
from rssr_cli.model.checkpoint import save_model
from rssr_cli.pipeline import UpscaleSettings, upscale
from rssr_cli.pipeline import resume as resume_module
from rssr_cli.pipeline.locks import sweep_stale
from rssr_cli.pipeline.resume import SIDECAR, resume_dir

import s2_products as sp
from conftest import UTM_TRANSFORM, synthetic_image, write_raster
from model_helpers import tiny_model

BICUBIC = UpscaleSettings(scale=2, method="bicubic", tile=16, overlap=4, batch_size=1)


class Counting:
    """A backend that counts the windows it upsamples and raises `error` once `fail_after` windows are done."""

    def __init__(self, inner, fail_after=None, error=None, on_fail=None):
        self.inner, self.windows, self.fail_after, self.on_fail = inner, 0, fail_after, on_fail
        self.error = error or Interrupted("interrupted by SIGTERM", signal.SIGTERM)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def upsample(self, requests):
        if self.fail_after is not None and self.windows >= self.fail_after:
            if self.on_fail is not None:
                self.on_fail()
            raise self.error
        self.windows += len(requests)
        return self.inner.upsample(requests)


def scene(tmp_path: Path, seed: int = 0) -> Path:
    return write_raster(tmp_path / "in.tif", synthetic_image(2, 60, 36, "uint16", seed=seed))


def reference(src: Path, tmp_path: Path, settings: UpscaleSettings, backend) -> tuple[bytes, int]:
    """An uninterrupted run's bytes and window count."""
    counting = Counting(backend)
    dst = tmp_path / "ref" / "out.tif"
    dst.parent.mkdir(exist_ok=True)
    upscale(src, dst, settings, backend=counting)
    return dst.read_bytes(), counting.windows


def interrupted(src: Path, dst: Path, settings: UpscaleSettings, backend, after: int, **kw) -> None:
    with pytest.raises(Interrupted):
        upscale(src, dst, settings, backend=Counting(backend, fail_after=after, **kw))
    assert not dst.exists()


def tiny_diffusion(tmp_path: Path):
    model = save_model(tiny_model(), tmp_path / "tiny.safetensors", model_id="tiny-resume")
    return get_backend("diffusion", model=model, device="cpu", threads=1, steps=2, strength=0.3)


@pytest.mark.parametrize("method", ["bicubic", "diffusion"])
def test_an_interrupted_scene_resumes_and_equals_an_uninterrupted_run(tmp_path, method):
    backend = get_backend("bicubic") if method == "bicubic" else tiny_diffusion(tmp_path)
    settings = replace(BICUBIC, method=method, seed=7)
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    expected, total = reference(src, tmp_path, settings, backend)
    assert total >= 12  # 4 tile rows of 3
    interrupted(src, dst, settings, backend, after=total - 2)
    folder = resume_dir(dst)
    recorded = json.loads((folder / SIDECAR).read_text())
    assert recorded["rows_written"] > 0
    rerun, reported = Counting(backend), []
    upscale(src, dst, settings, backend=rerun, progress=lambda done, total: reported.append((done, total)))
    # Only the last finished tile row (its patches overlap the rows below it) and the unfinished one are computed,
    # and progress counts those (a cron line's ETA is of the work left).
    assert rerun.windows == 6 and reported[-1] == (6, 6)
    assert dst.read_bytes() == expected
    assert not folder.exists()


@pytest.mark.parametrize("nodata", [0, None], ids=["nodata", "internal-mask"])
def test_an_aoi_scene_resumes_byte_for_byte(tmp_path, nodata):
    """The output's invalid pixels (nodata values, or the internal mask of an AOI cut from a raster without nodata)
    are updated in place as its values are."""
    data = synthetic_image(2, 60, 36, "uint16")
    data[:, 20:30, 5:15] = 0
    src = write_raster(tmp_path / "in.tif", data, nodata=nodata)
    west, north = UTM_TRANSFORM.c, UTM_TRANSFORM.f
    aoi = load_aoi(
        f"POLYGON(({west + 35} {north - 20}, {west + 300} {north - 60}, {west + 200} {north - 560}, {west + 35} {north - 20}))"
    )
    settings, backend, dst = replace(BICUBIC, aoi=aoi), get_backend("bicubic"), tmp_path / "out.tif"
    expected, total = reference(src, tmp_path, settings, backend)
    interrupted(src, dst, settings, backend, after=total - 2)
    rerun = Counting(backend)
    upscale(src, dst, settings, backend=rerun)
    assert 0 < rerun.windows < total
    assert dst.read_bytes() == expected


def test_a_checkpoint_is_enough_to_resume_after_a_kill(tmp_path, monkeypatch):
    """kill -9 writes no side-car: the last checkpoint's files (what a kill leaves on disk) must do."""
    monkeypatch.setattr(resume_module, "CHECKPOINT_SECONDS", 0.0)
    backend = get_backend("bicubic")
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    expected, total = reference(src, tmp_path, BICUBIC, backend)
    snapshot = tmp_path / "snapshot"
    interrupted(src, dst, BICUBIC, backend, after=7, on_fail=lambda: shutil.copytree(resume_dir(dst), snapshot))
    shutil.rmtree(resume_dir(dst))
    shutil.copytree(snapshot, resume_dir(dst))
    rerun = Counting(backend)
    upscale(src, dst, BICUBIC, backend=rerun)
    assert 0 < rerun.windows < total
    assert dst.read_bytes() == expected


@pytest.mark.parametrize("change", [{"seed": 3}, {"scale": 3.0}, {"tile": 20}, {"batch_size": 2}])
def test_a_changed_request_or_tiling_starts_from_zero(tmp_path, change):
    backend = get_backend("bicubic")
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    interrupted(src, dst, BICUBIC, backend, after=7)
    assert resume_dir(dst).is_dir()
    changed = replace(BICUBIC, **change)
    expected, total = reference(src, tmp_path, replace(changed, overwrite=False), backend)
    rerun = Counting(backend)
    upscale(src, dst, changed, backend=rerun)
    assert rerun.windows == total
    assert dst.read_bytes() == expected
    assert not resume_dir(dst).exists()


def test_a_replaced_input_starts_from_zero(tmp_path):
    backend = get_backend("bicubic")
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    interrupted(src, dst, BICUBIC, backend, after=7)
    scene(tmp_path, seed=5)  # the same path, other pixels
    expected, total = reference(src, tmp_path, BICUBIC, backend)
    rerun = Counting(backend)
    upscale(src, dst, BICUBIC, backend=rerun)
    assert rerun.windows == total
    assert dst.read_bytes() == expected


def test_the_stale_sweep_keeps_a_resume_folder_and_a_bug_removes_it(tmp_path):
    backend = get_backend("bicubic")
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    interrupted(src, dst, BICUBIC, backend, after=7)
    sweep_stale(tmp_path)
    assert (resume_dir(dst) / SIDECAR).is_file()
    with pytest.raises(ZeroDivisionError):  # not a processing failure nor an interrupt: nothing kept
        upscale(src, dst, BICUBIC, backend=Counting(backend, fail_after=8, error=ZeroDivisionError()))
    assert not resume_dir(dst).exists()


def test_a_planted_resume_folder_is_refused(tmp_path):
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    (tmp_path / "elsewhere").mkdir()
    resume_dir(dst).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="not a resume folder"):
        upscale(src, dst, BICUBIC)
    assert (tmp_path / "elsewhere").is_dir() and not dst.exists()


def test_a_failed_fidelity_check_keeps_nothing_to_resume(tmp_path):
    """Every row was written before the check failed: a rerun would fail alike, so the folder is not kept."""
    from rssr_cli.core.errors import RssrError
    from rssr_cli.evaluation.fidelity_report import FidelityChecks, FidelityOptions

    src, dst = scene(tmp_path), tmp_path / "out.tif"
    strict = replace(BICUBIC, fidelity=FidelityOptions(checks=FidelityChecks(max_consistency_error=0.0)))
    with pytest.raises(RssrError):
        upscale(src, dst, strict)
    assert not dst.exists() and not resume_dir(dst).exists()


def test_an_interrupt_during_the_cog_build_resumes_without_computing_a_window(tmp_path, monkeypatch):
    from rssr_cli.pipeline import report

    backend = get_backend("bicubic")
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    expected, _ = reference(src, tmp_path, BICUBIC, backend)
    build = report.finalize_cogs

    def killed_build(layers, **kw):  # leaves a half-built COG behind, as a killed rio-cogeo does
        (layers[0].intermediate.parent / "tmpcog.tif").write_bytes(b"half")
        raise Interrupted("interrupted by SIGINT", signal.SIGINT)

    monkeypatch.setattr(report, "finalize_cogs", killed_build)
    with pytest.raises(Interrupted):
        upscale(src, dst, BICUBIC, backend=backend)
    seen = []
    monkeypatch.setattr(
        report,
        "finalize_cogs",
        lambda layers, **kw: (
            seen.extend(p.name for p in layers[0].intermediate.parent.iterdir()),
            build(layers, **kw),
        ),
    )
    rerun = Counting(backend)
    upscale(src, dst, BICUBIC, backend=rerun)
    assert rerun.windows == 0 and "tmpcog.tif" not in seen
    assert dst.read_bytes() == expected


def test_the_same_command_with_overwrite_resumes_and_so_does_a_batch(tmp_path):
    """A cron line carrying --overwrite (its output existed), and a batch (which always replaces its outputs), rerun
    the same request: they resume."""
    from rssr_cli.pipeline.jobs import SceneJob
    from rssr_cli.pipeline.provenance import Provenance
    from rssr_cli.pipeline.scenes import DONE, process_scene

    backend = get_backend("bicubic")
    src, dst = scene(tmp_path), tmp_path / "out.tif"
    expected, total = reference(src, tmp_path, BICUBIC, backend)
    dst.write_bytes(b"yesterday's output")
    settings = replace(BICUBIC, overwrite=True)
    interrupted_run = Counting(backend, fail_after=total - 2)
    with pytest.raises(Interrupted):
        upscale(src, dst, settings, backend=interrupted_run)
    rerun = Counting(backend)
    upscale(src, dst, settings, backend=rerun)
    assert rerun.windows == 6 and dst.read_bytes() == expected

    job = SceneJob(src, tmp_path / "batch.tif")
    failing = Counting(backend, fail_after=total - 2)
    with pytest.raises(Interrupted):
        process_scene(job, BICUBIC, lambda s: (Provenance.of("bicubic", failing), failing))
    rerun = Counting(backend)
    assert process_scene(job, BICUBIC, lambda s: (Provenance.of("bicubic", rerun), rerun)).status == DONE
    assert rerun.windows == 6 and job.dst.read_bytes() == expected


# ------------------------------------------------------------------ band stacks: a product resumes band by band

# on the 10, 20 and 60 m grids of the committed crops: 54 x 54 px at 10 m, 27 x 27 at 20 m, 9 x 9 at 60 m
SHARED_BOUNDS = (441780.0, 4166280.0, 442320.0, 4166820.0)
STACK = UpscaleSettings(resolution=5, method="bicubic", bands=("B04", "B8A", "B01"), tile=16, overlap=4, batch_size=1)


@pytest.fixture
def product(tmp_path) -> Path:
    """A small L1C .SAFE (GeoTIFF bands) whose three bands are each streamed (x2, x4, x12 onto the 5 m grid)."""
    bands = sp.crop_bands(tmp_path / "crops", ("B04", "B8A", "B01"), SHARED_BOUNDS)
    return sp.make_l1c(tmp_path / "product", suffix=".tif", bands=("B04", "B8A", "B01"), source_dir=bands)


def band_of(product: Path, name: str) -> Path:
    return next(product.rglob(f"*_{name}.tif"))


@pytest.mark.parametrize(
    "after, bands_done, computed",
    [
        (
            12,
            0,
            8 + 4 + 1,
        ),  # B04's first three tile rows written: its last two (the third's patches overlap the fourth's rows), B8A, B01
        (18, 1, 4 + 1),  # B04 written and B8A's first tile row: B8A's two tile rows and B01, B04 not computed again
    ],
    ids=["mid-first-band", "mid-second-band"],
)
def test_an_interrupted_product_resumes_and_equals_an_uninterrupted_run(product, tmp_path, after, bands_done, computed):
    backend = get_backend("bicubic")
    dst = tmp_path / "out.tif"
    expected, total = reference(product, tmp_path, STACK, backend)
    assert total == 16 + 4 + 1  # 54 px of B04 at tile 16: 4 x 4 windows, then B8A's 2 x 2, then B01's 1
    interrupted(product, dst, STACK, backend, after=after)
    recorded = json.loads((resume_dir(dst) / SIDECAR).read_text())
    assert recorded["bands_done"] == bands_done and recorded["band"]["rows_written"] > 0
    assert recorded["files"] == ["stream.tif"]
    rerun, reported = Counting(backend), []
    upscale(product, dst, STACK, backend=rerun, progress=lambda done, total: reported.append((done, total)))
    assert rerun.windows == computed and reported[-1] == (computed, computed)  # progress counts the work left
    assert dst.read_bytes() == expected
    assert not resume_dir(dst).exists()


@pytest.mark.parametrize("after, computed", [(12, 8 + 4 + 1), (17, 4 + 1)], ids=["mid-band", "after-a-band"])
def test_a_product_resumes_from_a_checkpoint_after_a_kill(product, tmp_path, monkeypatch, after, computed):
    """kill -9 writes no side-car: the last checkpoint (after a tile row or a band) must do."""
    monkeypatch.setattr(resume_module, "CHECKPOINT_SECONDS", 0.0)
    backend = get_backend("bicubic")
    dst, snapshot = tmp_path / "out.tif", tmp_path / "snapshot"
    expected, total = reference(product, tmp_path, STACK, backend)
    interrupted(product, dst, STACK, backend, after=after, on_fail=lambda: shutil.copytree(resume_dir(dst), snapshot))
    shutil.rmtree(resume_dir(dst))
    shutil.copytree(snapshot, resume_dir(dst))
    rerun = Counting(backend)
    upscale(product, dst, STACK, backend=rerun)
    assert rerun.windows == computed
    assert dst.read_bytes() == expected


def test_a_product_zip_resumes(product, tmp_path):
    backend = get_backend("bicubic")
    zipped = sp.make_zip(product, tmp_path / f"{product.name}.zip")
    dst = tmp_path / "out.tif"
    expected, total = reference(zipped, tmp_path, STACK, backend)
    interrupted(zipped, dst, STACK, backend, after=18)
    rerun = Counting(backend)
    upscale(zipped, dst, STACK, backend=rerun)
    assert rerun.windows == 5 and dst.read_bytes() == expected


@pytest.mark.parametrize("change", ["request", "tiling", "band read"])
def test_a_product_with_another_request_or_band_starts_from_zero(product, tmp_path, change):
    backend = get_backend("bicubic")
    dst = tmp_path / "out.tif"
    interrupted(product, dst, STACK, backend, after=18)
    settings = STACK
    if change == "request":
        settings = replace(
            STACK,
            aoi=load_aoi("POLYGON((441870 4166370, 442130 4166370, 442130 4166610, 441870 4166610, 441870 4166370))"),
        )
    elif change == "tiling":
        settings = replace(STACK, tile=20)
    else:  # the same size and mtime, other pixels: the band's fingerprint differs
        band = band_of(product, "B8A")
        info = band.stat()
        with rasterio.open(band, "r+") as ds:
            ds.write(ds.read() // 2 + 1)
        os.utime(band, ns=(info.st_atime_ns, info.st_mtime_ns))
    expected, total = reference(product, tmp_path, settings, backend)
    rerun = Counting(backend)
    upscale(product, dst, settings, backend=rerun)
    assert rerun.windows == total
    assert dst.read_bytes() == expected


def test_a_product_resumes_when_a_file_it_does_not_read_changed(product, tmp_path):
    """The key holds the identity of the bands the run reads: a touched manifest or an unread band changes nothing."""
    backend = get_backend("bicubic")
    dst = tmp_path / "out.tif"
    expected, total = reference(product, tmp_path, STACK, backend)
    interrupted(product, dst, STACK, backend, after=18)
    (product / "MTD_MSIL1C.xml").write_text("<touched/>\n")
    rerun = Counting(backend)
    upscale(product, dst, STACK, backend=rerun)
    assert rerun.windows == 5 and dst.read_bytes() == expected


def test_only_stacks_of_local_bands_have_a_resume_key(product):
    """A remote band's identity is its href (its content cannot be compared): such a stack starts from zero."""
    from rasterio.transform import Affine

    from rssr_cli.io.cog import OutputSpec
    from rssr_cli.io.source_identity import bands_identity

    band = str(band_of(product, "B04"))
    spec = OutputSpec(8, 8, Affine.identity(), None, "uint16", 0, False, (None,), (), (1.0,), (0.0,), {}, ({},))
    window = rasterio.windows.Window(0, 0, 8, 8)
    local = bands_identity([("B04", band)])
    assert resume_module.resume_key(local, spec, STACK, window, band_files=[band]) is not None
    remote = "https://example.com/B04.tif"
    tags = bands_identity([("B04", remote)])
    assert resume_module.resume_key(tags, spec, STACK, window, band_files=[remote]) is None
    assert resume_module.resume_key(local, spec, STACK, window, band_files=[band, "/vsis3/bucket/B8A.tif"]) is None


@pytest.fixture
def guided_product(tmp_path, monkeypatch) -> Path:
    """The four 10 m guides, B11 (guided at x5) and B01 (x15: beyond the sharpener's scales, run by the backend),
    with a tiny random sharpener."""
    import torch

    from rssr_cli.sharpen import apply as sharpen_apply
    from rssr_cli.sharpen.model import TINY_SPEC, build_sharpener, save_sharpener

    torch.manual_seed(0)
    model = build_sharpener(TINY_SPEC)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    monkeypatch.setenv(sharpen_apply.SHARPENER_ENV, str(save_sharpener(model, tmp_path / "sharpener", {"name": "t"})))
    names = ("B02", "B03", "B04", "B08", "B11", "B01")
    bands = sp.crop_bands(tmp_path / "crops", names, SHARED_BOUNDS)
    return sp.make_l1c(tmp_path / "product", suffix=".tif", bands=names, source_dir=bands)


@pytest.mark.parametrize(
    "after, bands_done, computed",
    [
        (2, 0, 4 + 1),  # in B04's stream, its first tile row written: B04 again (its patches overlap), B01
        (4, 2, 1),  # B04 written and B11 sharpened: only B01 is left
    ],
    ids=["in-the-first-band", "after-the-guided-band"],
)
def test_a_guided_product_resumes_and_equals_an_uninterrupted_run(
    guided_product, tmp_path, after, bands_done, computed
):
    backend = tiny_diffusion(tmp_path)
    settings = UpscaleSettings(
        resolution=4, method="diffusion", bands=("B04", "B11", "B01"), tile=32, overlap=4, batch_size=1, seed=3
    )
    dst = tmp_path / "out.tif"
    expected, total = reference(guided_product, tmp_path, settings, backend)
    assert total == 4 + 1  # the backend's windows: B04's 2 x 2, B01's one (the guides are only read)
    interrupted(guided_product, dst, settings, backend, after=after)
    recorded = json.loads((resume_dir(dst) / SIDECAR).read_text())
    assert recorded["bands_done"] == bands_done
    rerun = Counting(backend)
    upscale(guided_product, dst, settings, backend=rerun)
    assert rerun.windows == computed
    assert dst.read_bytes() == expected
    with rasterio.open(dst) as out:
        assert [out.tags(i)["RSSR_BAND_METHOD"] for i in (1, 2, 3)] == ["diffusion", "guided", "diffusion"]


def test_a_stack_with_remote_bands_starts_from_zero(product, tmp_path, monkeypatch):
    """A local STAC item whose assets are URLs: their content cannot be compared, so nothing is kept to resume."""
    from http_range_server import serve_directory

    for name in ("GDAL_HTTP_PROXY", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    for name in ("B04", "B8A"):
        shutil.copy(band_of(product, name), www / f"{name}.tif")
    settings = replace(STACK, bands=("red", "nir08"))
    backend, dst = get_backend("bicubic"), tmp_path / "out.tif"
    with serve_directory(www, tmp_path / "requests.jsonl") as server:
        assets = {
            key: {"href": server.url(f"{name}.tif"), "type": "image/tiff", "eo:bands": [{"name": key}]}
            for name, key in (("B04", "red"), ("B8A", "nir08"))
        }
        item = tmp_path / "item.json"
        item.write_text(
            json.dumps({"type": "Feature", "id": "x", "properties": {}, "geometry": None, "assets": assets})
        )
        expected, total = reference(item, tmp_path, settings, backend)
        interrupted(item, dst, settings, backend, after=18)
        assert not resume_dir(dst).exists()
        rerun = Counting(backend)
        upscale(item, dst, settings, backend=rerun)
    assert rerun.windows == total == 16 + 4
    assert dst.read_bytes() == expected
