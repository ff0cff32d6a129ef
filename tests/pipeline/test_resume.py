"""Issue 23 item 24(b): an interrupted scene resumes at the tile-row level from its kept staging folder when the
request and the input are unchanged (pipeline/resume.py); anything else starts it again from zero."""

from __future__ import annotations

import json
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from rssr_cli.backends import get_backend
from rssr_cli.core.errors import Interrupted, OutputError
from rssr_cli.io.aoi import load_aoi
from rssr_cli.model.checkpoint import save_model
from rssr_cli.pipeline import UpscaleSettings, upscale
from rssr_cli.pipeline import resume as resume_module
from rssr_cli.pipeline.locks import sweep_stale
from rssr_cli.pipeline.resume import SIDECAR, resume_dir

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
