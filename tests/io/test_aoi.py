"""Areas of interest: loading (GeoJSON, WKT, CRS), the output window on the full grid, masking, tile selection."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.warp import transform_geom
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import mapping, shape

from rssr_cli import backends
from rssr_cli.backends.classical import ClassicalBackend
from rssr_cli.core.errors import UsageError
from rssr_cli.io.aoi import AreaOfInterest, aoi_in_raster_crs, load_aoi
from rssr_cli.pipeline import stream, upscale
from rssr_cli.pipeline.blend import RowAccumulator

from conftest import UTM_TRANSFORM, files_in, synthetic_image

# The 40x40 px rasters below span x 500000..500400, y 3999600..4000000 (UTM 33N, 10 m pixels).
X0, Y0 = UTM_TRANSFORM.c, UTM_TRANSFORM.f
L_SHAPE = shapely.Polygon(
    [
        (X0 + 55, Y0 - 45),
        (X0 + 255, Y0 - 45),
        (X0 + 255, Y0 - 145),
        (X0 + 155, Y0 - 145),
        (X0 + 155, Y0 - 295),
        (X0 + 55, Y0 - 295),
    ]
)
TRIANGLE = shapely.Polygon([(X0 + 23, Y0 - 31), (X0 + 377, Y0 - 88), (X0 + 140, Y0 - 361)])
# two squares far apart vertically: the tile rows between them run nothing
TWO_SQUARES = shapely.MultiPolygon(
    [shapely.box(X0 + 12, Y0 - 61, X0 + 97, Y0 - 9), shapely.box(X0 + 250, Y0 - 391, X0 + 333, Y0 - 307)]
)
RUN = dict(method="bicubic", tile=12, overlap=4)


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask() > 0, ds.transform, ds.profile, ds.tags()


def pixel_centres_inside(polygon, transform, height, width) -> np.ndarray:
    """Independent of the pipeline's rasterization: test every pixel centre against the polygon."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs, ys = transform @ (cols, rows)
    return shapely.contains_xy(polygon, xs, ys)


def window_offset(transform, full_transform) -> tuple[float, float]:
    """(col, row) of the output's origin on the full grid, in output pixels."""
    return ~full_transform @ (transform.c, transform.f)


# ---- the output grid ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 2.5, 3.7])
@pytest.mark.parametrize("polygon", [L_SHAPE, TRIANGLE], ids=["L", "triangle"])
def test_output_is_the_aoi_bounds_snapped_outward_on_the_full_grid(make_raster, tmp_path, scale, polygon):
    src = make_raster(1, 40, 40, "uint16")
    full = upscale(src, tmp_path / "full.tif", scale=scale, **RUN)
    part = upscale(src, tmp_path / "aoi.tif", scale=scale, aoi=AreaOfInterest(polygon), **RUN)
    *_, full_transform, _, _ = read(full.dst)
    with rasterio.open(part.dst) as ds:
        transform, bounds = ds.transform, ds.bounds
        assert (ds.width, ds.height) == (part.width, part.height)
    pixel = 10 * 40 / round(40 * scale)
    assert (transform.a, transform.e) == pytest.approx((pixel, -pixel), rel=1e-12)
    assert (transform.a, transform.e) == (full_transform.a, full_transform.e)
    col, row = window_offset(transform, full_transform)
    assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
    west, south, east, north = polygon.bounds
    eps = 1e-6 * pixel
    for outer, inner in [(west, bounds.left), (bounds.right, east), (south, bounds.bottom), (bounds.top, north)]:
        assert -eps <= outer - inner < pixel  # contains the AOI's bounds, by less than a pixel more
    assert part.scale_x == full.scale_x and part.width < full.width


def test_an_aoi_reaching_beyond_the_raster_is_clipped_to_it(make_raster, tmp_path):
    src = make_raster(1, 40, 40, "uint8")
    beyond = shapely.box(X0 - 500, Y0 - 100, X0 + 120, Y0 + 300)
    result = upscale(src, tmp_path / "out.tif", scale=2, aoi=AreaOfInterest(beyond), **RUN)
    with rasterio.open(result.dst) as ds:
        assert tuple(ds.bounds) == pytest.approx((X0, Y0 - 100, X0 + 120, Y0))
        assert (ds.dataset_mask() > 0).all()


# ---- pixels: inside = full run, outside = invalid ------------------------------------------------------------


