"""Reconstruction losses between spectra: SSE, spectral angle, cosine spectral angle, SID.

Each takes ``(y_true, y_pred)`` of shape (n, B) (numpy arrays or tensors) and returns the (n,)
per-spectrum losses; Keras averages them over a batch. They are registered with Keras, so a
saved model that was compiled with them reloads by name.
"""

from __future__ import annotations

import keras
from keras import ops

EPS = 1e-7  # floor of norms and of probabilities inside logarithms
_COS_LIMIT = 1.0 - 1e-7  # arccos has an infinite slope at +-1: cosines are clipped inside


@keras.saving.register_keras_serializable(package="dltools")
def sse(y_true, y_pred):
    """Sum of squared errors over the bands."""
    return ops.sum(ops.square(y_true - y_pred), axis=-1)


def _cosine(y_true, y_pred):
    dot = ops.sum(y_true * y_pred, axis=-1)
    norms = ops.sqrt(ops.sum(ops.square(y_true), axis=-1) * ops.sum(ops.square(y_pred), axis=-1))
    return dot / ops.maximum(norms, EPS)


@keras.saving.register_keras_serializable(package="dltools")
def spectral_angle(y_true, y_pred):
    """Spectral angle ``arccos(<x, y> / (|x| |y|))`` in radians; blind to brightness scaling."""
    return ops.arccos(ops.clip(_cosine(y_true, y_pred), -_COS_LIMIT, _COS_LIMIT))


@keras.saving.register_keras_serializable(package="dltools")
def cosine_spectral_angle(y_true, y_pred):
    """``1 - cos(spectral angle)``: 0 for spectra of the same shape, 2 for opposite ones."""
    return 1.0 - _cosine(y_true, y_pred)


@keras.saving.register_keras_serializable(package="dltools")
def spectral_information_divergence(y_true, y_pred):
    """SID: ``KL(p || q) + KL(q || p)`` of the spectra normalised to sum to 1.

    Values below :data:`EPS` are raised to it first, so zeros and negative outputs give a
    finite loss (safe logarithms).
    """
    p = ops.maximum(y_true, EPS)
    q = ops.maximum(y_pred, EPS)
    p = p / ops.sum(p, axis=-1, keepdims=True)
    q = q / ops.sum(q, axis=-1, keepdims=True)
    return ops.sum((p - q) * (ops.log(p) - ops.log(q)), axis=-1)


LOSSES = {
    "sse": sse,
    "sa": spectral_angle,
    "csa": cosine_spectral_angle,
    "sid": spectral_information_divergence,
}
