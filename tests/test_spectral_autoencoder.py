"""Spectral autoencoders: illumination-blind losses, save/reload/resume, the command line."""

import json
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from sklearn.neighbors import KNeighborsClassifier

from dltools.cli.spectral import main
from dltools.errors import DltoolsError
from dltools.io.geo import read_raster, write_raster
from dltools.spectral.autoencoder import build_autoencoder
from dltools.spectral.cube import minmax_spectra, open_cube
from dltools.spectral.folder import load_model
from dltools.spectral.inference import compiled, encode_cube
from dltools.spectral.synthetic import spectral_scene
from dltools.spectral.training import Training, make_optimizer, train_autoencoder

BANDS = 120
GRID = {
    "width": 64,
    "height": 64,
    "crs": CRS.from_epsg(32633),
    "transform": Affine(5.0, 0.0, 350000.0, 0.0, -5.0, 5600000.0),
}


@pytest.fixture(scope="module")
def scene():
    return spectral_scene(64, 64, BANDS, seed=0)


@pytest.fixture(scope="module")
def cube(scene, tmp_path_factory):
    path = tmp_path_factory.mktemp("ae") / "scene.npy"
    np.save(path, scene.cube)
    return open_cube(path)


def bright_to_dark_accuracy(features: np.ndarray, scene) -> float:
    """5-NN trained on each material's brightest 35% of pixels, scored on its darkest 35%."""
    y, light = scene.labels.ravel(), scene.illumination.ravel()
    bright, dark = np.zeros(len(y), bool), np.zeros(len(y), bool)
    for k in range(1, scene.endmembers.shape[0] + 1):
        low, high = np.quantile(light[y == k], [0.35, 0.65])
        bright |= (y == k) & (light >= high)
        dark |= (y == k) & (light <= low)
    knn = KNeighborsClassifier(5).fit(features[bright], y[bright])
    return knn.score(features[dark], y[dark])


def test_the_scene_confuses_look_alike_materials_only_through_brightness(scene):
    spectra = scene.cube.reshape(-1, BANDS)
    assert bright_to_dark_accuracy(spectra, scene) < 0.7
    assert bright_to_dark_accuracy(minmax_spectra(spectra), scene) > 0.97


def test_angle_losses_give_latents_that_separate_materials_across_illumination(
    cube, scene, tmp_path
):
    accuracy = {}
    for loss in ("sse", "sa", "csa"):
        training = Training(loss=loss, epochs=30, batch_size=64, seed=0)
        model = train_autoencoder(cube, tmp_path / loss, "mlp", {}, training, "none", verbose=0)
        encode_cube(model, cube, tmp_path / f"{loss}.tif")
        latent = read_raster(tmp_path / f"{loss}.tif").reshape(-1, 10)
        accuracy[loss] = bright_to_dark_accuracy(latent, scene)
    print("5-NN accuracy, bright -> dark pixels:", accuracy)
    assert accuracy["sa"] > accuracy["sse"] + 0.08
    assert accuracy["csa"] > accuracy["sse"] + 0.08


def test_reload_and_resume_reproduce_training_exactly(cube, tmp_path):
    training = Training(loss="sid", epochs=4, save_epochs=(2,), batch_size=128, seed=1)
    trained = train_autoencoder(cube, tmp_path / "a", "mlp", {}, training, "minmax", verbose=0)
    reloaded = load_model(tmp_path / "a")
    spectra = trained.scaling(cube.read().reshape(-1, BANDS))
    for method in ("encode", "__call__"):
        before = compiled(getattr(trained.model, method), BANDS)(spectra)
        after = compiled(getattr(reloaded.model, method), BANDS)(spectra)
        np.testing.assert_array_equal(after, before)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    from dltools.spectral.training import resume_training

    resumed = resume_training(tmp_path / "b", cube, from_epoch=2, epochs=4, verbose=0)
    for a, b in zip(trained.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "b" / "history.csv").read_text() == (
        tmp_path / "a" / "history.csv"
    ).read_text()
    with pytest.raises(
        DltoolsError,
        match=r"epoch_0003.keras: not found \(saved checkpoints: \['epoch_0002.keras'\]",
    ):
        load_model(tmp_path / "a", epoch=3)


def test_tied_weights_and_skip_connections():
    plain = build_autoencoder("mlp", BANDS)
    tied = build_autoencoder("mlp", BANDS, tied_weights=True)
    kernels = sum(50 * 30 + 30 * 10 + BANDS * 50 for _ in "ab")
    assert plain.count_params() - tied.count_params() == kernels // 2
    x = np.random.default_rng(0).random((5, BANDS), np.float32)
    np.testing.assert_allclose(tied(x), tied.decode(tied.encode(x)), rtol=1e-6)
    skips = build_autoencoder("mlp", BANDS, skip_connections=True)
    assert skips(x).shape == (5, BANDS)
    with pytest.raises(DltoolsError, match="skip connections"):
        skips.decode(skips.encode(x))


def test_conv_autoencoder_shapes_and_bad_architectures():
    model = build_autoencoder(
        "conv", 101, filters=[4, 8, 8], kernel_sizes=[7, 5, 3], strides=[2, 2, 1]
    )
    x = np.random.default_rng(0).random((3, 101), np.float32)
    assert model.encode(x).shape == (3, 10) and model(x).shape == (3, 101)
    with pytest.raises(DltoolsError, match="kernel_sizes must be 3 positive"):
        build_autoencoder("conv", 101, filters=[4, 8, 8], kernel_sizes=[7, 5], strides=[2, 2, 1])
    with pytest.raises(DltoolsError, match="unknown activation 'rellu'"):
        build_autoencoder("mlp", 101, activation="rellu")


