"""Spectral cubes: reading .npy/.mat/GeoTIFF, pre-processing, streaming pixels, the scene."""

import json

import numpy as np
import pytest
import rasterio
import scipy.io
from rasterio.crs import CRS
from rasterio.transform import Affine

from dltools.errors import DltoolsError
from dltools.io.geo import read_raster, write_raster
from dltools.spectral.cube import (
    RasterOutput,
    Scaling,
    fit_scaling,
    holdout_mask,
    map_pixels,
    minmax_spectra,
    open_cube,
    open_labels,
    pixel_batches,
    read_spectra,
)
from dltools.spectral.labelled import labelled_pixels
from dltools.spectral.synthetic import PURE_ABUNDANCE, spectral_scene

GRID = {
    "width": 40,
    "height": 30,
    "crs": CRS.from_epsg(32610),
    "transform": Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4100000.0),
}


@pytest.fixture(scope="module")
def scene():
    return spectral_scene(30, 40, n_bands=100, seed=3, patch_size=10)


@pytest.fixture()
def cube_files(tmp_path, scene):
    """The same cube as .npy, .mat and GeoTIFF."""
    np.save(tmp_path / "cube.npy", scene.cube)
    scipy.io.savemat(tmp_path / "cube.mat", {"reflectance": scene.cube, "wl": np.arange(100)})
    write_raster(tmp_path / "cube.tif", scene.cube, GRID)
    return tmp_path


def test_npy_mat_and_geotiff_cubes_read_the_same(cube_files, scene):
    for name in ("cube.npy", "cube.mat", "cube.tif"):
        cube = open_cube(cube_files / name)
        assert cube.shape == (30, 40, 100)
        np.testing.assert_array_equal(cube.read(), scene.cube)
        window = cube.windows(16)[4]  # rows 16-29 (clipped), cols 16-31
        np.testing.assert_array_equal(cube.read(window), scene.cube[16:30, 16:32])
    tif = open_cube(cube_files / "cube.tif")
    assert tif.profile["crs"] == GRID["crs"] and tif.profile["transform"] == GRID["transform"]


def test_mat_variable_must_be_named_when_ambiguous(tmp_path, scene):
    scipy.io.savemat(tmp_path / "two.mat", {"a": scene.cube, "b": scene.cube[..., :10]})
    with pytest.raises(DltoolsError, match=r"exactly one .*\['a', 'b'\].*--variable"):
        open_cube(tmp_path / "two.mat")
    assert open_cube(tmp_path / "two.mat", "b").bands == 10
    with pytest.raises(DltoolsError, match="no variable 'c'"):
        open_cube(tmp_path / "two.mat", "c")


def test_a_2d_array_is_not_a_cube(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((5, 6), np.float32))
    with pytest.raises(DltoolsError, match="expected rows x cols x bands"):
        open_cube(tmp_path / "flat.npy")


def test_minmax_is_deephyps_formula():
    spectra = np.array([[2.0, 4.0, 10.0], [0.0, 0.0, 0.0]], np.float32)
    # (x - (min - 0.001)) / max; an all-zero spectrum is divided by 1
    expected = [[0.0001, 0.2001, 0.8001], [0.001, 0.001, 0.001]]
    np.testing.assert_allclose(minmax_spectra(spectra), expected, atol=1e-6)
    brighter = minmax_spectra(spectra[:1] * 3)
    np.testing.assert_allclose(brighter, minmax_spectra(spectra[:1]), atol=1e-3)


def test_standard_scaling_is_fitted_on_the_cube_and_survives_json(cube_files, scene):
    cube = open_cube(cube_files / "cube.tif")
    scaling = fit_scaling(cube, "standard", block=16)
    pixels = scene.cube.reshape(-1, 100).astype(np.float64)
    np.testing.assert_allclose(scaling.mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scaling.std, pixels.std(axis=0), rtol=1e-4)
    scaled = scaling(scene.cube.reshape(-1, 100))
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-3)
    again = Scaling.from_dict(json.loads(json.dumps(scaling.to_dict())))
    np.testing.assert_array_equal(again(pixels[:5]), scaling(pixels[:5]))
    with pytest.raises(DltoolsError, match="unknown scaling 'zscore'"):
        fit_scaling(cube, "zscore")


def test_batches_stream_every_pixel_once_per_epoch_in_a_new_order(cube_files, scene):
    cube = open_cube(cube_files / "cube.npy")
    flat = scene.cube.reshape(-1, 100)

    def epoch(e, **kw):
        return np.concatenate(
            list(pixel_batches(cube, Scaling("none"), 50, block=16, epoch=e, **kw))
        )

    first, second = epoch(0), epoch(1)
    assert first.shape == flat.shape
    order = np.lexsort(first.T)
    np.testing.assert_array_equal(first[order], flat[np.lexsort(flat.T)])
    np.testing.assert_array_equal(second[np.lexsort(second.T)], first[order])
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(epoch(0), first)  # same seed and epoch


