"""The tile classifier: a feature extractor plus a softmax layer, and how it is trained.

Training runs through the one training loop (:func:`dltools.models.training.fit`) in steps of
one random batch each (:func:`random_batches`: drawn with replacement, as the original
retrain.py did; with ``balance`` every class is equally likely in a draw), each step one Keras
epoch of a :class:`StepTrainer`. Every ``eval_interval`` steps :class:`Evaluations` scores the
validation set; with ``patience`` the run stops after that many evaluations without a better
validation accuracy and keeps the best weights. Scores go to TensorBoard when a
:class:`Summaries` is given.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from dltools.engines.metrics import confusion_matrix
from dltools.figures.panels import confusion_figure
from dltools.models.loader import prepare_images
from dltools.models.training import KeepBest

MAX_PER_CLASS = 2**27 - 1  # as the original: the split of a file never changes as classes grow
SPLITS = ("training", "validation", "testing")
HISTORY_KEYS = ("train_loss", "train_accuracy", "validation_loss", "validation_accuracy")
DRAWN_BATCHES = 16  # training batches drawn in one call of Python (each call costs about 1 ms)


def _hash_percent(name: str) -> float:
    """A file name's place in [0, 100] by the original retrain.py's hash (``_nohash_`` and
    anything after it ignored)."""
    hashed = re.sub(r"_nohash_.*$", "", name)
    value = int(hashlib.sha1(hashed.encode()).hexdigest(), 16) % (MAX_PER_CLASS + 1)
    return value * (100.0 / MAX_PER_CLASS)


def split_by_name(
    names: Sequence[str], validation_percentage: float, testing_percentage: float
) -> np.ndarray:
    """(N,) int: 0 = training, 1 = validation, 2 = testing, from a hash of each file name.

    The rule of the original retrain.py: a file keeps its split when files are added, and
    anything after ``_nohash_`` in a name is ignored, so variants of a tile stay together.
    """
    percent = np.array([_hash_percent(name) for name in names])
    out = np.zeros(len(names), np.int8)
    out[percent < validation_percentage + testing_percentage] = 2
    out[percent < validation_percentage] = 1
    return out


def split_by_group(
    groups: Sequence[str],
    labels: np.ndarray,
    validation_percentage: float,
    testing_percentage: float,
) -> np.ndarray:
    """(N,) int splits (0 = training, 1 = validation, 2 = testing) that keep each group (e.g.
    the source image of a tile) whole, so validation and test scores come from unseen images.

    ``groups``: (N,) group names; ``labels``: (N,) int classes. Groups are taken in the order of
    a hash of their names (:func:`split_by_name`'s, so the order stays when groups are added)
    into validation until it holds ``validation_percentage`` of the samples, then into testing
    likewise. After the first, a group is passed over when taking it would move the share
    further from the percentage; any group is passed over when taking it would leave a class
    without training samples. The other groups train.
    """
    groups = np.asarray(groups)
    labels = np.asarray(labels)
    out = np.zeros(len(groups), np.int8)
    names = sorted(set(groups.tolist()), key=lambda g: (_hash_percent(g), g))
    members = {name: np.flatnonzero(groups == name) for name in names}
    for split, percentage in ((1, validation_percentage), (2, testing_percentage)):
        target = percentage * len(out) / 100
        for name in names:
            taken = int(np.sum(out == split))
            if taken >= target:
                break
            rows = members[name]
            if out[rows[0]] or (taken and abs(taken + len(rows) - target) > target - taken):
                continue
            training = out == 0
            training[rows] = False
            if set(labels[training].tolist()) == set(labels.tolist()):
                out[rows] = split
    return out


@dataclass(frozen=True)
class Augmentation:
    """Random distortions of training tiles (percentages as in the original retrain.py)."""

    flip_left_right: bool = False
    random_crop: float = 0.0  # margin cropped off, % of the side
    random_scale: float = 0.0  # enlarged by up to this %
    random_brightness: float = 0.0  # brightness multiplied by 1 +- up to this %

    @property
    def active(self) -> bool:
        return bool(
            self.flip_left_right or self.random_crop or self.random_scale or self.random_brightness
        )

    def apply(self, x: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        """Distort (N, S, S, 3) float images in [0, 1]; each tile draws its own distortion."""
        n = tf.shape(x)[0]
        size = tf.shape(x)[1:3]
        if self.random_crop or self.random_scale:
            scale = (1 + self.random_crop / 100) * generator.uniform(
                [n], 1.0, 1.0 + self.random_scale / 100 + 1e-7
            )
            side = 1.0 / scale
            top = generator.uniform([n]) * (1 - side)
            left = generator.uniform([n]) * (1 - side)
            boxes = tf.stack([top, left, top + side, left + side], axis=1)
            x = tf.image.crop_and_resize(x, boxes, tf.range(n), size)
        if self.flip_left_right:
            flip = generator.uniform([n, 1, 1, 1]) < 0.5
            x = tf.where(flip, tf.reverse(x, axis=[2]), x)
        if self.random_brightness:
            b = self.random_brightness / 100
            x = tf.clip_by_value(x * generator.uniform([n, 1, 1, 1], 1 - b, 1 + b), 0.0, 1.0)
        return x


def build_tile_classifier(
    features: tf_keras.layers.Layer, image_size: tuple[int, int], n_classes: int, seed: int = 0
) -> tf_keras.Model:
    """``features`` followed by a softmax layer ``final_result``: (N, S, S, 3) -> (N, K)."""
    head = tf_keras.layers.Dense(
        n_classes,
        activation="softmax",
        kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=0.001, seed=seed),
        name="final_result",
    )
    return tf_keras.Sequential([tf_keras.Input((*image_size, 3)), features, head])


def head_layer(model: tf_keras.Model) -> tf_keras.layers.Dense:
    """The softmax layer of a model made by :func:`build_tile_classifier`."""
    return model.get_layer("final_result")


class Summaries:
    """TensorBoard logs in ``folder/train`` and ``folder/validation``."""

    def __init__(self, folder: str | Path, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self.train = tf.summary.create_file_writer(str(Path(folder) / "train"))
        self.validation = tf.summary.create_file_writer(str(Path(folder) / "validation"))

    def write(self, step: int, train: tuple[float, float], validation: Evaluation) -> None:
        """Loss and accuracy of the last batch and of the validation set, and its confusion."""
        with self.train.as_default():
            tf.summary.scalar("loss", train[0], step=step)
            tf.summary.scalar("accuracy", train[1], step=step)
        with self.validation.as_default():
            tf.summary.scalar("loss", validation.loss, step=step)
            tf.summary.scalar("accuracy", validation.accuracy, step=step)
            buffer = io.BytesIO()
            confusion_figure(validation.confusion, self.class_names).savefig(
                buffer, format="png", dpi=72
            )
            image = tf.io.decode_png(buffer.getvalue(), channels=3)[tf.newaxis]
            tf.summary.image("confusion_matrix", image, step=step)

    def close(self) -> None:
        self.train.close()
        self.validation.close()


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    confusion: np.ndarray


def evaluate(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Cross entropy, accuracy and confusion matrix of (N, K) probabilities against labels."""
    k = probabilities.shape[1]
    if not len(labels):
        return Evaluation(float("nan"), float("nan"), np.zeros((k, k), np.int64))
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
    predicted = probabilities.argmax(axis=1)
    return Evaluation(
        loss, float((predicted == labels).mean()), confusion_matrix(labels, predicted, k)
    )


def random_batches(
    data: np.ndarray, labels: np.ndarray, batch_size: int, balance: bool, seed: int
) -> tf.data.Dataset:
    """Endless ``(data[i], labels[i])`` batches of ``batch_size`` samples drawn with replacement.

    ``data``: (N, ...) samples (tiles or bottlenecks); ``labels``: (N,) int classes. With
    ``balance`` every class is equally likely in a draw. The draws depend on ``seed`` alone
    (:data:`DRAWN_BATCHES` batches are drawn at a time, the same samples as one at a time).
    """
    rng = np.random.default_rng(seed)
    draw = None  # the samples' draw probabilities: uniform, or equal per class
    if balance:
        weights = 1.0 / np.bincount(labels)[labels]
        draw = weights / weights.sum()

    def draws() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            indices = rng.choice(len(labels), size=(DRAWN_BATCHES, batch_size), p=draw)
            yield data[indices], labels[indices]

    signature = (
        tf.TensorSpec((DRAWN_BATCHES, batch_size, *data.shape[1:]), tf.as_dtype(data.dtype)),
        tf.TensorSpec((DRAWN_BATCHES, batch_size), tf.as_dtype(labels.dtype)),
    )
    return tf.data.Dataset.from_generator(draws, output_signature=signature).unbatch()


class StepTrainer(tf_keras.Model):
    """Trains ``variables`` through ``forward`` (tiles or bottlenecks -> (N, K) probabilities)
    with cross entropy, for :func:`dltools.models.training.fit`: its logs are the ``loss`` and
    ``accuracy`` of the last batch."""

    def __init__(self, forward: Callable[[tf.Tensor], tf.Tensor], variables: Sequence[tf.Variable]):
        super().__init__()
        self.forward, self.tuned = forward, list(variables)

    def train_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        x, y = data
        with tf.GradientTape() as tape:
            probabilities = self.forward(x)
            loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(y, probabilities))
        gradients = tape.gradient(loss, self.tuned)
        self.optimizer.apply_gradients(zip(gradients, self.tuned, strict=True))
        hits = tf.equal(tf.argmax(probabilities, axis=-1, output_type=y.dtype), y)
        return {"loss": loss, "accuracy": tf.reduce_mean(tf.cast(hits, tf.float32))}


