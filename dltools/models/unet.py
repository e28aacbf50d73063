"""The fully convolutional network of step 8: a U-Net with a MobileNetV2 encoder (Keras 3).

The model maps ``(N, h, w, 3)`` float32 RGB in 0..255 (``h`` and ``w`` multiples of
:data:`STRIDE`) to ``(N, h, w, K)`` float32 class probabilities. The encoder is Keras'
MobileNetV2 (ImageNet weights from a local ``..._no_top.h5`` file, or random); the decoder
upsamples its 1/32 features back to 1/2 resolution, joining the encoder's features at 1/16, 1/8,
1/4 and 1/2 on the way, with depthwise-separable convolutions so that it costs less than the
encoder. Class scores are computed at 1/2 resolution and bilinearly upsampled.

Training labels are ``(N, h, w)`` int32: class index 0..K-1, or :data:`IGNORE` for unlabelled
pixels, which the loss (:class:`MaskedCrossEntropy`) leaves out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dltools.engines.metrics import confusion_matrix
from dltools.errors import DltoolsError

STRIDE = 32  # input sides must be multiples of this (the encoder's total downsampling)
IGNORE = -1  # label of unlabelled pixels
ENCODER = "encoder"  # name of the nested encoder model (frozen or trained as one)
SKIPS = (
    "block_1_expand_relu",
    "block_3_expand_relu",
    "block_6_expand_relu",
    "block_13_expand_relu",
)
BOTTOM = "out_relu"  # MobileNetV2's 1/32 features
DECODER_FILTERS = (192, 96, 64, 48)  # at 1/16, 1/8, 1/4, 1/2
ALPHAS = (0.35, 0.5, 0.75, 1.0)  # MobileNetV2 width multipliers with Keras architectures
BN_MOMENTUM = 0.9  # Keras' 0.99 leaves the statistics stale after short trainings


def encoder_weights_file(weights: str | os.PathLike | None) -> str | None:
    """Check ``--encoder-weights``: a local ``.h5`` file, or None / ``"none"`` for random weights.

    ``"imagenet"`` would download, which dltools never does: it is a DltoolsError that says
    which file to pass instead.
    """
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        raise DltoolsError(
            "--encoder-weights imagenet would download the weights, which dltools never does: "
            "pass the local file instead, e.g. --encoder-weights "
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 (Keras' "
            "MobileNetV2 ImageNet weights without the top), or 'none' to train from scratch"
        )
    if not Path(weights).is_file():
        raise DltoolsError(f"{weights}: encoder weights file not found")
    return str(weights)


@keras.saving.register_keras_serializable(package="dltools")
class Upsample2x(layers.Layer):
    """Bilinear upsampling by 2 of (N, h, w, C) inputs whose size is known only at run time
    (Keras' UpSampling2D needs static sizes once a traced function generalises shapes)."""

    def call(self, x):
        return tf.image.resize(x, tf.shape(x)[1:3] * 2, method="bilinear")

    def compute_output_shape(self, shape):
        return (shape[0], *(None if n is None else 2 * n for n in shape[1:3]), shape[3])


def _mobilenet(weights: str | None, alpha: float) -> keras.Model:
    """Keras' MobileNetV2 without its top, any input size, weights from ``weights`` or random."""
    try:
        return keras.applications.MobileNetV2(
            input_shape=(None, None, 3), alpha=alpha, include_top=False, weights=weights
        )
    except ValueError as err:  # Keras names the layer whose weights do not fit
        raise DltoolsError(
            f"{weights}: these are not MobileNetV2 weights of width {alpha} without the top ({err})"
        ) from err


def encoder_layer(weights: str | os.PathLike, layer: str = BOTTOM) -> keras.Model:
    """Layer ``layer`` of MobileNetV2 with ImageNet weights from a local Keras ``_no_top.h5``
    file of width 1.0: (N, h, w, 3) float32 in 0..255 -> (N, D) float32, the layer's output
    averaged over rows and columns."""
    weights = encoder_weights_file(weights)
    if weights is None:
        raise DltoolsError("an encoder needs its weights file (a MobileNetV2 _no_top.h5)")
    base = _mobilenet(weights, 1.0)
    names = [item.name for item in base.layers]
    if layer not in names:
        shown = ", ".join(n for n in names if n.endswith(("_relu", "_add")))
        raise DltoolsError(f"MobileNetV2 has no layer {layer!r}; e.g. {shown}")
    inputs = keras.Input((None, None, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.Model(base.input, base.get_layer(layer).output)(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x))


def build_fcn(
    n_classes: int,
    encoder_weights: str | os.PathLike | None = None,
    alpha: float = 1.0,
    seed: int = 0,
) -> keras.Model:
    """The U-Net: MobileNetV2 encoder (width ``alpha``) and a light decoder.

    ``encoder_weights``: a local Keras ``..._no_top.h5`` file of the same ``alpha``, or None.
    Input (N, h, w, 3) float32 in 0..255, h and w multiples of :data:`STRIDE`; output
    (N, h, w, n_classes) float32 probabilities.
    """
    if n_classes < 2:
        raise DltoolsError(f"segmentation needs at least 2 classes, got {n_classes}")
    if alpha not in ALPHAS:
        raise DltoolsError(f"--alpha must be one of {', '.join(map(str, ALPHAS))}, got {alpha}")
    weights = encoder_weights_file(encoder_weights)
    keras.utils.set_random_seed(seed)
    base = _mobilenet(weights, alpha)
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    names = [*SKIPS, BOTTOM]
    encoder = keras.Model(base.input, [base.get_layer(n).output for n in names], name=ENCODER)

    inputs = keras.Input((None, None, 3), name="rgb")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    *skips, x = encoder(x)
    for level, (skip, filters) in enumerate(zip(reversed(skips), DECODER_FILTERS, strict=True)):
        x = Upsample2x(name=f"up_{level}")(x)
        x = layers.Concatenate(name=f"join_{level}")([x, skip])
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"dec_{level}")(
            x
        )
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dec_{level}_bn")(x)
        x = layers.ReLU(name=f"dec_{level}_relu")(x)
    x = layers.Conv2D(n_classes, 1, name="scores")(x)
    x = Upsample2x(name="full_size")(x)
    outputs = layers.Softmax(name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="fcn_mobilenetv2_unet")


def set_encoder_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze the encoder (frozen, its batch norms use their stored statistics).

    Recompile the model afterwards.
    """
    model.get_layer(ENCODER).trainable = trainable


@keras.saving.register_keras_serializable(package="dltools")
class MaskedCrossEntropy(keras.losses.Loss):
    """Class-weighted cross-entropy that ignores unlabelled pixels.

    ``y_true``: (N, h, w) int labels, 0..K-1 or :data:`IGNORE`; ``y_pred``: (N, h, w, K)
    probabilities. The loss is ``sum(w[y] * -log p[y]) / sum(w[y])`` over the labelled pixels
    of the batch, ``w`` being ``class_weights`` (default all 1); 0 when no pixel is labelled.
    Labels K..2K-1 are class ``y - K`` of a second target, whose pixels weigh ``w[y - K] *
    second_weight``.
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        second_weight: float = 0.0,
        name="masked_ce",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.second_weight = float(second_weight)

    def call(self, y_true, y_pred):
        n_classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        probabilities = ops.reshape(y_pred, (-1, n_classes))
        labelled = labels >= 0
        second = labels >= n_classes
        safe = ops.where(labelled, ops.where(second, labels - n_classes, labels), 0)
        picked = ops.take_along_axis(probabilities, ops.expand_dims(safe, -1), axis=-1)[:, 0]
        nll = -ops.log(ops.clip(picked, 1e-7, 1.0))
        weight = ops.cast(labelled, nll.dtype) * ops.where(second, self.second_weight, 1.0)
        if self.class_weights is not None:
            weight = weight * ops.take(ops.convert_to_tensor(self.class_weights), safe)
        return ops.sum(weight * nll) / ops.maximum(ops.sum(weight), 1e-6)

    def get_config(self) -> dict:
        config = {**super().get_config(), "class_weights": self.class_weights}
        return config | {"second_weight": self.second_weight}


def class_weights(counts: Sequence[int], power: float = 0.5) -> np.ndarray:
    """(K,) float32 weights ``(N / (K * n_k)) ** power`` from per-class pixel counts ``n_k``.

    ``power`` 1 is inverse frequency, 0.5 (the default) its square root, which helps rare
    classes without letting a few of their pixels dominate; 0 gives all 1. Weights are scaled
    so that their pixel-weighted mean is 1; classes without pixels get 0.
    """
    n = np.asarray(counts, np.float64)
    present = n > 0
    weights = np.zeros(n.shape)
    weights[present] = (n[present].sum() / (present.sum() * n[present])) ** power
    weights /= max((weights * n).sum() / max(n.sum(), 1), 1e-12)
    return weights.astype(np.float32)


def iou_scores(confusion: np.ndarray) -> np.ndarray:
    """(K,) intersection over union of each class from a (K, K) confusion matrix (0 if absent)."""
    cm = np.asarray(confusion, np.float64)
    hits = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - hits
    return np.divide(hits, union, out=np.zeros_like(hits), where=union > 0)


def compiled_predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """(N, h, w, 3) float32 -> (N, h, w, K) float32 probabilities, traced once per input shape."""
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: forward(tf.convert_to_tensor(x, tf.float32)).numpy()


class ValidationIoU(keras.callbacks.Callback):
    """After each epoch, score the model on fixed validation crops; adds to the epoch's logs:

    ``val_loss`` (masked cross-entropy), ``val_mean_iou`` (mean over the classes present in the
    validation labels), ``val_accuracy`` and ``val_iou_<class>`` for each class, so that the
    TensorBoard callback (placed after this one) records them and early stopping can watch
    ``val_mean_iou``. ``images``: (n, h, w, 3) float32; ``labels``: (n, h, w) int, 0-based,
    :data:`IGNORE` = unlabelled.
    """

    batch_size = 4  # validation crops predicted at a time

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]):
        super().__init__()
        self.images, self.labels = images, labels
        self.class_names = list(class_names)
        self.loss = MaskedCrossEntropy()
        self.present = np.isin(np.arange(len(class_names)), labels[labels >= 0])
        self.predict = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        self.predict = self.predict or compiled_predictor(self.model)
        k = len(self.class_names)
        cm = np.zeros((k, k), np.int64)
        losses, weights = [], []
        for i in range(0, len(self.images), self.batch_size):
            probabilities = self.predict(self.images[i : i + self.batch_size])
            truth = self.labels[i : i + self.batch_size]
            cm += confusion_matrix(truth, probabilities.argmax(axis=-1), k)
            losses.append(float(self.loss(truth, probabilities)))
            weights.append(int(np.count_nonzero(truth >= 0)))
        iou = iou_scores(cm)
        scores = {
            "val_loss": float(np.average(losses, weights=weights)) if sum(weights) else 0.0,
            "val_mean_iou": float(iou[self.present].mean()) if self.present.any() else 0.0,
            "val_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        }
        scores |= {f"val_iou_{name}": float(iou[c]) for c, name in enumerate(self.class_names)}
        logs.update(scores)


class EpochMap(keras.callbacks.Callback):
    """The "map per epoch": after each epoch, write to TensorBoard the predicted class map of
    one fixed validation image beside the image and its labels (one RGB picture).

    ``image``: (h, w, 3) uint8 (sides multiples of :data:`STRIDE`); ``labels``: (h, w) int,
    0-based, :data:`IGNORE` = unlabelled (drawn black); ``colors``: (K, 3) uint8.
    """

    def __init__(self, log_dir: str | os.PathLike, image, labels, colors):
        super().__init__()
        self.log_dir, self.image = str(log_dir), image
        self.lut = np.vstack([np.asarray(colors, np.uint8), np.zeros((1, 3), np.uint8)])
        self.truth = self.lut[np.where(labels >= 0, labels, len(colors))]
        self.writer = self.predict = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.predict = self.predict or compiled_predictor(self.model)
        predicted = self.predict(self.image[None].astype(np.float32))[0].argmax(axis=-1)
        picture = np.concatenate([self.image, self.truth, self.lut[predicted]], axis=1)
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        with self.writer.as_default():
            tf.summary.image("map", picture[None], step=epoch + 1)
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class EpochEnd(keras.callbacks.Callback):
    """Calls ``function(epoch, logs, model)`` after each epoch (0-based ``epoch``)."""

    def __init__(self, function: Callable[[int, dict, keras.Model], None]):
        super().__init__()
        self.function = function

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.function(epoch, dict(logs or {}), self.model)


def tensorboard(log_dir: str | os.PathLike) -> keras.callbacks.TensorBoard:
    """TensorBoard logs of every epoch's logs (place it after :class:`ValidationIoU`)."""
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, profile_batch=0)


class CropBatches(keras.utils.PyDataset):
    """``steps`` batches per epoch from ``make_batch(epoch, index) -> (x, y)``.

    The batch depends only on (epoch, index), so a resumed run sees the batches of an
    uninterrupted one.
    """

    def __init__(self, make_batch: Callable[[int, int], tuple], steps: int, epoch: int = 0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.make_batch, self.steps, self.epoch = make_batch, steps, epoch

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple:
        return self.make_batch(self.epoch, index)

    def on_epoch_end(self) -> None:
        self.epoch += 1


def load(path: str | os.PathLike, compile: bool = False) -> keras.Model:
    """Load a ``.keras`` FCN (``compile``: with its loss and optimiser, to resume training)."""
    try:
        return keras.saving.load_model(path, compile=compile)
    except (OSError, ValueError) as err:
        raise DltoolsError(f"{path}: cannot load this model ({err})") from err
