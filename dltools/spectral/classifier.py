"""A 1-D CNN that classifies pixels by their spectra (after nnSIC-style spectral classifiers).

(n, B) float32 spectra -> (n, K) class probabilities. Layers have stable names
(``conv_0``, ``conv_0_relu``, ``pool_0``, ..., ``head``, ``dense_0_relu``, ...,
``scores``) so that features can be taken from any of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from dltools.errors import DltoolsError
from dltools.spectral.autoencoder import check_sizes
from dltools.spectral.options import HEADS, ClassifierOptions

DEFAULTS = ClassifierOptions()

BN_MOMENTUM = 0.9  # Keras' 0.99 leaves inference statistics stale after a few hundred steps


def build_classifier(
    bands: int,
    n_classes: int,
    conv_filters: Sequence[int] = DEFAULTS.conv_filters,
    kernel_sizes: Sequence[int] = DEFAULTS.kernel_sizes,
    pool_size: int = DEFAULTS.pool_size,
    head: str = DEFAULTS.head,
    dense_units: Sequence[int] = DEFAULTS.dense_units,
    batch_norm: bool = DEFAULTS.batch_norm,
    dropout: float = DEFAULTS.dropout,
) -> keras.Model:
    """Conv1D blocks (conv, optional batch norm, ReLU, max-pool), a head, dense blocks, softmax.

    ``conv_filters`` and ``kernel_sizes`` give one conv block each (may be empty, then the
    spectra go straight to the dense blocks); ``dense_units`` one dense block each (batch
    norm, ReLU, ``dropout``). The ``head`` turns the last conv block's (bands, filters)
    outputs into one vector: ``max`` (each filter's strongest response anywhere in the
    spectrum) or ``average`` (its mean response) pool over the bands, so a feature counts
    wherever it lies: a spectrum shifted by a few bands gives the same vector. ``flatten``
    keeps every position (a shift changes everything). The output layer ``scores`` has
    ``n_classes`` softmax units.
    """
    if n_classes < 2:
        raise DltoolsError(f"a classifier needs at least 2 classes, the labels hold {n_classes}")
    conv_filters = check_sizes("conv_filters", conv_filters, allow_empty=True)
    kernel_sizes = check_sizes("kernel_sizes", kernel_sizes, len(conv_filters))
    dense_units = check_sizes("dense_units", dense_units, allow_empty=True)
    if head not in HEADS:
        raise DltoolsError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if not 0 <= dropout < 1:
        raise DltoolsError(f"dropout must lie in [0, 1), got {dropout}")
    inputs = keras.Input((bands,), name="spectra")
    h = layers.Reshape((bands, 1), name="bands")(inputs)
    for i, (filters, size) in enumerate(zip(conv_filters, kernel_sizes, strict=True)):
        h = layers.Conv1D(filters, size, padding="same", use_bias=not batch_norm, name=f"conv_{i}")(
            h
        )
        if batch_norm:
            h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"conv_{i}_bn")(h)
        h = layers.Activation("relu", name=f"conv_{i}_relu")(h)
        h = layers.MaxPooling1D(pool_size, padding="same", name=f"pool_{i}")(h)
    pools = {"max": layers.GlobalMaxPooling1D, "average": layers.GlobalAveragePooling1D}
    head_layer = pools.get(head, layers.Flatten) if conv_filters else layers.Flatten
    h = head_layer(name="head")(h)
    for i, units in enumerate(dense_units):
        h = layers.Dense(units, use_bias=not batch_norm, name=f"dense_{i}")(h)
        if batch_norm:
            h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dense_{i}_bn")(h)
        h = layers.Activation("relu", name=f"dense_{i}_relu")(h)
        if dropout:
            h = layers.Dropout(dropout, name=f"dense_{i}_dropout")(h)
    outputs = layers.Dense(n_classes, activation="softmax", name="scores")(h)
    return keras.Model(inputs, outputs, name="spectral_cnn")


def feature_layers(model: keras.Model) -> list[str]:
    """Names of the layers whose outputs can be written as features (all but the input)."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def with_features(model: keras.Model, layer: str) -> keras.Model:
    """A model returning ``[scores (n, K), features of ``layer`` (n, ...)]`` in one pass."""
    names = feature_layers(model)
    if layer not in names:
        raise DltoolsError(
            f"the classifier has no layer {layer!r}; choose one of {', '.join(names)}"
        )
    return keras.Model(model.inputs, [model.outputs[0], model.get_layer(layer).output])
