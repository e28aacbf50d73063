"""Step 4: train a tile classifier on a library of class folders (``IMAGE_DIR/<class>/*.jpg``).

With a TF-Hub module a softmax layer is trained on the module's features, cached on disk
(bottlenecks); then the module's top layers are fine-tuned with it on the tiles themselves,
randomly distorted. Without fine-tuning, distortions apply to the softmax layer's training,
whose features are then computed for every batch (the original retrain.py). ``scratch`` trains
a small CNN end to end instead. Tiles are split into training / validation / testing by a hash
of their file names (:func:`dltools.models.classifier.split_by_name`) or, keeping the tiles of
one source image together, of their images' names (:func:`~dltools.models.classifier.
split_by_group`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from dltools.engines.metrics import score
from dltools.errors import DltoolsError
from dltools.io.images import image_shape
from dltools.io.labels import write_labels
from dltools.io.outputs import atomic_path, ensure_new
from dltools.io.tile_library import (
    list_tile_classes,
    read_band_choice,
    read_tiles,
    source_image,
)
from dltools.models import training
from dltools.models.bottlenecks import BottleneckCache, compute_bottlenecks
from dltools.models.classifier import (
    SPLITS,
    Augmentation,
    Evaluations,
    StepTrainer,
    Summaries,
    build_tile_classifier,
    head_layer,
    image_forward,
    random_batches,
    split_by_group,
    split_by_name,
)
from dltools.models.hub import (
    SCRATCH,
    declared_image_size,
    feature_layer,
    module_key,
    scratch_features,
    top_layer_variables,
)
from dltools.models.loader import check_format, prepare_images, save_model
from dltools.models.recipes import (
    FINE_TUNE_STEPS,
    MIN_SPLIT_IMAGES,
    MODULE_INPUT_RANGE,
    RECIPE,
    SPLIT_UNITS,
)
from dltools.progress import Progress, quiet


@dataclass
class RetrainSettings:
    """How to train (the options of ``dltools retrain``).

    The defaults are :data:`dltools.models.recipes.RECIPE` (``dltools retrain --legacy`` uses
    ``LEGACY``). ``fine_tune_layers=None`` means the recipe's layers for a module and 0
    for scratch (whose whole network trains).
    """

    steps: int = 4000
    learning_rate: float = 0.01
    batch_size: int = 100
    validation_percentage: float = 10.0
    testing_percentage: float = 10.0
    eval_interval: int = 10
    augmentation: Augmentation = field(
        default_factory=lambda: Augmentation(
            flip_left_right=RECIPE["flip_left_right"],
            random_brightness=RECIPE["random_brightness"],
        )
    )
    balance: bool = RECIPE["balance"]
    early_stopping: int = 0  # patience in evaluations; 0 = train all steps, keep the last weights
    split: str = "tile"  # "image": validation and testing tiles come from other images
    fine_tune_layers: int | None = None
    fine_tune_steps: int = FINE_TUNE_STEPS
    fine_tune_learning_rate: float = 1e-4
    image_size: int | None = None  # None: see tile_sized_input
    tile_sized_input: bool = RECIPE["tile_sized_input"]
    seed: int = 0

    def tuned_layers(self, module: str) -> int:
        """Top module layers to fine-tune with ``module`` (a handle or ``"scratch"``)."""
        if self.fine_tune_layers is not None:
            return self.fine_tune_layers
        return 0 if module == SCRATCH else RECIPE["fine_tune_layers"]

    def check(self) -> None:
        flags = {
            "steps": "how_many_training_steps",
            "batch_size": "train_batch_size",
            "eval_interval": "eval_step_interval",
            "fine_tune_steps": "fine_tune_steps",
        }
        for name, flag in flags.items():
            if getattr(self, name) < 1:
                raise DltoolsError(f"--{flag} must be at least 1, got {getattr(self, name)}")
        if min(self.learning_rate, self.fine_tune_learning_rate) <= 0:
            raise DltoolsError("learning rates must be positive")
        if min(self.validation_percentage, self.testing_percentage) < 0 or (
            self.validation_percentage + self.testing_percentage >= 100
        ):
            raise DltoolsError(
                "--validation_percentage and --testing_percentage must be >= 0 and leave some "
                "tiles for training (their sum below 100)"
            )
        if self.early_stopping < 0 or (self.fine_tune_layers or 0) < 0:
            raise DltoolsError("--early_stopping and --fine_tune_layers cannot be negative")
        if self.split not in SPLIT_UNITS:
            raise DltoolsError(f"--split must be one of {', '.join(SPLIT_UNITS)}, got {self.split}")
        if self.image_size is not None and self.image_size < 8:
            raise DltoolsError(f"--image_size must be at least 8, got {self.image_size}")


@dataclass
class ModelOutputs:
    """Where retraining writes: model, labels file, metrics; caches and logs (None: none)."""

    model: Path
    labels: Path
    metrics: Path
    bottlenecks: Path | None = None
    summaries: Path | None = None


def _library(
    image_dir: str | Path, settings: RetrainSettings
) -> tuple[list[str], list[Path], np.ndarray, np.ndarray, str]:
    """Class names, tile paths, their (N,) labels and splits, checked for what training needs,
    and the unit of the split (``"image"`` needs :data:`MIN_SPLIT_IMAGES` source images)."""
    classes = list_tile_classes(image_dir)
    names = list(classes)
    if len(names) < 2:
        raise DltoolsError(
            f"{image_dir}: only one class folder ({names[0]}); a classifier needs at least two"
        )
    paths = [p for name in names for p in classes[name]]
    labels = np.array([k for k, name in enumerate(names) for _ in classes[name]])
    percentages = settings.validation_percentage, settings.testing_percentage
    sources = [source_image(p.name) for p in paths]
    unit = settings.split if len(set(sources)) >= MIN_SPLIT_IMAGES else "tile"
    if unit == "image":
        split = split_by_group(sources, labels, *percentages)
    else:
        split = split_by_name([p.name for p in paths], *percentages)
    lacking = [name for k, name in enumerate(names) if not np.any((labels == k) & (split == 0))]
    if lacking:
        raise DltoolsError(
            f"{image_dir}: no training tiles for {', '.join(lacking)} (the few tiles there went "
            "to validation/testing); add tiles or lower --validation_percentage and "
            "--testing_percentage"
        )
    return names, paths, labels, split, unit


def _counts(labels: np.ndarray, split: np.ndarray, names: list[str]) -> dict:
    """``{split: {class: tiles}}``."""
    return {
        s: {name: int(np.sum((labels == k) & (split == i))) for k, name in enumerate(names)}
        for i, s in enumerate(SPLITS)
    }


def _predict(function: Callable[[tf.Tensor], tf.Tensor], data: np.ndarray, k: int) -> np.ndarray:
    """(N, k) probabilities of ``data`` through ``function``, 128 at a time."""
    parts = [function(tf.constant(data[i : i + 128])).numpy() for i in range(0, len(data), 128)]
    return np.concatenate(parts) if parts else np.zeros((0, k), np.float32)


def _extractor(module: str, settings: RetrainSettings, tile_side: int):
    """The feature layer and the square input size (see ``--image_size``).

    The size is ``settings.image_size`` if given, else the one a module declares, else (a
    module that takes any size) the tile side kept in :data:`MODULE_INPUT_RANGE`, or that
    range's top without ``settings.tile_sized_input``; scratch takes the tile side.
    """
    if module == SCRATCH:
        if settings.tuned_layers(module):
            raise DltoolsError("--fine_tune_layers needs a pretrained --tfhub_module, not scratch")
        size = settings.image_size or tile_side
        return scratch_features(size, settings.seed), size
    features = feature_layer(module, trainable=settings.tuned_layers(module) > 0)
    smallest, largest = MODULE_INPUT_RANGE
    any_size = min(max(tile_side, smallest), largest) if settings.tile_sized_input else largest
    return features, settings.image_size or declared_image_size(features) or any_size


def retrain(
    image_dir: str | Path,
    module: str,
    outputs: ModelOutputs,
    settings: RetrainSettings,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
    progress: Progress = quiet,
) -> dict:
    """Train, test and save a tile classifier; return the metrics also written as JSON.

    ``module`` is a TF-Hub handle (URL or local folder) or ``"scratch"``. ``progress`` follows
    the bottleneck batches; ``log`` receives one line per evaluation.
    """
    settings.check()
    ensure_new([outputs.model, outputs.labels, outputs.metrics], force)
    bands = read_band_choice(image_dir)
    check_format(outputs.model, bands)
    names, paths, labels, split, unit = _library(image_dir, settings)
    k = len(names)
    parts = [np.flatnonzero(split == i) for i in range(len(SPLITS))]
    train_labels, val_labels, test_labels = (labels[p] for p in parts)
    if settings.early_stopping and not len(val_labels):
        raise DltoolsError("--early_stopping needs validation tiles: raise --validation_percentage")
    counts = _counts(labels, split, names)
    log(
        f"tiles (training/validation/testing, split by {unit}): "
        + ", ".join(f"{n} {'/'.join(str(counts[s][n]) for s in SPLITS)}" for n in names)
    )

    scratch = module == SCRATCH
    layers = settings.tuned_layers(module)  # scratch refuses layers in _extractor
    tile_size = image_shape(paths[0])[0]  # the library's tiles are square, all one size
    features, size = _extractor(module, settings, tile_size)
    tuned = top_layer_variables(features, layers) if layers else []
    image_size = (size, size)
    model = build_tile_classifier(features, image_size, k, settings.seed)
    head = head_layer(model)
    summaries = None if outputs.summaries is None else Summaries(outputs.summaries, names)
    infer = tf.function(lambda x: model(prepare_images(x, image_size), training=False))

    def run(name, steps, data, forward, variables, optimizer, predict, first_step, seed):
        train_data, val_data = data[parts[0]], data[parts[1]]
        evaluations = Evaluations(
            name,
            settings.eval_interval,
            lambda: _predict(predict, val_data, k),
            val_labels,
            patience=settings.early_stopping,
            first_step=first_step,
            summaries=summaries,
            log=log,
        )
        batches = random_batches(
            train_data, train_labels, settings.batch_size, settings.balance, seed
        )
        training.fit(
            StepTrainer(forward, variables),
            lambda epoch: batches,
            [training.Phase(0, steps, lambda: optimizer)],
            loss=None,
            callbacks=[evaluations],
            steps_per_epoch=1,
        )
        return evaluations.history

    tiles = None
    # distortions need features for every batch; with fine-tuning they wait for it, and the
    # head trains on cached bottlenecks (faster, and better on unseen frames: README, step 5)
    if scratch or (settings.augmentation.active and not layers):
        tiles = data = read_tiles(paths)
        forward = image_forward(model, image_size, scratch, settings.augmentation, settings.seed)
        predict = infer
    else:
        extract = tf.function(
            lambda x: features(prepare_images(x, image_size), training=False),
            reduce_retracing=True,
        )
        cache_dir = outputs.bottlenecks and outputs.bottlenecks / module_key(module, size)
        log(
            f"bottlenecks of {len(paths)} tiles" + (f", cached in {cache_dir}" if cache_dir else "")
        )
        data = compute_bottlenecks(
            paths,
            lambda batch: extract(tf.constant(batch)).numpy(),
            BottleneckCache(cache_dir),
            progress=progress,
            log=log,
        )
        forward = predict = head
    if scratch:  # plain gradient descent learns too slowly from random weights
        optimizer = tf_keras.optimizers.SGD(settings.learning_rate, momentum=0.9)
    else:  # the original: gradient descent on the softmax layer
        optimizer = tf_keras.optimizers.SGD(settings.learning_rate)
    variables = model.trainable_variables if scratch else head.trainable_variables
    history = run(
        "train", settings.steps, data, forward, variables, optimizer, predict, 0, settings.seed
    )

    if layers:
        data = tiles if tiles is not None else read_tiles(paths)
        predict = infer
        log(f"fine-tuning the top {layers} layers ({len(tuned)} variables)")
        history += run(
            "fine-tune",
            settings.fine_tune_steps,
            data,
            image_forward(model, image_size, False, settings.augmentation, settings.seed + 1),
            tuned + head.trainable_variables,
            tf_keras.optimizers.Adam(settings.fine_tune_learning_rate),
            predict,
            history[-1]["step"],
            settings.seed + 1,
        )
    if summaries is not None:
        summaries.close()

    test = None  # the test scores, when there are test tiles
    if len(test_labels):
        test = score(test_labels, _predict(predict, data[parts[2]], k).argmax(axis=1), names)
    save_model(model, outputs.model, names, image_size, module, force, bands, tile_size)
    write_labels(outputs.labels, names)
    metrics = {
        "module": module,
        "image_size": size,
        "tile_size": tile_size,
        "class_names": names,
        "bands": bands.to_dict(),
        "tiles": counts,
        "split_by": unit,
        "held_out_images": None
        if unit == "tile"
        else {
            s: sorted({source_image(paths[i].name) for i in parts[k]})
            for k, s in enumerate(SPLITS)
            if k
        },
        "settings": dataclasses.asdict(settings) | {"fine_tune_layers": layers},
        "history": history,
        "test": None if test is None else test.to_dict(),
    }
    with atomic_path(outputs.metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    return metrics
