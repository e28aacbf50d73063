"""dltools polygonize: class rasters -> GeoPackage polygons, whole and in windows."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio.features
import shapely
from rasterio.crs import CRS
from rasterio.transform import Affine

from dltools.cli import main as dltools_main
from dltools.engines.polygons import polygonize
from dltools.io.cog import write_cog
from dltools.io.geo import write_raster
from dltools.io.images import write_image
from dltools.io.labels import Classes, write_labels
from dltools.io.vectors import read_layer

LIKE = {
    "height": 300,
    "width": 340,
    "crs": CRS.from_epsg(32610),
    "transform": Affine(0.5, 0.0, 450000.0, 0.0, -0.5, 5300000.0),
}
NAMES = ["water", "sand", "trees"]
CLASSES = Classes(NAMES, np.array([[0, 0, 255], [210, 180, 140], [0, 128, 0]], np.uint8))


def class_raster(seed: int = 0) -> np.ndarray:
    """(300, 340) uint8: blobs of classes 1..3, single-pixel specks, rings with holes and a
    nodata (0) strip, so that windows cut many regions, some only at a corner."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(1, 4, (15, 17)).astype(np.uint8)
    values = cv2.resize(coarse, (340, 300), interpolation=cv2.INTER_NEAREST)
    specks = rng.random(values.shape) < 0.01
    values[specks] = rng.integers(0, 4, int(specks.sum()))
    values[100:140, 60:100] = 3
    values[110:130, 70:90] = 1  # a hole in the ring of trees, cut by windows of 64
    values[:, 200:203] = 0
    values[63, 63], values[64, 64] = 2, 2  # diagonal neighbours across a window corner
    values[63, 64] = values[64, 63] = 1
    return values


@pytest.fixture(scope="module")
def raster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("polygonize") / "labels.tif"
    write_cog(path, class_raster(), LIKE, 0, CLASSES)
    return path


def run(*args: object) -> int:
    return dltools_main(["polygonize", *(str(a) for a in args)])


def rasterize_back(path: Path, shape=(300, 340), transform=LIKE["transform"]) -> np.ndarray:
    geometry, fields, _ = read_layer(path)
    shapes = zip(geometry, fields["class_id"].tolist(), strict=True)
    return rasterio.features.rasterize(shapes, out_shape=shape, transform=transform, dtype="uint8")


def test_polygons_rasterise_back_to_the_raster_whole_and_in_windows(raster, tmp_path) -> None:
    assert run(raster, "-o", tmp_path / "whole.gpkg") == 0
    assert run(raster, "-o", tmp_path / "windows.gpkg", "--vector-window", 64) == 0
    values = class_raster()
    for name in ("whole", "windows"):
        np.testing.assert_array_equal(rasterize_back(tmp_path / f"{name}.gpkg"), values)
    whole, whole_fields, crs = read_layer(tmp_path / "whole.gpkg")
    windows, fields, _ = read_layer(tmp_path / "windows.gpkg")
    assert crs == LIKE["crs"]
    # no polygon split along window edges: the same polygons, one for one
    assert len(windows) == len(whole) > 500
    tree = shapely.STRtree(windows)
    for geometry, value in zip(whole, whole_fields["class_id"], strict=True):
        same = [i for i in tree.query(geometry, "covers") if shapely.equals(windows[i], geometry)]
        assert len(same) == 1 and fields["class_id"][same[0]] == value
    assert any(shapely.get_num_interior_rings(windows) > 0)  # holes kept
    assert set(fields) == {"class", "class_id", "area_m2", "source"}
    assert set(fields["source"]) == {"labels.tif"}
    np.testing.assert_allclose(fields["area_m2"], shapely.area(windows))
    assert fields["area_m2"].sum() == pytest.approx((values > 0).sum() * 0.25)
    assert [NAMES[k - 1] for k in fields["class_id"]] == fields["class"].tolist()


