"""Stratified k-fold cross-validation of the spectral classifier against 1-NN baselines.

Every fold trains the 1-D CNN exactly as ``train-classifier`` would on the other folds (its
``holdout`` fraction of them kept for early stopping) and scores it on the fold. In the same
run, on the same folds, two 1-nearest-neighbour classifiers use all of the other folds: one
on the pre-processed spectra and one on the magnitudes of their Fourier transforms (blind to
where a feature lies, so tolerant of band shifts). The better of the two is "the best simple
baseline" a trained network has to beat.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier

from dltools.engines.metrics import score
from dltools.errors import DltoolsError
from dltools.spectral.inference import Classify
from dltools.spectral.labelled import LabelledSpectra, stratified_holdout
from dltools.spectral.options import CLASSIFIER_TRAINING, Training
from dltools.spectral.training import train_classifier

METHODS = ("cnn", "1nn", "1nn_fft")
DESCRIPTIONS = {
    "cnn": "1-D CNN",
    "1nn": "1-NN, pre-processed spectra",
    "1nn_fft": "1-NN, FFT magnitudes",
}


def fft_magnitudes(spectra: np.ndarray) -> np.ndarray:
    """(n, B) spectra -> (n, B // 2 + 1) float32 magnitudes of their real Fourier transforms."""
    return np.abs(np.fft.rfft(np.asarray(spectra, np.float64), axis=1)).astype(np.float32)


def nearest_neighbour(train: np.ndarray, classes: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The class of each (m, F) ``test`` row's nearest (Euclidean) (n, F) ``train`` row."""
    return KNeighborsClassifier(n_neighbors=1).fit(train, classes).predict(test)


@dataclass(frozen=True)
class CrossValidation:
    """Scores of each method per fold: ``accuracy[method]`` and ``macro_f1[method]``, (k,).

    ``predictions[method]`` is the (n,) label value predicted for each spectrum when its fold
    was left out; ``values`` the (n,) true ones.
    """

    k: int
    values: np.ndarray
    predictions: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]
    macro_f1: dict[str, np.ndarray]

    @property
    def best_baseline(self) -> str:
        """The 1-NN method of highest mean accuracy."""
        return max(METHODS[1:], key=lambda m: self.accuracy[m].mean())

    @property
    def margin(self) -> float:
        """Mean accuracy of the CNN minus that of the best simple baseline."""
        return float(self.accuracy["cnn"].mean() - self.accuracy[self.best_baseline].mean())

    def to_dict(self) -> dict:
        """JSON-ready scores: per method, per-fold and mean accuracy and macro F1."""
        return {
            "folds": self.k,
            "spectra": len(self.values),
            "methods": {
                m: {
                    "description": DESCRIPTIONS[m],
                    "accuracy": float(self.accuracy[m].mean()),
                    "accuracy_std": float(self.accuracy[m].std()),
                    "macro_f1": float(self.macro_f1[m].mean()),
                    "fold_accuracy": self.accuracy[m].tolist(),
                }
                for m in METHODS
            },
            "best_baseline": self.best_baseline,
            "margin": self.margin,
        }

    def table(self) -> str:
        """A plain-text table of the mean scores, and the CNN's margin."""
        lines = [f"{'method':<30} {'accuracy':>14} {'macro F1':>9}"]
        for m in METHODS:
            acc = self.accuracy[m]
            lines.append(
                f"{DESCRIPTIONS[m]:<30} {acc.mean():8.3f} +-{acc.std():.3f} "
                f"{self.macro_f1[m].mean():9.3f}"
            )
        lines.append(
            f"CNN - best simple baseline ({DESCRIPTIONS[self.best_baseline]}): {self.margin:+.3f}"
        )
        return "\n".join(lines)


def cross_validate(
    data: LabelledSpectra,
    k: int,
    folder: str | os.PathLike,
    architecture: dict | None = None,
    training: Training | None = None,
    scaling: str = "minmax",
    verbose: int = 0,
) -> CrossValidation:
    """Stratified ``k``-fold accuracy of the CNN and of both 1-NN baselines on ``data``.

    ``data.held`` is ignored: each fold's training part holds out ``training.holdout`` of
    each class (:func:`~dltools.spectral.labelled.stratified_holdout`) for early stopping.
    The folds depend on ``training.seed``; the model of fold i is written to ``folder/fold_i``.
    """
    training = training or CLASSIFIER_TRAINING
    found, counts = np.unique(data.values, return_counts=True)
    if len(found) < 2 or k < 2 or counts.min() < k:
        raise DltoolsError(
            f"{k}-fold cross-validation needs k >= 2 and at least k spectra of each of at "
            f"least 2 classes; the smallest class ({found[np.argmin(counts)]}) has "
            f"{counts.min()}"
        )
    folds = StratifiedKFold(k, shuffle=True, random_state=training.seed)
    predictions = {m: np.zeros(len(data.values), np.int64) for m in METHODS}
    scores = {m: [] for m in METHODS}
    names = [str(v) for v in found]
    for i, (fit_rows, test_rows) in enumerate(folds.split(data.spectra, data.values)):
        held = stratified_holdout(data.values[fit_rows], training.holdout, training.seed + i)
        model = train_classifier(
            data.subset(fit_rows, held),
            Path(folder) / f"fold_{i}",
            architecture,
            training,
            scaling,
            verbose=verbose,
        )
        test = data.spectra[test_rows]
        predictions["cnn"][test_rows] = Classify(model, data.bands)(test)["classes"]
        scaled_fit, scaled_test = model.scaling(data.spectra[fit_rows]), model.scaling(test)
        classes = data.values[fit_rows]
        predictions["1nn"][test_rows] = nearest_neighbour(scaled_fit, classes, scaled_test)
        predictions["1nn_fft"][test_rows] = nearest_neighbour(
            fft_magnitudes(scaled_fit), classes, fft_magnitudes(scaled_test)
        )
        truth = np.searchsorted(found, data.values[test_rows])
        for m in METHODS:
            scores[m].append(score(truth, np.searchsorted(found, predictions[m][test_rows]), names))
    return CrossValidation(
        k=k,
        values=data.values,
        predictions=predictions,
        accuracy={m: np.array([s.accuracy for s in scores[m]]) for m in METHODS},
        macro_f1={m: np.array([s.macro_f1 for s in scores[m]]) for m in METHODS},
    )
