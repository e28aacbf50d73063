"""dltools.io.strokes: strokes from label images, the original _mres.mat files and GeoJSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio.warp
import scipy.io
import shapely
from rasterio.crs import CRS
from rasterio.transform import Affine

from dltools.errors import DltoolsError
from dltools.io.geo import read_profile, write_raster
from dltools.io.images import write_image
from dltools.io.labels import read_labels
from dltools.io.strokes import read_strokes, stroke_dtype, write_stroke_layer
from dltools.io.vectors import read_layer, write_layer

NAMES = ["water", "sand", "veg"]


def blocks(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A label image of random 10x10 blocks of classes 0..3 (0 = no stroke)."""
    small = rng.integers(0, 4, (shape[0] // 10, shape[1] // 10)).astype(np.uint8)
    return np.repeat(np.repeat(small, 10, axis=0), 10, axis=1)


def test_stroke_dtype_widens_above_254_classes():
    assert stroke_dtype(254) == np.uint8 and stroke_dtype(255) == np.uint16


def test_label_image_of_the_same_size_is_read_as_is(tmp_path):
    labels = blocks(np.random.default_rng(0), (200, 300))
    write_image(tmp_path / "a_doodles.png", labels)
    sparse = read_strokes(tmp_path / "a_doodles.png", (200, 300), NAMES)
    assert sparse.dtype == np.uint8 and (sparse == labels).all()


def test_label_image_of_another_size_is_resized_by_nearest_neighbour(tmp_path):
    labels = blocks(np.random.default_rng(1), (100, 150))
    write_image(tmp_path / "half.png", labels)
    sparse = read_strokes(tmp_path / "half.png", (200, 300), NAMES)
    assert (sparse == np.repeat(np.repeat(labels, 2, axis=0), 2, axis=1)).all()  # no new values
    write_image(tmp_path / "near.tif", labels[:, :149].astype(np.uint16))  # 0.7 % off: accepted
    assert read_strokes(tmp_path / "near.tif", (200, 300), NAMES).shape == (200, 300)


def test_label_image_of_another_aspect_ratio_is_refused(tmp_path):
    write_image(tmp_path / "square.png", np.zeros((100, 100), np.uint8))
    with pytest.raises(DltoolsError, match=r"square.png is 100x100 .* image is 300x200"):
        read_strokes(tmp_path / "square.png", (200, 300), NAMES)


def test_class_numbers_beyond_the_class_list_are_refused(tmp_path):
    labels = np.zeros((20, 30), np.uint8)
    labels[3, 4], labels[5, 6] = 5, 7
    write_image(tmp_path / "bad.png", labels)
    with pytest.raises(DltoolsError, match=r"class value\(s\) \[5, 7\] but only 3 classes"):
        read_strokes(tmp_path / "bad.png", (20, 30), NAMES)


def test_colour_label_images_and_unknown_formats_are_refused(tmp_path):
    write_image(
        tmp_path / "rgb.png",
        np.dstack([np.zeros((20, 30), np.uint8)] * 2 + [np.ones((20, 30), np.uint8)]),
    )
    with pytest.raises(DltoolsError, match="3 different bands"):
        read_strokes(tmp_path / "rgb.png", (20, 30), NAMES)
    (tmp_path / "strokes.csv").write_text("x,y\n")
    with pytest.raises(DltoolsError, match=r"cannot read strokes from a '\.csv' file"):
        read_strokes(tmp_path / "strokes.csv", (20, 30), NAMES)


def test_real_float_label_raster_reads_as_strokes(shared_dir):
    """A St Margaret's label raster (float64, 0 = unlabelled) used as strokes for its photo."""
    path = shared_dir / "data" / "stmarg" / "train" / "SCLS_StMarg26607.tif"
    names = ["water", "sediment", "green vegetation"]
    with rasterio.open(path) as src:
        raw = src.read(1)
    sparse = read_strokes(path, (1960, 3008), names)
    assert sparse.dtype == np.uint8 and (sparse == raw).all()
    half = read_strokes(path, (980, 1504), names)
    for k in range(4):  # nearest neighbour keeps each class's share of the image
        assert abs((half == k).mean() - (raw == k).mean()) < 0.005
    with pytest.raises(DltoolsError, match=r"class value\(s\) \[3\] but only 2 classes"):
        read_strokes(path, (1960, 3008), names[:2])


# -- _mres.mat -------------------------------------------------------------------------------


def _raw_mat(path: Path) -> tuple[np.ndarray, list[str]]:
    """The file's own sparse (k = its class k - 1) and its labels, straight from scipy."""
    mat = scipy.io.loadmat(path, variable_names=["sparse", "labels"])
    return mat["sparse"], [str(s).strip() for s in mat["labels"]]


def test_mres_strokes_are_matched_to_the_class_list_by_name(shared_dir):
    gt = shared_dir / "data" / "dltools_formats" / "gt"
    files = [gt / "D800_20160308_221825-0_mres.mat", gt / "D800_20160308_221737-0_mres.mat"]
    raws = [_raw_mat(f) for f in files]
    assert raws[0][1] != raws[1][1] and sorted(raws[0][1]) == sorted(raws[1][1])
    for (path, (raw, own)), (_, other) in zip(
        zip(files, raws, strict=True), raws[::-1], strict=True
    ):
        sparse = read_strokes(path, raw.shape, other)  # read with the *other* file's order
        assert sparse.dtype == np.uint8 and sparse.shape == (4912, 7360)
        assert ((sparse == 0) == (raw == 0)).all()
        for name in own:  # every stroke pixel keeps its class *name*
            assert ((sparse == other.index(name) + 1) == (raw == own.index(name) + 1)).all(), name
        assert (sparse != raw).any()  # the numbers did change


def test_mres_with_classes_missing_from_the_list_is_refused(shared_dir):
    path = shared_dir / "data" / "dltools_formats" / "gt" / "D800_20160308_221737-0_mres.mat"
    with pytest.raises(DltoolsError, match="wetsand"):
        read_strokes(path, (4912, 7360), ["agricultural", "anthro", "water"])


def test_mres_without_strokes_is_refused(shared_dir):
    path = shared_dir / "data" / "dltools_formats" / "gt" / "D800_20160308_221741-0_mres.mat"
    names = read_labels(shared_dir / "data" / "dltools_formats" / "labels" / "monterey_labels.txt")
    with pytest.raises(DltoolsError, match="no strokes"):
        read_strokes(path, (4912, 7360), names)


# -- GeoJSON -----------------------------------------------------------------------------------

UTM = "EPSG:32610"
TRANSFORM = Affine(0.5, 0, 550_000.0, 0, -0.5, 4_210_000.0)  # 0.5 m pixels, UTM zone 10N
SHAPE = (200, 300)


@pytest.fixture
def georef(tmp_path) -> dict:
    """The profile of a UTM GeoTIFF written to tmp_path, as the labeller reads it."""
    like = {"width": SHAPE[1], "height": SHAPE[0], "crs": UTM, "transform": TRANSFORM}
    write_raster(tmp_path / "ortho.tif", np.zeros((*SHAPE, 3), np.uint8), like)
    return read_profile(tmp_path / "ortho.tif")


def to_crs(pixels: list[tuple[float, float]], crs: str) -> list[list[float]]:
    """(col, row) pixel coordinates (0.5 = a pixel's centre) -> [x, y] in ``crs``."""
    xs, ys = zip(*(TRANSFORM @ p for p in pixels), strict=True)
    if crs != UTM:
        xs, ys = rasterio.warp.transform(UTM, crs, xs, ys)
    return [[x, y] for x, y in zip(xs, ys, strict=True)]


def collection(crs: str, legacy_crs: bool = False) -> dict:
    def feature(name, kind, coords):
        return {
            "type": "Feature",
            "properties": {"class": name, "id": 1},
            "geometry": {"type": kind, "coordinates": coords},
        }

    water = [(20.5, 30.5), (250.5, 30.5)]  # along row 30, columns 20..250
    sand = [(40.5, 60.5), (40.5, 140.5)]  # down column 40, rows 60..140
    veg = [(100, 150), (150, 150), (150, 180), (100, 180), (100, 150)]  # pixel edges
    data = {
        "type": "FeatureCollection",
        "features": [
            feature("veg", "Polygon", [to_crs(veg, crs)]),
            feature("water", "LineString", to_crs(water, crs)),
            feature("sand", "MultiLineString", [to_crs(sand, crs)]),
        ],
    }
    if legacy_crs:
        data["crs"] = {"type": "name", "properties": {"name": crs}}
    return data


def expected_strokes() -> np.ndarray:
    out = np.zeros(SHAPE, np.uint8)
    out[30, 20:251] = 1
    out[60:141, 40] = 2
    out[150:180, 100:150] = 3
    return out


@pytest.mark.parametrize(("crs", "legacy"), [("EPSG:4326", False), (UTM, True)])
def test_geojson_strokes_land_on_their_pixels(tmp_path, georef, crs, legacy):
    path = tmp_path / "strokes.geojson"
    path.write_text(json.dumps(collection(crs, legacy)))
    sparse = read_strokes(path, SHAPE, NAMES, georef=georef)
    assert sparse.dtype == np.uint8
    assert (sparse == expected_strokes()).all()


def test_geojson_class_field_and_unknown_names(tmp_path, georef):
    data = collection("EPSG:4326")
    for feature in data["features"]:
        feature["properties"]["label"] = feature["properties"].pop("class")
    data["features"][1]["properties"]["label"] = "gravel"
    data["features"][2]["properties"]["label"] = "mud"
    path = tmp_path / "strokes.geojson"
    path.write_text(json.dumps(data))
    with pytest.raises(DltoolsError, match=r"gravel, mud \(property 'label'\) are not among"):
        read_strokes(path, SHAPE, NAMES, georef=georef, class_field="label")
    with pytest.raises(DltoolsError, match="feature 0 has no 'class' property"):
        read_strokes(path, SHAPE, NAMES, georef=georef)


def test_geojson_needs_a_georeferenced_image(tmp_path):
    path = tmp_path / "strokes.geojson"
    path.write_text(json.dumps(collection("EPSG:4326")))
    with pytest.raises(DltoolsError, match="need a georeferenced image"):
        read_strokes(path, SHAPE, NAMES)
    with pytest.raises(DltoolsError, match="need a georeferenced image"):
        read_strokes(path, SHAPE, NAMES, georef={"crs": None, "transform": TRANSFORM})


# -- GeoPackage ----------------------------------------------------------------------------------


def test_geopackage_strokes_drawn_in_another_crs_land_on_their_pixels(tmp_path, georef):
    features = collection("EPSG:4326")["features"]
    geometry = np.array([shapely.geometry.shape(f["geometry"]) for f in features], object)
    names = np.array([f["properties"]["class"] for f in features], object)
    path = tmp_path / "qgis_strokes.gpkg"
    schema = {"class": np.dtype(object)}
    write_layer(path, [(geometry, {"class": names})], CRS.from_epsg(4326), "s", "Unknown", schema)
    sparse = read_strokes(path, SHAPE, NAMES, georef=georef)
    assert (sparse == expected_strokes()).all()


def test_strokes_written_as_a_geopackage_replay_pixel_for_pixel(tmp_path, georef):
    strokes = expected_strokes()
    strokes[10:13, 280:283] = 2
    strokes[11, 281] = 1  # a stroke inside another: a polygon with a hole
    path = tmp_path / "ortho_doodles.gpkg"
    assert write_stroke_layer(path, strokes, NAMES, georef) == 5
    _, fields, crs = read_layer(path)
    assert crs == CRS.from_user_input(UTM) and sorted(set(fields["class"])) == sorted(NAMES[:3])
    assert (read_strokes(path, SHAPE, NAMES, georef=georef) == strokes).all()
    with pytest.raises(DltoolsError, match="georeferenced"):
        write_stroke_layer(tmp_path / "x.gpkg", strokes, NAMES, {"crs": None})


def test_strokes_read_in_windows_equal_the_whole_read(tmp_path):
    """open_strokes (for images labelled in windows): a stroke raster and the demo's GeoJSON
    strokes read window by window are the whole read, cut; a smaller stroke raster marks its
    cells; what cannot be read in windows is refused by name."""
    from rasterio.windows import Window

    from dltools.io.strokes import open_strokes
    from dltools.raster.windows import halo_windows

    demo = Path(__file__).resolve().parents[1] / "demo_data"
    ortho, names = demo / "geotiff" / "coast_ortho.tif", read_labels(demo / "labels.txt")
    georef = read_profile(ortho)
    shape = (georef["height"], georef["width"])
    geojson = demo / "doodles" / "coast_ortho_doodles.geojson"
    whole = read_strokes(geojson, shape, names, georef=georef)
    write_image(tmp_path / "coast_ortho_doodles.png", whole)
    for source in (geojson, tmp_path / "coast_ortho_doodles.png"):
        strokes = open_strokes(source, shape, names, georef=georef)
        for _, outer in halo_windows(*shape, 256, 100):
            rows, cols = outer.toslices()
            assert np.array_equal(strokes.read(outer), whole[rows, cols]), (source, outer)
    mat = tmp_path / "a_mres.mat"
    scipy.io.savemat(mat, {"sparse": whole})
    with pytest.raises(DltoolsError, match="labelled in windows"):
        open_strokes(mat, shape, names, georef=georef)
    # a smaller stroke raster (the painter's overview of a large image) marks its cells
    write_image(tmp_path / "half.png", whole[::2, ::2])
    strokes = open_strokes(tmp_path / "half.png", shape, names, georef=georef)
    cells = np.kron(whole[::2, ::2], np.ones((2, 2), whole.dtype))[: shape[0], : shape[1]]
    for _, outer in halo_windows(*shape, 256, 100):
        rows, cols = outer.toslices()
        assert np.array_equal(strokes.read(outer), cells[rows, cols]), outer
    write_image(tmp_path / "double.png", np.kron(whole, np.ones((2, 2), whole.dtype)))
    with pytest.raises(DltoolsError, match="image's size or be smaller"):
        open_strokes(tmp_path / "double.png", shape, names, georef=georef)
    write_image(tmp_path / "other.png", whole[::2, ::3])
    with pytest.raises(DltoolsError, match="aspect ratios differ"):
        open_strokes(tmp_path / "other.png", shape, names, georef=georef)
    spoiled = whole.copy()
    spoiled[-5:, -5:] = len(names) + 1  # found in the last window only
    write_image(tmp_path / "spoiled.png", spoiled)
    strokes = open_strokes(tmp_path / "spoiled.png", shape, names, georef=georef)
    strokes.read(Window(0, 0, 100, 100))
    with pytest.raises(DltoolsError, match=f"class value\\(s\\) \\[{len(names) + 1}\\]"):
        strokes.read(Window(800, 800, 100, 100))
