"""Step 8 on real imagery: train the FCN on 7 St Margaret's photos, score the other 3.

Split (fixed, by image): the 10 pairs of ../shared/data/stmarg/train sorted by name; the first
7 train, the last 3 (StMarg_26818, 26836, 27113) are held out. A short CPU run: crops of 256 px,
the ImageNet encoder frozen, 3 epochs of 35 batches of 8 (about 1.5 minutes on 2 idle cores),
and the plain network at inference (``--no-tta``: the flips would take 4 times as long; their gain
on held-out frames is measured by bench/accuracy.py, README step 8).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from dltools.cli import main as dltools_main
from dltools.engines.metrics import confusion_matrix, scores_from_confusion
from dltools.io.discovery import find_labelled_images
from dltools.io.images import read_image
from dltools.io.label_maps import read_label_map
from dltools.io.labels import Classes
from dltools.io.results import read_result
from dltools.pipeline.fcn import Tiling, load_run, predict_image

CLASSES = ["water", "sediment", "green vegetation"]  # label values 1, 2, 3 of the SCLS rasters
WEIGHTS = "models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def pooled_weighted_f1(confusion: np.ndarray) -> float:
    """F1 of each class weighted by its labelled pixels, from a confusion pooled over images."""
    scores = scores_from_confusion(confusion, CLASSES)
    return float((scores.f1 * scores.support).sum() / scores.support.sum())


def link_all(paths, folder: Path) -> Path:
    """Symbolic links to ``paths`` in ``folder`` (the shared data are never copied)."""
    folder.mkdir()
    for path in paths:
        os.symlink(path, folder / path.name)
    return folder


@pytest.mark.slow
def test_fcn_trained_on_7_photos_labels_the_other_3(shared_dir, tmp_path):
    pairs, _ = find_labelled_images(shared_dir / "data" / "stmarg" / "train")
    assert len(pairs) == 10
    train, test = pairs[:7], pairs[7:]
    data = link_all([p for pair in train for p in pair], tmp_path / "train")
    samples = link_all([image for image, _ in test], tmp_path / "test")
    (tmp_path / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    run = tmp_path / "run"
    args = ["fcn", "train", "--name", run, "--data-dir", data, "-l", tmp_path / "labels.txt"]
    args += ["--encoder-weights", shared_dir / WEIGHTS, "--val-fraction", "0", "--seed", "0"]
    args += ["--tile-size", "256", "--batch-size", "8", "--epochs", "3", "--freeze-epochs", "3"]
    start = time.perf_counter()
    assert dltools_main([str(a) for a in [*args, "--steps-per-epoch", "35"]]) == 0
    minutes = (time.perf_counter() - start) / 60
    out = tmp_path / "out"
    infer = ["fcn", "infer", "--name", run, "--samples-dir", samples, "--output-dir", out]
    infer.append("--no-tta")
    assert dltools_main([str(a) for a in infer]) == 0

    classes = Classes(CLASSES, np.zeros((3, 3), np.uint8))
    confusion = np.zeros((3, 3), np.int64)
    truths = {}
    for image, label in test:
        truths[image] = read_label_map(label, classes).astype(np.int16) - 1  # -1: unlabelled
        result = read_result(out / f"{image.stem}_ares_fcn.mat", CLASSES)
        confusion += confusion_matrix(truths[image], result.class_map, 3)
    f1 = pooled_weighted_f1(confusion)
    per_class = " / ".join(f"{v:.3f}" for v in scores_from_confusion(confusion, CLASSES).f1)
    print(f"\ntraining {minutes:.1f} min; pooled pixel-weighted F1 on 3 held-out photos {f1:.3f}")
    print(f"F1 of {' / '.join(CLASSES)}: {per_class}")
    assert f1 >= 0.90

    # tiled inference (default windows) equals one pass over an image small enough for both
    model = load_run(run)
    image = read_image(test[2][0])[200:1736, 400:2448]  # 1536 x 2048: one window of its own
    whole = predict_image(image, model.predictor(), Tiling(window=2048, tta=False))
    tiled = predict_image(image, model.predictor(), Tiling(tta=False))
    inner = (slice(128, -128), slice(128, -128))
    agree = np.mean(whole.argmax(axis=2)[inner] == tiled.argmax(axis=2)[inner])
    difference = np.abs(whole - tiled).max(axis=2)[inner].mean()
    print(f"tiled vs whole: {100 * agree:.2f}% same class, mean |dp| {difference:.4f}")
    assert agree > 0.985 and difference < 0.01

    # the CRF refinement of step 2 keeps (or improves) the score
    crf = ["fcn", "infer-crf", "--name", run, "--samples-dir", test[2][0], "--output-dir", out]
    crf.append("--no-tta")
    assert dltools_main([str(a) for a in crf]) == 0
    image = test[2][0]
    refined = read_result(out / f"{image.stem}_ares_fcn_crf.mat", CLASSES).class_map
    plain = read_result(out / f"{image.stem}_ares_fcn.mat", CLASSES).class_map
    f1_crf = pooled_weighted_f1(confusion_matrix(truths[image], refined, 3))
    f1_plain = pooled_weighted_f1(confusion_matrix(truths[image], plain, 3))
    print(f"{image.name}: F1 {f1_plain:.3f} without CRF, {f1_crf:.3f} with")
    assert f1_crf >= f1_plain - 0.01
