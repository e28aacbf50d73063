"""Confusion matrices and scores of integer class labels; classes are matched by exact name.

Labels are integer arrays of any shape holding indices into a list of class names; true labels
below 0 (unlabelled, nodata) are left out. Rows of a confusion matrix are the true classes,
columns the predicted ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dltools.errors import DltoolsError

CHUNK = 1 << 20  # labels counted at a time (fresh large arrays are slow to page in)


def class_indices(names: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Index of each of ``names`` in ``class_names``, matched by exact name.

    ``dune`` never matches ``duneveg``. Returns (len(names),) int64; a name that is not a class
    is a DltoolsError listing every such name.
    """
    position = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({name for name in names if name not in position})
    if unknown:
        raise DltoolsError(
            f"class(es) {', '.join(unknown)} are not among the classes "
            f"{', '.join(class_names)}; classes are matched by exact name"
        )
    return np.array([position[name] for name in names], dtype=np.int64)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: row = true class, column = predicted class.

    ``true`` and ``pred`` are integer arrays of the same shape; pixels/tiles whose true label
    is negative are ignored. Labels >= n_classes are a ValueError. Counted in chunks of
    :data:`CHUNK`, so that no temporary array is larger than a few megabytes.
    """
    true = np.asarray(true).ravel()
    pred = np.asarray(pred).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"true and pred differ in size: {true.size} vs {pred.size}")
    counts = np.zeros(n_classes**2, np.int64)
    for start in range(0, true.size, CHUNK):
        t, p = true[start : start + CHUNK], pred[start : start + CHUNK]
        keep = t >= 0
        t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
        if t.size and (t.max() >= n_classes or p.min() < 0 or p.max() >= n_classes):
            raise ValueError(f"labels must lie in 0..{n_classes - 1}")
        counts += np.bincount(t * n_classes + p, minlength=n_classes**2)
    return counts.reshape(n_classes, n_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


@dataclass
class Scores:
    """Scores of one confusion matrix; per-class arrays are (K,) in the order of class_names.

    ``recall`` is the per-class accuracy; ``macro_f1`` and ``mean_recall`` average over the
    classes that occur in the truth or the predictions (the others have no defined score).
    """

    class_names: list[str]
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    accuracy: float
    macro_f1: float
    mean_recall: float

    def to_dict(self) -> dict:
        """JSON-ready: overall scores plus a per-class table and the confusion matrix."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "mean_recall": self.mean_recall,
            "n": int(self.support.sum()),
            "per_class": {
                name: {
                    "precision": float(self.precision[k]),
                    "recall": float(self.recall[k]),
                    "f1": float(self.f1[k]),
                    "support": int(self.support[k]),
                }
                for k, name in enumerate(self.class_names)
            },
            "class_names": list(self.class_names),
            "confusion": self.confusion.tolist(),
        }


def scores_from_confusion(confusion: np.ndarray, class_names: Sequence[str]) -> Scores:
    """Precision, recall, F1, support, accuracy and macro F1 of a (K, K) confusion matrix."""
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {cm.shape} does not fit {len(class_names)} classes")
    hits = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(hits, predicted.astype(float))
    recall = _ratio(hits, support.astype(float))
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    total = cm.sum()
    return Scores(
        class_names=list(class_names),
        confusion=cm,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
        accuracy=float(hits.sum() / total) if total else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        mean_recall=float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
    )


def score(true: np.ndarray, pred: np.ndarray, class_names: Sequence[str]) -> Scores:
    """:class:`Scores` of integer labels (indices into ``class_names``; true < 0 ignored)."""
    return scores_from_confusion(confusion_matrix(true, pred, len(class_names)), class_names)


# --- pixel scores (step 7) -----------------------------------------------------------------


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """(K,) intersection over union of each class: hits / (true + predicted - hits); 0 where a
    class neither occurs nor is predicted."""
    cm = np.asarray(confusion, dtype=float)
    hits = np.diag(cm)
    return _ratio(hits, cm.sum(axis=1) + cm.sum(axis=0) - hits)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes that occur in the truth or the predictions (0 if none do)."""
    cm = np.asarray(confusion)
    present = (cm.sum(axis=1) > 0) | (cm.sum(axis=0) > 0)
    return float(iou_from_confusion(cm)[present].mean()) if present.any() else 0.0


def weighted_f1(scores: Scores) -> float:
    """F1 averaged over the classes weighted by their support (pixel-weighted F1; scikit-learn's
    ``average="weighted"``)."""
    total = scores.support.sum()
    return float((scores.f1 * scores.support).sum() / total) if total else 0.0


def cohen_kappa(confusion: np.ndarray) -> float:
    """Cohen's kappa of a (K, K) confusion matrix: agreement beyond chance, 1 = perfect.

    0 when chance agreement is already total (one class everywhere on both sides).
    """
    cm = np.asarray(confusion, dtype=float)
    total = cm.sum()
    if not total:
        return 0.0
    observed = np.trace(cm) / total
    expected = float(cm.sum(axis=1) @ cm.sum(axis=0)) / total**2
    return float((observed - expected) / (1 - expected)) if expected < 1 else 0.0


def pixel_summary(scores: Scores) -> dict:
    """JSON-ready overall pixel scores of ``scores``: accuracy, macro and pixel-weighted F1,
    mean IoU, Cohen's kappa and the number of pixels."""
    return {
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "weighted_f1": weighted_f1(scores),
        "mean_iou": mean_iou(scores.confusion),
        "kappa": cohen_kappa(scores.confusion),
        "pixels": int(scores.support.sum()),
    }
