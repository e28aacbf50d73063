"""A trained spectral model's folder: everything needed to use it, and nothing else.

::

    MODEL_DIR/config.json        kind, bands, pre-processing, the options it was trained with,
                                 classes (classifiers), epochs trained
    MODEL_DIR/model.keras        the final model (for classifiers: the best validation epoch)
    MODEL_DIR/epoch_0010.keras   checkpoints at chosen epochs, with the optimiser state
    MODEL_DIR/history.csv        loss and metrics per epoch
    MODEL_DIR/logs/              TensorBoard logs (when asked for)

A model reloads from its folder alone (:func:`load_model`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras

from dltools.errors import DltoolsError
from dltools.models import runs
from dltools.models.training import keras_numpy_warnings_ignored
from dltools.spectral import autoencoder, classifier, losses  # noqa: F401  (Keras registrations)
from dltools.spectral.cube import Scaling

FORMAT = "dltools-spectral-model"
MODEL = "model.keras"
HISTORY = "history.csv"
LOGS = "logs"
KINDS = ("mlp", "conv", "classifier")


def checkpoint_path(folder: str | os.PathLike, epoch: int) -> Path:
    """``MODEL_DIR/epoch_NNNN.keras``: the model and optimiser after ``epoch`` epochs."""
    return Path(folder) / f"epoch_{epoch:04d}.keras"


@dataclass(frozen=True)
class SpectralModel:
    """A Keras model with its folder's ``config``: see the module docstring."""

    model: keras.Model
    config: dict
    folder: Path

    @property
    def kind(self) -> str:
        return self.config["kind"]

    @property
    def bands(self) -> int:
        return self.config["bands"]

    @property
    def scaling(self) -> Scaling:
        return Scaling.from_dict(self.config["scaling"])


def read_config(folder: str | os.PathLike) -> dict:
    """The ``config.json`` of a spectral model folder, checked to be one."""
    config = runs.read_config(folder, FORMAT, "a spectral model folder")
    if config.get("kind") not in KINDS:
        raise DltoolsError(f"{folder}: unknown spectral model kind {config.get('kind')!r}")
    return config


def load_model(folder: str | os.PathLike, epoch: int | None = None) -> SpectralModel:
    """Load ``folder``'s final model, or its checkpoint after ``epoch`` epochs."""
    folder = Path(folder)
    config = read_config(folder)
    path = folder / MODEL if epoch is None else checkpoint_path(folder, epoch)
    if not path.is_file():
        saved = sorted(p.name for p in folder.glob("epoch_*.keras"))
        raise DltoolsError(f"{path}: not found (saved checkpoints: {saved or 'none'})")
    with keras_numpy_warnings_ignored():
        return SpectralModel(keras.saving.load_model(path), config, folder)
