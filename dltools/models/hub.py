"""Image feature extractors: a TF-Hub module (URL or local SavedModel) or a small CNN from scratch.

A TF-Hub image feature-vector module takes float RGB images in [0, 1] and returns one feature
vector per image (1280 values for MobileNetV2). ``scratch`` instead builds a small
convolutional network whose weights are learnt together with the classifier.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from dltools.errors import DltoolsError

SCRATCH = "scratch"


def is_url(handle: str) -> bool:
    return handle.startswith(("http://", "https://"))


def resolve_module(handle: str) -> Path:
    """The local directory of a TF-Hub module: ``handle`` itself, or its download (cached).

    An unreachable URL or a folder that is not a SavedModel is a DltoolsError that says how to
    pass a local copy.
    """
    if not is_url(handle):
        path = Path(handle)
        if not (path / "saved_model.pb").is_file():
            raise DltoolsError(
                f"--tfhub_module {handle}: not a URL and not a SavedModel folder (no "
                "saved_model.pb inside); pass a TF-Hub module URL, the folder of a downloaded "
                f"module, or '{SCRATCH}'"
            )
        return path
    try:
        return Path(hub.resolve(handle))
    except Exception as err:  # network errors come in many types
        raise DltoolsError(
            f"cannot fetch the TF-Hub module {handle} ({type(err).__name__}: {err}). Without "
            "internet access, download the module on a connected machine (the compressed "
            "TF-Hub format, a .tar.gz), unpack it and pass its folder: "
            "--tfhub_module /path/to/module"
        ) from None


def module_key(handle: str, image_size: int) -> str:
    """A name for the features of ``handle`` at ``image_size``, for the bottleneck cache.

    Local modules are identified by the content of their graph and variable index, so a moved
    copy keeps its cache and a changed module gets a new one; URLs by the URL.
    """
    digest = hashlib.sha1(f"{image_size}".encode())
    if is_url(handle):
        digest.update(handle.encode())
    else:
        for part in ("saved_model.pb", os.path.join("variables", "variables.index")):
            file = Path(handle) / part
            if file.is_file():
                digest.update(file.read_bytes())
    name = Path(handle.rstrip("/")).name or "module"
    return f"{name}_{image_size}_{digest.hexdigest()[:12]}"


def feature_layer(handle: str, trainable: bool = False) -> hub.KerasLayer:
    """The module as a tf_keras layer: (N, H, W, 3) float in [0, 1] -> (N, D) features."""
    path = resolve_module(handle)
    try:
        return hub.KerasLayer(str(path), trainable=trainable, name="features")
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise DltoolsError(f"{handle}: cannot load this TF-Hub module ({err})") from None


def declared_image_size(layer: hub.KerasLayer) -> int | None:
    """The square input size fixed by the module's signature, or None if it takes any size."""
    for function in getattr(layer.resolved_object.__call__, "concrete_functions", []):
        args = function.structured_input_signature[0]
        shape = getattr(args[0], "shape", None) if args else None
        if shape is not None and shape.rank == 4 and shape[1] is not None:
            return int(shape[1])
    return None


def top_layer_variables(layer: hub.KerasLayer, n_layers: int) -> list[tf.Variable]:
    """The trainable variables of the last ``n_layers`` layers of a module.

    Variables are grouped by layer (the name up to its last ``/``) in the module's order; for
    Keras-made modules (MobileNetV2 on TF-Hub) that order is the layer order, so the last
    groups are the layers nearest the output.
    """
    by_layer: dict[str, list[tf.Variable]] = {}
    for variable in layer.resolved_object.trainable_variables:
        by_layer.setdefault(variable.name.rsplit("/", 1)[0], []).append(variable)
    groups = list(by_layer.values())
    if n_layers > len(groups):
        raise DltoolsError(
            f"--fine_tune_layers {n_layers}: the module has only {len(groups)} layers with weights"
        )
    return [v for group in groups[len(groups) - n_layers :] for v in group]


def scratch_features(image_size: int, seed: int = 0) -> tf_keras.Model:
    """A small CNN, trained from scratch: (N, S, S, 3) float in [0, 1] -> (N, 128) features.

    Four blocks of 3x3 convolution, batch normalisation, ReLU and 2x2 max pooling (32, 64, 128,
    128 filters), then global average pooling and dropout.
    """
    init = tf_keras.initializers.HeNormal(seed=seed)
    layers = [tf_keras.Input((image_size, image_size, 3))]
    for filters in (32, 64, 128, 128):
        layers += [
            tf_keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, kernel_initializer=init
            ),
            tf_keras.layers.BatchNormalization(momentum=0.9),
            tf_keras.layers.ReLU(),
            tf_keras.layers.MaxPooling2D(),
        ]
    # Dropout's seed is seed + 1: the masks the network trained with before the one training
    # loop, whose step function traced twice and ran its second trace (a legacy op seed is
    # used up by each trace), so a --seed gives the same network as in earlier versions.
    dropout = tf_keras.layers.Dropout(0.2, seed=seed + 1)
    layers += [tf_keras.layers.GlobalAveragePooling2D(), dropout]
    return tf_keras.Sequential(layers, name="features")
