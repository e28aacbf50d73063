"""Applying trained spectral models to cubes, window by window, into GeoTIFFs.

Every output keeps the input's grid (CRS, transform); nodata pixels of the input are written
as the output's nodata value (NaN for float rasters, 0 for class maps).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dltools.errors import DltoolsError
from dltools.io.geo import Window
from dltools.io.labels import Classes
from dltools.progress import Progress, quiet
from dltools.scale.cache import Cached
from dltools.scale.executor import Executor
from dltools.spectral.classifier import with_features
from dltools.spectral.cube import Cube, RasterOutput, map_pixels, read_spectra
from dltools.spectral.folder import MODEL, SpectralModel, load_model
from dltools.spectral.losses import spectral_angle, sse
from dltools.spectral.options import PREDICT_BATCH


def check_bands(model: SpectralModel, cube: Cube) -> None:
    """DltoolsError unless ``cube`` has the number of bands ``model`` was trained on."""
    if cube.bands != model.bands:
        raise DltoolsError(
            f"{cube.path} has {cube.bands} band(s) but the model in {model.folder} was trained "
            f"on {model.bands}-band spectra; use a cube from the same sensor and band set"
        )


def compiled(
    function: Callable,
    width: int,
    batch_size: int = PREDICT_BATCH,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Callable:
    """numpy (n, width) -> numpy output(s) of ``function``, ``batch_size`` rows per call.

    ``function`` maps a float32 tensor to a tensor or a list of tensors; it is traced once
    (any n). ``prepare`` (e.g. a :class:`~dltools.spectral.cube.Scaling`) maps each batch of
    rows to the (b, width) float32 network inputs first, so that the network's activations
    and the prepared copy are bounded by ``batch_size`` rows, not by n.
    """
    if batch_size < 1:
        raise DltoolsError(f"the batch size must be >= 1, got {batch_size}")
    traced = tf.function(function, input_signature=[tf.TensorSpec((None, width), tf.float32)])
    prepare = prepare or (lambda rows: np.asarray(rows, np.float32))

    def apply(x: np.ndarray):
        step = batch_size
        parts = [traced(prepare(x[i : i + step])) for i in range(0, max(len(x), 1), step)]
        if isinstance(parts[0], (list, tuple)):
            return [np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(len(parts[0]))]
        return np.concatenate([np.asarray(p) for p in parts])

    return apply


def _autoencoder(model: SpectralModel) -> keras.Model:
    if model.kind == "classifier":
        raise DltoolsError(f"{model.folder} holds a classifier, not an autoencoder")
    return model.model


@dataclass(frozen=True)
class OnWorker:
    """A ``spectra -> results`` function that pickles small: ``build(load_model(folder),
    *options)``, built once per process (on a Dask cluster: once per worker).

    ``stamp`` is the model file's modification time, so that a model trained again in the
    same folder is loaded afresh.
    """

    build: Callable[..., Callable[[np.ndarray], dict[str, np.ndarray]]]
    folder: str
    stamp: int
    options: tuple = ()

    def __call__(self, spectra: np.ndarray) -> dict[str, np.ndarray]:
        return Cached(_built, (self.build, self.folder, self.stamp, self.options))()(spectra)


def _built(build: Callable, folder: str, stamp: int, options: tuple) -> Callable:
    return build(load_model(folder), *options)


def _pixel_function(
    build: Callable, model: SpectralModel, options: tuple, executor: Executor | None
) -> tuple[Callable, Callable[[np.ndarray], dict[str, np.ndarray]]]:
    """``(built, to_run)``: ``build(model, *options)`` (built here, so the model is checked
    before any work is sent) and what runs the windows: that function (``executor`` None:
    here), or an :class:`OnWorker` reference to it for a Dask cluster."""
    built = build(model, *options)
    if executor is None or not executor.remote:
        return built, built
    stamp = (model.folder / MODEL).stat().st_mtime_ns
    return built, OnWorker(build, str(model.folder), stamp, options)


def _encoder(model: SpectralModel, batch_size: int) -> Callable:
    encode = compiled(_autoencoder(model).encode, model.bands, batch_size, model.scaling)
    return lambda spectra: {"latent": encode(spectra)}


def _decoder(model: SpectralModel, batch_size: int) -> Callable:
    net = _autoencoder(model)
    net.decode(np.zeros((1, net.latent_size), np.float32))  # refuses models with skips
    decode = compiled(net.decode, net.latent_size, batch_size)
    return lambda latent: {"spectra": decode(latent)}


def _reconstructor(model: SpectralModel, batch_size: int) -> Callable:
    net = _autoencoder(model)

    def losses(x):
        rebuilt = net(x)
        return [rebuilt, sse(x, rebuilt), spectral_angle(x, rebuilt)]

    reconstruct = compiled(losses, model.bands, batch_size, model.scaling)

    def function(spectra: np.ndarray) -> dict[str, np.ndarray]:
        rebuilt, errors, angles = reconstruct(spectra)
        sums = np.array([len(spectra), errors.astype(np.float64).sum(), angles.sum()])
        return {"spectra": rebuilt, "sums": sums}

    return function


def encode_cube(
    model: SpectralModel,
    cube: Cube,
    path: str | os.PathLike,
    block: int = 512,
    progress: Progress = quiet,
    batch_size: int = PREDICT_BATCH,
    executor: Executor | None = None,
) -> None:
    """Write the ``(H, W, Z)`` float32 latent image of ``cube`` as a GeoTIFF at ``path``.

    Windows of ``block`` x ``block`` pixels are read; the network sees ``batch_size``
    spectra at a time. ``executor`` runs the windows (default: here; see
    :func:`dltools.spectral.cube.map_pixels`); the file is the same either way.
    """
    check_bands(model, cube)
    _, function = _pixel_function(_encoder, model, (batch_size,), executor)
    out = {"latent": RasterOutput(Path(path), _autoencoder(model).latent_size, "float32", np.nan)}
    map_pixels(cube, function, out, block, progress, executor)


def decode_raster(
    model: SpectralModel,
    latent: Cube,
    path: str | os.PathLike,
    block: int = 512,
    progress: Progress = quiet,
    batch_size: int = PREDICT_BATCH,
    executor: Executor | None = None,
) -> None:
    """Decode a latent image (one band per latent dimension) into B-band spectra at ``path``.

    The spectra are in the model's pre-processed units (see its ``scaling``).
    """
    net = _autoencoder(model)
    if latent.bands != net.latent_size:
        raise DltoolsError(
            f"{latent.path} has {latent.bands} band(s) but the model in {model.folder} has "
            f"{net.latent_size} latent dimensions; decode a raster written by its encode"
        )
    _, function = _pixel_function(_decoder, model, (batch_size,), executor)
    out = {"spectra": RasterOutput(Path(path), model.bands, "float32", np.nan)}
    map_pixels(latent, function, out, block, progress, executor)


def reconstruct_cube(
    model: SpectralModel,
    cube: Cube,
    path: str | os.PathLike,
    block: int = 512,
    progress: Progress = quiet,
    batch_size: int = PREDICT_BATCH,
    executor: Executor | None = None,
) -> dict[str, float]:
    """Write the reconstructions of ``cube``'s spectra (pre-processed units) at ``path``.

    Returns the mean ``sse`` and spectral angle ``sa`` (radians) between the pre-processed
    spectra and their reconstructions.
    """
    check_bands(model, cube)
    _, function = _pixel_function(_reconstructor, model, (batch_size,), executor)
    out = {"spectra": RasterOutput(Path(path), model.bands, "float32", np.nan)}
    sums = map_pixels(cube, function, out, block, progress, executor)["sums"]
    n = max(sums[0], 1)
    return {"sse": sums[1] / n, "sa": sums[2] / n}


class Classify:
    """A classifier applied to spectra: ``(n, B)`` raw spectra -> classes, scores, features.

    Calling it returns ``{"classes": (n,) int64 label values (0 where the top probability is
    below ``unknown_below``), "scores": (n, K) float32 probabilities, "counts": (max value +
    1,) int64 spectra per label value, "features": (n, F) float32}`` (features only with a
    ``features`` layer name), the network seeing ``batch_size`` spectra at a time.
    """

    def __init__(
        self,
        model: SpectralModel,
        bands: int,
        features: str | None = None,
        unknown_below: float = 0.0,
        batch_size: int = PREDICT_BATCH,
    ):
        if bands != model.bands:
            raise DltoolsError(
                f"the spectra have {bands} band(s) but the model in {model.folder} was trained "
                f"on {model.bands}-band spectra; use spectra from the same sensor and band set"
            )
        if model.kind != "classifier":
            raise DltoolsError(f"{model.folder} holds an autoencoder, not a classifier")
        if not 0 <= unknown_below <= 1:
            raise DltoolsError(f"--unknown-below must lie in [0, 1], got {unknown_below}")
        self.values = np.array(model.config["classes"]["values"])
        self.net = model.model if features is None else with_features(model.model, features)
        self.predict = compiled(
            lambda x: self.net(x, training=False), bands, batch_size, model.scaling
        )
        self.features, self.unknown_below = features, unknown_below

    @property
    def feature_width(self) -> int:
        """F: the number of values of the ``features`` layer per spectrum."""
        return int(np.prod(self.net.outputs[-1].shape[1:]))

    def __call__(self, spectra: np.ndarray) -> dict[str, np.ndarray]:
        result = self.predict(spectra)
        scores, extra = (result, None) if self.features is None else result
        best = scores.argmax(axis=1)
        labels = np.where(scores.max(axis=1) >= self.unknown_below, self.values[best], 0)
        counts = np.bincount(labels, minlength=self.values.max() + 1)
        found = {"classes": labels, "scores": scores, "counts": counts}
        if extra is not None:
            found["features"] = extra.reshape(len(spectra), -1)
        return found

    def summary(self, counts: np.ndarray) -> dict[int, int]:
        """{class value: count} of ``counts`` (a sum of "counts" results; 0 = unknown)."""
        return {int(v): int(counts[v]) for v in [0, *self.values]}


def predict_cube(
    model: SpectralModel,
    cube: Cube,
    classes_path: str | os.PathLike,
    scores_path: str | os.PathLike | None = None,
    features: tuple[str, str | os.PathLike] | None = None,
    unknown_below: float = 0.0,
    block: int = 512,
    progress: Progress = quiet,
    batch_size: int = PREDICT_BATCH,
    executor: Executor | None = None,
) -> dict[int, int]:
    """Classify every pixel of ``cube``; return {class value: pixel count} (0 = unknown).

    Writes the class map at ``classes_path`` (the label values of the training classes; 0 for
    nodata and for pixels whose top probability is below ``unknown_below``), the (H, W, K)
    float32 class probabilities at ``scores_path`` and, with ``features = (layer, path)``, the
    flattened outputs of that layer of the network. Memory: one window of ``block`` x
    ``block`` pixels and the network's activations for ``batch_size`` spectra (per window in
    flight, with an ``executor`` that runs windows on a Dask cluster).
    """
    check_bands(model, cube)
    layer = None if features is None else features[0]
    options = (model.bands, layer, unknown_below, batch_size)
    classify, function = _pixel_function(Classify, model, options, executor)
    values = classify.values
    dtype = "uint8" if values.max() <= 255 else "uint16"
    table = class_table(model.config["classes"])
    outputs = {"classes": RasterOutput(Path(classes_path), 1, dtype, 0, table)}
    if scores_path is not None:
        outputs["scores"] = RasterOutput(Path(scores_path), len(values), "float32", np.nan)
    if features is not None:
        outputs["features"] = RasterOutput(
            Path(features[1]), classify.feature_width, "float32", np.nan
        )
    totals = map_pixels(cube, function, outputs, block, progress, executor)
    return classify.summary(totals["counts"])


def class_table(classes: Mapping) -> Classes:
    """The class table of a classifier's class map from its config's ``classes`` (``values``,
    ``names``, ``colors``): value v names class ``names[i]`` where ``values[i] == v``; values
    between them that no class has are named ``value v``, in grey."""
    top = max(classes["values"])
    names = [f"value {v}" for v in range(1, top + 1)]
    colors = np.full((top, 3), 128, np.uint8)
    for value, name, color in zip(
        classes["values"], classes["names"], classes["colors"], strict=True
    ):
        names[value - 1], colors[value - 1] = name, color
    return Classes(names, colors)


def sample_spectra(cube: Cube, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` random valid pixels: ``(positions (n, 2) int rows/cols, (n, B) spectra)``."""
    rng = np.random.default_rng(seed)
    positions, spectra = [], []
    for _ in range(count * 20):
        if len(spectra) == count:
            break
        row, col = rng.integers(cube.shape[0]), rng.integers(cube.shape[1])
        found, _ = read_spectra(cube, Window(col, row, 1, 1))
        if len(found):
            positions.append((row, col))
            spectra.append(found[0])
    return np.array(positions, int).reshape(-1, 2), np.array(spectra, np.float32)