@pytest.mark.parametrize(
    "bands,dtype,nodata",
    # 1 band for the internal mask: the COG finalize loses a per-dataset mask on 2-band data (a GDAL warp
    # quirk that predates AOIs, see the report); nodata values and NaN do not depend on it
    [(2, "uint16", 0), (2, "float32", None), (1, "uint8", None)],
    ids=["nodata-value", "float-nan", "internal-mask"],
)
@pytest.mark.parametrize("polygon", [L_SHAPE, TRIANGLE, TWO_SQUARES], ids=["L", "triangle", "two-squares"])
@pytest.mark.parametrize("scale", [2.5, 3.7])
def test_inside_equals_the_full_run_and_outside_is_invalid(make_raster, tmp_path, bands, dtype, nodata, polygon, scale):
    data = synthetic_image(bands, 40, 40, dtype)
    if nodata is not None:
        data[data == nodata] = 1
    src = make_raster(data=data, nodata=nodata)
    full, _, full_transform, _, _ = read(upscale(src, tmp_path / "full.tif", scale=scale, **RUN).dst)
    part = upscale(src, tmp_path / "aoi.tif", scale=scale, aoi=AreaOfInterest(polygon), **RUN)
    out, valid, transform, profile, _ = read(part.dst)
    col, row = (round(v) for v in window_offset(transform, full_transform))
    crop = full[:, row : row + out.shape[1], col : col + out.shape[2]]
    inside = pixel_centres_inside(polygon, transform, *out.shape[1:])
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(out[:, inside], crop[:, inside])
    np.testing.assert_array_equal(valid, inside)
    if dtype == "float32":
        assert math.isnan(profile["nodata"]) and np.isnan(out[:, ~inside]).all()
    elif nodata is not None:
        assert profile["nodata"] == nodata and (out[:, ~inside] == nodata).all()
    else:
        assert profile["nodata"] is None  # the internal mask (checked above) marks the outside
    assert cog_validate(str(tmp_path / "aoi.tif"))[0]
    assert files_in(tmp_path) == {src.name, "full.tif", "aoi.tif"}


def test_source_nodata_stays_invalid_inside_the_aoi(make_raster, tmp_path):
    data = synthetic_image(1, 40, 40, "uint16") + 1
    data[:, 8:14, 8:14] = 0
    src = make_raster(data=data, nodata=0)
    aoi = AreaOfInterest(shapely.box(X0 + 30, Y0 - 200, X0 + 200, Y0 - 30))
    out, _, transform, _, _ = read(upscale(src, tmp_path / "out.tif", scale=2, aoi=aoi, **RUN).dst)
    hole = pixel_centres_inside(shapely.box(X0 + 80, Y0 - 140, X0 + 140, Y0 - 80), transform, *out.shape[1:])
    assert hole.any() and (out[0, hole] == 0).all()


# ---- tiles outside the AOI are never read --------------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch):
    """Every halo window read and every backend request (bicubic underneath)."""
    log = {"reads": [], "seeds": []}
    read_window = stream.read_window

    def spy(dataset, info, bands, window):
        log["reads"].append(window)
        return read_window(dataset, info, bands, window)

    class Recording(ClassicalBackend):
        def upsample(self, requests):
            log["seeds"].extend(r.seed for r in requests)
            return super().upsample(requests)

    monkeypatch.setattr(stream, "read_window", spy)
    monkeypatch.setitem(backends._FACTORIES, "recording", lambda **_: Recording("bicubic"))
    return log


def test_windows_outside_the_aoi_are_not_read(make_raster, tmp_path, recorded):
    src = make_raster(1, 40, 40, "uint16")
    settings = dict(scale=2, method="recording", tile=10, overlap=2, seed=5)
    full = upscale(src, tmp_path / "full.tif", **settings)
    full_reads, full_seeds = len(recorded["reads"]), set(recorded["seeds"])
    recorded["reads"].clear(), recorded["seeds"].clear()
    corner = AreaOfInterest(shapely.box(X0 + 3, Y0 - 14, X0 + 17, Y0 - 2))  # inside the top-left tile's core
    part = upscale(src, tmp_path / "aoi.tif", aoi=corner, **settings)
    assert full.windows == full_reads == 16 and full.outside_aoi_windows == 0
    assert part.windows == len(recorded["reads"]) == 1 and part.outside_aoi_windows == 15
    assert part.skipped_windows == 0
    assert set(recorded["seeds"]) <= full_seeds  # the full scene's tiles, hence its seeds


def test_the_accumulator_spans_the_aoi_window_not_the_scene(make_raster, tmp_path, monkeypatch):
    widths: list[int] = []
    extend_to = RowAccumulator.extend_to

    def spy(self, bottom):
        extend_to(self, bottom)
        widths.append(self._weight.shape[1])

    monkeypatch.setattr(RowAccumulator, "extend_to", spy)
    aoi = AreaOfInterest(shapely.box(X0 + 100, Y0 - 400, X0 + 150, Y0))  # a 5 px wide strip, top to bottom
    result = upscale(make_raster(1, 40, 40), tmp_path / "out.tif", scale=2, aoi=aoi, **RUN)
    assert result.width == 10 and set(widths) == {10}