def test_holdout_does_not_depend_on_the_windows():
    from dltools.io.geo import Window

    whole = holdout_mask(Window(0, 0, 40, 30), 40, 0.3, seed=5)
    part = holdout_mask(Window(8, 16, 16, 14), 40, 0.3, seed=5)
    np.testing.assert_array_equal(part, whole[16:30, 8:24])
    assert not np.array_equal(whole, holdout_mask(Window(0, 0, 40, 30), 40, 0.3, seed=6))


def test_labelled_pixels_pair_spectra_with_their_class(cube_files, scene):
    cube = open_cube(cube_files / "cube.tif")
    labels_path = cube_files / "labels.npy"
    np.save(labels_path, scene.labels)
    labels = open_labels(labels_path, cube)
    data = labelled_pixels(cube, labels, holdout=0.25, seed=3)  # one window: raster order
    labelled = scene.labels > 0
    np.testing.assert_array_equal(data.values, scene.labels[labelled])
    np.testing.assert_array_equal(data.spectra, scene.cube[labelled])
    from dltools.io.geo import Window

    held = holdout_mask(Window(0, 0, 40, 30), 40, 0.25, seed=3)
    np.testing.assert_array_equal(data.held, held[labelled])
    assert 0.15 < data.held.mean() < 0.35
    tiled = labelled_pixels(cube, labels, holdout=0.25, seed=3, block=16)
    order = np.lexsort(tiled.spectra.T)
    np.testing.assert_array_equal(tiled.spectra[order], data.spectra[np.lexsort(data.spectra.T)])
    np.testing.assert_array_equal(tiled.held[order], data.held[np.lexsort(data.spectra.T)])
    assert data.source == {"cube": str(cube.path), "labels": str(labels_path)}


def test_label_raster_of_another_size_or_bands_is_refused(cube_files, scene):
    cube = open_cube(cube_files / "cube.npy")
    np.save(cube_files / "small.npy", scene.labels[:20])
    with pytest.raises(DltoolsError, match=r"20 x 40 pixels but the cube .* is 30 x 40"):
        open_labels(cube_files / "small.npy", cube)
    with pytest.raises(DltoolsError, match="one band, this one has 100"):
        open_labels(cube_files / "cube.tif", cube)


def test_nan_pixels_are_an_error_unless_nodata(tmp_path, scene):
    data = scene.cube.copy()
    data[7, 9, 50] = np.nan
    np.save(tmp_path / "nan.npy", data)
    with pytest.raises(DltoolsError, match=r"pixel \(row 7, col 9\) holds NaN"):
        list(pixel_batches(open_cube(tmp_path / "nan.npy"), Scaling("minmax"), 64))
    data[7, 9, :] = -1.0
    write_raster(tmp_path / "nodata.tif", data, GRID, nodata=-1.0)
    spectra, mask = read_spectra(open_cube(tmp_path / "nodata.tif"))
    assert len(spectra) == 30 * 40 - 1 and not mask[7, 9]


def test_map_pixels_keeps_the_grid_and_fills_nodata(tmp_path, scene):
    data = scene.cube.copy()
    data[0, 0, :] = 0
    write_raster(tmp_path / "cube.tif", data, GRID, nodata=0)
    cube = open_cube(tmp_path / "cube.tif")
    out = {"mean": RasterOutput(tmp_path / "mean.tif", 1, "float32", np.nan)}
    done, totals = [], []

    def progress(items, *, total=None, desc="", unit="item", count=None):
        totals.append(total)
        for item in items:
            yield item
            done.append(count(item))

    map_pixels(cube, lambda s: {"mean": s.mean(axis=1)}, out, block=16, progress=progress)
    assert sum(done) == 30 * 40 == totals[0] and len(done) == 6
    mean = read_raster(tmp_path / "mean.tif")[..., 0]
    assert np.isnan(mean[0, 0])
    np.testing.assert_allclose(mean[1:], scene.cube[1:].mean(axis=2), rtol=1e-6)
    with rasterio.open(tmp_path / "mean.tif") as src:
        assert src.crs == GRID["crs"] and src.transform == GRID["transform"]


def test_synthetic_scene_is_mixed_shaded_and_deterministic(scene):
    assert scene.cube.shape == (30, 40, 100) and scene.endmembers.shape == (6, 100)
    assert set(np.unique(scene.labels)) == set(range(7))  # 6 materials + mixed (0)
    mixed = scene.abundances.max(axis=2) < PURE_ABUNDANCE
    assert 0.02 < mixed.mean() < 0.5
    np.testing.assert_allclose(scene.abundances.sum(axis=2), 1, atol=1e-5)
    assert scene.illumination.min() == pytest.approx(0.4) and scene.illumination.max() == 1.2
    pure = scene.abundances.max(axis=2) > 0.999
    model = scene.illumination[..., None] * (scene.abundances @ scene.endmembers)
    noise = (scene.cube - model)[pure]
    assert 0.003 < noise.std() < 0.005
    again = spectral_scene(30, 40, n_bands=100, seed=3, patch_size=10)
    np.testing.assert_array_equal(again.cube, scene.cube)
    other = spectral_scene(30, 40, n_bands=100, seed=4, patch_size=10, endmembers=scene.endmembers)
    np.testing.assert_array_equal(other.endmembers, scene.endmembers)
    assert not np.array_equal(other.labels, scene.labels)
