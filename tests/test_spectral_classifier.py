"""The 1-D CNN pixel classifier: accuracy on another scene, exact reloads, predict outputs."""

import csv
import dataclasses

import numpy as np
import pytest
import rasterio
from gis_checks import assert_cog, assert_styled_classes
from rasterio.crs import CRS
from rasterio.transform import Affine

from dltools.cli.spectral import main
from dltools.io.geo import read_raster, write_raster
from dltools.io.images import read_image
from dltools.io.labels import Classes
from dltools.spectral.cube import open_cube, open_labels
from dltools.spectral.inference import compiled
from dltools.spectral.labelled import labelled_pixels
from dltools.spectral.synthetic import spectral_scene
from dltools.spectral.training import Training, train_classifier

BANDS = 120
NAMES = ["dry sand", "wet sand", "grass", "dry grass", "rock", "shaded rock"]
GRID = {
    "width": 64,
    "height": 64,
    "crs": CRS.from_epsg(32633),
    "transform": Affine(5.0, 0.0, 350000.0, 0.0, -5.0, 5600000.0),
}


def run(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Scene A (training) and scene B (same materials, new layout and shading) as GeoTIFFs."""
    folder = tmp_path_factory.mktemp("clf")
    a = spectral_scene(64, 64, BANDS, seed=0)
    b = spectral_scene(64, 64, BANDS, seed=1, endmembers=a.endmembers)
    write_raster(folder / "a.tif", a.cube, GRID)
    write_raster(folder / "a_labels.tif", a.labels, GRID)
    write_raster(folder / "b.tif", b.cube, GRID)
    (folder / "labels.txt").write_text("\n".join(NAMES) + "\n")
    return folder, a, b


@pytest.fixture(scope="module")
def trained(data):
    folder, _, _ = data
    cube = open_cube(folder / "a.tif")
    labels = open_labels(folder / "a_labels.tif", cube)
    training = Training(epochs=15, batch_size=64, patience=4, tensorboard=True, seed=0)
    data = dataclasses.replace(labelled_pixels(cube, labels, 0.2, seed=0), names=NAMES)
    return train_classifier(data, folder / "model", {"head": "flatten"}, training, verbose=0)


@pytest.fixture(scope="module")
def predicted(data, trained):
    folder, _, _ = data
    out = folder / "out"
    args = ["-m", trained.folder, "-i", folder / "b.tif", "-o", out]
    assert run("predict", *args, "--features", "dense_0_relu") == 0
    return out


def test_classifier_is_accurate_on_pixels_of_another_scene(data, predicted):
    _, _, b = data
    classes = read_raster(predicted / "b_classes.tif")[..., 0]
    labelled = b.labels > 0
    accuracy = np.mean(classes[labelled] == b.labels[labelled])
    print(f"accuracy on scene B: {accuracy:.4f}")
    assert accuracy >= 0.95
    np.testing.assert_array_equal(read_image(predicted / "b_classes.png")[..., 0], classes)
    assert (predicted / "b_classes_figure.png").stat().st_size > 10_000


def test_reloaded_model_predicts_exactly_as_trained(data, trained, predicted):
    _, _, b = data
    spectra = trained.scaling(b.cube.reshape(-1, BANDS))
    scores = compiled(lambda x: trained.model(x, training=False), BANDS)(spectra)
    written = read_raster(predicted / "b_scores.tif").reshape(-1, len(NAMES))
    np.testing.assert_array_equal(written, scores)  # predict reloaded the model from its folder
    with rasterio.open(predicted / "b_classes.tif") as src:
        assert (src.crs, src.transform, src.dtypes[0]) == (GRID["crs"], GRID["transform"], "uint8")
    assert_cog(predicted / "b_classes.tif", overviews=False)  # a styled COG, as every step's
    colors = np.array(trained.config["classes"]["colors"], np.uint8)
    assert_styled_classes(predicted / "b_classes.tif", Classes(NAMES, colors))
    features = read_raster(predicted / "b_features_dense_0_relu.tif")
    assert features.shape == (64, 64, 64) and features.min() == 0 and features.max() > 0


def test_early_stopping_keeps_the_best_epoch(data, trained):
    folder, _, _ = data
    with open(trained.folder / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    accuracy = [float(row["val_accuracy"]) for row in history]
    best = int(np.argmax(accuracy))
    assert trained.config["best_epoch"] == best + 1
    assert trained.config["validation_accuracy"] == pytest.approx(accuracy[best], abs=1e-6)
    cube = open_cube(folder / "a.tif")
    labels = open_labels(folder / "a_labels.tif", cube)
    classes = np.array(trained.config["classes"]["values"])
    data = labelled_pixels(cube, labels, 0.2, seed=0)
    x, y = data.spectra[data.held], data.values[data.held]
    predicted = classes[compiled(trained.model, BANDS, prepare=trained.scaling)(x).argmax(axis=1)]
    assert np.mean(predicted == y) == pytest.approx(accuracy[best], abs=1e-6)
    assert list((trained.folder / "logs").rglob("events.out.tfevents.*"))
    assert trained.config["classes"]["names"] == NAMES


def test_unknown_below_marks_uncertain_pixels_as_class_zero(data, trained, predicted):
    folder, _, _ = data
    scores = read_raster(predicted / "b_scores.tif")
    threshold = float(np.quantile(scores.max(axis=2), 0.2))  # about 20% of pixels are unsure
    args = ["-m", trained.folder, "-i", folder / "b.tif", "-o", folder / "unsure", "--no-scores"]
    assert run("predict", *args, "--unknown-below", threshold) == 0
    classes = read_raster(folder / "unsure" / "b_classes.tif")[..., 0]
    confident = scores.max(axis=2) >= np.float32(threshold)
    assert 0.1 < np.mean(~confident) < 0.3
    np.testing.assert_array_equal(classes == 0, ~confident)
    best = read_raster(predicted / "b_classes.tif")[..., 0]
    np.testing.assert_array_equal(classes[confident], best[confident])
    assert not (folder / "unsure" / "b_scores.tif").exists()


def test_bad_inputs_are_reported(data, trained, tmp_path, capsys):
    folder, a, _ = data
    write_raster(tmp_path / "narrow.tif", a.cube[..., ::2], GRID)
    assert run("predict", "-m", trained.folder, "-i", tmp_path / "narrow.tif") == 2
    assert "has 60 band(s) but the model" in capsys.readouterr().err
    assert not list(tmp_path.glob("narrow_*"))
    np.save(tmp_path / "small_labels.npy", a.labels[:50])
    args = ["-i", folder / "a.tif", "-r", tmp_path / "small_labels.npy", "-o", tmp_path / "m"]
    assert run("train-classifier", *args) == 2
    assert "50 x 64 pixels but the cube" in capsys.readouterr().err
    np.save(tmp_path / "one_class.npy", (a.labels > 0).astype(np.uint8))
    args = ["-i", folder / "a.tif", "-r", tmp_path / "one_class.npy", "-o", tmp_path / "m"]
    assert run("train-classifier", *args) == 2
    assert "at least 2 classes" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert run("predict", "-m", trained.folder, "-i", folder / "b.tif", "--features", "conv_9") == 2
    assert "no layer 'conv_9'" in capsys.readouterr().err


def test_command_line_training_run(data, tmp_path, capsys):
    folder, _, _ = data
    args = ["-i", folder / "a.tif", "-r", folder / "a_labels.tif", "-l", folder / "labels.txt"]
    args += ["-o", tmp_path / "m", "--epochs", "2", "--conv-filters", "8", "--kernel-sizes", "5"]
    args += ["--dense-units", "16", "--no-balance", "--scaling", "standard", "--save-epochs", "1"]
    assert run("train-classifier", *args) == 0
    assert "best validation accuracy" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.json",
        "model.keras",
        "history.csv",
        "epoch_0001.keras",
    }
    assert run("train-classifier", *args, "--epochs", "3", "--resume-epoch", "1") == 0
    with open(tmp_path / "m" / "history.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2", "3"]


def test_a_strip_shaped_cube_gets_no_figure_and_one_warning(data, trained, tmp_path, capsys):
    _, _, b = data
    strip = b.cube[:, :1]  # 64 x 1 pixels: a table of spectra stored as a cube
    np.save(tmp_path / "strip.npy", strip)
    assert run("predict", "-m", trained.folder, "-i", tmp_path / "strip.npy", "--no-scores") == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: no figure: a 64 x 1 raster is more than 20 times longer than wide (for "
        "spectra without a grid, see --table)"
    ]
    assert {p.name for p in tmp_path.iterdir()} == {
        "strip.npy",
        "strip_classes.tif",
        "strip_classes.qml",
        "strip_classes.png",
    }
    assert out.count("wrote ") == 3
    assert read_raster(tmp_path / "strip_classes.tif").shape == (64, 1, 1)
