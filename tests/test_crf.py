"""The dense-CRF engine: accuracy on real labelled frames, tiling, nodata, bands, dtypes, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
from pydensecrf.utils import create_pairwise_bilateral, unary_from_labels
from stmarg_frames import read_frame

from dltools.engines.crf import (
    NODATA,
    CRFParams,
    dense_crf,
    label_from_probs,
    label_from_strokes,
    tiled_crf,
    unary_from_strokes,
)
from dltools.errors import DltoolsError
from dltools.raster.windows import spread_spans
from dltools.synthetic.scenes import coastal_scene, simulate_strokes

STMARG = [
    "26607", "26626", "26722", "26734", "26758", "26776", "26806", "26818", "26836", "27113",
]  # fmt: skip


def _replay(shared_dir, numbers, scale) -> float:
    """Label frames from strokes simulated inside their labels; pooled agreement with the labels."""
    hits = total = 0
    for number in numbers:
        rgb, labels = read_frame(shared_dir, number)
        sparse = simulate_strokes(labels, fraction=0.02, width=3, margin=10, seed=0)
        assert 0.01 < np.count_nonzero(sparse) / np.count_nonzero(labels) < 0.03
        assert not np.any(sparse[labels == 0])  # strokes only inside labelled regions
        class_map, posteriors = label_from_strokes(rgb, sparse, 3, scale=scale)
        assert class_map.shape == labels.shape and class_map.dtype == np.uint8
        assert posteriors.shape == (
            round(labels.shape[0] * scale),
            round(labels.shape[1] * scale),
            3,
        )
        known = labels > 0
        hits += np.count_nonzero(class_map[known] + 1 == labels[known])
        total += np.count_nonzero(known)
    return hits / total


def test_stmarg_accuracy_at_working_scale_0_2(shared_dir):
    # issue floor 0.95 (the original settings reach about that); measured here: 0.997
    assert _replay(shared_dir, STMARG, 0.2) >= 0.98


@pytest.mark.slow
def test_stmarg_accuracy_at_full_scale(shared_dir):
    # a 5.9 MP frame in 12 windows on all cores; issue floor 0.97 (26607 and 27113 together
    # measured 0.993 and 0.999; one frame keeps the suite short)
    assert _replay(shared_dir, ["27113"], 1.0) >= 0.985


def _scene(height, width, seed=1, fraction=0.02):
    rgb, labels = coastal_scene(height, width, seed=seed)
    return rgb, labels, simulate_strokes(labels, fraction=fraction, seed=seed)


@pytest.fixture(scope="module")
def tiled_scene():
    """A 480 x 720 scene labelled in one window and in 12 windows of 256 px (theta 20)."""
    rgb, labels, sparse = _scene(480, 720)
    params = CRFParams(theta=20)
    whole = tiled_crf(rgb, sparse, 6, params, window=2048)
    tiled = tiled_crf(rgb, sparse, 6, params, window=256, workers=2)
    return labels, whole, tiled


def test_tiling_agrees_with_one_window(tiled_scene):
    labels, whole, tiled = tiled_scene
    agreement = np.mean(whole.argmax(2) == tiled.argmax(2))
    assert agreement >= 0.98  # measured 0.998
    # blended posteriors are still distributions
    np.testing.assert_allclose(tiled.sum(axis=2), 1, atol=1e-4)
    assert tiled.dtype == np.float32 and tiled.shape == (*labels.shape, 6)


def test_tiling_leaves_no_seams(tiled_scene):
    labels, whole, tiled = tiled_scene
    differs = whole.argmax(2) != tiled.argmax(2)
    rows, cols = spread_spans(480, 256, 40), spread_spans(720, 256, 40)
    assert len(rows) * len(cols) == 12
    row_zones = [(a, b) for (a, _), (_, b) in zip(rows[1:], rows[:-1], strict=True)]
    col_zones = [(a, b) for (a, _), (_, b) in zip(cols[1:], cols[:-1], strict=True)]
    seams = np.zeros(labels.shape, bool)  # the overlap zones, where windows are blended
    for start, stop in row_zones:
        seams[start:stop] = True
    for start, stop in col_zones:
        seams[:, start:stop] = True
    assert differs[seams].mean() <= 2 * differs[~seams].mean() + 0.01
    # label edges are no denser across the middle of the overlaps than elsewhere
    tiled_labels = tiled.argmax(2)
    edges = np.mean(tiled_labels[:, 1:] != tiled_labels[:, :-1], axis=0)
    middles = [(start + stop) // 2 for start, stop in col_zones]
    assert edges[middles].max() <= 3 * np.median(edges) + 0.02


def test_windows_without_strokes_take_labels_from_neighbours(shared_dir):
    rgb, labels = read_frame(shared_dir, "27113")
    size = (602, 392)
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    sparse = simulate_strokes(labels, fraction=0.02, width=2, margin=3, seed=0)
    hole = (slice(97, 295), slice(120, 341))  # holds the whole window rows 117-275, cols 140-321
    sparse[hole] = 0
    params = CRFParams(theta=20)
    posteriors = tiled_crf(rgb, sparse, 3, params, window=192, workers=2)
    plain = dense_crf(rgb, unary_from_strokes(sparse, 3, 0.5), params)
    known = labels[hole] > 0
    truth = labels[hole][known]
    engine_hits = np.mean(posteriors[hole].argmax(2)[known] + 1 == truth)
    plain_hits = np.mean(plain[hole].argmax(2)[known] + 1 == truth)
    assert set(np.unique(truth)) == {1, 2, 3}  # every class is in the hole
    assert engine_hits >= 0.95  # measured 0.978
    assert engine_hits > plain_hits + 0.02  # 0.907: a plain CRF leaves parts of the hole uniform


def test_nodata_is_neither_labelled_nor_used():
    rgb, labels, sparse = _scene(300, 450, seed=3)
    nodata = np.zeros(labels.shape, bool)
    nodata[:, :60] = True  # a collar
    nodata[120:200, 200:300] = True  # and a hole
    rng = np.random.default_rng(0)
    garbage = rgb.copy()
    garbage[nodata] = rng.integers(0, 256, (np.count_nonzero(nodata), 3), dtype=np.uint8)
    blank = rgb.copy()
    blank[nodata] = 0
    stroked = sparse.copy()
    stroked[nodata] = 1 + rng.integers(0, 6, np.count_nonzero(nodata))  # strokes there: ignored
    for scale in (1.0, 0.5):
        a, post_a = label_from_strokes(garbage, stroked, 6, scale, nodata=nodata)
        b, post_b = label_from_strokes(blank, sparse, 6, scale, nodata=nodata)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(post_a, post_b)
        np.testing.assert_array_equal(a == NODATA, nodata)
    valid = ~nodata
    full, posts = label_from_strokes(blank, sparse, 6, 1.0, nodata=nodata)
    np.testing.assert_array_equal(posts[nodata], 0)
    np.testing.assert_allclose(posts[valid].sum(axis=1), 1, atol=1e-4)
    assert np.mean(full[valid] + 1 == labels[valid]) > 0.85


def _separable_in_band_5(dtype):
    """5 bands; classes (1..3) differ only in band 5, bands 1-4 hold an unrelated scene."""
    _, labels6 = coastal_scene(300, 450, seed=4)
    labels = ((labels6 + 1) // 2).astype(np.uint8)  # 6 classes -> 3
    other, _ = coastal_scene(300, 450, seed=5)
    rng = np.random.default_rng(0)
    level = np.array([0, 1000, 2000, 3000], np.float64)[labels]
    band5 = cv2.GaussianBlur(level, (0, 0), 1.0) + rng.normal(0, 60, labels.shape) + 2000
    grey = other.mean(axis=2, keepdims=True)
    bands = np.concatenate([other * 20.0, grey * 20.0, band5[..., None]], axis=2) + 500
    return bands.astype(dtype), labels


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_all_bands_feed_the_appearance_kernel(dtype):
    image, labels = _separable_in_band_5(dtype)
    sparse = simulate_strokes(labels, fraction=0.02, seed=0)
    params = CRFParams(theta=30, scale=3)  # 5 noisy bands: a wider colour kernel
    with_5, _ = label_from_strokes(image, sparse, 3, 1.0, params)
    without_5, _ = label_from_strokes(image[..., :4], sparse, 3, 1.0, params)
    accuracy_5 = np.mean(with_5 + 1 == labels)
    accuracy_4 = np.mean(without_5 + 1 == labels)  # measured: 0.955 and 0.71
    assert accuracy_5 >= 0.93
    assert accuracy_4 < accuracy_5 - 0.15


def test_uint16_and_float_images_label_like_uint8(shared_dir):
    rgb, labels = read_frame(shared_dir, "26607")
    sparse = simulate_strokes(labels, seed=0)
    base, _ = label_from_strokes(rgb, sparse, 3, 0.2)
    known = labels > 0
    assert np.mean(base[known] + 1 == labels[known]) >= 0.98
    for image in (rgb.astype(np.uint16) * 257 + 3, rgb.astype(np.float32) / 255):
        other, _ = label_from_strokes(image, sparse, 3, 0.2)
        assert np.mean(other == base) >= 0.95  # unlabelled (ambiguous) areas included
        assert np.mean(other[known] + 1 == labels[known]) >= 0.98


def test_results_are_deterministic():
    rgb, _, sparse = _scene(400, 600, seed=2)
    params = CRFParams(theta=20)
    runs = [tiled_crf(rgb, sparse, 6, params, window=256, workers=2)]
    runs.append(tiled_crf(rgb, sparse, 6, params, window=256, workers=1))
    runs.append(tiled_crf(rgb, sparse, 6, params, window=256, workers=2))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_unary_matches_pydensecrf():
    sparse = np.array([[0, 1, 2], [3, 0, 1]])
    ours = unary_from_strokes(sparse, 3, 0.7)
    # dl_tools called pydensecrf with one label more than its classes
    stroked = sparse.ravel() > 0  # unknown pixels are uniform in both (their constant differs)
    original = unary_from_labels(sparse, 4, gt_prob=0.7)[:3]
    np.testing.assert_allclose(ours[:, stroked], original[:, stroked], rtol=1e-6)
    assert np.ptp(ours[:, ~stroked], axis=0).max() == 0
    two = unary_from_strokes(np.array([[1, 2]]), 2, 0.5)  # two classes, default gt_prob
    assert (two[0, 0] < two[1, 0]) and (two[1, 1] < two[0, 1])
    assert ours.shape == (3, 6) and ours.dtype == np.float32


def test_one_window_reproduces_the_original_call():
    """dense_crf's energy is dl_tools' (K + 1 labels, bilateral kernel over x, y, r, g, b)."""
    rgb, _, sparse = _scene(300, 450, seed=4)
    params = CRFParams(theta=20, tol=0)
    ours = dense_crf(rgb, unary_from_strokes(sparse, 6, params.gt_prob), params)
    crf = dcrf.DenseCRF2D(450, 300, 7)
    crf.setUnaryEnergy(unary_from_labels(sparse.astype(np.int64), 7, gt_prob=params.gt_prob))
    feats = create_pairwise_bilateral(sdims=(20, 20), schan=(1, 1, 1), img=rgb, chdim=2)
    crf.addPairwiseEnergy(
        feats, compat=100, kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_SYMMETRIC
    )
    original = np.asarray(crf.inference(params.iters)).reshape(7, 300, 450)
    decided = np.ptp(original[:6], axis=0) > 1e-3  # elsewhere both are uniform
    assert decided.mean() > 0.7  # 0.77: no stroke reaches the rest
    same = ours.argmax(2) == original.argmax(0)
    assert same[decided].mean() >= 0.999  # measured 1.0
    assert np.all(original[6] < original[:6].max(axis=0) + 1e-6)  # the extra label never wins


def test_thin_strokes_survive_downscaling():
    rgb, labels, _ = _scene(600, 900, seed=6)
    sparse = np.zeros(labels.shape, np.uint8)
    for k in range(1, 7):  # one 1-px diagonal stroke per class, inside its region
        ys, xs = np.nonzero(labels == k)
        if ys.size:
            y, x = int(ys[ys.size // 2]), int(xs[ys.size // 2])
            line = np.zeros_like(sparse)
            cv2.line(line, (x - 4, y - 4), (x + 4, y + 4), 1, 1)
            sparse[(line > 0) & (labels == k)] = k
    present = set(np.unique(sparse)) - {0}
    assert len(present) >= 5
    _, posteriors = label_from_strokes(rgb, sparse, 6, 0.1, CRFParams(theta=10))
    assert set(np.unique(posteriors.argmax(2)) + 1) >= present  # every stroked class is used


def test_soft_labels_from_tiles():
    rgb, labels, _ = _scene(480, 720, seed=7)
    onehot = (labels[..., None] == np.arange(1, 7)).astype(np.float32)
    probs = cv2.resize(onehot, (45, 30), interpolation=cv2.INTER_AREA)  # 16-px tiles
    probs[10:20, 15:30] = np.nan  # unknown tiles
    probs[0:5, 0:5] = 0  # all-zero rows are unknown too
    class_map, posteriors = label_from_probs(rgb, probs, 6, scale=0.5)
    assert class_map.shape == labels.shape and posteriors.shape == (240, 360, 6)
    assert np.mean(class_map + 1 == labels) >= 0.9
    unknown = np.zeros(labels.shape, bool)
    unknown[160:320, 240:480] = True
    assert np.mean(class_map[unknown] + 1 == labels[unknown]) >= 0.8


def test_bad_inputs_are_user_errors():
    rgb, _ = coastal_scene(60, 90, seed=8)
    sparse = np.zeros(rgb.shape[:2], np.uint8)
    sparse[10, 10:20], sparse[40, 50:60] = 2, 5
    with pytest.raises(DltoolsError, match=r"1\.\.3"):
        label_from_strokes(rgb, sparse, 3)  # a stroke of class 5
    with pytest.raises(DltoolsError, match="same pixels"):
        label_from_strokes(rgb, sparse[:-1], 6)
    with pytest.raises(DltoolsError, match="nodata mask"):
        label_from_strokes(rgb, sparse, 6, nodata=np.zeros((5, 5), bool))
    with pytest.raises(DltoolsError, match="no strokes"):
        label_from_strokes(rgb, np.zeros_like(sparse), 6)
    with pytest.raises(DltoolsError, match="working scale"):
        label_from_strokes(rgb, sparse, 6, scale=0)
    with pytest.raises(DltoolsError, match="gt-prob"):
        CRFParams(gt_prob=1.0)
    with pytest.raises(DltoolsError, match="probabilities"):
        label_from_probs(rgb, np.ones((6, 9, 4), np.float32), 6)
    with pytest.raises(DltoolsError, match="window"):
        tiled_crf(rgb, sparse, 6, CRFParams(theta=60), window=200)
