"""Training spectral models: optimisers, schedules, checkpoints.

The one training loop (:func:`dltools.models.training.fit`) runs on ``tf.data`` pipelines
built from Python batch generators; checkpoints are saved at chosen epochs, training stops
early on validation accuracy (keeping the best epoch's weights) and the history is written
beside the model. Autoencoders stream every pixel of a cube from disk
(:func:`dltools.spectral.cube.pixel_batches`); classifiers train on labelled spectra held in
memory (:mod:`dltools.spectral.labelled`), oversampled and augmented
(:mod:`dltools.spectral.augment`). Every run seeds Python, numpy and TensorFlow (Keras'
initialisers, dropout), so on CPU training is bit-for-bit reproducible; process-wide
``tf.config.experimental.enable_op_determinism()`` is left to the caller, as it would constrain
every later TensorFlow user in the process.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import itertools
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dltools.errors import DltoolsError
from dltools.io.labels import default_colors
from dltools.io.outputs import atomic_path
from dltools.models.runs import write_config
from dltools.models.training import EarlyStopping, Phase, fit, save
from dltools.spectral.augment import epoch_batches
from dltools.spectral.autoencoder import build_autoencoder
from dltools.spectral.classifier import build_classifier
from dltools.spectral.cube import Cube, Scaling, fit_scaling, pixel_batches
from dltools.spectral.folder import (
    FORMAT,
    HISTORY,
    LOGS,
    MODEL,
    SpectralModel,
    checkpoint_path,
    load_model,
)
from dltools.spectral.labelled import LabelledSpectra
from dltools.spectral.losses import LOSSES
from dltools.spectral.options import (
    CLASSIFIER_TRAINING,
    DECAYS,
    OPTIMIZERS,
    ClassifierOptions,
    Training,
)


def make_optimizer(
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    momentum: float = 0.9,
    decay: str = "none",
    decay_steps: int = 1000,
    decay_rate: float = 0.5,
    boundaries: Sequence[int] = (),
    rates: Sequence[float] = (),
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """Adam, or SGD with ``momentum``, with an optional learning-rate ``decay``.

    ``exponential``: the rate is multiplied by ``decay_rate`` every ``decay_steps`` batches
    (smoothly). ``piecewise``: ``learning_rate`` until batch ``boundaries[0]``, then
    ``rates[0]`` until ``boundaries[1]``, and so on. ``weight_decay`` (0: none) shrinks
    every weight by ``learning_rate * weight_decay`` per step (decoupled weight decay).
    """
    if optimizer not in OPTIMIZERS:
        raise DltoolsError(
            f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    if decay == "exponential":
        if decay_steps < 1 or not 0 < decay_rate <= 1:
            raise DltoolsError("exponential decay needs decay_steps >= 1 and 0 < decay_rate <= 1")
        rate = keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate)
    elif decay == "piecewise":
        if (
            not boundaries
            or len(rates) != len(boundaries)
            or list(boundaries) != sorted(boundaries)
        ):
            raise DltoolsError(
                "piecewise decay needs increasing batch boundaries and one rate per boundary, "
                f"got boundaries {list(boundaries)} and rates {list(rates)}"
            )
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(b) for b in boundaries], [float(learning_rate), *map(float, rates)]
        )
    elif decay == "none":
        rate = learning_rate
    else:
        raise DltoolsError(f"unknown decay {decay!r}; choose one of {', '.join(DECAYS)}")
    decay_weights = weight_decay if weight_decay > 0 else None
    if optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=momentum, weight_decay=decay_weights)
    return keras.optimizers.Adam(rate, weight_decay=decay_weights)


class _SaveEpochs(keras.callbacks.Callback):
    """Save the model (with its optimiser) after each epoch number in ``epochs`` (1-based)."""

    def __init__(self, folder: Path, epochs: Sequence[int]):
        super().__init__()
        self.folder, self.epochs = folder, set(epochs)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            save(self.model, checkpoint_path(self.folder, epoch + 1))


class _RaiseDataErrors(keras.callbacks.Callback):
    """Raise the first error met while reading the data, at the end of its epoch."""

    def __init__(self, errors: list[DltoolsError]):
        super().__init__()
        self.errors = errors

    def on_epoch_end(self, epoch, logs=None):
        if self.errors:
            raise self.errors[0]


def _dataset(batches: Callable[[], Iterator], signature, errors: list) -> tf.data.Dataset:
    """A tf.data pipeline over ``batches()``; a DltoolsError there ends it and goes to ``errors``.

    (tf.data would print the exception with a traceback and re-raise it as its own error.)
    """

    def guarded():
        try:
            yield from batches()
        except DltoolsError as err:
            errors.append(err)

    return tf.data.Dataset.from_generator(guarded, output_signature=signature).prefetch(2)


def _write_history(path: Path, epochs: list[int], history: dict[str, list[float]]) -> None:
    """Rows ``epoch, metric...`` (1-based epochs), keeping earlier rows before ``epochs``."""
    rows = []
    if path.is_file() and epochs:
        with path.open(newline="") as f:
            rows = [row for row in csv.DictReader(f) if int(row["epoch"]) <= epochs[0]]
    for i, epoch in enumerate(epochs):
        rows.append({"epoch": epoch + 1, **{k: f"{v[i]:.6g}" for k, v in history.items()}})
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _optimizer(training: Training) -> keras.optimizers.Optimizer:
    """:func:`make_optimizer` with the options of ``training`` of the same names."""
    names = inspect.signature(make_optimizer).parameters
    return make_optimizer(**{k: getattr(training, k) for k in names})


def _config(kind: str, bands: int, source: dict, scaling: Scaling, architecture: dict, training):
    return {
        "kind": kind,
        "bands": bands,
        "scaling": scaling.to_dict(),
        "architecture": architecture,
        "training": dataclasses.asdict(training),
        "source": source,
        "epochs_done": 0,
    }


def train_autoencoder(
    cube: Cube,
    folder: str | os.PathLike,
    kind: str = "mlp",
    architecture: dict | None = None,
    training: Training | None = None,
    scaling: str = "minmax",
    verbose: int = 2,
) -> SpectralModel:
    """Train an ``"mlp"`` or ``"conv"`` autoencoder on every valid pixel of ``cube``.

    ``architecture`` holds keyword arguments of the model class (see
    :mod:`dltools.spectral.autoencoder`); ``scaling`` is the pre-processing (see
    :class:`~dltools.spectral.cube.Scaling`). Writes ``folder`` (see
    :mod:`dltools.spectral.folder`) and returns the trained model.
    """
    training = training or Training()
    if training.loss == "sid" and scaling == "standard":
        raise DltoolsError(
            "the SID loss compares spectra as probability distributions, which standardised "
            "(negative) values are not: use --scaling minmax or none with it"
        )
    keras.utils.set_random_seed(training.seed)
    scaler = fit_scaling(cube, scaling, training.block)
    model = build_autoencoder(kind, cube.bands, **(architecture or {}))
    architecture = {k: v for k, v in model.get_config().items() if k not in {"name", "bands"}}
    config = _config(kind, cube.bands, {"cube": str(cube.path)}, scaler, architecture, training)
    return _train(model, config, training, cube, Path(folder), 0, verbose)


def train_classifier(
    data: LabelledSpectra,
    folder: str | os.PathLike,
    architecture: dict | None = None,
    training: Training | None = None,
    scaling: str = "minmax",
    colors: np.ndarray | None = None,
    verbose: int = 2,
) -> SpectralModel:
    """Train a 1-D CNN on the spectra of ``data`` that are not held out.

    ``architecture`` holds keyword arguments of
    :func:`~dltools.spectral.classifier.build_classifier`; ``training`` defaults to
    :data:`~dltools.spectral.options.CLASSIFIER_TRAINING`. ``data.names`` and ``colors``
    ((K, 3) uint8), when given, describe label values 1..K (as labels.txt and colors.txt
    do). The held-out spectra (``data.held``) validate each epoch. ``scaling`` is fitted on
    the training spectra. Writes ``folder`` and returns the model with the best validation
    accuracy.
    """
    training = training or CLASSIFIER_TRAINING
    keras.utils.set_random_seed(training.seed)
    values, counts = np.unique(data.values[~data.held], return_counts=True)
    source = ", ".join(data.source.values())
    if len(values) < 2:
        raise DltoolsError(
            f"{source}: training needs at least 2 classes (values > 0), found {values.tolist()}"
        )
    for what, given in (("names", data.names), ("colors", colors)):
        if given is not None and len(given) < values[-1]:
            raise DltoolsError(
                f"{source} holds label value {values[-1]} but only {len(given)} class "
                f"{what} were given: list one per label value 1, 2, ..."
            )
    scaler = fit_scaling(data.spectra[~data.held], scaling)
    options = {**dataclasses.asdict(ClassifierOptions()), **(architecture or {})}
    model = build_classifier(data.bands, len(values), **options)
    config = _config("classifier", data.bands, data.source, scaler, options, training)
    config["classes"] = {
        "values": values.tolist(),
        "names": [f"class {v}" if data.names is None else data.names[v - 1] for v in values],
        "colors": default_colors(len(values)).tolist()
        if colors is None
        else [np.asarray(colors)[v - 1].tolist() for v in values],
        "train_spectra": counts.tolist(),
    }
    return _train(model, config, training, data, Path(folder), 0, verbose)


def resume_training(
    folder: str | os.PathLike,
    data: Cube | LabelledSpectra,
    from_epoch: int,
    epochs: int,
    save_epochs: Sequence[int] = (),
    verbose: int = 2,
) -> SpectralModel:
    """Continue training ``folder``'s model from its checkpoint after ``from_epoch`` epochs.

    Everything but the total ``epochs`` and the ``save_epochs`` comes from the folder's
    config.json; the batches of each epoch are those of an uninterrupted run. ``data`` is
    the cube of an autoencoder or the labelled spectra of a classifier.
    """
    saved = load_model(folder, from_epoch)
    config = saved.config
    labelled = isinstance(data, LabelledSpectra)
    where = ", ".join(data.source.values()) if labelled else data.path
    if data.bands != config["bands"]:
        raise DltoolsError(
            f"{where} has {data.bands} bands but {folder} was trained on {config['bands']}"
        )
    if config["kind"] == "classifier" and not labelled:
        raise DltoolsError(f"{folder} holds a classifier: resuming it needs its labels")
    if config["kind"] != "classifier" and labelled:
        raise DltoolsError(f"{folder} holds an autoencoder, which is trained without labels")
    if from_epoch >= epochs:
        raise DltoolsError(f"cannot resume after epoch {from_epoch}: only {epochs} epochs asked")
    training = Training.from_dict(
        {**config["training"], "epochs": epochs, "save_epochs": tuple(save_epochs)}
    )
    config = {**config, "training": dataclasses.asdict(training)}
    keras.utils.set_random_seed(training.seed + from_epoch)
    return _train(saved.model, config, training, data, Path(folder), from_epoch, verbose)


def _classifier_batches(config: dict, training: Training, data: LabelledSpectra, scaling):
    """Keras batch generators ``(train(epoch), validation or None)`` over ``data``."""
    classes = np.array(config["classes"]["values"])
    index = np.searchsorted(classes, data.values)
    known = classes[np.minimum(index, len(classes) - 1)] == data.values
    x, y = scaling(data.spectra), index.astype(np.int32)
    fit_x, fit_y = x[known & ~data.held], y[known & ~data.held]
    held_x, held_y = x[known & data.held], y[known & data.held]

    def train(epoch):
        rng = np.random.default_rng([training.seed, epoch])
        return epoch_batches(
            fit_x, fit_y, training.batch_size, training.augmentation, rng, training.balance
        )

    def validation():
        step = max(training.batch_size, 1024)
        return ((held_x[i : i + step], held_y[i : i + step]) for i in range(0, len(held_y), step))

    return train, (validation if len(held_y) else None)


def _train(model, config, training, data, folder, initial_epoch, verbose):
    """Fit a model of ``config``'s kind on ``data``, and save the model and its config.

    ``data``: the cube of an autoencoder, or the labelled spectra of a classifier.
    """
    scaling = Scaling.from_dict(config["scaling"])
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder, config, FORMAT)
    x_spec = tf.TensorSpec((None, data.bands), tf.float32)
    if isinstance(data, LabelledSpectra):
        train, validation = _classifier_batches(config, training, data, scaling)
        signature = (x_spec, tf.TensorSpec((None,), tf.int32))
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        common = {"cube": data, "scaling": scaling, "batch_size": training.batch_size}
        common |= {"seed": training.seed, "block": training.block}

        def train(epoch):
            return ((x, x) for x in pixel_batches(**common, epoch=epoch))

        validation, signature = None, (x_spec, x_spec)
        loss, metrics = LOSSES[training.loss], []
    errors: list[DltoolsError] = []
    callbacks = [_RaiseDataErrors(errors), _SaveEpochs(folder, training.save_epochs)]
    if training.patience > 0 and validation is not None:
        callbacks.append(EarlyStopping("val_accuracy", training.patience, restore=True))
    if training.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(folder / LOGS)))
    epoch_numbers = itertools.count(initial_epoch)
    with warnings.catch_warnings():
        # Keras learns the number of batches per epoch when the first epoch's generator ends
        warnings.filterwarnings("ignore", "Your input ran out of data", UserWarning)
        try:
            history = fit(
                model,
                lambda _: _dataset(lambda: train(next(epoch_numbers)), signature, errors),
                [Phase(0, training.epochs, lambda: _optimizer(training))],
                loss,
                callbacks,
                initial_epoch,
                validation and (lambda: _dataset(validation, signature, errors)),
                metrics,
                verbose=verbose,
            )
        except Exception:
            if errors:  # bad data (NaN, ...) ended an epoch early, upsetting Keras: report it
                raise errors[0] from None
            raise
    epochs = history.pop("epoch")
    _write_history(folder / HISTORY, epochs, history)
    config["epochs_done"] = initial_epoch + len(epochs)
    if "val_accuracy" in history:
        accuracy = history["val_accuracy"]
        config["best_epoch"] = initial_epoch + int(np.argmax(accuracy)) + 1
        config["validation_accuracy"] = float(np.max(accuracy))
    save(model, folder / MODEL)
    return SpectralModel(model, write_config(folder, config, FORMAT), folder)