def test_progress_counts_only_the_windows_of_the_aoi(make_raster, tmp_path):
    calls = []
    aoi = AreaOfInterest(shapely.box(X0 + 3, Y0 - 14, X0 + 150, Y0 - 2))
    upscale(make_raster(1, 40, 40), tmp_path / "out.tif", scale=2, aoi=aoi, **RUN, progress=lambda *a: calls.append(a))
    assert calls[-1][0] == calls[-1][1] < 16


# ---- CRS -----------------------------------------------------------------------------------------------------


def test_an_aoi_in_lon_lat_is_reprojected_to_the_raster_crs(make_raster, tmp_path):
    src = make_raster(1, 40, 40, "uint16")
    lonlat = shape(transform_geom("EPSG:32633", "EPSG:4326", mapping(L_SHAPE)))
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": mapping(lonlat)}))
    aoi = load_aoi(str(path))
    assert aoi.crs == CRS.from_epsg(4326)
    in_utm = aoi_in_raster_crs(aoi, CRS.from_user_input("EPSG:32633"))
    assert in_utm.symmetric_difference(L_SHAPE).area < 1e-3 * L_SHAPE.area
    from_file = read(upscale(src, tmp_path / "a.tif", scale=2.5, aoi=aoi, **RUN).dst)
    from_utm = read(upscale(src, tmp_path / "b.tif", scale=2.5, aoi=AreaOfInterest(L_SHAPE), **RUN).dst)
    assert from_file[2] == from_utm[2]  # same window of the full grid
    assert (from_file[1] != from_utm[1]).mean() < 0.01  # at most a few pixel centres on the edges differ


def test_wkt_without_crs_is_in_the_raster_crs_and_a_given_crs_wins(tmp_path):
    raster_crs = CRS.from_epsg(32633)
    wkt = L_SHAPE.wkt
    assert aoi_in_raster_crs(load_aoi(wkt), raster_crs).equals(L_SHAPE)
    assert load_aoi(wkt, crs="EPSG:32633").crs == raster_crs
    path = tmp_path / "legacy.geojson"
    legacy = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": legacy, "features": [_feature(L_SHAPE)]}))
    assert load_aoi(str(path)).crs == raster_crs
    assert aoi_in_raster_crs(load_aoi(str(path)), raster_crs).equals(L_SHAPE)
    assert load_aoi(str(path), crs="EPSG:3857").crs == CRS.from_epsg(3857)


def test_an_aoi_with_a_crs_needs_a_raster_with_one():
    aoi = load_aoi(L_SHAPE.wkt, crs="EPSG:32633")
    with pytest.raises(UsageError, match="raster has no CRS"):
        aoi_in_raster_crs(aoi, None)
    assert aoi_in_raster_crs(AreaOfInterest(L_SHAPE), None) is L_SHAPE


# ---- loading -------------------------------------------------------------------------------------------------


def _feature(geometry, **properties):
    return {"type": "Feature", "properties": properties, "geometry": mapping(geometry)}


def test_geojson_forms_give_the_union_of_their_polygons(tmp_path):
    a, b = shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)
    documents = {
        "geometry.geojson": mapping(a),
        "feature.geojson": _feature(a),
        "collection.geojson": {
            "type": "FeatureCollection",
            "features": [
                _feature(a),
                _feature(b),
                _feature(shapely.Point(9, 9)),
                {"type": "Feature", "geometry": None},
            ],
        },
    }
    loaded = {}
    for name, document in documents.items():
        (tmp_path / name).write_text(json.dumps(document))
        loaded[name] = load_aoi(str(tmp_path / name))
    assert loaded["geometry.geojson"].geometry.equals(a)
    assert loaded["feature.geojson"].geometry.equals(a)
    assert loaded["collection.geojson"].geometry.equals(a.union(b))


def test_wkt_polygon_and_multipolygon_load():
    assert load_aoi("POLYGON ((0 0, 4 0, 4 4, 0 0))").geometry.area == 8
    multi = load_aoi("  multipolygon (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))")
    assert multi.geometry.area == 1 and multi.crs is None


def test_a_self_intersecting_polygon_is_repaired():
    bow_tie = load_aoi("POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))")
    assert bow_tie.geometry.is_valid and bow_tie.geometry.area == pytest.approx(2)


