"""Step 7 (dltools eval-pixels / eval_semseg/test_pixels.py): pixel scores against manual labels.

Scores are checked against values computed by hand on a small example whose two files list
the classes in different orders, against scikit-learn, and on the original tool's shared
``_mres.mat`` variants (uint8 / int32, two label orders, one without names).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from dltools.cli import main as dltools_main
from dltools.engines.metrics import cohen_kappa, mean_iou, pixel_summary, score, weighted_f1
from dltools.io.discovery import image_name, pair_predictions
from dltools.io.geo import write_raster
from dltools.io.images import write_image
from dltools.io.labels import read_labels, write_labels
from dltools.io.results import LabelResult, read_result, remap_classes, write_result
from dltools.pipeline.evaluate_pixels import evaluate_pixels

REPO = Path(__file__).resolve().parents[1]
W, S, V = "water", "sand", "veg"
# manual labels (None = unlabelled) and predictions of a 3 x 4 image
TRUTH = [[W, W, W, S], [W, S, S, V], [V, V, V, None]]
PRED = [[W, W, S, S], [W, S, V, V], [V, V, W, W]]
TRUE_ORDER, PRED_ORDER = [V, W, S], [W, S, V]  # the two files list their classes differently


def indices(names: list[list[str | None]], order: list[str]) -> np.ndarray:
    return np.array([[order.index(n) if n else -1 for n in row] for row in names], np.int16)


def run_cli(*args) -> int:
    return dltools_main(["eval-pixels", *map(str, args)])


@pytest.fixture
def small(tmp_path: Path) -> Path:
    write_result(tmp_path / "x_mres.mat", LabelResult(indices(TRUTH, TRUE_ORDER), TRUE_ORDER))
    write_result(tmp_path / "x_ares_96.mat", LabelResult(indices(PRED, PRED_ORDER), PRED_ORDER))
    return tmp_path


@pytest.mark.parametrize("chunks", [(1 << 20, 1 << 20), (9, 3)])
def test_scores_match_the_hand_computed_values(small: Path, capsys, monkeypatch, chunks) -> None:
    # (9, 3): strips of 2 rows (of 4 pixels; the last strip 1 row), counted 3 pixels at a time
    monkeypatch.setattr("dltools.pipeline.evaluate_pixels.CHUNK", chunks[0])
    monkeypatch.setattr("dltools.engines.metrics.CHUNK", chunks[1])
    assert run_cli("-i", small) == 0
    printed = capsys.readouterr().out
    summary = json.loads((small / "pixel_summary.json").read_text())
    image = summary["images"]["x_ares_96"]
    assert image == {**image, "manual": str(small / "x_mres.mat"), "unpredicted": 0}
    # rows = manual, columns = predicted, in the prediction's order water, sand, veg
    assert image["confusion"] == [[3, 1, 0], [0, 2, 1], [1, 0, 3]]
    assert image["pixels"] == 11  # the unlabelled pixel is left out
    assert image["accuracy"] == pytest.approx(8 / 11)
    per_class = image["per_class"]
    assert per_class[W]["precision"] == pytest.approx(3 / 4)  # 3 of the 4 called water
    assert per_class[S]["recall"] == pytest.approx(2 / 3)  # the original's FN was off by two
    assert per_class[V]["f1"] == pytest.approx(3 / 4)
    assert [per_class[c]["support"] for c in (W, S, V)] == [4, 3, 4]
    assert per_class[S]["iou"] == pytest.approx(2 / 4)
    assert image["macro_f1"] == pytest.approx((3 / 4 + 2 / 3 + 3 / 4) / 3)
    assert image["weighted_f1"] == pytest.approx((4 * 3 / 4 + 3 * 2 / 3 + 4 * 3 / 4) / 11)
    assert image["mean_iou"] == pytest.approx((3 / 5 + 2 / 4 + 3 / 5) / 3)
    assert image["kappa"] == pytest.approx(47 / 80)  # (8/11 - 41/121) / (1 - 41/121)
    assert summary["pooled"]["accuracy"] == image["accuracy"]
    assert "x_ares_96" in printed and "0.7273" in printed and "kappa" in printed
    with open(small / "pixel_metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["image"], r["class"]) for r in rows] == [
        ("x_ares_96", W), ("x_ares_96", S), ("x_ares_96", V),
        ("pooled", W), ("pooled", S), ("pooled", V),
    ]  # fmt: skip
    assert float(rows[1]["recall"]) == pytest.approx(2 / 3) and rows[1]["support"] == "3"
    for name in ("x_ares_96_cm.png", "pixel_f1.png"):
        assert (small / name).read_bytes()[:4] == b"\x89PNG"
    # never overwritten without --force
    assert run_cli("-i", small) == 2
    assert run_cli("-i", small, "--force") == 0


def test_pixel_scores_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    true = rng.choice(4, size=5000, p=[0.5, 0.3, 0.15, 0.05])
    pred = np.where(rng.random(5000) < 0.7, true, rng.integers(0, 4, 5000))
    s = score(true, pred, ["a", "b", "c", "d"])
    assert weighted_f1(s) == pytest.approx(skm.f1_score(true, pred, average="weighted"))
    assert cohen_kappa(s.confusion) == pytest.approx(skm.cohen_kappa_score(true, pred))
    assert mean_iou(s.confusion) == pytest.approx(skm.jaccard_score(true, pred, average="macro"))
    assert pixel_summary(s)["pixels"] == 5000


def test_pooled_scores_add_the_images_confusions(small: Path) -> None:
    second = indices([[W, W, W, W], [S, S, S, S], [V, V, V, V]], TRUE_ORDER)
    write_result(small / "y_mres.mat", LabelResult(second, TRUE_ORDER))
    write_result(small / "y_ares_96.mat", LabelResult(indices(PRED, PRED_ORDER), PRED_ORDER))
    evaluation = evaluate_pixels(pair_predictions(small))
    assert [i.name for i in evaluation.images] == ["x", "y"]
    pooled = sum(i.scores.confusion for i in evaluation.images)
    np.testing.assert_array_equal(evaluation.pooled.confusion, pooled)
    assert evaluation.pooled.support.sum() == 11 + 12


def test_predictions_without_manual_labels_fail_clearly(small: Path, capsys) -> None:
    write_result(small / "z_ares_96.mat", LabelResult(indices(PRED, PRED_ORDER), PRED_ORDER))
    assert run_cli("-i", small) == 2
    err = capsys.readouterr().err
    assert "no manual label" in err and "z_ares_96.mat" in err
    assert not (small / "pixel_summary.json").exists()
    empty = small / "empty"
    empty.mkdir()
    assert run_cli("-i", empty) == 2
    assert "no predictions matching *_ares*.mat" in capsys.readouterr().err


def test_classes_missing_from_either_side_fail_clearly(small: Path, capsys) -> None:
    # the manual label has 'road' pixels, a class the prediction does not know
    truth = indices([[W, W, W, S], [W, S, S, V], [V, V, "road", None]], [*TRUE_ORDER, "road"])
    write_result(small / "x_mres.mat", LabelResult(truth, [*TRUE_ORDER, "road"]))
    assert run_cli("-i", small) == 2
    err = capsys.readouterr().err
    assert "road" in err and "x_mres.mat" in err and "exact name" in err
    # unless asked to score such pixels as errors (a class the model never had tiles for)
    assert run_cli("-i", small, "--allow-missing") == 0
    road = json.loads((small / "pixel_summary.json").read_text())["pooled"]["per_class"]["road"]
    assert road == {**road, "support": 1, "recall": 0.0}
    # the prediction has 'dune' pixels, a class the manual label does not know
    write_result(small / "x_mres.mat", LabelResult(indices(TRUTH, TRUE_ORDER), TRUE_ORDER))
    pred = indices([[W, W, S, S], [W, S, V, V], [V, V, "dune", W]], [*PRED_ORDER, "dune"])
    write_result(small / "x_ares_96.mat", LabelResult(pred, [*PRED_ORDER, "dune"]))
    assert run_cli("-i", small, "--force") == 2
    assert "dune" in capsys.readouterr().err
    # classes listed but never used on the other side are fine
    pred = indices(PRED, PRED_ORDER)
    write_result(small / "x_ares_96.mat", LabelResult(pred, [*PRED_ORDER, "dune"]))
    assert run_cli("-i", small, "--force") == 0


def test_label_raster_folders_give_the_same_scores(small: Path, tmp_path_factory) -> None:
    preds, truths = tmp_path_factory.mktemp("preds"), tmp_path_factory.mktemp("truths")
    names = [W, S, V]
    write_labels(truths / "labels.txt", names)
    write_image(truths / "x_label.png", (indices(TRUTH, names) + 1).astype(np.uint8))
    profile = {"width": 4, "height": 3, "crs": None}
    write_raster(preds / "x_ares_96.tif", (indices(PRED, names) + 1).astype(np.uint8), profile)
    args = ["-i", preds, "--true-dir", truths, "--pred-glob", "*_ares_96.tif"]
    args += ["--true-glob", "*_label.png", "-l", truths / "labels.txt"]
    assert run_cli(*args) == 0
    from_rasters = json.loads((preds / "pixel_summary.json").read_text())["pooled"]
    assert run_cli("-i", small) == 0
    from_mat = json.loads((small / "pixel_summary.json").read_text())["pooled"]
    assert from_rasters == from_mat
    # rasters name no classes: without -l that is an error that says what to do
    assert run_cli(*args[:-2], "-o", tmp_path_factory.mktemp("out")) == 2


def test_images_of_different_sizes_are_refused(small: Path, capsys) -> None:
    write_result(small / "x_ares_96.mat", LabelResult(np.zeros((3, 5), np.uint8), PRED_ORDER))
    assert run_cli("-i", small) == 2
    assert "3 x 5 pixels" in capsys.readouterr().err


def test_result_names_give_their_image() -> None:
    assert image_name("a/StMarg_26818_ares_96.mat") == "StMarg_26818"
    assert image_name("D800_20160308_221738-0_mres_DJWTNN2.mat") == "D800_20160308_221738-0"
    assert image_name("x_mres.mat") == "x" and image_name("SCLS_x.tif") == "SCLS_x"


def test_script_runs_as_the_original_name(small: Path) -> None:
    script = REPO / "eval_semseg" / "test_pixels.py"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, script, "-i", small], check=True, env=env)
    assert json.loads((small / "pixel_summary.json").read_text())["pooled"]["pixels"] == 11


@pytest.mark.slow
def test_the_original_mres_variants_are_read_and_matched_by_name(shared_dir: Path, tmp_path):
    """Predictions made from the shared originals, stored with their classes in another order."""
    gt = shared_dir / "data" / "dltools_formats" / "gt"
    monterey = shared_dir / "data" / "dltools_formats" / "labels" / "monterey_labels.txt"
    names = read_labels(monterey)
    reordered = sorted(names, key=lambda n: n[::-1])  # yet another class order
    expected = {}
    for stamp in ("221737", "221741", "221825"):
        mres = gt / f"D800_20160308_{stamp}-0_mres.mat"
        (tmp_path / mres.name).symlink_to(mres)
        truth = read_result(mres, names)  # 221741 stores no names: take monterey's
        pred = remap_classes(truth.class_map, truth.labels, reordered).astype(np.uint8)
        if stamp == "221737":  # 500 rows called water: a known share of the labels changes
            pred[:500] = reordered.index("water")
            changed = truth.class_map[:500] != truth.labels.index("water")
            expected[stamp] = 1 - changed.sum() / truth.class_map.size
        else:
            expected[stamp] = 1.0
        ares = tmp_path / f"D800_20160308_{stamp}-0_ares_96.mat"
        write_result(ares, LabelResult(pred, reordered))
    assert run_cli("-i", tmp_path) == 2  # 221741's manual label names no classes
    assert run_cli("-i", tmp_path, "-l", monterey) == 0
    images = json.loads((tmp_path / "pixel_summary.json").read_text())["images"]
    for stamp, accuracy in expected.items():
        image = images[f"D800_20160308_{stamp}-0_ares_96"]
        assert image["accuracy"] == pytest.approx(accuracy), stamp
        assert image["pixels"] == 4912 * 7360
    assert 0.9 < expected["221737"] < 0.97