class Evaluations(tf_keras.callbacks.Callback):
    """Scores the validation set every ``interval`` steps and after the last (each step one
    Keras epoch of one batch), for a :class:`StepTrainer` in training phase ``name``.

    ``predict_validation()`` gives the (N_val, K) validation probabilities. With ``patience``
    > 0 the phase is scored before its first step too, stops after ``patience`` evaluations
    without a higher validation accuracy and ends with the best weights of the trainer's
    variables seen (possibly those it started with). :attr:`history` holds one dict per
    evaluation (phase, step, HISTORY_KEYS); steps are numbered from ``first_step``.
    """

    def __init__(
        self,
        name: str,
        interval: int,
        predict_validation: Callable[[], np.ndarray],
        validation_labels: np.ndarray,
        patience: int = 0,
        first_step: int = 0,
        summaries: Summaries | None = None,
        log: Callable[[str], None] = lambda _: None,
    ):
        super().__init__()
        self.name, self.interval, self.first_step = name, interval, first_step
        self.predict_validation, self.validation_labels = predict_validation, validation_labels
        self.patience, self.summaries, self.log = patience, summaries, log
        self.history: list[dict] = []

    def _score(self, step: int, train: tuple[float, float]) -> bool:
        """Evaluate, log, remember the best; True when patience has run out."""
        validation = evaluate(self.predict_validation(), self.validation_labels)
        values = (*train, validation.loss, validation.accuracy)
        self.history.append(
            {"phase": self.name, "step": step}
            | {
                key: None if np.isnan(value) else value
                for key, value in zip(HISTORY_KEYS, values, strict=True)
            }
        )
        self.log(
            f"{self.name} step {step}: train accuracy {100 * train[1]:.1f}%, cross entropy "
            f"{train[0]:.3f}; validation accuracy {100 * validation.accuracy:.1f}% "
            f"(N={len(self.validation_labels)})"
        )
        if self.summaries is not None:
            self.summaries.write(step, train, validation)
        return self.keep.update(validation.accuracy)

    def on_train_begin(self, logs: dict | None = None) -> None:
        weights = self.model.get_weights, self.model.set_weights
        self.keep = KeepBest(self.patience, weights if self.patience else None)
        if self.patience:
            self._score(self.first_step, (float("nan"), float("nan")))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = epoch + 1
        if step % self.interval and step != self.params["epochs"]:
            return
        train = (float(logs["loss"]), float(logs["accuracy"]))
        if self._score(self.first_step + step, train):
            self.log(
                f"{self.name}: no better validation accuracy in {self.patience} evaluations; stop"
            )
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.keep.restore():
            self.log(
                f"{self.name}: kept the weights of the best validation accuracy "
                f"({100 * self.keep.best:.1f}%)"
            )


def image_forward(
    model: tf_keras.Model,
    image_size: tuple[int, int],
    training: bool,
    augmentation: Augmentation | None = None,
    seed: int = 0,
) -> Callable[[tf.Tensor], tf.Tensor]:
    """uint8 tiles -> probabilities through ``model``, with random distortions if given.

    ``training`` is the mode of batch normalisation and dropout (True for a network learnt from
    scratch, False while fine-tuning a pretrained module).
    """
    generator = tf.random.Generator.from_seed(seed)

    def forward(x: tf.Tensor) -> tf.Tensor:
        images = prepare_images(x, image_size)
        if augmentation is not None and augmentation.active:
            images = augmentation.apply(images, generator)
        return model(images, training=training)

    return forward