def test_the_engine_keeps_diagonal_neighbours_apart_across_a_window_corner() -> None:
    values = class_raster()
    polygons = list(polygonize(lambda w: values[w.toslices()], values.shape, window=64))
    geometry = np.concatenate([p.geometry for p in polygons])
    corner = shapely.box(63, 63, 65, 65)
    inside = [g for g, v in zip(geometry, np.concatenate([p.value for p in polygons]), strict=True)
              if v == 2 and shapely.within(g, corner)]  # fmt: skip
    assert len(inside) == 2  # the two class-2 pixels touch only at a corner


def engine_polygons(values: np.ndarray, window: int) -> tuple[np.ndarray, ...]:
    """(geometry, value, pixels) of every polygon of the engine on ``values``."""
    batches = list(polygonize(lambda w: values[w.toslices()], values.shape, window=window))
    fields = ("geometry", "value", "pixels")
    return tuple(np.concatenate([getattr(b, f) for b in batches]) for f in fields)


def assert_windows_give_the_whole_raster_polygons(values: np.ndarray, window: int) -> None:
    geometry, value, pixels = engine_polygons(values, window)
    whole = engine_polygons(values, max(values.shape))
    assert shapely.is_valid(geometry).all() and len(geometry) == len(whole[0])
    tree = shapely.STRtree(geometry)
    for polygon, v, n in zip(*whole, strict=True):
        same = [i for i in tree.query(polygon, "covers") if shapely.equals(geometry[i], polygon)]
        assert len(same) == 1 and value[same[0]] == v and pixels[same[0]] == n


def test_a_region_spanning_every_window_comes_out_whole_with_all_its_holes() -> None:
    values = np.ones((24, 32), np.uint8)  # one region of 1 across all 12 windows of 8 px
    values[2:6, 2:6] = 2  # a hole inside one window
    values[6:10, 6:10] = 2  # a hole across a window corner
    values[10:13, 15:17] = 0  # a hole across a window edge
    values[17:20, 5:8] = 2  # a hole that reaches a window edge from one side only
    values[0:8, 16] = 3  # a slit from the raster's top down to the window corner (16, 8) ...
    values[8, 15] = 3  # ... where a one-pixel hole touches it diagonally: region 1 touches
    values[12:16, 24] = 3  # itself at that corner; and a slit along a window edge
    geometry, value, pixels = engine_polygons(values, 8)
    network = geometry[value == 1]
    assert len(network) == 1 and shapely.is_valid(network[0])
    assert shapely.bounds(network[0]).tolist() == [0, 0, 32, 24]
    assert shapely.get_num_interior_rings(network[0]) == 6
    assert pixels[value == 1] == (values == 1).sum() and network[0].area == (values == 1).sum()
    assert_windows_give_the_whole_raster_polygons(values, 8)
    assert_windows_give_the_whole_raster_polygons(values, 5)  # windows not at the same places


