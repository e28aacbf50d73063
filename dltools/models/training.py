"""The training loop of every network: phases, early stopping, checkpoints, resume.

A training run is a list of :class:`Phase`\\ s over epochs (e.g. the FCN's frozen encoder,
then the whole network). :func:`fit` runs a Keras model (Keras 3, or tf_keras for the tile
classifier's TF-Hub modules) through them from any epoch, so that a run resumed from its
checkpoint sees the phases and batches of an uninterrupted one; each new phase starts with a
fresh optimiser, a phase resumed in its middle keeps the checkpoint's. Early stopping
(:class:`KeepBest`, here as the callback :class:`EarlyStopping`) watches one validation
score, ends all phases when it stops improving and can put back the best weights. The tile
classifier of step 4 trains one random batch an epoch
(:class:`dltools.models.classifier.StepTrainer`), scored every few steps with the same
:class:`KeepBest`.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    import tf_keras

from dltools.io.outputs import atomic_path


class KeepBest:
    """Early stopping on a validation score (higher is better), keeping the best weights.

    ``update(score)`` is called after each evaluation and returns True when ``patience``
    evaluations in a row brought no higher score (``patience`` 0: never). With ``weights``
    (a ``(get, set)`` pair of functions), the weights of the best score are remembered and
    :meth:`restore` puts them back.
    """

    def __init__(
        self,
        patience: int,
        weights: tuple[Callable[[], Any], Callable[[Any], None]] | None = None,
    ):
        self.patience, self.weights = patience, weights
        self.best, self.best_weights, self.waited = -math.inf, None, 0

    def update(self, score: float) -> bool:
        if score > self.best:
            self.best, self.waited = score, 0
            if self.weights is not None:
                self.best_weights = self.weights[0]()
        else:
            self.waited += 1
        return bool(self.patience) and self.waited >= self.patience

    def restore(self) -> bool:
        """Put back the best weights; False when none were remembered."""
        if self.best_weights is None:
            return False
        self.weights[1](self.best_weights)
        return True


class EarlyStopping(keras.callbacks.Callback):
    """:class:`KeepBest` on the epoch log ``monitor`` (fresh for each phase); with
    ``restore``, training ends with the weights of the best epoch."""

    def __init__(self, monitor: str, patience: int, restore: bool = False):
        super().__init__()
        self.monitor, self.patience, self.restore = monitor, patience, restore

    def on_train_begin(self, logs: dict | None = None) -> None:
        weights = (self.model.get_weights, self.model.set_weights) if self.restore else None
        self.keep = KeepBest(self.patience, weights)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.keep.update(float((logs or {})[self.monitor])):
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        self.keep.restore()


@dataclass(frozen=True)
class Phase:
    """Epochs ``start`` to ``end`` (0-based, end excluded): ``prepare(model)`` (e.g. freeze
    the encoder) runs before them, and ``optimizer()`` makes the phase's optimiser."""

    start: int
    end: int
    optimizer: Callable[[], keras.optimizers.Optimizer]
    prepare: Callable[[keras.Model], None] = lambda model: None


@contextlib.contextmanager
def keras_numpy_warnings_ignored() -> Iterator[None]:
    """Keras 3.15 saves, loads and schedules variables via np.array(x, copy=False): numpy
    2.4 warns."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        yield


def save(model: keras.Model, path: str | os.PathLike) -> None:
    """Write ``model`` (with its optimiser state) as a ``.keras`` file, atomically."""
    with atomic_path(path) as tmp, keras_numpy_warnings_ignored():
        model.save(tmp)


def fit(
    model: keras.Model | tf_keras.Model,
    batches: Callable[[int], Any],
    phases: Sequence[Phase],
    loss: keras.losses.Loss | str | Callable | None,
    callbacks: Sequence[keras.callbacks.Callback | tf_keras.callbacks.Callback],
    epochs_done: int = 0,
    validation: Callable[[], Any] | None = None,
    metrics: Sequence[str] = (),
    shuffle: bool = False,
    verbose: int = 0,
    steps_per_epoch: int | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` phase by phase from epoch ``epochs_done``; return the history.

    ``batches(epoch)`` gives the training data of the epochs from ``epoch`` on (a
    ``keras.utils.PyDataset`` or a ``tf.data.Dataset``); ``validation()`` gives held-out
    batches scored after each epoch (``val_*`` logs). The history maps each log to one
    value per epoch trained, plus ``"epoch"`` (0-based). Early stopping (a callback that
    sets ``model.stop_training``) ends all phases. ``shuffle``: Keras shuffles the order of
    a ``PyDataset``'s batches in each epoch; ``steps_per_epoch``: batches an epoch (None: the
    whole of ``batches``).
    """
    history: dict[str, list[float]] = {"epoch": []}
    for phase in phases:
        if phase.end <= epochs_done or phase.end <= phase.start:
            continue
        start = max(phase.start, epochs_done)
        phase.prepare(model)
        if start == phase.start or getattr(model, "optimizer", None) is None:
            model.compile(optimizer=phase.optimizer(), loss=loss, metrics=list(metrics))
            # the optimiser's variables made now, not in the first step: tf.function would
            # trace that step twice (13 s of a 30-s first epoch of a small U-Net on 2 cores)
            model.optimizer.build(model.trainable_variables)
        with keras_numpy_warnings_ignored():
            result = model.fit(
                batches(start),
                validation_data=None if validation is None else validation(),
                epochs=phase.end,
                initial_epoch=start,
                callbacks=list(callbacks),
                shuffle=shuffle,
                verbose=verbose,
                steps_per_epoch=steps_per_epoch,
            )
        history["epoch"] += result.epoch
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        epochs_done = start + len(result.epoch)
        if epochs_done < phase.end:  # stopped early
            break
    return history
