"""dltools.io.geo: GeoTIFF profiles, windowed reads and writes, nodata masks."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from dltools.errors import DltoolsError
from dltools.io.geo import (
    Window,
    is_georeferenced,
    open_raster_writer,
    read_nodata_mask,
    read_profile,
    read_raster,
    write_raster,
    write_window,
)
from dltools.io.results import read_result
from dltools.raster.windows import (
    core_slices,
    iter_windows,
    strip_windows,
    tile_origins,
    with_halo,
)

UTM = CRS.from_epsg(32610)


@pytest.fixture(scope="module")
def geotiffs(shared_dir: Path) -> Path:
    return shared_dir / "data" / "dltools_formats" / "geotiff"


@pytest.fixture(scope="module")
def elwha(geotiffs: Path) -> Path:
    return geotiffs / "elwha" / "RGBraster_geotiffmres_geo.tif"


def small_profile(height: int = 150, width: int = 230) -> dict:
    return {
        "height": height,
        "width": width,
        "crs": UTM,
        "transform": Affine(0.5, 0.0, 450000.0, 0.0, -0.5, 5300000.0),
    }


def test_elwha_label_geotiff_profile(elwha: Path) -> None:
    profile = read_profile(elwha)
    assert profile["crs"] == CRS.from_epsg(4759) and profile["crs"].is_geographic
    assert profile["nodata"] == 0 and profile["dtype"] == "uint16"
    assert (profile["count"], profile["height"], profile["width"]) == (1, 2471, 1455)
    assert profile["transform"].c == pytest.approx(-123.5790547764186)
    assert is_georeferenced(elwha)


def test_elwha_geotiff_holds_class_plus_one_of_its_mat(elwha: Path) -> None:
    result = read_result(elwha.parent / "RGBraster_geotiff_mres.mat")
    stored = read_raster(elwha)
    assert stored.shape == (2471, 1455, 1)
    np.testing.assert_array_equal(stored[..., 0], result.class_map + 1)
    assert not read_nodata_mask(elwha).any()  # every pixel is labelled


def test_elwha_write_back_keeps_georeferencing(elwha: Path, tmp_path: Path) -> None:
    profile = read_profile(elwha)
    data = read_raster(elwha)
    data[:10, :20] = 0  # some nodata, to prove the value is kept and honoured
    out = tmp_path / "copy.tif"
    write_raster(out, data, like=profile, nodata=profile["nodata"])
    written = read_profile(out)
    for key in ("crs", "transform", "nodata", "dtype", "width", "height", "count"):
        assert written[key] == profile[key], key
    assert written["tiled"] and written["compress"] == "deflate"
    np.testing.assert_array_equal(read_raster(out), data)
    mask = read_nodata_mask(out)
    assert mask[:10, :20].all() and mask.sum() == 200


@pytest.mark.parametrize(
    ("name", "epsg", "shape", "pixel"),
    [
        ("erdas/erdas_spnad83.tif", None, (658, 571, 1), 40.0),
        ("SPOT/SPOT_UTM2GTIF.TIF", 26716, (929, 699, 1), 10.0),
    ],
)
def test_single_band_projected_geotiffs(geotiffs: Path, name, epsg, shape, pixel) -> None:
    path = geotiffs / name
    profile = read_profile(path)
    crs = profile["crs"]
    assert crs is not None and crs.is_projected
    if epsg is None:  # NAD83 / Georgia East in US survey feet, without an EPSG code
        assert "Georgia East" in crs.to_wkt()
        assert crs.linear_units_factor[1] == pytest.approx(0.3048006096)
    else:  # NAD27 / UTM zone 16N
        assert crs.to_epsg() == epsg
    assert profile["transform"].a == pixel and profile["transform"].e == -pixel
    assert is_georeferenced(path)
    data = read_raster(path)
    assert data.shape == shape and data.dtype == np.uint8 and data.std() > 5
    window = Window(100, 200, 64, 32)
    np.testing.assert_array_equal(read_raster(path, window=window), data[200:232, 100:164])
    assert not read_nodata_mask(path, window=window).any()


def test_plain_photo_is_not_georeferenced(shared_dir: Path) -> None:
    assert not is_georeferenced(shared_dir / "data" / "stmarg" / "train" / "StMarg_26607.jpg")


@pytest.mark.parametrize(
    ("height", "width", "size", "overlap"),
    [(10, 10, 4, 2), (11, 7, 4, 0), (3, 5, 8, 2), (100, 257, 64, 16), (64, 64, 64, 0)],
)
def test_iter_windows_cover_the_raster(height, width, size, overlap) -> None:
    windows = list(iter_windows(height, width, size, overlap))
    hits = np.zeros((height, width), int)
    for w in windows:
        assert 0 < w.height <= size and 0 < w.width <= size
        assert w.row_off + w.height <= height and w.col_off + w.width <= width
        hits[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert hits.min() >= 1
    rows = sorted({w.row_off for w in windows})
    assert all(b - a == size - overlap for a, b in itertools.pairwise(rows))
    # no window lies wholly inside the one before it
    assert all(r + overlap < height for r in rows[1:])


def test_iter_windows_known_layout_and_bad_arguments() -> None:
    assert [(w.row_off, w.height) for w in iter_windows(10, 4, 4, 2)] == [
        (0, 4),
        (2, 4),
        (4, 4),
        (6, 4),
    ]
    for size, overlap in [(0, 0), (4, 4), (4, -1)]:
        with pytest.raises(ValueError, match="overlap"):
            list(iter_windows(10, 10, size, overlap))


def test_strips_tile_origins_and_halos() -> None:
    strips = [(w.row_off, w.height, w.col_off, w.width) for w in strip_windows(10, 7, 4)]
    assert strips == [(0, 4, 0, 7), (4, 4, 0, 7), (8, 2, 0, 7)]
    with pytest.raises(ValueError, match="rows"):
        list(strip_windows(10, 7, 0))
    # a stride grid, plus the windows that end at the edge (from a grid of whole windows)
    assert tile_origins(10, 4, 3).tolist() == [0, 3, 4, 6]
    assert tile_origins(8, 4, 2).tolist() == [0, 2, 4]
    core = Window(4, 2, 3, 3)
    outer = with_halo(core, 2, 6, 20)
    assert (outer.row_off, outer.height, outer.col_off, outer.width) == (0, 6, 2, 7)
    labels = np.arange(6 * 20).reshape(6, 20)[0:6, 2:9]  # read from ``outer``
    expected = [[44, 45, 46], [64, 65, 66], [84, 85, 86]]
    np.testing.assert_array_equal(labels[core_slices(core, outer)], expected)


@pytest.mark.parametrize(("dtype", "bands"), [(np.uint8, 1), (np.uint16, 3), (np.float32, 5)])
def test_windowed_write_then_windowed_read(tmp_path: Path, dtype, bands: int) -> None:
    like = small_profile()
    rng = np.random.default_rng(bands)
    source = (rng.random((150, 230, bands)) * 1000).astype(dtype)
    out = tmp_path / "tiles.tif"
    with open_raster_writer(out, like, count=bands, dtype=dtype, nodata=0) as dst:
        for window in iter_windows(150, 230, size=64):
            rows, cols = window.toslices()
            write_window(dst, source[rows, cols], window)
    profile = read_profile(out)
    assert profile["crs"] == UTM and profile["transform"] == like["transform"]
    assert profile["nodata"] == 0 and profile["count"] == bands and profile["tiled"]
    for window in iter_windows(150, 230, size=50, overlap=7):
        rows, cols = window.toslices()
        np.testing.assert_array_equal(read_raster(out, window=window), source[rows, cols])
    np.testing.assert_array_equal(read_raster(out, bands=[bands - 1]), source[..., -1:])
    assert [p.name for p in tmp_path.iterdir()] == ["tiles.tif"]


def test_nodata_mask_needs_every_band_empty(tmp_path: Path) -> None:
    data = np.full((20, 30, 3), 7, np.uint8)
    data[2, 3] = 0  # every band nodata
    data[4, 5, 1] = 0  # one band only: still a valid pixel
    out = tmp_path / "masked.tif"
    write_raster(out, data, like=small_profile(20, 30), nodata=0)
    mask = read_nodata_mask(out)
    assert mask.shape == (20, 30) and mask.dtype == bool
    assert mask.sum() == 1 and mask[2, 3]
    assert read_nodata_mask(out, window=Window(2, 1, 4, 4)).sum() == 1
    write_raster(tmp_path / "plain.tif", data, like=small_profile(20, 30))
    assert not read_nodata_mask(tmp_path / "plain.tif").any()


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never.tif"
    with pytest.raises(RuntimeError), open_raster_writer(out, small_profile(), 1, np.uint8) as dst:
        write_window(dst, np.ones((10, 10), np.uint8), Window(0, 0, 10, 10))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_write_window_checks_the_shape(tmp_path: Path) -> None:
    with open_raster_writer(tmp_path / "a.tif", small_profile(), 3, np.uint8) as dst:
        with pytest.raises(ValueError, match="does not fit"):
            write_window(dst, np.ones((10, 10, 2), np.uint8), Window(0, 0, 10, 10))
        write_window(dst, np.ones((10, 12, 3), np.uint8), Window(5, 5, 12, 10))
    with rasterio.open(tmp_path / "a.tif") as src:
        assert src.read(2)[5:15, 5:17].min() == 1 and src.read(2)[0, 0] == 0
    with pytest.raises(ValueError, match="reference raster"):
        write_raster(tmp_path / "b.tif", np.ones((5, 5), np.uint8), like=small_profile())


def test_missing_raster_and_bad_bands(tmp_path: Path, elwha: Path) -> None:
    with pytest.raises(DltoolsError, match="file not found"):
        read_profile(tmp_path / "missing.tif")
    with pytest.raises(DltoolsError, match="file not found"):
        read_raster(tmp_path / "missing.tif", window=Window(0, 0, 1, 1))
    with pytest.raises(DltoolsError, match="has 1 band"):
        read_raster(elwha, bands=[1])
