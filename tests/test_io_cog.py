"""dltools.io.cog and dltools.io.qgis: COG layout, colour table, class names, QGIS styles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from gis_checks import assert_cog, assert_continuous_style, assert_styled_classes
from rasterio.crs import CRS
from rasterio.transform import Affine

from dltools.errors import DltoolsError
from dltools.io.cog import open_cog_writer, read_raster_classes, write_cog
from dltools.io.geo import write_raster, write_window
from dltools.io.labels import Classes
from dltools.raster.windows import iter_windows

LIKE = {
    "height": 1300,
    "width": 1100,
    "crs": CRS.from_epsg(32610),
    "transform": Affine(0.5, 0.0, 450000.0, 0.0, -0.5, 5300000.0),
}
CLASSES = Classes(
    ["water", "sand & gravel", "<vegetation>"],
    np.array([[0, 0, 255], [210, 180, 140], [34, 139, 34]], np.uint8),
)


def class_raster(seed: int = 0) -> np.ndarray:
    """(1300, 1100) uint8 blobs of classes 1..3 with a nodata (0) corner."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(1, 4, (13, 11)).astype(np.uint8)
    values = np.kron(coarse, np.ones((100, 100), np.uint8))
    values[:150, :120] = 0
    return values


def test_a_class_raster_written_by_windows_is_a_styled_cog(tmp_path: Path) -> None:
    values = class_raster()
    path = tmp_path / "labels.tif"
    with open_cog_writer(path, LIKE, np.uint8, 0, CLASSES) as dst:
        for window in iter_windows(*values.shape, 300):
            rows, cols = window.toslices()
            write_window(dst, values[rows, cols], window)
    assert_cog(path)
    assert_styled_classes(path, CLASSES)
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(1), values)
        assert (src.crs, src.transform, src.nodata) == (LIKE["crs"], LIKE["transform"], 0)
        assert src.block_shapes == [(512, 512)]
        overview = src.read(1, out_shape=(650, 550))  # the first overview: mode of 2 x 2
    np.testing.assert_array_equal(overview[100:, 100:], values[200::2, 200::2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.qml", "labels.tif"]


def test_a_probability_raster_gets_average_overviews_and_a_continuous_style(tmp_path) -> None:
    prob = np.tile(np.linspace(0, 1, 1100, dtype=np.float32), (1300, 1))
    prob[:10] = np.nan
    path = tmp_path / "prob.tif"
    write_cog(path, prob, LIKE, np.nan)
    assert_cog(path)
    assert_continuous_style(path)
    assert read_raster_classes(path) is None
    with rasterio.open(path) as src:
        assert np.isnan(src.nodata)
        overview = src.read(1, out_shape=(650, 550))
    expected = prob[20:].reshape(640, 2, 550, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(overview[10:], expected, atol=1e-6)  # average, not nearest


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), open_cog_writer(tmp_path / "x.tif", LIKE, np.uint8, 0):
        raise RuntimeError("the step failed")
    assert not list(tmp_path.iterdir())


def test_class_names_are_read_only_from_a_valid_tag(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tif"
    write_raster(plain, class_raster(), LIKE, nodata=0)
    assert read_raster_classes(plain) is None
    bad = tmp_path / "bad.tif"
    write_raster(bad, class_raster(), LIKE, nodata=0)
    with rasterio.open(bad, "r+") as dst:
        dst.update_tags(CLASS_NAMES="water, sand")
    with pytest.raises(DltoolsError, match="CLASS_NAMES"):
        read_raster_classes(bad)
