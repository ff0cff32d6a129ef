"""Any GDAL dataset name is an input: URLs over HTTP with Range requests, /vsi paths, connection strings,
and local names with glob characters taken literally. Remote reads must equal local ones exactly."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from rssr_cli.io import sources
from rssr_cli.pipeline import UpscaleSettings
from rssr_cli.pipeline.jobs import expand_inputs, is_batch, output_name

from cli_helpers import one_error_line, run
from conftest import synthetic_image, write_raster
from http_range_server import parse_ranges, serve_directory

BICUBIC = ("-s", "2", "-m", "bicubic", "-q")


def raster(path: Path) -> tuple[np.ndarray, tuple, object, object]:
    with rasterio.open(path) as ds:
        return ds.read(), tuple(ds.bounds), ds.transform, ds.crs


def assert_same_raster(a: Path, b: Path) -> None:
    data_a, bounds_a, transform_a, crs_a = raster(a)
    data_b, bounds_b, transform_b, crs_b = raster(b)
    assert np.array_equal(data_a, data_b)
    assert bounds_a == bounds_b and transform_a == transform_b and crs_a == crs_b


@pytest.fixture(autouse=True)
def direct_local_http(monkeypatch):
    """The test server is on 127.0.0.1: no proxy (a CI's http_proxy would swallow it), no extension filter."""
    for name in ("GDAL_HTTP_PROXY", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def www(tmp_path) -> Path:
    """A plain striped GeoTIFF and a tiled COG with overviews, served over HTTP."""
    folder = tmp_path / "www"
    folder.mkdir()
    write_raster(folder / "scene.tif", synthetic_image(3, 45, 52, "uint16", seed=1), nodata=0)
    plain = write_raster(tmp_path / "plain.tif", synthetic_image(2, 96, 80, "uint16", seed=2))
    rasterio.shutil.copy(plain, folder / "scene_cog.tif", driver="COG", blocksize=32, overview_resampling="average")
    return folder


@pytest.fixture
def server(www, tmp_path):
    with serve_directory(www, tmp_path / "requests.jsonl") as running:
        yield running


@pytest.fixture
def local_outputs(www, tmp_path) -> dict[str, Path]:
    """Each served file upscaled from its local path: the reference a remote run must equal."""
    outputs = {}
    for name in ("scene.tif", "scene_cog.tif"):
        dst = tmp_path / "local" / name
        dst.parent.mkdir(exist_ok=True)
        assert run("upscale", www / name, "-o", dst, *BICUBIC).exit_code == 0
        outputs[name] = dst
    return outputs


# ---------------------------------------------------------------------------------------- the server


def test_the_test_server_answers_range_requests(server, www):
    import urllib.request

    request = urllib.request.Request(server.url("scene_cog.tif"), headers={"Range": "bytes=4-11"})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 206 and answer.headers["Content-Range"].startswith("bytes 4-11/")
        assert answer.read() == (www / "scene_cog.tif").read_bytes()[4:12]
    head = urllib.request.Request(server.url("scene_cog.tif"), method="HEAD")
    with urllib.request.urlopen(head) as answer:
        assert int(answer.headers["Content-Length"]) == (www / "scene_cog.tif").stat().st_size
        assert answer.headers["Accept-Ranges"] == "bytes"
    assert parse_ranges("bytes=0-9,-5", 100) == [(0, 9), (95, 99)]
    assert parse_ranges("bytes=100-", 100) is None and parse_ranges("lines=1-2", 100) is None


# --------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, local, gdal, stem",
    [
        ("scenes/x.tif", True, "scenes/x.tif", "x"),
        (
            "http://host:8080/a/scene.tif?sig=abc&x=1",
            False,
            "/vsicurl/http://host:8080/a/scene.tif?sig=abc&x=1",
            "scene",
        ),
        ("https://host/a/b.TIF", False, "/vsicurl/https://host/a/b.TIF", "b"),
        ("/vsicurl/https://host/a/c.tif?token=1", False, "/vsicurl/https://host/a/c.tif?token=1", "c"),
        ("s3://bucket/key/s2.tif", False, "/vsis3/bucket/key/s2.tif", "s2"),
        ("gs://bucket/k.tif", False, "/vsigs/bucket/k.tif", "k"),
        ("/vsiaz/container/d/e.tif", False, "/vsiaz/container/d/e.tif", "e"),
        ("/vsizip//data/a.zip/in/f.tif", False, "/vsizip//data/a.zip/in/f.tif", "f"),
        ("GTIFF_DIR:2:/data/g.tif", False, "GTIFF_DIR:2:/data/g.tif", "g_2"),
        (
            "SENTINEL2_L2A:/p/S2B.SAFE/MTD_MSIL2A.xml:10m:EPSG_32633",
            False,
            "SENTINEL2_L2A:/p/S2B.SAFE/MTD_MSIL2A.xml:10m:EPSG_32633",
            "MTD_MSIL2A_10m_EPSG_32633",
        ),
        (
            'STACIT:"https://host/items.json":asset=B04',
            False,
            'STACIT:"https://host/items.json":asset=B04',
            "items_asset_B04",
        ),
        ("C:/data/h.tif", True, "C:/data/h.tif", "h"),
    ],
)
def test_dataset_names(name, local, gdal, stem):
    assert sources.is_local(name) is local
    assert sources.gdal_name(name) == gdal
    assert sources.stem(name) == stem


def test_a_remote_output_name_comes_from_the_url(tmp_path):
    settings = UpscaleSettings(scale=2, method="bicubic")
    assert (
        output_name("{stem}_x{scale}.tif", "https://h/tiles/T33UUP.tif?X-Amz-Signature=1", settings) == "T33UUP_x2.tif"
    )
    assert output_name("{name}", "/vsicurl/http://h/a/b.tif?x=y", settings) == "b.tif"


def test_remote_names_are_never_globbed_and_never_batch_by_themselves(tmp_path):
    url = "http://127.0.0.1:9/x.tif?a=[1]&b=*"
    assert expand_inputs([url, "/vsis3/b/*.tif"]) == [url, "/vsis3/b/*.tif"]
    assert not is_batch([url], str(tmp_path / "out.tif"))
    assert is_batch([url], str(tmp_path) + "/")


# --------------------------------------------------------------------------------- over HTTP, Range


@pytest.mark.parametrize("name", ["scene.tif", "scene_cog.tif"])
@pytest.mark.parametrize("spelling", ["http", "vsicurl"])
def test_upscale_over_http_equals_the_local_run(server, local_outputs, tmp_path, name, spelling):
    url = server.url(name) if spelling == "http" else "/vsicurl/" + server.url(name)
    dst = tmp_path / "remote.tif"
    result = run("upscale", url, "-o", dst, *BICUBIC)
    assert result.exit_code == 0, result.output
    assert_same_raster(dst, local_outputs[name])
    assert server.partial_reads(name) > 0  # read by Range requests, not one whole download
    assert not [r for r in server.requests() if r["path"] == f"/{name}" and r["method"] == "GET" and r["status"] == 200]


def test_a_query_string_is_part_of_the_url_not_a_glob(server, local_outputs, tmp_path):
    dst = tmp_path / "signed.tif"
    result = run("upscale", server.url("scene_cog.tif") + "?X-Amz-Signature=abc&x=[1]", "-o", dst, *BICUBIC)
    assert result.exit_code == 0, result.output
    assert_same_raster(dst, local_outputs["scene_cog.tif"])


def test_batch_over_http_names_outputs_from_the_urls(server, local_outputs, tmp_path):
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    inputs = (
        server.url("scene.tif"),
        "/vsicurl/" + server.url("scene_cog.tif") + "?token=1",
        server.url("missing.tif"),
    )
    result = run("upscale", *inputs, "-o", out, *BICUBIC, "--log-json", log)
    assert result.exit_code == 1  # the missing URL fails, the others are done
    assert sorted(p.name for p in out.iterdir()) == ["scene_cog_x2.tif", "scene_x2.tif"]
    assert_same_raster(out / "scene_x2.tif", local_outputs["scene.tif"])
    assert_same_raster(out / "scene_cog_x2.tif", local_outputs["scene_cog.tif"])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    shown = (
        inputs[0],
        inputs[1].replace("token=1", "token=***"),
        inputs[2],
    )  # a credential-like query value is redacted
    assert [(r["input"], r["status"]) for r in lines] == [(shown[0], "done"), (shown[1], "done"), (shown[2], "failed")]
    assert "404" in lines[2]["error"] and "\n" not in lines[2]["error"]
    again = run("upscale", *inputs[:2], "-o", out, *BICUBIC, "--log-json", log)
    assert again.exit_code == 0
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()[3:]] == ["skipped", "skipped"]


