"""Where to paint next: uncertainty rasters and ranked windows (label --uncertainty)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from stmarg_frames import read_frame

from dltools.engines.crf import CRFParams, label_from_strokes
from dltools.engines.uncertainty import rank_windows, uncertainty_map, upsample
from dltools.io.images import read_image
from dltools.io.labels import read_classes
from dltools.io.vectors import read_layer
from dltools.pipeline.label import LabelOptions, label_image
from dltools.synthetic.scenes import simulate_strokes

DEMO = Path(__file__).resolve().parents[1] / "demo_data"
STMARG = ("26607", "26626", "26722", "26734", "26758")


def test_margin_and_entropy_are_0_when_sure_1_at_a_tie_and_nan_at_nodata():
    posteriors = np.array([[[1.0, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 0]]])
    margin = uncertainty_map(posteriors, "margin")[0]
    entropy = uncertainty_map(posteriors, "entropy")[0]
    np.testing.assert_allclose(margin[:3], [0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(entropy[:3], [0, np.log(2) / np.log(3), 1], atol=1e-6)
    assert np.isnan(margin[3]) and np.isnan(entropy[3])
    with pytest.raises(ValueError, match="unknown uncertainty measure"):
        uncertainty_map(posteriors, "variance")


def test_windows_are_whole_ranked_by_uncertainty_and_name_the_classes_in_doubt():
    posteriors = np.zeros((30, 50, 3), np.float32)
    posteriors[..., 0] = 1
    posteriors[20:30, 40:50] = [0, 0.5, 0.5]  # a tie between classes 1 and 2 in one corner
    posteriors[0:5, 0:5] = 0  # nodata
    values = upsample(uncertainty_map(posteriors), (300, 500))
    ranked = rank_windows(values, posteriors, 128)
    assert all((w.height, w.width) == (128, 128) for w in ranked)
    first = ranked[0]
    assert first.row + first.height == 300 and first.col + first.width == 500
    assert first.doubt == (1, 2) and first.mean > 0.3 > ranked[-1].mean
    assert [w.mean for w in ranked] == sorted((w.mean for w in ranked), reverse=True)


def test_label_writes_the_uncertainty_raster_and_the_ranked_windows(tmp_path):
    classes = read_classes(DEMO / "labels.txt", DEMO / "colors.txt")
    options = LabelOptions(
        out_dir=tmp_path, strokes=DEMO / "doodles" / "coast_01_doodles.png", uncertainty="margin"
    )
    paths = label_image(DEMO / "images" / "coast_01.jpg", classes, CRFParams(), 0.25, options)
    image = read_image(DEMO / "images" / "coast_01.jpg")
    raster = read_image(paths.uncertainty)
    assert raster.shape[:2] == image.shape[:2] and raster.dtype == np.uint8 and raster.max() > 100
    with paths.next_csv.open() as f:
        rows = list(csv.DictReader(f))
    means = [float(r["mean_uncertainty"]) for r in rows]
    assert len(rows) >= 2 and means == sorted(means, reverse=True)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(name in classes.names for r in rows for name in r["doubt"].split(" / "))
    outlines, fields, _ = read_layer(paths.next_geojson)
    assert len(outlines) == len(rows) and list(fields["rank"]) == list(range(1, len(rows) + 1))
    first = outlines[0].bounds  # pixel coordinates for a plain photo
    assert (first[0], first[1]) == (int(rows[0]["col"]), int(rows[0]["row"]))


@pytest.mark.slow
def test_uncertainty_is_higher_where_the_crf_is_wrong_on_real_frames(shared_dir):
    """AUC of the uncertainty for telling wrong from right pixels, over the labelled pixels of
    five St Margaret's frames (halved, strokes simulated as the CRF tests do)."""
    from sklearn.metrics import roc_auc_score

    wrong, scores = [], {"margin": [], "entropy": []}
    for number in STMARG:
        rgb, labels = read_frame(shared_dir, number, shrink=2)
        strokes = simulate_strokes(labels, fraction=0.02, width=3, margin=5, seed=0)
        class_map, posteriors = label_from_strokes(rgb, strokes, 3, scale=0.2, workers=2)
        known = labels > 0
        wrong.append(class_map[known] + 1 != labels[known])
        for measure, values in scores.items():
            values.append(upsample(uncertainty_map(posteriors, measure), labels.shape)[known])
    wrong = np.concatenate(wrong)
    for measure, values in scores.items():
        auc = roc_auc_score(wrong, np.concatenate(values))
        print(
            f"{measure}: AUC {auc:.3f} over {wrong.size} labelled pixels, {wrong.mean():.4f} wrong"
        )
        assert auc >= 0.75, measure
