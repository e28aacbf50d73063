"""Step 5: score a tile model on class folders of tiles (classes matched by exact name)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dltools.engines.metrics import Scores, class_indices, score
from dltools.figures.panels import confusion_figure, save_figure
from dltools.io.outputs import atomic_path
from dltools.io.tile_library import list_tile_classes, read_tiles, sample_per_class

if TYPE_CHECKING:  # TensorFlow loads only when a model is scored
    from dltools.models.loader import TileModel

READ_BATCH = 256  # tiles read and predicted at a time
FIGURE = "test_cm.png"  # the reports of a run, in its output folder
METRICS = "test_metrics.json"


@dataclass
class TileEvaluation:
    """Scores over the model's classes plus the mean top-1 probability of each true class.

    ``mean_top1`` is (K,) float, NaN for classes without tiles; ``tiles`` are the tiles scored.
    """

    scores: Scores
    mean_top1: np.ndarray
    tiles: dict[str, list[Path]]

    @property
    def evaluated(self) -> np.ndarray:
        """(K,) bool: the classes that had tiles."""
        return self.scores.support > 0

    def to_dict(self) -> dict:
        out = self.scores.to_dict()
        for k, name in enumerate(self.scores.class_names):
            top1 = self.mean_top1[k]
            out["per_class"][name]["mean_top1_probability"] = None if np.isnan(top1) else top1
        shown = self.evaluated
        out["means_over_evaluated_classes"] = {
            "accuracy": float(self.scores.recall[shown].mean()),
            "f1": float(self.scores.f1[shown].mean()),
            "mean_top1_probability": float(self.mean_top1[shown].mean()),
        }
        out["tiles"] = {name: [p.name for p in files] for name, files in self.tiles.items()}
        return out


def evaluate_tiles(
    tile_dir: str | Path,
    model: TileModel,
    class_names: list[str],
    per_class: int,
    seed: int = 0,
    batch_size: int = 64,
) -> TileEvaluation:
    """Predict ``per_class`` random tiles of each class folder of ``tile_dir`` and score them.

    Folder names must be among ``class_names`` (the model's classes, exact names).
    """
    tiles = sample_per_class(list_tile_classes(tile_dir), per_class, seed)
    folders = class_indices(list(tiles), class_names)  # every folder must name a class
    true = np.repeat(folders, [len(files) for files in tiles.values()])
    paths = [p for files in tiles.values() for p in files]
    probabilities = np.concatenate(
        [
            model.predict(read_tiles(paths[i : i + READ_BATCH]), batch_size)
            for i in range(0, len(paths), READ_BATCH)
        ]
    )
    k = len(class_names)
    sums = np.bincount(true, weights=probabilities.max(axis=1), minlength=k)
    counts = np.bincount(true, minlength=k)
    mean_top1 = np.divide(sums, counts, out=np.full(k, np.nan), where=counts > 0)
    return TileEvaluation(score(true, probabilities.argmax(axis=1), class_names), mean_top1, tiles)


def report_paths(out: str | Path) -> list[Path]:
    """The files :func:`write_reports` writes into ``out``: the confusion figure, the JSON."""
    return [Path(out) / FIGURE, Path(out) / METRICS]


def write_reports(out: str | Path, result: TileEvaluation, title: str, model: str) -> None:
    """Write the confusion matrix figure and ``test_metrics.json`` (the scores, the tiles
    scored and ``model``) into ``out``."""
    figure, metrics = report_paths(out)
    scores = result.scores
    save_figure(confusion_figure(scores.confusion, scores.class_names, title=title), figure)
    with atomic_path(metrics) as tmp:
        tmp.write_text(json.dumps(result.to_dict() | {"model": model}, indent=1))