@pytest.mark.parametrize("seed", range(2))
def test_windows_give_the_whole_raster_polygons_on_random_speckle(seed) -> None:
    """Random pixels of 2 classes and background: regions touching themselves and each
    other at corners everywhere, cut by windows of 3 and 7 px."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 3, (29, 35)).astype(np.uint8)
    values[rng.random(values.shape) < 0.3 + 0.2 * seed] = 1
    for window in (3, 7):
        assert_windows_give_the_whole_raster_polygons(values, window)


def test_mean_confidence_comes_from_the_probability_raster(raster, tmp_path) -> None:
    values = class_raster()
    confidence = np.where(values == 3, 0.9, 0.6).astype(np.float32)
    write_cog(tmp_path / "prob.tif", confidence, LIKE, np.nan)
    out = tmp_path / "conf.gpkg"
    assert run(raster, "-o", out, "--confidence", tmp_path / "prob.tif", "--vector-window", 64) == 0
    _, fields, _ = read_layer(out)
    expected = np.where(fields["class_id"] == 3, 0.9, 0.6)
    np.testing.assert_allclose(fields["mean_confidence"], expected, rtol=1e-6)


def test_min_area_sieves_small_regions_and_simplify_keeps_polygons_valid(raster, tmp_path) -> None:
    assert run(raster, "-o", tmp_path / "s.gpkg", "--min-area", 10, "--vector-window", 64) == 0
    geometry, fields, _ = read_layer(tmp_path / "s.gpkg")
    back = rasterize_back(tmp_path / "s.gpkg")
    values = class_raster()
    assert (back > 0).sum() == (values > 0).sum()  # sieving relabels, it removes no pixel
    small = fields["area_m2"] < 10
    assert small.sum() < 5 and len(geometry) < 300  # only regions with no valid neighbour
    assert run(raster, "-o", tmp_path / "t.gpkg", "--min-area", 10, "--simplify", 1.0) == 0
    simple, _, _ = read_layer(tmp_path / "t.gpkg")
    assert len(simple) == len(geometry) and shapely.is_valid(simple).all()
    assert shapely.get_num_coordinates(simple).sum() < shapely.get_num_coordinates(geometry).sum()


def test_class_names_come_from_labels_txt_when_given(tmp_path) -> None:
    plain = tmp_path / "plain.tif"
    write_raster(plain, class_raster(), LIKE, nodata=0)  # no names inside
    assert run(plain, "-o", tmp_path / "a.gpkg") == 2
    write_labels(tmp_path / "labels.txt", ["a", "b", "c"])
    assert run(plain, "-o", tmp_path / "a.gpkg", "-l", tmp_path / "labels.txt") == 0
    assert set(read_layer(tmp_path / "a.gpkg")[1]["class"]) == {"a", "b", "c"}


def test_a_raster_without_crs_gets_pixel_areas_and_a_warning(tmp_path, capsys) -> None:
    png = tmp_path / "photo_label.png"
    write_image(png, class_raster())
    write_labels(tmp_path / "labels.txt", NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no other warning escapes (pyogrio's own on the CRS)
        assert run(png, "-o", tmp_path / "p.gpkg", "-l", tmp_path / "labels.txt") == 0
    printed = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(printed) == 1 and printed[0].startswith(f"warning: {png} has no CRS")
    _, fields, crs = read_layer(tmp_path / "p.gpkg")
    assert crs is None and "area_px" in fields and "area_m2" not in fields
    assert fields["area_px"].sum() == (class_raster() > 0).sum()
    back = rasterize_back(tmp_path / "p.gpkg", transform=Affine.identity())
    np.testing.assert_array_equal(back, class_raster())


def test_bad_input_is_a_clear_error_and_writes_nothing(raster, tmp_path, capsys) -> None:
    write_labels(tmp_path / "two.txt", ["water", "sand"])
    assert run(raster, "-o", tmp_path / "x.gpkg", "-l", tmp_path / "two.txt") == 2
    assert "label value 3 has no class name" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.gpkg")) and not list(tmp_path.glob(".*"))
    (tmp_path / "x.gpkg").write_text("old")
    assert run(raster, "-o", tmp_path / "x.gpkg") == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "x.gpkg").read_text() == "old"
    assert run(raster, "-o", tmp_path / "x.gpkg", "--force") == 0
    assert len(read_layer(tmp_path / "x.gpkg")[0]) > 500


def test_areas_on_a_geographic_grid_are_in_square_metres(tmp_path) -> None:
    from pyproj import Geod

    values = np.zeros((200, 100), np.uint8)
    values[20:180, 10:90] = 1
    values[60:100, 30:50] = 2
    like = {  # 1e-5 degree pixels at 48 degrees north: about 0.74 x 1.11 m
        "height": 200,
        "width": 100,
        "crs": CRS.from_epsg(4326),
        "transform": Affine(1e-5, 0.0, -123.5, 0.0, -1e-5, 48.0),
    }
    write_cog(tmp_path / "geo.tif", values, like, 0, CLASSES)
    assert run(tmp_path / "geo.tif", "-o", tmp_path / "geo.gpkg", "--vector-window", 64) == 0
    geometry, fields, _ = read_layer(tmp_path / "geo.gpkg")
    geodesic = [abs(Geod(ellps="WGS84").geometry_area_perimeter(g)[0]) for g in geometry]
    np.testing.assert_allclose(fields["area_m2"], geodesic, rtol=5e-3)
    assert fields["area_m2"][fields["class_id"] == 2].sum() == pytest.approx(800 * 0.82, rel=0.02)