def test_info_over_http_matches_the_local_file(server, www):
    local = run("info", www / "scene_cog.tif", "-s", "2")
    for url in (server.url("scene_cog.tif"), "/vsicurl/" + server.url("scene_cog.tif")):
        remote = run("info", url, "-s", "2")
        assert remote.exit_code == 0, remote.output
        assert remote.stdout.splitlines()[1:] == local.stdout.splitlines()[1:]  # all but the name line
        assert server.url("scene_cog.tif") in remote.stdout.splitlines()[0]


def test_an_unreadable_remote_input_is_one_line(server, tmp_path):
    dst = tmp_path / "out.tif"
    for args in (("upscale", server.url("missing.tif"), "-o", dst, *BICUBIC), ("info", server.url("missing.tif"))):
        result = run(*args)
        assert result.exit_code == 1
        line = one_error_line(result)
        assert "missing.tif" in line and "404" in line
    result = run("upscale", "/vsicurl/http://127.0.0.1:9/nothing.tif", "-o", dst, *BICUBIC)  # nothing listens on 9
    assert result.exit_code == 1 and "nothing.tif" in one_error_line(result)
    assert not dst.exists()


# ------------------------------------------------------------------- /vsi paths, connection strings


def test_vsizip_and_connection_strings_are_inputs(www, local_outputs, tmp_path):
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(www / "scene.tif", "inner/scene.tif")
    for name in (f"/vsizip/{archive}/inner/scene.tif", f"GTIFF_DIR:1:{www / 'scene.tif'}"):
        dst = tmp_path / "out.tif"
        result = run("upscale", name, "-o", dst, *BICUBIC, "--overwrite")
        assert result.exit_code == 0, result.output
        assert_same_raster(dst, local_outputs["scene.tif"])
    out = tmp_path / "batch"
    result = run(
        "upscale", f"GTIFF_DIR:1:{www / 'scene.tif'}", f"/vsizip/{archive}/inner/scene.tif", "-o", out, *BICUBIC
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["scene_1_x2.tif", "scene_x2.tif"]
    assert run("info", f"/vsizip/{archive}/inner/scene.tif").exit_code == 0


# -------------------------------------------------------------- local names with glob characters


def test_existing_files_with_glob_characters_are_taken_literally(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_raster(folder / "scene[1].tif", synthetic_image(1, 20, 24, "uint8", seed=1))
    write_raster(folder / "scene1.tif", synthetic_image(1, 20, 24, "uint8", seed=2))  # what the glob would match
    write_raster(folder / "what?.tif", synthetic_image(1, 20, 24, "uint8", seed=3))

    single = tmp_path / "single.tif"
    assert run("upscale", folder / "scene[1].tif", "-o", single, *BICUBIC).exit_code == 0  # one file, not a batch
    reference = tmp_path / "reference.tif"
    (tmp_path / "copy.tif").write_bytes((folder / "scene[1].tif").read_bytes())
    assert run("upscale", tmp_path / "copy.tif", "-o", reference, *BICUBIC).exit_code == 0
    assert_same_raster(single, reference)

    out = tmp_path / "out"
    assert run("upscale", folder / "scene[1].tif", folder / "what?.tif", "-o", out, *BICUBIC).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["scene[1]_x2.tif", "what?_x2.tif"]
    # a name that does not exist is a pattern
    assert expand_inputs([str(folder / "scene?.tif")]) == [str(folder / "scene1.tif")]
    assert expand_inputs([str(folder / "scene[1].tif")]) == [str(folder / "scene[1].tif")]
