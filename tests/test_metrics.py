"""dltools.engines.metrics: confusion matrices and scores, classes matched by exact name."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from dltools.engines.metrics import class_indices, confusion_matrix, score, scores_from_confusion
from dltools.errors import DltoolsError

NAMES = ["water", "sediment", "vegetation", "road"]


def test_scores_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    true = rng.choice(3, size=2000, p=[0.6, 0.05, 0.35])  # 'road' never occurs nor is predicted
    pred = np.where(rng.random(2000) < 0.8, true, rng.integers(0, 3, 2000))
    s = score(true, pred, NAMES)
    present = [0, 1, 2]
    np.testing.assert_array_equal(s.confusion, skm.confusion_matrix(true, pred, labels=range(4)))
    assert s.accuracy == pytest.approx(skm.accuracy_score(true, pred))
    assert s.macro_f1 == pytest.approx(skm.f1_score(true, pred, average="macro"))
    np.testing.assert_allclose(s.f1[present], skm.f1_score(true, pred, average=None))
    np.testing.assert_allclose(s.precision[present], skm.precision_score(true, pred, average=None))
    np.testing.assert_allclose(s.recall[present], skm.recall_score(true, pred, average=None))
    assert s.mean_recall == pytest.approx(skm.balanced_accuracy_score(true, pred))
    assert s.support.tolist() == [int(np.sum(true == k)) for k in range(4)]
    table = s.to_dict()
    assert table["per_class"]["road"] == {"precision": 0, "recall": 0, "f1": 0, "support": 0}
    assert table["n"] == 2000


def test_a_rare_class_that_is_never_found_pulls_macro_f1_down() -> None:
    true = np.array([0] * 95 + [1] * 5)
    pred = np.zeros(100, int)
    s = score(true, pred, ["water", "sediment"])
    assert s.accuracy == 0.95
    assert s.f1[1] == 0.0
    assert s.macro_f1 == pytest.approx((2 * 0.95 / 1.95 + 0) / 2)


def test_negative_truth_is_ignored_and_maps_keep_their_shape() -> None:
    true = np.array([[0, 1, -1], [2, -1, 1]])
    pred = np.array([[0, 2, 1], [2, 0, 1]])
    cm = confusion_matrix(true, pred, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert scores_from_confusion(cm, ["a", "b", "c"]).accuracy == 0.75
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def test_classes_are_matched_by_exact_name_not_prefix() -> None:
    classes = ["duneveg", "dune", "water"]
    assert class_indices(["dune", "duneveg", "dune"], classes).tolist() == [1, 0, 1]
    with pytest.raises(DltoolsError, match="dunes"):
        class_indices(["dunes"], classes)
    with pytest.raises(DltoolsError, match="Water"):
        class_indices(["Water"], classes)
