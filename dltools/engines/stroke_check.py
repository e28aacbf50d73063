"""How good is a labelling? Cross-validation over the strokes, without ground truth.

The strokes are grouped into *strokes* proper (8-connected regions of one class), so that the
neighbouring pixels of one stroke are never on both sides of a split. Each fold holds out a
share of every class's strokes, labels the image from the others with the dense CRF and scores
the held-out stroke pixels. A class with a single stroke is never held out (its only evidence
would go) and is reported as unchecked. Agreement is pooled over held-out pixels; its 95 %
interval comes from resampling whole strokes (bootstrap), as strokes, not pixels, are the
independent draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from dltools.engines.crf import NODATA, CRFParams, Runner, label_from_strokes
from dltools.progress import Progress, quiet

BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class StrokeCheck:
    """The result of :func:`check_strokes`.

    ``agreement``: share of held-out stroke pixels labelled as their stroke, pooled;
    ``interval``: its 95 % bootstrap interval over strokes; ``per_class``: (K,) the same per
    class (NaN for unchecked classes); ``strokes``: (K,) strokes per class; ``checked``: (K,)
    bool, classes that were held out; ``confusion``: (K, K + 1) held-out pixels by stroke
    class (rows) and predicted class (columns; the last is nodata); ``folds``: folds run.
    """

    agreement: float
    interval: tuple[float, float]
    per_class: np.ndarray
    strokes: np.ndarray
    checked: np.ndarray
    confusion: np.ndarray
    folds: int

    def lines(self, class_names: Sequence[str]) -> list[str]:
        """A human-readable report, one line each."""
        low, high = self.interval
        lines = [
            f"stroke cross-validation ({self.folds} folds, held-out strokes): agreement "
            f"{self.agreement:.4f} (95% interval {low:.4f}-{high:.4f})"
        ]
        width = max(len(name) for name in class_names)
        for k, name in enumerate(class_names):
            count = int(self.strokes[k])
            if self.checked[k]:
                pixels = int(self.confusion[k].sum())
                lines.append(
                    f"  {name:<{width}}  {self.per_class[k]:.4f} ({count} strokes, "
                    f"{pixels} held-out px)"
                )
            else:
                lines.append(f"  {name:<{width}}  not checked ({count} stroke(s): paint more)")
        return lines


def stroke_groups(strokes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a stroke raster into strokes: 8-connected regions of one class.

    ``strokes``: (H, W) int, 0 = none, k = class k. Returns ``(groups, classes)``: (H, W)
    int32, 0 = no stroke, g = stroke g (1-based); (G,) int, the class of stroke g + 1.
    """
    groups = np.zeros(strokes.shape, np.int32)
    classes: list[int] = []
    for k in np.unique(strokes[strokes > 0]):
        count, regions = cv2.connectedComponents((strokes == k).astype(np.uint8), connectivity=8)
        inside = regions > 0
        groups[inside] = regions[inside] + len(classes)
        classes += [int(k)] * (count - 1)
    return groups, np.array(classes, np.int64)


def assign_folds(sizes: np.ndarray, classes: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """(G,) fold of each stroke (-1: never held out): per class, strokes in random order go to
    the fold holding the fewest of that class's pixels, so folds are balanced by class and size.
    Classes with one stroke are never held out."""
    rng = np.random.default_rng(seed)
    fold_of = np.full(len(sizes), -1, np.int64)
    for k in np.unique(classes):
        members = np.flatnonzero(classes == k)
        if len(members) < 2:
            continue
        load = np.zeros(min(folds, len(members)), np.int64)
        order = rng.permutation(members)
        for g in order[np.argsort(-sizes[order], kind="stable")]:
            fold = int(np.argmin(load))
            fold_of[g], load[fold] = fold, load[fold] + sizes[g]
    return fold_of


def check_strokes(
    image: np.ndarray,
    strokes: np.ndarray,
    n_classes: int,
    folds: int = 5,
    scale: float = 0.2,
    params: CRFParams | None = None,
    nodata: np.ndarray | None = None,
    workers: int = 1,
    seed: int = 0,
    progress: Progress = quiet,
) -> StrokeCheck:
    """Cross-validate the labelling of ``image`` from ``strokes`` over ``folds`` folds.

    ``image``: (H, W, C) any dtype; ``strokes``: (H, W) int, 0 = none, k = class k
    (1-based, <= ``n_classes``); ``scale``, ``params``, ``nodata``: as in
    :func:`dltools.engines.crf.label_from_strokes` (a reduced working scale keeps it fast);
    the folds run in up to ``workers`` processes. ``seed`` fixes the folds and the bootstrap.
    """
    strokes, params = np.asarray(strokes), params or CRFParams()
    groups, classes = stroke_groups(strokes)
    sizes = np.bincount(groups.ravel(), minlength=len(classes) + 1)[1:]
    fold_of = assign_folds(sizes, classes, folds, seed)
    lookup = np.concatenate([[-1], fold_of])  # fold of each pixel's stroke, -1 = kept
    pixel_fold = lookup[groups]
    confusion = np.zeros((n_classes, n_classes + 1), np.int64)
    hits = np.zeros(len(classes), np.int64)
    used = sorted(set(fold_of[fold_of >= 0].tolist()))
    jobs = [
        (fold, (image, np.where(pixel_fold == fold, 0, strokes), n_classes, scale, params, nodata))
        for fold in used
    ]
    with Runner(min(workers, max(len(used), 1))) as runner:
        labelled = progress(
            runner.ordered(_fold_labels, jobs), total=len(used), desc="stroke folds", unit="fold"
        )
        for fold, class_map in labelled:
            held = pixel_fold == fold
            truth = strokes[held].astype(np.int64) - 1
            found = class_map[held].astype(np.int64)
            found[found == NODATA] = n_classes
            np.add.at(confusion, (truth, found), 1)
            right = np.bincount(groups[held], weights=found == truth, minlength=len(classes) + 1)
            hits += right[1:].astype(np.int64)
    checked_groups = fold_of >= 0
    total = confusion.sum()
    agreement = float(np.trace(confusion) / total) if total else float("nan")
    per_class = np.full(n_classes, np.nan)
    rows = confusion.sum(axis=1)
    per_class[rows > 0] = np.diag(confusion)[rows > 0] / rows[rows > 0]
    interval = _bootstrap(hits[checked_groups], sizes[checked_groups], seed)
    strokes_per_class = np.bincount(classes - 1, minlength=n_classes)[:n_classes]
    checked = np.bincount(classes[checked_groups] - 1, minlength=n_classes)[:n_classes] > 0
    return StrokeCheck(
        agreement, interval, per_class, strokes_per_class, checked, confusion, len(used)
    )


def _fold_labels(image, strokes, n_classes, scale, params, nodata) -> np.ndarray:
    """One fold's (H, W) labels, computed in one process (the folds run in parallel)."""
    return label_from_strokes(image, strokes, n_classes, scale, params, nodata, workers=1)[0]


def _bootstrap(hits: np.ndarray, sizes: np.ndarray, seed: int) -> tuple[float, float]:
    """95 % interval of sum(hits) / sum(sizes) when whole strokes are resampled."""
    if not len(sizes):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sizes), (BOOTSTRAP_DRAWS, len(sizes)))
    ratios = hits[draws].sum(axis=1) / np.maximum(sizes[draws].sum(axis=1), 1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)