@pytest.mark.parametrize(
    "value,message",
    [
        ("POLYGON ((0 0, 1 0, 1 1", "not valid WKT"),
        ("POLYGN ((0 0, 1 0, 1 1, 0 0))", "no such AOI file"),
        ("POINT (1 2)", "holds no polygon"),
        ("POLYGON ((0 0, 1 1, 2 2, 0 0))", "holds no polygon"),  # no area: repaired into a line
        ("POLYGON EMPTY", "holds no polygon"),
        ("POLYGON ((0 0, 1e400 0, 1 1, 0 0))", "not finite"),
        ("/nonexistent/aoi.geojson", "no such AOI file: /nonexistent/aoi.geojson"),
    ],
)
def test_bad_aoi_values_are_one_line_usage_errors(value, message):
    with pytest.raises(UsageError, match=message) as error:
        load_aoi(value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "is not GeoJSON"),
        (json.dumps({"type": "FeatureCollection", "features": []}), "holds no geometry"),
        (json.dumps(_feature(shapely.LineString([(0, 0), (1, 1)]))), "holds no polygon"),
        (json.dumps({"type": "Polygon", "coordinates": "nonsense"}), "malformed GeoJSON geometry"),
        (
            json.dumps({**mapping(shapely.box(0, 0, 1, 1)), "crs": {"type": "name", "properties": {"name": "EPSG:0"}}}),
            "not a CRS",
        ),
    ],
)
def test_bad_geojson_files_are_one_line_usage_errors(tmp_path, content, message):
    path = tmp_path / "aoi.geojson"
    path.write_text(content)
    with pytest.raises(UsageError, match=message) as error:
        load_aoi(str(path))
    assert "\n" not in str(error.value)


def test_a_directory_and_a_bad_crs_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        load_aoi(str(tmp_path))
    with pytest.raises(UsageError, match="not a CRS"):
        load_aoi(L_SHAPE.wkt, crs="EPSG:999999")


def test_an_aoi_outside_the_raster_is_a_usage_error_and_writes_nothing(make_raster, tmp_path):
    src = make_raster(1, 40, 40, "uint16")
    far = AreaOfInterest(shapely.box(X0 + 1000, Y0 - 100, X0 + 1200, Y0))
    touching = AreaOfInterest(shapely.box(X0 + 400, Y0 - 100, X0 + 500, Y0))  # shares only the east edge
    for aoi in (far, touching):
        with pytest.raises(UsageError, match="the AOI does not intersect the raster"):
            upscale(src, tmp_path / "out.tif", scale=2, aoi=aoi, **RUN)
    assert files_in(tmp_path) == {src.name}


# ---- provenance ------------------------------------------------------------------------------------------------


def test_provenance_records_the_aoi(make_raster, tmp_path):
    src = make_raster(1, 40, 40, "uint16")
    *_, tags = read(upscale(src, tmp_path / "a.tif", scale=2, aoi=AreaOfInterest(TRIANGLE), **RUN).dst)
    assert shapely.from_wkt(tags["RSSR_AOI"]).symmetric_difference(TRIANGLE).area < 1e-6 * TRIANGLE.area
    assert [float(v) for v in tags["RSSR_AOI_BOUNDS"].split(",")] == pytest.approx(TRIANGLE.bounds)
    *_, other = read(upscale(src, tmp_path / "b.tif", scale=2, aoi=AreaOfInterest(L_SHAPE), **RUN).dst)
    *_, whole = read(upscale(src, tmp_path / "c.tif", scale=2, **RUN).dst)
    assert tags["RSSR_AOI_ID"] != other["RSSR_AOI_ID"] and whole["RSSR_AOI_ID"] == "none"
    assert "RSSR_AOI" not in whole


def test_a_long_aoi_tag_is_simplified():
    from rssr_cli.io.aoi import MAX_TAG_CHARS, aoi_tag

    circle = shapely.Point(X0 + 200, Y0 - 200).buffer(150, quad_segs=2000)
    text = aoi_tag(circle, resolution=4.0)
    assert len(text) <= MAX_TAG_CHARS
    assert shapely.from_wkt(text).symmetric_difference(circle).area < 0.01 * circle.area


def test_an_aoi_survives_pickling_and_its_fingerprint_is_stable():
    """A batch may ship settings to other processes (Dask); the id must not depend on the process."""
    aoi = load_aoi(L_SHAPE.wkt, crs="EPSG:32633")
    copy = pickle.loads(pickle.dumps(aoi))
    assert copy.geometry.equals(aoi.geometry) and copy.crs == aoi.crs
    assert copy.fingerprint == aoi.fingerprint == load_aoi(L_SHAPE.wkt, crs="EPSG:32633").fingerprint
    assert load_aoi(L_SHAPE.wkt).fingerprint != aoi.fingerprint
