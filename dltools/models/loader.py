"""The one model loader (and writer) of the pipeline: SavedModel, .keras and legacy frozen .pb.

Every tile model maps float RGB images in [0, 1], ``(N, S, S, 3)``, to ``(N, K)`` class
probabilities. Three formats:

- a SavedModel folder (what ``dltools retrain`` writes by default): self-contained; a
  ``dltools.json`` inside records the class names, input size and the
  :class:`~dltools.raster.bands.BandChoice` (which bands of an image feed it);
- a ``.keras`` file (tf_keras): a model built on a TF-Hub module stores the module's handle,
  which must still be reachable when the file is loaded;
- a frozen ``.pb`` graph as written by the original dl_tools retrain.py: input tensor
  ``Placeholder``, output ``final_result``.

:func:`load_model` returns a :class:`TileModel` whose ``predict`` takes uint8 tiles of any size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from dltools.errors import DltoolsError
from dltools.io.outputs import atomic_dir, atomic_path, remove_stale
from dltools.models.metadata import METADATA, read_metadata
from dltools.raster.bands import RGB8, BandChoice

LEGACY_INPUT = "Placeholder"
LEGACY_OUTPUT = "final_result"


def prepare_images(images: np.ndarray | tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """(N, h, w, C) uint8 tiles -> (N, *size, 3) float32 in [0, 1] (bilinear resize).

    One band is repeated to RGB; bands beyond the third are dropped.
    """
    x = tf.convert_to_tensor(images)
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    x = tf.cast(x[..., :3], tf.float32) / 255.0
    if tuple(x.shape[1:3]) != tuple(size):
        x = tf.image.resize(x, size)
    return x


@dataclass
class TileModel:
    """A loaded tile classifier.

    ``image_size`` is its (height, width) input; ``class_names`` is None when the file does not
    record them (legacy graphs, .keras files); ``bands``: which bands of an image feed it (files
    that do not record it: bands 1,2,3 of 3-band 8-bit images).
    """

    path: Path
    image_size: tuple[int, int]
    num_classes: int
    class_names: list[str] | None
    forward: Callable[[tf.Tensor], tf.Tensor]
    bands: BandChoice = RGB8

    def predict(self, tiles: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, h, w, C) uint8 tiles -> (N, K) float32 class probabilities, in batches."""
        out = [
            self.forward(prepare_images(tiles[i : i + batch_size], self.image_size)).numpy()
            for i in range(0, len(tiles), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def check_labels(self, labels: Sequence[str], labels_path: str | os.PathLike) -> None:
        """DltoolsError unless ``labels`` (from ``labels_path``) are the model's classes."""
        if len(labels) != self.num_classes:
            raise DltoolsError(
                f"{labels_path} lists {len(labels)} classes but the model {self.path} predicts "
                f"{self.num_classes}; give the labels file written with the model"
            )
        if self.class_names is not None and list(labels) != self.class_names:
            raise DltoolsError(
                f"{labels_path} lists the classes {', '.join(labels)} but the model {self.path} "
                f"was trained on {', '.join(self.class_names)} (in this order); give the labels "
                "file written with the model"
            )


def _size(shape: tf.TensorShape, path: Path) -> tuple[int, int]:
    if shape.rank != 4 or shape[1] is None or shape[2] is None:
        raise DltoolsError(f"{path}: the model's input shape {shape} has no fixed image size")
    return int(shape[1]), int(shape[2])


def _load_saved_model(path: Path) -> TileModel:
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise DltoolsError(f"{path}: this SavedModel has no 'serving_default' signature")
    (input_name, spec), *more_inputs = signature.structured_input_signature[1].items()
    (output_name, out_spec), *more_outputs = signature.structured_outputs.items()
    if more_inputs or more_outputs:
        raise DltoolsError(f"{path}: expected a model with one input and one output")
    meta = read_metadata(path)

    def forward(x: tf.Tensor) -> tf.Tensor:
        return signature(**{input_name: x})[output_name]

    forward.keep_alive = loaded  # the signature needs the loaded object to stay alive
    return TileModel(
        path,
        _size(spec.shape, path),
        int(out_spec.shape[-1]),
        meta.get("class_names"),
        forward,
        BandChoice.from_dict(meta.get("bands")),
    )


def _keras_model(path: Path) -> tf_keras.Model:
    """The tf_keras model of a ``.keras`` file (TF-Hub layers included)."""
    try:
        return tf_keras.models.load_model(
            path, custom_objects={"KerasLayer": hub.KerasLayer}, compile=False
        )
    except (OSError, ValueError) as err:
        raise DltoolsError(f"{path}: cannot load this .keras model ({err})") from None


def _load_keras(path: Path) -> TileModel:
    model = _keras_model(path)
    return TileModel(
        path,
        _size(tf.TensorShape(model.input_shape), path),
        int(model.output_shape[-1]),
        None,
        lambda x: model(x, training=False),
    )


def _load_frozen_graph(path: Path) -> TileModel:
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf's DecodeError
        raise DltoolsError(f"{path}: not a TensorFlow frozen graph ({err})") from None
    names = {node.name for node in graph_def.node}
    if not {LEGACY_INPUT, LEGACY_OUTPUT} <= names:
        raise DltoolsError(
            f"{path}: a frozen graph needs the tensors '{LEGACY_INPUT}' (input) and "
            f"'{LEGACY_OUTPUT}' (output), as written by dl_tools retrain.py"
        )
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(graph_def, name=""), []
    )
    inputs = wrapped.graph.get_tensor_by_name(f"{LEGACY_INPUT}:0")
    outputs = wrapped.graph.get_tensor_by_name(f"{LEGACY_OUTPUT}:0")
    forward = wrapped.prune(inputs, outputs)
    return TileModel(path, _size(inputs.shape, path), int(outputs.shape[-1]), None, forward)


def load_model(path: str | os.PathLike) -> TileModel:
    """Load a tile model from a SavedModel folder, a ``.keras`` file or a frozen ``.pb`` graph."""
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _load_saved_model(path)
    if path.is_file() and path.suffix == ".keras":
        return _load_keras(path)
    if path.is_file() and path.suffix == ".pb":
        return _load_frozen_graph(path)
    if not path.exists():
        raise DltoolsError(f"{path}: model not found")
    raise DltoolsError(
        f"{path}: not a model; expected a SavedModel folder, a .keras file or a frozen .pb graph"
    )


FEATURES_LAYER = "features"  # a tile model's layers before its softmax: the feature vector
PROBABILITIES_LAYER = LEGACY_OUTPUT  # its softmax layer: the class probabilities


def load_layer(
    path: str | os.PathLike, layer: str
) -> tuple[Callable[[tf.Tensor], tf.Tensor], tuple[int, int]]:
    """``(forward, size)``: the output of layer ``layer`` of the tile model at ``path`` for
    (N, *size, 3) float images in [0, 1], as (N, D) float (a layer that keeps rows and columns
    is averaged over them).

    A ``.keras`` file gives any of its layers by name. A SavedModel written by dltools records
    no layer names: it gives :data:`FEATURES_LAYER` (every layer before the last, the
    feature vector its softmax reads) and :data:`PROBABILITIES_LAYER` (the last).
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        model = _keras_model(path)
        names = [item.name for item in model.layers]
        if layer not in names:
            raise DltoolsError(f"{path} has no layer {layer!r}; its layers: {', '.join(names)}")
        part = tf_keras.Model(model.inputs, model.get_layer(layer).output)
        size = _size(tf.TensorShape(model.input_shape), path)
        return (lambda x: _pooled(part(x, training=False))), size
    if not (path.is_dir() and (path / "saved_model.pb").is_file()):
        raise DltoolsError(f"{path}: --layer needs a tile model (a SavedModel folder or .keras)")
    choices = (FEATURES_LAYER, PROBABILITIES_LAYER)
    if layer not in choices:
        raise DltoolsError(
            f"{path}: a SavedModel tile model gives the layers {' and '.join(choices)}, not "
            f"{layer!r} (a .keras model gives any layer by name)"
        )
    loaded = tf.saved_model.load(str(path))
    model = getattr(loaded, "model", None)
    stack = []
    while model is not None and hasattr(model, f"layer-{len(stack)}"):
        stack.append(getattr(model, f"layer-{len(stack)}"))
    if len(stack) < 2:
        raise DltoolsError(f"{path}: not a tile model saved by dltools (no layers to choose)")
    if layer == FEATURES_LAYER:
        stack = stack[:-1]
    spec = loaded.signatures["serving_default"].structured_input_signature[1]
    size = _size(next(iter(spec.values())).shape, path)

    def forward(x: tf.Tensor) -> tf.Tensor:
        for item in stack:
            x = item(x)
        return _pooled(x)

    forward.keep_alive = loaded  # the layers need the loaded object to stay alive
    return forward, size


def _pooled(x: tf.Tensor) -> tf.Tensor:
    """(N, h, w, D) -> (N, D) means over rows and columns; (N, D) unchanged."""
    return tf.reduce_mean(x, axis=[1, 2]) if len(x.shape) == 4 else x


def check_format(path: str | os.PathLike, bands: BandChoice) -> None:
    """DltoolsError if a model of ``bands`` cannot be saved at ``path`` (``.keras`` and ``.pb``
    files record no bands: only the default, bands 1,2,3 of 3-band 8-bit images)."""
    if Path(path).suffix in {".keras", ".pb"} and bands != RGB8:
        raise DltoolsError(
            f"{path}: a {Path(path).suffix} file cannot record the model's input "
            f"({bands.describe()}); save it as a SavedModel folder (a name without suffix)"
        )


def _serving_function(
    model: tf_keras.Model, size: tuple[int, int], input_name: str, output_name: str
) -> tf.types.experimental.PolymorphicFunction:
    """``model`` in inference mode as a tf.function of named (None, *size, 3) float32 input."""
    spec = tf.TensorSpec((None, *size, 3), tf.float32, name=input_name)
    return tf.function(
        lambda x: tf.identity(model(x, training=False), name=output_name),
        input_signature=[spec],
    )


def save_model(
    model: tf_keras.Model,
    path: str | os.PathLike,
    class_names: Sequence[str],
    image_size: tuple[int, int],
    module: str,
    force: bool = False,
    bands: BandChoice = RGB8,
    tile_size: int | None = None,
) -> None:
    """Write ``model`` ((N, S, S, 3) [0, 1] -> (N, K) probabilities) by the suffix of ``path``.

    ``.keras``: a tf_keras file; ``.pb``: a frozen graph in the original dl_tools layout
    (``Placeholder`` -> ``final_result``); anything else: a SavedModel folder with a
    ``dltools.json`` (class names, image size, module, ``bands`` and ``tile_size``, the side of
    the training tiles, which step 6 takes as its tile size). Written atomically; an
    existing folder is replaced only with ``force``. ``.keras`` and ``.pb`` files cannot record
    ``bands``: they take only models of 3-band 8-bit images (bands 1,2,3).
    """
    path = Path(path)
    check_format(path, bands)
    if path.suffix == ".keras":
        with atomic_path(path) as tmp:
            model.save(tmp)
        return
    if path.suffix == ".pb":
        function = _serving_function(model, image_size, LEGACY_INPUT, LEGACY_OUTPUT)
        frozen = convert_variables_to_constants_v2(function.get_concrete_function())
        with atomic_path(path) as tmp:
            tmp.write_bytes(frozen.graph.as_graph_def().SerializeToString())
        return
    if path.exists() and not force:
        raise DltoolsError(f"{path} already exists; move it away or pass --force to replace it")
    remove_stale(path.parent, path.name)
    with atomic_dir(path) as tmp:
        holder = tf.Module()
        holder.model = model
        holder.serve = _serving_function(model, image_size, "images", "probabilities")
        tf.saved_model.save(holder, str(tmp), signatures={"serving_default": holder.serve})
        meta = {
            "class_names": list(class_names),
            "image_size": list(image_size),
            "module": module,
            "bands": bands.to_dict(),
        }
        if tile_size is not None:
            meta["tile_size"] = int(tile_size)
        (tmp / METADATA).write_text(json.dumps(meta, indent=1))
