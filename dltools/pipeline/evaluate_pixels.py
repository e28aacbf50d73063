"""Step 7: score automatic pixel labels against manual ones, per image and pooled.

Pairs are found by :func:`dltools.io.discovery.pair_predictions`: each prediction (by default
the ``*_ares*.mat`` files of step 6) names its image (``X_ares_96.mat`` -> ``X``), which is
paired with a manual label file (by default ``*_mres*.mat``; or label rasters such as
``SCLS_*.tif``, ``*_label.png``). Label files are read by
:class:`dltools.io.label_maps.LabelMap` (value k = class k, 0 = unlabelled or nodata);
classes are matched by name, so the two files may list them in different orders. Pixels
unlabelled in the manual label (or without a prediction) are left out. Rasters are
read in strips of about :data:`~dltools.engines.metrics.CHUNK` pixels.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from dltools.engines.metrics import (
    CHUNK,
    Scores,
    confusion_matrix,
    iou_from_confusion,
    pixel_summary,
    scores_from_confusion,
)
from dltools.errors import DltoolsError
from dltools.figures.panels import confusion_figure, f1_distribution_figure, save_figure
from dltools.io.discovery import image_name
from dltools.io.label_maps import LabelMap
from dltools.io.outputs import atomic_path
from dltools.raster.windows import strip_windows
from dltools.scale.executor import Executor, InProcess

POOLED = "pooled"  # the image column of the pooled rows of the CSV
METRICS = "pixel_metrics.csv"  # the reports of a run, in its output folder
SUMMARY = "pixel_summary.json"
F1_FIGURE = "pixel_f1.png"
CSV_COLUMNS = ["image", "class", "precision", "recall", "f1", "iou", "support", "predicted"]


def _has_names(path: Path) -> bool:
    return path.suffix.lower() == ".mat" and any(
        name == "labels" for name, *_ in scipy.io.whosmat(path)
    )


def read_labels_of(
    path: str | os.PathLike,
    labels: Sequence[str] | None,
    colors: np.ndarray | None = None,
    strict: bool = False,
) -> LabelMap:
    """The :class:`LabelMap` of a result, label raster or colour mask; ``labels`` name the
    classes of files that store none (rasters, ``.mat`` without ``labels``), ``colors``
    ((K, 3) uint8) are theirs in colour masks (``strict``: other colours are an error)."""
    path = Path(path)
    return LabelMap(path, None if _has_names(path) else labels, colors, strict)


def _check_names(occurring: set[str], named: Sequence[str], where: Path, other: Path) -> None:
    missing = sorted(occurring - set(named))
    if missing:
        raise DltoolsError(
            f"class(es) {', '.join(missing)} of {where} are not among the classes of {other} "
            f"({', '.join(named)}); classes are matched by exact name"
        )


@dataclass
class ImageScores:
    """The scores of one prediction against its manual label."""

    name: str
    pred: Path
    true: Path
    scores: Scores
    unpredicted: int  # labelled pixels without a prediction (left out)


def pair_confusion(
    pred: Path,
    true: Path,
    labels: Sequence[str] | None = None,
    allow_missing: bool = False,
    colors: np.ndarray | None = None,
    strict: bool = False,
) -> tuple[list[str], np.ndarray, int]:
    """``(class names, confusion, unpredicted)`` of ``pred`` against ``true``, over the
    prediction's classes (rows = manual label, columns = prediction).

    ``unpredicted`` counts labelled pixels without a prediction (left out). Classes that occur
    on one side but are not named on the other are a DltoolsError, unless ``allow_missing``:
    then manual classes the prediction does not know are added to the class names (all their
    pixels are errors). ``colors`` and ``strict``: see :func:`read_labels_of`.
    """
    p_map = read_labels_of(pred, labels, colors, strict)
    t_map = read_labels_of(true, labels, colors, strict)
    if tuple(p_map.shape) != tuple(t_map.shape):
        raise DltoolsError(
            f"{pred} is {p_map.shape[0]} x {p_map.shape[1]} pixels but its manual label {true} "
            f"is {t_map.shape[0]} x {t_map.shape[1]}"
        )
    t_count, p_count = len(t_map.class_names), len(p_map.class_names)
    joint = np.zeros((t_count + 1, p_count + 1), np.int64)  # label values, 0 = none
    height, width = t_map.shape
    for window in strip_windows(height, width, max(1, CHUNK // width)):
        values = confusion_matrix(t_map.read(window), p_map.read(window), max(joint.shape))
        joint += values[: t_count + 1, : p_count + 1]
    scored = joint[1:, 1:]
    t_names = [t_map.class_names[k] for k in np.flatnonzero(scored.sum(axis=1))]
    p_names = [p_map.class_names[k] for k in np.flatnonzero(scored.sum(axis=0))]
    names = list(p_map.class_names)
    if allow_missing:
        names += [name for name in t_names if name not in names]
    else:
        _check_names(set(t_names), names, true, pred)
        _check_names(set(p_names), t_map.class_names, pred, true)
    cm = np.zeros((len(names), len(names)), np.int64)
    for name, counts in zip(t_map.class_names, scored, strict=True):
        if name in names:
            cm[names.index(name), :p_count] += counts
    return names, cm, int(joint[1:, 0].sum())


def embed_confusion(
    confusion: np.ndarray, names: Sequence[str], all_names: Sequence[str]
) -> np.ndarray:
    """A (K, K) confusion over ``names`` placed in the (N, N) matrix over ``all_names``."""
    index = [list(all_names).index(name) for name in names]
    out = np.zeros((len(all_names), len(all_names)), np.int64)
    out[np.ix_(index, index)] = confusion
    return out


@dataclass
class PixelEvaluation:
    """Per-image scores and the pooled scores (the sum of the images' confusion matrices)."""

    images: list[ImageScores]
    pooled: Scores

    def rows(self) -> list[dict]:
        """CSV rows: one per image and class that occurs in it (manual label or prediction),
        then the pooled rows (image :data:`POOLED`)."""
        out = []
        tables = [(i.pred.stem, i.scores) for i in self.images] + [(POOLED, self.pooled)]
        for image, s in tables:
            iou = iou_from_confusion(s.confusion)
            predicted = s.confusion.sum(axis=0)
            for k, name in enumerate(s.class_names):
                if s.support[k] or predicted[k]:
                    scores = (s.precision[k], s.recall[k], s.f1[k], iou[k])
                    counts = (int(s.support[k]), int(predicted[k]))
                    row = [image, name, *map(float, scores), *counts]
                    out.append(dict(zip(CSV_COLUMNS, row, strict=True)))
        return out

    def to_dict(self) -> dict:
        """JSON-ready: pooled and per-image summaries with per-class tables and confusions."""

        def table(s: Scores) -> dict:
            full = s.to_dict()
            for name, iou in zip(s.class_names, iou_from_confusion(s.confusion), strict=True):
                full["per_class"][name]["iou"] = float(iou)
            keep = ("per_class", "class_names", "confusion")
            return pixel_summary(s) | {key: full[key] for key in keep}

        images = {
            i.pred.stem: table(i.scores)
            | {"prediction": str(i.pred), "manual": str(i.true), "unpredicted": i.unpredicted}
            for i in self.images
        }
        return {"pooled": table(self.pooled), "images": images}


def _pair_task(task: tuple):
    """:func:`pair_confusion` of one ``(pred, true, labels, allow_missing, colors, strict)``:
    a unit of work."""
    return pair_confusion(*task)


def evaluate_pixels(
    pairs: Sequence[tuple[Path, Path]],
    labels: Sequence[str] | None = None,
    allow_missing: bool = False,
    executor: Executor | None = None,
    colors: np.ndarray | None = None,
    strict: bool = False,
) -> PixelEvaluation:
    """Score every ``(prediction, manual label)`` pair and pool them (see
    :func:`pair_confusion`; ``colors`` and ``strict`` read colour masks). Scores are over the
    union of the classes, in the order first seen. ``executor`` scores the pairs (default:
    here, one after the other; or on a Dask cluster, one pair per unit): the result is the same.
    """
    executor = InProcess() if executor is None else executor
    tasks = [(pred, true, labels, allow_missing, colors, strict) for pred, true in pairs]
    found: list = [None] * len(pairs)
    for index, result in executor.map_unordered(_pair_task, tasks):
        found[index] = (*pairs[index], *result)
    all_names: list[str] = []
    for *_, names, _, _ in found:
        all_names += [name for name in names if name not in all_names]
    images = [
        ImageScores(
            image_name(pred),
            pred,
            true,
            scores_from_confusion(embed_confusion(cm, names, all_names), all_names),
            unpredicted,
        )
        for pred, true, names, cm, unpredicted in found
    ]
    pooled = sum((i.scores.confusion for i in images), np.zeros((len(all_names),) * 2, np.int64))
    return PixelEvaluation(images, scores_from_confusion(pooled, all_names))


def write_metrics_csv(path: str | os.PathLike, evaluation: PixelEvaluation) -> None:
    """``pixel_metrics.csv``: :meth:`PixelEvaluation.rows`, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(evaluation.rows())


def confusion_path(out: str | os.PathLike, prediction: Path) -> Path:
    """Where the confusion matrix figure of one prediction goes: ``out/<stem>_cm.png``."""
    return Path(out) / f"{prediction.stem}_cm.png"


def report_paths(out: str | os.PathLike, pairs: Sequence[tuple[Path, Path]]) -> list[Path]:
    """The files :func:`write_reports` writes into ``out`` for ``(prediction, manual)`` pairs."""
    out = Path(out)
    figures = [confusion_path(out, pred) for pred, _ in pairs]
    return [out / METRICS, out / SUMMARY, out / F1_FIGURE, *figures]


def write_reports(out: str | os.PathLike, evaluation: PixelEvaluation) -> None:
    """Write into ``out`` a confusion matrix figure per image (the classes that occur in it),
    the distribution of per-class F1 over the images, ``pixel_metrics.csv`` and
    ``pixel_summary.json``."""
    out = Path(out)
    for image in evaluation.images:
        s = image.scores
        present = (s.support > 0) | (s.confusion.sum(axis=0) > 0)
        names = [name for name, keep in zip(s.class_names, present, strict=True) if keep]
        fig = confusion_figure(s.confusion[present][:, present], names, title=image.pred.name)
        fig.axes[0].set_ylabel("manual label (true class)")
        fig.axes[0].set_xlabel("automatic label (predicted class)")
        save_figure(fig, confusion_path(out, image.pred))
    f1 = {name: [] for name in evaluation.pooled.class_names}
    for row in evaluation.rows():
        if row["image"] != POOLED and row["support"]:
            f1[row["class"]].append(row["f1"])
    title = f"per-class F1 over {len(evaluation.images)} image(s)"
    save_figure(f1_distribution_figure(f1, title=title), out / F1_FIGURE)
    write_metrics_csv(out / METRICS, evaluation)
    with atomic_path(out / SUMMARY) as tmp:
        tmp.write_text(json.dumps(evaluation.to_dict(), indent=1))
