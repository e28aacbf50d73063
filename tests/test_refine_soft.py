"""Soft targets for the per-image classifiers of step 6 (issue #17): a class the tile map
proposes only weakly (a thin road inside land tiles) is learned from the tile posteriors."""

from __future__ import annotations

import numpy as np

from dltools.engines.refine import classify_pixels, refine


def road_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (96, 96, 3) uint8, truth (96, 96) 0-based, evidence (96, 96, 2) float32).

    Sandy land with a dark road 6 px wide in every other column of 16-px tiles; the tiles
    that hold a road say land 0.65, road 0.35 (no tile's top class is road), the others land
    0.97, road 0.03."""
    rng = np.random.default_rng(0)
    truth = np.zeros((96, 96), np.int64)
    evidence = np.zeros((96, 96, 2), np.float32)
    evidence[...] = (0.97, 0.03)
    for start in range(0, 96, 32):
        truth[:, start + 5 : start + 11] = 1
        evidence[:, start : start + 16] = (0.65, 0.35)
    colours = np.array([[200, 180, 120], [70, 70, 80]], np.float64)
    image = colours[truth] + rng.normal(0, 12, (96, 96, 3))
    return np.clip(image, 0, 255).astype(np.uint8), truth, evidence


def test_soft_targets_recover_a_class_no_tile_proposes_first():
    image, truth, evidence = road_scene()
    hard, _ = refine(image, evidence, "mlp", scale=1.0)
    soft, _ = refine(image, evidence, "mlp", scale=1.0, soft=True)
    assert (hard == 1).sum() == 0  # argmax targets: only land to learn
    road_recall = ((soft == 1) & (truth == 1)).sum() / (truth == 1).sum()
    land_recall = ((soft == 0) & (truth == 0)).sum() / (truth == 0).sum()
    assert road_recall > 0.8 and land_recall > 0.7  # roads come out wider (context features)


def test_soft_targets_are_reproducible_and_follow_the_weights():
    features = np.random.default_rng(1).normal(size=(40, 50, 4)).astype(np.float32)
    targets = np.zeros((40, 50), np.int64)
    soft = np.zeros((40, 50, 3), np.float32)
    soft[..., 2] = 1.0  # every pixel certainly class 2, whatever its hard target says
    probs = classify_pixels(features, targets, 3, "rf", seed=3, workers=1, soft=soft)
    assert (probs.argmax(axis=2) == 2).all()
    again = classify_pixels(features, targets, 3, "rf", seed=3, workers=1, soft=soft)
    np.testing.assert_array_equal(probs, again)
