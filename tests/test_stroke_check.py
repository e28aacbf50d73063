"""How good is a labelling: cross-validation over the strokes (label --check)."""

from __future__ import annotations

import numpy as np
import pytest
from stmarg_frames import read_frame

from dltools.engines.crf import label_from_strokes
from dltools.engines.stroke_check import assign_folds, check_strokes, stroke_groups
from dltools.synthetic.scenes import coastal_scene, simulate_strokes

STMARG = ("26607", "26626", "26722", "26734", "26758")


def test_strokes_are_8_connected_regions_of_one_class():
    strokes = np.zeros((8, 8), np.uint8)
    strokes[1, 1:4] = 1  # one stroke ...
    strokes[2, 4] = 1  # ... touching it at a corner
    strokes[1, 5:7] = 2  # a class-2 stroke beside it
    strokes[6, 0:3] = 1  # a second class-1 stroke
    groups, classes = stroke_groups(strokes)
    assert sorted(classes.tolist()) == [1, 1, 2]
    assert len(np.unique(groups[strokes == 1])) == 2
    assert groups[1, 1] == groups[2, 4] != groups[6, 0]
    assert (groups > 0).sum() == (strokes > 0).sum()


def test_folds_balance_each_class_and_keep_a_lone_stroke():
    sizes = np.array([50, 40, 30, 20, 10, 5, 99])
    classes = np.array([1, 1, 1, 1, 1, 1, 2])
    folds = assign_folds(sizes, classes, 3, seed=0)
    assert folds[6] == -1  # the only stroke of class 2 is never held out
    loads = np.bincount(folds[:6], weights=sizes[:6], minlength=3)
    assert loads.max() - loads.min() <= 10
    np.testing.assert_array_equal(folds, assign_folds(sizes, classes, 3, seed=0))


@pytest.fixture(scope="module")
def scene():
    rgb, labels = coastal_scene(240, 360, seed=3)
    return rgb, labels, simulate_strokes(labels, fraction=0.03, width=3, margin=4, seed=3)


def test_check_scores_held_out_strokes_per_class_with_an_interval(scene):
    rgb, _, strokes = scene
    check = check_strokes(rgb, strokes, 6, folds=4, scale=0.5, workers=2, seed=0)
    held = check.confusion.sum()
    assert 0 < held <= np.count_nonzero(strokes)
    assert check.folds == 4 and check.checked.sum() >= 4
    low, high = check.interval
    assert low <= check.agreement <= high and high - low < 0.3
    again = check_strokes(rgb, strokes, 6, folds=4, scale=0.5, workers=1, seed=0)
    np.testing.assert_array_equal(again.confusion, check.confusion)  # deterministic, any workers
    report = "\n".join(check.lines([f"class {k}" for k in range(1, 7)]))
    assert "stroke cross-validation (4 folds" in report and report.count("strokes,") >= 4


def test_contradicting_strokes_lower_the_agreement(scene):
    """Strokes that disagree with the image (half the strokes of two classes swapped) are
    caught: the held-out agreement falls well below that of honest strokes."""
    rgb, _, strokes = scene
    honest = check_strokes(rgb, strokes, 6, folds=4, scale=0.5, workers=2).agreement
    groups, classes = stroke_groups(strokes)
    swapped = strokes.copy()
    for g in np.flatnonzero(np.isin(classes, [1, 3]))[::2]:
        swapped[groups == g + 1] = 4 - classes[g]  # 1 <-> 3
    noisy = check_strokes(rgb, swapped, 6, folds=4, scale=0.5, workers=2).agreement
    assert honest > 0.9 and noisy < honest - 0.15


@pytest.mark.slow
def test_check_estimates_the_true_accuracy_of_real_frames(shared_dir):
    """On five St Margaret's frames (halved), with strokes simulated as the CRF tests do, the
    estimate from the strokes alone is within 0.03 of the accuracy against the hand labels."""
    for number in STMARG:
        rgb, labels = read_frame(shared_dir, number, shrink=2)
        strokes = simulate_strokes(labels, fraction=0.02, width=3, margin=5, seed=0)
        class_map, _ = label_from_strokes(rgb, strokes, 3, scale=0.2, workers=2)
        known = labels > 0
        true = np.mean(class_map[known] + 1 == labels[known])
        estimate = check_strokes(rgb, strokes, 3, folds=5, scale=0.2, workers=2).agreement
        print(f"{number}: true {true:.4f}, estimate {estimate:.4f}")
        assert abs(estimate - true) <= 0.03, number
