"""Can the FCN learn from strokes alone? ``fcn train --train-on strokes`` against dense labels.

St Margaret's frames of ``../shared`` split by frame as in ``tests/test_fcn_stmarg.py``: the
first 7 train, the last 3 are held out. Each training frame gets a ``_mres.mat`` whose
``class`` holds the hand labels and whose ``sparse`` holds strokes simulated inside them
(``--fraction`` of the labelled pixels, 3 px wide, 10 px from class boundaries, as in the CRF
tests). Runs with the same schedule (the test's short CPU run by default: 256-px crops, the
ImageNet encoder frozen, 3 epochs of 35 batches of 8) differ only in what they learn:
``--train-on labels`` (the hand labels), ``--train-on strokes``, and, with ``--crf-weight W``,
the strokes plus the CRF labels that step 2 makes from them (``label_from_strokes`` at working
scale 0.2, as ``dltools label``) as a second target of weight W. Each labels the held-out
frames, scored against their hand labels (pooled pixel-weighted F1); the gaps to the dense
labels are printed (the issue asks for strokes within 0.03 of dense labels).

    python bench/fcn_strokes.py                  # about 5 minutes on 2 cores
    python bench/fcn_strokes.py --crf-weight 0.3 # and strokes + CRF labels (about 9 minutes)
    python bench/fcn_strokes.py --epochs 6 --steps 60 --fraction 0.05
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dltools.cli import main as dltools_main
from dltools.engines.crf import NODATA as CRF_NODATA
from dltools.engines.crf import label_from_strokes
from dltools.engines.metrics import confusion_matrix, scores_from_confusion
from dltools.io.discovery import find_labelled_images
from dltools.io.images import read_image
from dltools.io.label_maps import read_label_map
from dltools.io.labels import Classes
from dltools.io.results import NODATA as MAT_NODATA
from dltools.io.results import LabelResult, read_result, write_result
from dltools.synthetic.scenes import simulate_strokes

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLASSES = ["water", "sediment", "green vegetation"]
WEIGHTS = "models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="../shared")
    parser.add_argument("--fraction", type=float, default=0.02, help="stroked share of labels")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (all frozen)")
    parser.add_argument("--steps", type=int, default=35, help="batches of 8 per epoch")
    parser.add_argument("--seed", type=int, default=0, help="strokes and training seed")
    parser.add_argument(
        "--crf-weight", type=float, default=0.0, help="also a run with CRF labels (0: none)"
    )
    args = parser.parse_args(argv)
    pairs, _ = find_labelled_images(args.shared / "data" / "stmarg" / "train")
    train, test = pairs[:7], pairs[7:]
    classes = Classes(CLASSES, np.zeros((3, 3), np.uint8))
    scores = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        data, samples, crf_data = root / "train", root / "test", root / "train_crf"
        for folder in (data, samples, crf_data):
            folder.mkdir()
        stroked = labelled = 0
        for i, (image, label) in enumerate(train):
            dense = read_label_map(label, classes)
            strokes = simulate_strokes(
                dense, fraction=args.fraction, width=3, margin=10, seed=args.seed + i
            )
            stroked, labelled = (
                stroked + np.count_nonzero(strokes),
                labelled + np.count_nonzero(dense),
            )
            os.symlink(image, data / image.name)
            mat = data / f"{image.stem}_mres.mat"
            write_result(mat, LabelResult(dense.astype(np.int16) - 1, CLASSES, strokes))
            if args.crf_weight:
                crf, _ = label_from_strokes(read_image(image), strokes, 3, scale=0.2)
                os.symlink(image, crf_data / image.name)
                crf = np.where(crf == CRF_NODATA, MAT_NODATA, crf).astype(np.int16)
                result = LabelResult(crf, CLASSES, strokes)
                write_result(crf_data / mat.name, result)
        for image, _ in test:
            os.symlink(image, samples / image.name)
        print(f"strokes: {stroked} px, {100 * stroked / labelled:.2f}% of the labelled pixels")
        runs = {"labels": ("labels", data, []), "strokes": ("strokes", data, [])}
        if args.crf_weight:
            runs["strokes+crf"] = ("strokes", crf_data, ["--crf-weight", args.crf_weight])
        for name, (train_on, folder, extra) in runs.items():
            run, out = root / f"run_{name}", root / f"out_{name}"
            command = ["fcn", "train", "--name", run, "--data-dir", folder, "--train-on", train_on]
            command += extra
            command += ["--encoder-weights", args.shared / WEIGHTS, "--val-fraction", "0"]
            command += ["--seed", args.seed, "--tile-size", 256, "--batch-size", 8]
            command += ["--epochs", args.epochs, "--freeze-epochs", args.epochs]
            command += ["--steps-per-epoch", args.steps]
            start = time.perf_counter()
            assert dltools_main([str(a) for a in command]) == 0
            minutes = (time.perf_counter() - start) / 60
            infer = ["fcn", "infer", "--name", run, "--samples-dir", samples, "--output-dir", out]
            assert dltools_main([str(a) for a in infer]) == 0
            confusion = np.zeros((3, 3), np.int64)
            for image, label in test:
                truth = read_label_map(label, classes).astype(np.int16) - 1
                found = read_result(out / f"{image.stem}_ares_fcn.mat", CLASSES).class_map
                confusion += confusion_matrix(truth, found, 3)
            result = scores_from_confusion(confusion, CLASSES)
            f1 = float((result.f1 * result.support).sum() / result.support.sum())
            scores[name] = f1
            per_class = " / ".join(f"{v:.3f}" for v in result.f1)
            print(
                f"{name}: training {minutes:.1f} min; held-out pixel-weighted F1 "
                f"{f1:.4f} (F1 of {' / '.join(CLASSES)}: {per_class})",
                flush=True,
            )
    for name in list(scores)[1:]:
        print(f"dense - {name}: {scores['labels'] - scores[name]:+.4f} (goal: at most 0.03)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