def test_optimizers_and_learning_rate_schedules():
    def rates(optimizer, steps):
        found = []
        for step in steps:
            optimizer.iterations.assign(step)
            found.append(float(optimizer.learning_rate))
        return found

    sgd = make_optimizer(
        "sgd", 0.1, momentum=0.8, decay="piecewise", boundaries=[10, 20], rates=[0.01, 0.001]
    )
    assert sgd.momentum == 0.8
    assert rates(sgd, [5, 15, 25]) == pytest.approx([0.1, 0.01, 0.001])
    adam = make_optimizer(
        "adam", 0.01, decay="exponential", decay_steps=100, decay_rate=0.5, weight_decay=1e-4
    )
    assert rates(adam, [0, 100, 200]) == pytest.approx([0.01, 0.005, 0.0025])
    assert adam.weight_decay == pytest.approx(1e-4)
    with pytest.raises(DltoolsError, match="one rate per boundary"):
        make_optimizer(decay="piecewise", boundaries=[10], rates=[])


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_command_line_trains_from_a_config_and_writes_georeferenced_outputs(
    scene, tmp_path, capsys
):
    write_raster(tmp_path / "scene.tif", scene.cube, GRID)
    config = {
        "kind": "conv",
        "filters": [4, 8],
        "kernel_sizes": [7, 5],
        "latent_size": 4,
        "loss": "csa",
        "optimizer": "sgd",
        "learning_rate": 0.05,
        "decay": "exponential",
        "decay_steps": 20,
        "epochs": 50,
    }
    (tmp_path / "options.json").write_text(json.dumps(config))
    model_dir = tmp_path / "model"
    args = ["-i", tmp_path / "scene.tif", "-o", model_dir, "--config", tmp_path / "options.json"]
    assert run("train-ae", *args, "--epochs", "3", "--save-epochs", "1") == 0
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["kind"] == "conv" and saved["architecture"]["filters"] == [4, 8]
    assert saved["architecture"]["latent_size"] == 4 and saved["training"]["loss"] == "csa"
    assert saved["training"]["epochs"] == 3 and saved["epochs_done"] == 3  # the command line wins
    assert saved["training"]["optimizer"] == "sgd" and saved["scaling"]["method"] == "minmax"
    assert (model_dir / "epoch_0001.keras").is_file()
    assert run("train-ae", *args) == 2  # the folder exists: refused
    assert "refusing to overwrite" in capsys.readouterr().err
    again = ["-i", tmp_path / "scene.tif", "-o", tmp_path / "again", "--epochs", "1"]
    assert run("train-ae", *again, "--config", model_dir / "config.json") == 0
    copied = json.loads((tmp_path / "again" / "config.json").read_text())
    assert copied["architecture"] == saved["architecture"] and copied["kind"] == "conv"
    assert copied["training"] == {**saved["training"], "epochs": 1}

    out = tmp_path / "out"
    assert run("encode", "-m", model_dir, "-i", tmp_path / "scene.tif", "-o", out) == 0
    with rasterio.open(out / "scene_latent.tif") as src:
        assert (src.count, src.crs, src.transform) == (4, GRID["crs"], GRID["transform"])
    assert (out / "scene_latent.png").stat().st_size > 10_000
    assert run("decode", "-m", model_dir, "-i", out / "scene_latent.tif") == 0
    decoded = read_raster(out / "scene_latent_decoded.tif")
    assert decoded.shape == (64, 64, BANDS) and np.isfinite(decoded).all()
    assert run("reconstruct", "-m", model_dir, "-i", tmp_path / "scene.tif", "-o", out) == 0
    assert "mean spectral angle" in capsys.readouterr().out
    rebuilt = read_raster(out / "scene_reconstruction.tif")
    np.testing.assert_allclose(rebuilt, decoded, rtol=1e-4, atol=1e-5)
    assert (out / "scene_spectra.png").is_file()


def test_command_line_reports_bad_input(scene, cube, tmp_path, capsys):
    training = Training(epochs=1, batch_size=512)
    train_autoencoder(cube, tmp_path / "model", "mlp", {}, training, verbose=0)
    np.save(tmp_path / "narrow.npy", scene.cube[..., :100])
    assert run("encode", "-m", tmp_path / "model", "-i", tmp_path / "narrow.npy") == 2
    assert "has 100 band(s) but the model" in capsys.readouterr().err
    holes = scene.cube.copy()
    holes[3, 4, 0] = np.nan
    np.save(tmp_path / "holes.npy", holes)
    assert run("encode", "-m", tmp_path / "model", "-i", tmp_path / "holes.npy") == 2
    assert "pixel (row 3, col 4) holds NaN" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_latent*"))
    with pytest.raises(DltoolsError, match=r"pixel \(row 3, col 4\) holds NaN"):
        train_autoencoder(open_cube(tmp_path / "holes.npy"), tmp_path / "m2", verbose=0)
    assert run("encode", "-m", tmp_path, "-i", tmp_path / "holes.npy") == 2
    assert "not a spectral model folder" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"encoder_sise": [5]}')
    args = ["-i", tmp_path / "holes.npy", "-o", tmp_path / "new", "--config", tmp_path / "bad.json"]
    assert run("train-ae", *args) == 2
    assert "unknown option(s) ['encoder_sise']" in capsys.readouterr().err
