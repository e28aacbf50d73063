"""The classifier on a small set of spectra: k-fold accuracy against 1-NN, tables, memory."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dltools.cli.spectral import main
from dltools.spectral.synthetic import light_sources

ROOT = Path(__file__).resolve().parents[1]
# the default recipe (bench/spectral.py --parts cv: 5 folds, up to 150 epochs, early stopping
# after 40-90) in 3 folds of 8 epochs, to keep the test short
CV_FOLDS, CV_EPOCHS = 3, 8


def run(*argv) -> int:
    return main([str(a) for a in argv])


def write_table(path: Path, seed: int) -> np.ndarray:
    """The synthetic light sources of ``seed`` as a CSV table, labels named; returns them."""
    data = light_sources(seed=seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", *(f"{400 + b}nm" for b in range(data.spectra.shape[1]))])
        for label, spectrum in zip(data.labels, data.spectra, strict=True):
            writer.writerow([f"lamp {label}", *spectrum.tolist()])
    return data.labels


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sources") / "sources.csv"
    write_table(path, seed=0)
    return path


@pytest.mark.slow
def test_cnn_beats_the_best_nearest_neighbour_baseline_in_k_fold(table, tmp_path, capsys):
    args = ["--table", table, "--label-column", "source", "-o", tmp_path, "--cv", CV_FOLDS]
    assert run("train-classifier", *args, "--epochs", CV_EPOCHS) == 0
    out = capsys.readouterr().out
    scores = json.loads((tmp_path / "cv.json").read_text())
    accuracy = {m: s["accuracy"] for m, s in scores["methods"].items()}
    print(out, accuracy)
    assert set(accuracy) == {"cnn", "1nn", "1nn_fft"} and scores["folds"] == CV_FOLDS
    assert all(len(s["fold_accuracy"]) == CV_FOLDS for s in scores["methods"].values())
    best = max(accuracy["1nn"], accuracy["1nn_fft"])
    assert best < 0.85  # shifts and variable continua defeat nearest neighbours
    assert accuracy["cnn"] >= best + 0.10
    assert scores["margin"] == pytest.approx(accuracy["cnn"] - best)
    assert "1-NN, FFT magnitudes" in out and "CNN - best simple baseline" in out
    assert list(tmp_path.iterdir()) == [tmp_path / "cv.json"]  # fold models were temporary
    assert run("train-classifier", *args, "--epochs", 1) == 2  # cv.json is not overwritten
    assert "cv.json" in capsys.readouterr().err


def test_table_training_and_prediction(table, tmp_path, capsys):
    args = ["--table", table, "--label-column", "source", "--epochs", 4, "--seed", 3]
    assert run("train-classifier", *args, "-o", tmp_path / "a") == 0
    assert run("train-classifier", *args, "-o", tmp_path / "b") == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["classes"]["names"] == [f"lamp {k}" for k in range(1, 8)]
    assert config["source"] == {"table": str(table)}
    assert config["architecture"]["head"] == "flatten" and config["training"]["shift"] == 6
    predicted = {}
    for name in ("a", "b"):
        out = tmp_path / f"out_{name}"
        predict = ["--table", table, "--label-column", 0, "-m", tmp_path / name, "-o", out]
        assert run("predict", *predict) == 0
        with (out / "sources_predictions.csv").open(newline="") as f:
            predicted[name] = list(csv.DictReader(f))
    assert predicted["a"] == predicted["b"]  # the same seed, the same model
    rows = predicted["a"]
    probabilities = np.array([[float(r[f"p_lamp {k}"]) for k in range(1, 8)] for r in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    values = np.array([int(r["value"]) for r in rows])
    np.testing.assert_array_equal(values, probabilities.argmax(axis=1) + 1)
    assert [r["class"] for r in rows[:3]] == [f"lamp {v}" for v in values[:3]]
    truth = np.array([int(r["true_value"]) for r in rows])
    accuracy = np.mean(values == truth)
    assert f"accuracy {accuracy:.4f}, macro F1 " in capsys.readouterr().out
    assert accuracy > 0.5
    assert run("predict", *predict) == 2  # no silent overwrite
    assert "sources_predictions.csv" in capsys.readouterr().err


def test_table_needs_its_label_column_and_a_cube_its_raster(table, tmp_path, capsys):
    assert run("train-classifier", "--table", table, "-o", tmp_path / "m") == 2
    assert "--table needs --label-column" in capsys.readouterr().err
    np.save(tmp_path / "cube.npy", np.zeros((4, 1, 8), np.float32))
    assert run("train-classifier", "-i", tmp_path / "cube.npy", "-o", tmp_path / "m") == 2
    assert "-i CUBE needs -r RASTER" in capsys.readouterr().err
    args = ["--table", table, "--label-column", "source", "-o", tmp_path / "m", "--gain", 1.5]
    assert run("train-classifier", *args) == 2
    assert "gain in [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        run("train-classifier", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--shift", 6), ("--epochs", 150), ("--head", "flatten")):
        assert option in text and f"(default: {default})" in text
    assert "(default: None)" not in text and text.count("(default: 0)") == 1  # --seed


def _bench():
    """bench/spectral.py as a module (its memory probe)."""
    spec = importlib.util.spec_from_file_location("bench_spectral", ROOT / "bench" / "spectral.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_predict_on_a_one_column_cube_stays_small(tmp_path):
    """175 spectra stored as a 175 x 1 x 480 cube once took 6-11 GB (a 1226-inch figure)."""
    data = light_sources(seed=1, per_class=(25, 25))
    np.save(tmp_path / "cube.npy", data.spectra[:, None, :])
    np.save(tmp_path / "labels.npy", data.labels[:, None])
    args = ["-i", tmp_path / "cube.npy", "-r", tmp_path / "labels.npy", "-o", tmp_path / "m"]
    assert run("train-classifier", *args, "--epochs", 1) == 0
    bench = _bench()
    floor = bench.peak_rss_gb("-c", bench.LOAD_ONLY, tmp_path / "m")
    predict = ["-m", "dltools", "spectral", "predict", "-m", tmp_path / "m"]
    peak = bench.peak_rss_gb(*predict, "-i", tmp_path / "cube.npy", "-o", tmp_path / "out")
    print(f"peak RSS: predict {peak:.2f} GB, import TensorFlow + load the model {floor:.2f} GB")
    assert peak < 1.0 and peak - floor < 0.2
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["cube_classes.png", "cube_classes.qml", "cube_classes.tif", "cube_scores.tif"]
