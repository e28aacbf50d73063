"""Step 8, method 2: fully convolutional segmentation, from labelled images to label rasters.

Data. Training reads either the original dl_tools layout::

    DIR/samples/RGB/{train,val}/**/<name>[_RGB].<jpg|png|tif>
    DIR/labels/gtFine/{train,val}/**/<name>_mres.mat | <name>_gtFine_labelIds.png |
                                     <name>_gtFine_color.png

or a plain folder of images with their ``<name>_mres.mat`` files or label rasters beside them,
paired by :func:`dltools.io.discovery.find_labelled_images`. When an image has several label
files, its ``.mat`` is preferred to an index raster (value k = class k), and that to a colour
image (class colours of labeldefs.txt; the original ``_gtFine_color.png``). Label maps here are
``(H, W)`` uint8: 0 = unlabelled, ``k`` = class ``k``.

Training (:func:`train`) cuts random crops at native resolution, class-balanced (each crop
holds a pixel of a class drawn uniformly), flips and colour-jitters them, and fits the network
of :mod:`dltools.models.unet` (see :class:`TrainSettings`). The run folder holds::

    RUN/model.keras       the model of the best validation epoch (the last, without validation)
    RUN/checkpoint.keras  the model and its optimiser after the last epoch (to resume)
    RUN/labeldefs.txt     class names and colours, in the order of the model's outputs
    RUN/config.json       settings, data, class weights, the history per epoch, the best epoch
    RUN/logs/             TensorBoard: losses, per-class IoU, the map of a validation image

Inference (:func:`infer_file`) slides overlapping windows over an image of any size and
blends their probabilities (:func:`dltools.raster.windows.blend_blocks`); rasters are read and
written block by block, so memory does not grow with the raster's size. An image larger than
``Tiling.max_width`` is made in parts (:func:`infer_parts`), each a unit of work that an
executor can run elsewhere (a Dask worker) and that a resumed run keeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio

from dltools.engines.uncertainty import WindowTally, core_uncertainty, uncertainty_map
from dltools.errors import DltoolsError
from dltools.figures.display import overlay
from dltools.io.cog import cog_outputs, open_cog_writer, open_fraction_writer
from dltools.io.discovery import find_labelled_images, label_results
from dltools.io.geo import (
    STREAM_CACHE_MB,
    Window,
    is_georeferenced,
    open_raster,
    open_raster_writer,
    read_profile,
    write_window,
)
from dltools.io.images import list_images, read_image, write_image
from dltools.io.label_maps import read_label_map
from dltools.io.labels import Classes, read_labeldefs, write_labeldefs
from dltools.io.outputs import ensure_new
from dltools.io.results import LabelResult, write_result
from dltools.io.vectors import write_window_ranking
from dltools.models import runs
from dltools.progress import Progress, quiet
from dltools.raster.bands import RGB8, BandChoice
from dltools.raster.windows import (
    BlendPart,
    blend_blocks,
    blend_parts,
    core_slices,
    halo_windows,
)
from dltools.scale.cache import Cached
from dltools.scale.executor import Executor, InProcess
from dltools.scale.journal import Journal, file_identity, run_units

if TYPE_CHECKING:
    from dltools.engines.crf import CRFParams

# As in dltools.models.unet, which is not imported here because it needs TensorFlow:
STRIDE = 32  # window sides and steps are multiples of the network's downsampling
IGNORE = -1  # training label of unlabelled pixels (class k is k - 1)
RUN_FORMAT = "dltools-fcn-run"
LABELDEFS = "labeldefs.txt"
MODEL = "model.keras"
CHECKPOINT = "checkpoint.keras"
LOGS = "logs"
RUN_FILES = (runs.CONFIG, LABELDEFS, MODEL, CHECKPOINT, LOGS)
TRAIN_ON = ("labels", "strokes")  # what the loss sees: label maps, or only the strokes
ANCHOR_STEP = 8  # crops are placed around labelled pixels sampled on a grid of this step
MAP_SIZE = 768  # the validation map drawn after each epoch is at most this big
CRF_GT_PROB = 0.8  # infer-crf trusts the network more than step 2 trusts strokes
CRF_SCALE = 0.25  # working scale of infer-crf's CRF
CRF_BLOCK = 4096  # infer-crf's windows (Tiling.max_width): about 3.4 GB at the peak


# --- label maps ----------------------------------------------------------------------------


def make_labels(
    folder: str | os.PathLike,
    classes: Classes,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    strict: bool = False,
) -> list[Path]:
    """Write ``<name>_gtFine_color.png`` and ``<name>_gtFine_labelIds.png`` for every
    ``<name>_mres.mat`` of ``folder`` and every label raster paired with an image there.

    Colours follow the class *names* (a ``.mat`` whose labels are in another order is
    remapped). Colour masks are read in the colours of ``classes`` (``strict``: a colour of
    no class is an error). Returns the files written.
    """
    folder = Path(folder)
    out = folder if out_dir is None else Path(out_dir)
    pairs, _ = find_labelled_images(folder, prefer=True)
    sources = {label: image.stem for image, label in pairs}
    for mat, name in label_results(folder).items():
        sources.setdefault(mat, name)
    if not sources:
        raise DltoolsError(f"{folder}: no *_mres.mat files and no label rasters paired with images")
    targets = {
        src: (out / f"{name}_gtFine_color.png", out / f"{name}_gtFine_labelIds.png")
        for src, name in sources.items()
    }
    files = [p for pair in targets.values() for p in pair]
    ensure_new(files, force)
    lut = np.vstack([np.zeros((1, 3), np.uint8), classes.colors])  # unlabelled (0) black
    for src, (color_path, ids_path) in targets.items():
        labels = read_label_map(src, classes, strict)
        write_image(color_path, lut[labels])  # (H, W, 3) uint8: each class in its colour
        write_image(ids_path, labels.astype(np.uint8))  # (H, W) uint8: the label values
    return files


# --- training data -------------------------------------------------------------------------


@dataclass
class LabelledImage:
    """One training image in memory: ``image`` (H, W, 3) uint8, ``labels`` (H, W) uint8
    (0 = unlabelled, k = class k) and, for each class k, ``anchors[k - 1]``: (n, 2) int32
    rows/columns of its pixels on a grid of :data:`ANCHOR_STEP`."""

    path: Path
    image: np.ndarray
    labels: np.ndarray
    anchors: list[np.ndarray]


def load_labelled(
    pairs: Sequence[tuple[Path, Path]],
    classes: Classes,
    progress: Progress = quiet,
    bands: BandChoice = RGB8,
    strokes: bool = False,
    second: bool = False,
) -> list[LabelledImage]:
    """Read the ``(image, label file)`` pairs, the images as the network's 8-bit RGB made by
    ``bands``; sizes must agree. Images with nodata (alpha or a nodata value) have those
    pixels unlabelled. With ``strokes`` the labels are the strokes of ``_mres.mat`` files
    (every other pixel unlabelled), and crops are anchored on every stroked pixel (thin strokes
    fall between the points of the anchor grid). With ``second`` too, the pixels without
    strokes take the files' CRF labels as a second target: class k is stored as K + k (K
    classes), which :class:`dltools.models.unet.MaskedCrossEntropy` weighs apart."""
    loaded = []
    for image_path, label_path in progress(pairs, desc="label images", unit="image"):
        image = bands.apply(read_image(image_path), image_path)
        labels = read_label_map(label_path, classes, strokes=strokes)
        if second:
            dense = read_label_map(label_path, classes)
            labels = np.where((labels == 0) & (dense > 0), dense + len(classes.names), labels)
            labels = labels.astype(np.uint8)
        if labels.shape != image.shape[:2]:
            raise DltoolsError(
                f"{image_path} is {image.shape[0]} x {image.shape[1]} pixels but its labels "
                f"{label_path} are {labels.shape[0]} x {labels.shape[1]}"
            )
        with open_raster(image_path) as src:
            labels[src.dataset_mask() == 0] = 0
        step = 1 if strokes else ANCHOR_STEP
        grid = labels[::step, ::step]
        anchors = [
            (np.argwhere(grid == k) * step).astype(np.int32)
            for k in range(1, len(classes.names) + 1)
        ]
        loaded.append(LabelledImage(Path(image_path), image, labels, anchors))
    return loaded


def check_label_colors(pairs: Sequence[tuple[Path, Path]], classes: Classes) -> None:
    """Raise a DltoolsError naming the first colour mask among the label files of ``pairs``
    that holds a colour of no class of ``classes`` (with each such colour's pixel count)."""
    for _, label_path in pairs:
        read_label_map(label_path, classes, strict=True)


def pixel_counts(images: Sequence[LabelledImage], n_classes: int) -> np.ndarray:
    """(K,) int64 labelled pixels of each class over ``images``."""
    total = np.zeros(n_classes + 1, np.int64)
    for item in images:
        total += np.bincount(item.labels.ravel(), minlength=n_classes + 1)[: n_classes + 1]
    return total[1:]


def _cut(
    array: np.ndarray, row: int, col: int, rows: int, cols: int, fill: int | None = None
) -> np.ndarray:
    """The ``rows`` x ``cols`` window at (row, col), padded past the bottom and right edges
    (reflected, or with ``fill``)."""
    part = array[row : row + rows, col : col + cols]
    short = ((0, rows - part.shape[0]), (0, cols - part.shape[1]))
    if short == ((0, 0), (0, 0)):
        return part
    short += ((0, 0),) * (array.ndim - 2)
    if fill is None:
        return np.pad(part, short, mode="symmetric")
    return np.pad(part, short, mode="constant", constant_values=fill)


def random_crop(
    rng: np.random.Generator,
    images: Sequence[LabelledImage],
    size: int,
    balanced: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One ``size`` x ``size`` crop: ``(image (S, S, 3) uint8, labels (S, S) int32)``, labels
    0-based with :data:`IGNORE` for unlabelled pixels.

    The crop holds a labelled anchor pixel at a uniformly random place. ``balanced``: the
    anchor's class is drawn uniformly among the classes present; otherwise every labelled
    anchor is equally likely.
    """
    counts = np.array([[len(a) for a in item.anchors] for item in images], np.float64)
    if not counts.sum():
        raise DltoolsError("these images hold no labelled pixels to cut crops around")
    if balanced:
        k = rng.choice(np.flatnonzero(counts.sum(axis=0)))
        i = rng.choice(len(images), p=counts[:, k] / counts[:, k].sum())
    else:
        i = rng.choice(len(images), p=counts.sum(axis=1) / counts.sum())
        k = rng.choice(counts.shape[1], p=counts[i] / counts[i].sum())
    item = images[i]
    row, col = item.anchors[k][rng.integers(len(item.anchors[k]))]
    height, width = item.labels.shape
    row = int(np.clip(row - rng.integers(size), 0, max(height - size, 0)))
    col = int(np.clip(col - rng.integers(size), 0, max(width - size, 0)))
    labels = _cut(item.labels, row, col, size, size, 0).astype(np.int32) - 1
    return _cut(item.image, row, col, size, size), labels


@dataclass(frozen=True)
class Augmentation:
    """Random flips (left-right and up-down) and colour jitter: brightness, contrast and
    saturation each scaled by a factor drawn from ``1 +- jitter``."""

    flips: bool = True
    jitter: float = 0.2

    def __call__(
        self, rng: np.random.Generator, image: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(S, S, 3) uint8 and (S, S) labels -> (S, S, 3) float32 in 0..255 and labels."""
        if self.flips:
            if rng.random() < 0.5:
                image, labels = image[:, ::-1], labels[:, ::-1]
            if rng.random() < 0.5:
                image, labels = image[::-1], labels[::-1]
        x = image.astype(np.float32)
        if self.jitter > 0:
            factors = rng.uniform(1 - self.jitter, 1 + self.jitter, 3).astype(np.float32)
            brightness, contrast, saturation = factors
            x *= brightness
            x = (x - x.mean()) * contrast + x.mean()
            grey = x.mean(axis=2, keepdims=True)
            x = grey + (x - grey) * saturation
            np.clip(x, 0, 255, out=x)
        return x, np.ascontiguousarray(labels)


def training_batch(
    images: Sequence[LabelledImage],
    size: int,
    batch_size: int,
    rng: np.random.Generator,
    augmentation: Augmentation = Augmentation(),
) -> tuple[np.ndarray, np.ndarray]:
    """``(x (B, S, S, 3) float32 0..255, y (B, S, S) int32)``: class-balanced augmented crops."""
    crops = [augmentation(rng, *random_crop(rng, images, size)) for _ in range(batch_size)]
    return np.stack([c[0] for c in crops]), np.stack([c[1] for c in crops])


def validation_crops(
    images: Sequence[LabelledImage], size: int, per_image: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed crops for validation, ``per_image`` times the number of images, placed on
    labelled pixels drawn uniformly: ``(x (n, S, S, 3) uint8, y (n, S, S) int32)``."""
    rng = np.random.default_rng(seed)
    crops = [random_crop(rng, images, size, False) for _ in range(per_image * len(images))]
    return np.stack([c[0] for c in crops]), np.stack([c[1] for c in crops])


def map_window(item: LabelledImage, size: int = MAP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The central part of an image (sides at most ``size``, multiples of :data:`STRIDE`):
    ``(image (h, w, 3) uint8, labels (h, w) int32, 0-based, IGNORE = unlabelled)``."""
    height, width = item.labels.shape
    h = max(STRIDE, min(size, height) // STRIDE * STRIDE)
    w = max(STRIDE, min(size, width) // STRIDE * STRIDE)
    row, col = max(0, (height - h) // 2), max(0, (width - w) // 2)
    labels = _cut(item.labels, row, col, h, w, 0).astype(np.int32) - 1
    return _cut(item.image, row, col, h, w), labels


# --- training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    """How to train (the options of ``dltools fcn train``).

    ``tile_size``: side of the training crops (native resolution; 256 rather than 512 gives 4
    times the batches for the same CPU time, better on unseen images: README step 8).
    ``steps_per_epoch``: batches per epoch (0: as many as make one pass over the training
    pixels). ``freeze_epochs``: first epochs with the pretrained encoder frozen (only the
    decoder learns, at ``learning_rate``); afterwards everything is trained at
    ``fine_tune_learning_rate``; without encoder weights everything is trained from the start
    at ``learning_rate``. ``patience``: stop after this
    many epochs without a better validation mean IoU (0: never). ``class_weight_power``: see
    :func:`dltools.models.unet.class_weights`. ``val_fraction``: share of the images of a plain
    folder held out for validation; ``val_crops``: validation crops per validation image.
    ``train_on``: ``labels`` (dense label maps) or ``strokes`` (the strokes of ``_mres.mat``
    files; see :func:`load_labelled`); ``crf_weight``: with strokes, the weight in [0, 1] of
    the files' CRF labels on the pixels without strokes, a second target (0: none).
    """

    epochs: int = 10
    batch_size: int = 8
    tile_size: int = 256
    steps_per_epoch: int = 0
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 2e-4
    freeze_epochs: int = 2
    patience: int = 5
    class_weight_power: float = 0.5
    flips: bool = True
    jitter: float = 0.2
    val_fraction: float = 0.15
    val_crops: int = 8
    alpha: float = 1.0
    encoder_weights: str | None = None
    seed: int = 0
    train_on: str = "labels"
    crf_weight: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.tile_size < 2 * STRIDE or self.tile_size % STRIDE:
            problems.append(f"--tile-size must be a multiple of {STRIDE}, at least {2 * STRIDE}")
        if min(self.epochs, self.batch_size, self.val_crops) < 1:
            problems.append("--epochs, --batch-size and --val-crops must be at least 1")
        if min(self.steps_per_epoch, self.freeze_epochs, self.patience) < 0:
            problems.append("--steps-per-epoch, --freeze-epochs and --patience must be >= 0")
        if min(self.learning_rate, self.fine_tune_learning_rate) <= 0:
            problems.append("learning rates must be positive")
        if not 0 <= self.jitter < 1 or self.class_weight_power < 0:
            problems.append("--jitter must lie in [0, 1) and --class-weight-power be >= 0")
        if self.train_on not in TRAIN_ON:
            problems.append(f"--train-on must be one of {', '.join(TRAIN_ON)}")
        if not 0 <= self.crf_weight <= 1 or (self.crf_weight and self.train_on != "strokes"):
            problems.append("--crf-weight must lie in [0, 1] and needs --train-on strokes")
        if problems:
            raise DltoolsError("; ".join(problems))

    def steps(self, images: Sequence[LabelledImage]) -> int:
        if self.steps_per_epoch:
            return self.steps_per_epoch
        pixels = sum(item.labels.size for item in images)
        return max(1, round(pixels / (self.batch_size * self.tile_size**2)))


def read_config(run_dir: str | os.PathLike) -> dict:
    """The ``config.json`` of an FCN run folder, checked to be one."""
    return runs.read_config(run_dir, RUN_FORMAT, "an FCN run folder (train one first)")


def _run_classes(run_dir: Path) -> Classes:
    return Classes(*read_labeldefs(run_dir / LABELDEFS))


def _run_bands(run_dir: Path) -> BandChoice:
    """Bands 1,2,3 of 3-band 8-bit images for runs that predate the record."""
    return BandChoice.from_dict(read_config(run_dir).get("bands"))


def train(
    train_pairs: Sequence[tuple[Path, Path]],
    val_pairs: Sequence[tuple[Path, Path]],
    classes: Classes,
    run_dir: str | os.PathLike,
    settings: TrainSettings,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
    verbose: int = 0,
    bands: BandChoice = RGB8,
) -> dict:
    """Train the FCN on the ``(image, label file)`` pairs; write and return the run's config.

    ``bands`` (see :func:`dltools.io.images.training_bands`) make the images' network input
    and are saved in the config. With ``resume`` the run continues from its checkpoint up to
    ``settings.epochs`` (its other settings, classes and bands come from the run folder).
    Without validation pairs there is no early stopping and the last epoch's model is kept.
    """
    import keras  # TensorFlow: only when training

    from dltools.models import training
    from dltools.models import unet as network

    run = Path(run_dir)
    network.encoder_weights_file(settings.encoder_weights)  # a bad file fails before any work
    if resume:
        config = read_config(run)
        settings = TrainSettings(**{**config["settings"], "epochs": settings.epochs})
        classes = _run_classes(run)
        bands = BandChoice.from_dict(config.get("bands"))
        if config["epochs_done"] >= settings.epochs:
            raise DltoolsError(
                f"{run} has already trained {config['epochs_done']} epochs: raise --epochs"
            )
    else:
        ensure_new([run / name for name in RUN_FILES], force)
        shutil.rmtree(run / LOGS, ignore_errors=True)  # --force: no mixing with old curves
    strokes = settings.train_on == "strokes"
    second = settings.crf_weight > 0
    train_images = load_labelled(train_pairs, classes, bands=bands, strokes=strokes, second=second)
    val_images = load_labelled(val_pairs, classes, bands=bands, strokes=strokes)
    counts = pixel_counts(train_images, len(classes.names))
    absent = [n for n, c in zip(classes.names, counts, strict=True) if not c]
    if absent:
        log(f"warning: no training pixels of {', '.join(absent)}")
    weights = network.class_weights(counts, settings.class_weight_power)
    steps = settings.steps(train_images)
    if not resume:
        config = {
            "classes": classes.names,
            "bands": bands.to_dict(),
            "settings": dataclasses.asdict(settings),
            "data": {
                "train": [[str(i), str(lab)] for i, lab in train_pairs],
                "val": [[str(i), str(lab)] for i, lab in val_pairs],
            },
            "class_pixels": counts.tolist(),
            "class_weights": weights.tolist(),
            "steps_per_epoch": steps,
            "epochs_done": 0,
            "best_epoch": None,
            "best_val_mean_iou": None,
            "history": [],
        }
    log(
        f"{len(train_images)} training / {len(val_images)} validation images; "
        f"{steps} batches of {settings.batch_size} crops of {settings.tile_size} px per epoch; "
        "class weights "
        + ", ".join(f"{n} {w:.2f}" for n, w in zip(classes.names, weights, strict=True))
    )
    if resume:
        model = network.load(run / CHECKPOINT, compile=True)
    else:
        model = network.build_fcn(
            len(classes.names), settings.encoder_weights, settings.alpha, seed=settings.seed
        )
        run.mkdir(parents=True, exist_ok=True)
        write_labeldefs(run / LABELDEFS, classes)
    callbacks = []
    if val_images:
        x_val, y_val = validation_crops(
            val_images, settings.tile_size, settings.val_crops, settings.seed
        )
        callbacks.append(network.ValidationIoU(x_val.astype(np.float32), y_val, classes.names))
        image, labels = map_window(val_images[0])
        callbacks.append(network.EpochMap(run / LOGS / "map", image, labels, classes.colors))
    callbacks.append(network.tensorboard(run / LOGS))
    if val_images and settings.patience:
        callbacks.append(training.EarlyStopping("val_mean_iou", settings.patience))

    clock = [time.perf_counter()]

    def save(epoch: int, logs: dict, model) -> None:
        record = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        config["history"] = [h for h in config["history"] if h["epoch"] <= epoch] + [record]
        config["epochs_done"] = epoch + 1
        best = config["best_val_mean_iou"]
        score = logs.get("val_mean_iou")
        if score is None or best is None or score > best:
            training.save(model, run / MODEL)
            config["best_epoch"], config["best_val_mean_iou"] = epoch + 1, score
        training.save(model, run / CHECKPOINT)
        runs.write_config(run, config, RUN_FORMAT)
        seconds, clock[0] = time.perf_counter() - clock[0], time.perf_counter()
        line = f"epoch {epoch + 1}/{settings.epochs} ({seconds:.0f} s): loss {logs['loss']:.4f}"
        if score is not None:
            ious = ", ".join(f"{n} {logs[f'val_iou_{n}']:.2f}" for n in classes.names)
            line += f", validation loss {logs['val_loss']:.4f}, mean IoU {score:.3f} ({ious})"
        log(line)

    callbacks.append(network.EpochEnd(save))
    pretrained = settings.encoder_weights is not None
    freeze = min(settings.freeze_epochs, settings.epochs) if pretrained else 0
    tune_rate = settings.fine_tune_learning_rate if pretrained else settings.learning_rate

    def phase(start: int, end: int, train_encoder: bool, rate: float) -> training.Phase:
        return training.Phase(
            start,
            end,
            lambda: keras.optimizers.Adam(rate),
            lambda model: network.set_encoder_trainable(model, train_encoder),
        )

    phases = [
        phase(0, freeze, False, settings.learning_rate),
        phase(freeze, settings.epochs, True, tune_rate),
    ]

    def make_batch(epoch: int, index: int):
        rng = np.random.default_rng([settings.seed, epoch, index])
        augmentation = Augmentation(settings.flips, settings.jitter)
        return training_batch(
            train_images, settings.tile_size, settings.batch_size, rng, augmentation
        )

    training.fit(
        model,
        lambda epoch: network.CropBatches(make_batch, steps, epoch),
        phases,
        network.MaskedCrossEntropy(weights.tolist(), settings.crf_weight),
        callbacks,
        config["epochs_done"],
        shuffle=True,
        verbose=verbose,
    )
    return config


# --- inference -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tiling:
    """How an image is cut for the network: ``window`` x ``window`` pixels overlapping by
    ``overlap`` (both multiples of :data:`STRIDE`), ``batch_size`` windows at a time; ``tta``
    averages the predictions of the four flips of each window (the default: better on unseen
    images, README step 8). Images wider than ``max_width`` are done in column chunks of about
    that width (bounded memory)."""

    window: int = 1024
    overlap: int = 256
    batch_size: int = 1
    tta: bool = True
    max_width: int = 6144

    def __post_init__(self) -> None:
        if self.window < 2 * STRIDE or self.window % STRIDE or self.overlap % STRIDE:
            raise DltoolsError(
                f"--window and --overlap must be multiples of {STRIDE} (window at least "
                f"{2 * STRIDE}), got {self.window} and {self.overlap}"
            )
        if not 0 <= self.overlap <= self.window // 2 or self.batch_size < 1:
            raise DltoolsError("--overlap must lie in 0..window/2 and --batch-size be >= 1")
        if self.max_width < STRIDE:
            raise DltoolsError(f"--block must be at least {STRIDE} px, got {self.max_width}")

    def axis(self, length: int) -> tuple[int, int]:
        """``(window size, step)`` along an axis of ``length`` pixels."""
        if length <= self.window:
            size = -(-length // STRIDE) * STRIDE
            return size, size
        return self.window, self.window - self.overlap


Predictor = Callable[[np.ndarray], np.ndarray]  # (N, h, w, 3) float32 -> (N, h, w, K)
Reader = Callable[[int, int, int, int], np.ndarray]  # (r0, r1, c0, c1) -> (h, w, 3) uint8
Block = tuple[int, int, np.ndarray]  # (first row, first column, array)


def with_flips(predict: Predictor) -> Predictor:
    """``predict`` averaged over the identity and the left-right, up-down and both flips."""

    flips = ((), (2,), (1,), (1, 2))  # axes of (N, h, w, 3): none, left-right, up-down, both

    def averaged(x: np.ndarray) -> np.ndarray:
        return sum(np.flip(predict(np.flip(x, axes)), axes) for axes in flips) / 4

    return averaged


def probability_blocks(
    read: Reader,
    shape: tuple[int, int],
    predict: Predictor,
    tiling: Tiling = Tiling(),
    part: BlendPart | None = None,
) -> Iterator[Block]:
    """Blended class probabilities of an (H, W) image, block by block:
    ``(row, col, (rows, cols, K) float32)`` (see :func:`dltools.raster.windows.blend_blocks`);
    with ``part`` (one of :func:`infer_parts`), the blocks of that part only.

    ``read(r0, r1, c0, c1)`` returns the image's pixels in rows r0..r1 and columns c0..c1 as
    (h, w, 3) uint8; windows that run past the image are filled by reflection.
    """
    height, width = shape
    (size_r, step_r), (size_c, step_c) = tiling.axis(height), tiling.axis(width)
    forward = with_flips(predict) if tiling.tta else predict

    def predict_row(row: int, cols: np.ndarray) -> Iterator[np.ndarray]:
        first = int(cols[0])
        span = int(cols[-1]) - first + size_c
        strip = read(row, min(row + size_r, height), first, min(first + span, width))
        strip = _cut(strip, 0, 0, size_r, span)
        for i in range(0, len(cols), tiling.batch_size):
            starts = cols[i : i + tiling.batch_size] - first
            batch = np.stack([strip[:, c : c + size_c] for c in starts])
            yield from forward(batch.astype(np.float32))

    size, step = (size_r, size_c), (step_r, step_c)
    return blend_blocks(shape, size, step, predict_row, tiling.max_width, part)


def infer_parts(shape: tuple[int, int], tiling: Tiling = Tiling()) -> list[BlendPart]:
    """The parts of about ``tiling.max_width`` px square in which an (H, W) image is made."""
    (size_r, step_r), (size_c, step_c) = tiling.axis(shape[0]), tiling.axis(shape[1])
    return blend_parts(shape, (size_r, size_c), (step_r, step_c), tiling.max_width)


def predict_image(image: np.ndarray, predict: Predictor, tiling: Tiling = Tiling()) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, K) float32 class probabilities (blended windows)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 pixels, got {image.shape} {image.dtype}")
    out = None
    for row, col, probabilities in probability_blocks(
        lambda r0, r1, c0, c1: image[r0:r1, c0:c1], image.shape[:2], predict, tiling
    ):
        if out is None:
            out = np.empty((*image.shape[:2], probabilities.shape[2]), np.float32)
        out[row : row + probabilities.shape[0], col : col + probabilities.shape[1]] = probabilities
    return out


@dataclass(frozen=True)
class InferOutputs:
    """Files written for one image: ``label`` (class + 1, 0 = nodata; PNG, or GeoTIFF on the
    input's grid), ``overlay`` (class colours over the image; None: not written), ``mat``
    (``_ares`` result; None for GeoTIFF outputs) and, where to label next (None: not
    written), ``uncertainty`` (a raster like ``label``) with its windows ranked in
    ``next_csv`` and ``next_geojson``."""

    label: Path
    overlay: Path | None
    mat: Path | None
    uncertainty: Path | None = None
    next_csv: Path | None = None
    next_geojson: Path | None = None

    def files(self) -> list[Path]:
        """Every file written, with the ``.qml`` styles of GeoTIFF rasters."""
        styled = [p for p in (self.label, self.uncertainty) if p is not None]
        files = [f for p in styled for f in cog_outputs(p)]
        others = (self.overlay, self.mat, self.next_csv, self.next_geojson)
        return files + [p for p in others if p is not None]


def output_paths(
    image: str | os.PathLike,
    out_dir: str | os.PathLike,
    tag: str = "fcn",
    overlays: bool = True,
    uncertainty: bool = False,
) -> InferOutputs:
    """``<stem>_<tag>_label``, ``<stem>_<tag>_overlay`` (``.tif`` for TIFF or georeferenced
    inputs, else ``.png``) and ``<stem>_ares_<tag>.mat`` (PNG outputs only) in ``out_dir``;
    with ``uncertainty``, ``<stem>_<tag>_uncertainty`` (as the label) and
    ``<stem>_<tag>_next.csv`` / ``.geojson``."""
    image, out_dir = Path(image), Path(out_dir)
    raster = image.suffix.lower() in {".tif", ".tiff"} or is_georeferenced(image)
    suffix = ".tif" if raster else ".png"
    base = out_dir / f"{image.stem}_{tag}"
    return InferOutputs(
        Path(f"{base}_label{suffix}"),
        Path(f"{base}_overlay{suffix}") if overlays else None,
        None if raster else out_dir / f"{image.stem}_ares_{tag}.mat",
        Path(f"{base}_uncertainty{suffix}") if uncertainty else None,
        Path(f"{base}_next.csv") if uncertainty else None,
        Path(f"{base}_next.geojson") if uncertainty else None,
    )


@dataclass
class FcnRun:
    """A trained run: its folder, classes, config and Keras model; with ``members``, an
    ensemble whose class probabilities are the mean of this run's and theirs (see
    :func:`load_runs`)."""

    folder: Path
    classes: Classes
    config: dict
    model: object
    members: tuple[FcnRun, ...] = ()
    _predict: Predictor | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def bands(self) -> BandChoice:
        """Which bands of an image feed the model (runs that predate the record: bands 1,2,3
        of 3-band 8-bit images)."""
        return BandChoice.from_dict(self.config.get("bands"))

    def predictor(self) -> Predictor:
        """(N, h, w, 3) float32 -> (N, h, w, K) probabilities, an ensemble's the mean of its
        runs' (traced once per shape, and once per run object)."""
        from dltools.models.unet import compiled_predictor

        if self._predict is None:
            predictors = [compiled_predictor(run.model) for run in self.ensemble]
            if len(predictors) == 1:
                self._predict = predictors[0]
            else:
                self._predict = lambda x: sum(p(x) for p in predictors) / len(predictors)
        return self._predict

    @property
    def ensemble(self) -> tuple[FcnRun, ...]:
        """This run and its ensemble's members."""
        return (self, *self.members)


def load_run(run_dir: str | os.PathLike) -> FcnRun:
    """Load a run folder's best model (``model.keras``) with its classes."""
    from dltools.models.unet import load

    run = Path(run_dir)
    config = read_config(run)
    if not (run / MODEL).is_file():
        raise DltoolsError(f"{run / MODEL}: not found; has the run finished an epoch?")
    return FcnRun(run, _run_classes(run), config, load(run / MODEL))


def load_runs(run_dirs: Sequence[str | os.PathLike]) -> FcnRun:
    """Load one run folder (:func:`load_run`), or several as an ensemble: each image's class
    probabilities are then the mean of theirs (runs trained with other seeds, say). The runs
    must share classes and input bands (see :func:`ensemble_bands`)."""
    ensemble_bands(run_dirs)
    first, *members = [load_run(folder) for folder in run_dirs]
    return dataclasses.replace(first, members=tuple(members))


def ensemble_bands(run_dirs: Sequence[str | os.PathLike]) -> BandChoice:
    """The input bands of the runs of an ensemble, checked from their folders alone: the runs
    must have the same classes (names and colours, in order) and input bands, else a
    DltoolsError names the first run that differs."""
    first, *others = map(Path, run_dirs)
    bands = _run_bands(first)  # a folder that is no run is refused by its config first
    if not others:
        return bands
    classes = _run_classes(first)
    for folder in others:
        their_bands, theirs = _run_bands(folder), _run_classes(folder)
        for what, mine, other in (
            ("classes", ", ".join(classes.names), ", ".join(theirs.names)),
            ("class colours", str(classes.colors.tolist()), str(theirs.colors.tolist())),
            ("input bands", bands.describe(), their_bands.describe()),
        ):
            if mine != other:
                raise DltoolsError(
                    f"{folder}: its {what} ({other}) differ from those of {first} ({mine}); "
                    "the runs of an ensemble must share classes and input bands"
                )
    return bands


def _reader(src, bands: BandChoice) -> Reader:
    def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        window = Window(c0, r0, c1 - c0, r1 - r0)
        return bands.apply(np.moveaxis(src.read(window=window), 0, -1), src.name)

    return read


def write_outputs(
    image_path: str | os.PathLike,
    blocks: Iterable[Block],
    classes: Classes,
    outputs: InferOutputs,
    progress: Progress = quiet,
    bands: BandChoice = RGB8,
) -> np.ndarray:
    """Write the label blocks ``(row, col, (rows, cols) uint8 class + 1, 0 = nodata)`` of an
    image as ``outputs``; return the (K + 1,) pixel count of each value (0 = nodata).

    GeoTIFFs are written block by block on the input's grid; PNGs and the ``.mat`` at the
    end; overlays show the image's pixels made by ``bands``. ``progress`` follows the
    blocks, counting pixels.
    """
    profile = read_profile(image_path)
    height, width = profile["height"], profile["width"]
    counts = np.zeros(len(classes.names) + 1, np.int64)
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=STREAM_CACHE_MB))
        read = _reader(stack.enter_context(open_raster(image_path)), bands)
        label_dst = overlay_dst = whole = None
        if outputs.label.suffix.lower() == ".tif":
            writer = open_cog_writer(outputs.label, profile, np.uint8, nodata=0, classes=classes)
            label_dst = stack.enter_context(writer)
            if outputs.overlay is not None:
                writer = open_raster_writer(outputs.overlay, profile, 3, np.uint8)
                overlay_dst = stack.enter_context(writer)
        else:
            whole = np.zeros((height, width), np.uint8)
        for row, col, labels in progress(
            blocks, total=height * width, desc=Path(image_path).name, unit="px", count=_pixels
        ):
            rows, cols = labels.shape
            counts += np.bincount(labels.ravel(), minlength=len(classes.names) + 1)
            if whole is not None:
                whole[row : row + rows, col : col + cols] = labels
            else:
                window = Window(col, row, cols, rows)
                write_window(label_dst, labels, window)
                if overlay_dst is not None:
                    pixels = read(row, row + rows, col, col + cols)
                    write_window(overlay_dst, overlay(pixels, labels, classes.colors), window)
        if whole is not None:
            write_image(outputs.label, whole)
            if outputs.overlay is not None:
                pixels = read(0, height, 0, width)
                write_image(outputs.overlay, overlay(pixels, whole, classes.colors))
            class_map = whole.astype(np.int16) - 1  # 0 (nodata) becomes NODATA (-1)
            write_result(outputs.mat, LabelResult(class_map, list(classes.names)))
    return counts


def _pixels(block: Block) -> int:
    return block[2].size


@dataclass(frozen=True)
class InferPart:
    """One unit of :func:`infer_file`: the label blocks of ``part`` of an image. ``run``: the
    run, or a :class:`~dltools.scale.cache.Cached` reference that loads it once per process
    (a Dask worker); ``confidence``: also return each block's top class probability;
    ``uncertainty``: also return each block's uncertainty of this measure (see
    :mod:`dltools.engines.uncertainty`; None: not), and the part's window tally."""

    image_path: Path
    run: FcnRun | Cached
    tiling: Tiling
    bands: BandChoice
    part: BlendPart
    confidence: bool
    uncertainty: str | None = None


@dataclass
class PartResult:
    """What :func:`infer_part` made: per block ``(row, col, (rows, cols) uint8 class + 1, 0 =
    nodata)``, its (rows, cols) float32 top probability and uncertainty (NaN at nodata; None
    when not asked for); and the part's :class:`~dltools.engines.uncertainty.WindowTally`
    (None without uncertainty)."""

    blocks: list[Block]
    top: list[np.ndarray | None]
    uncertainty: list[np.ndarray | None]
    tally: WindowTally | None


def infer_part(unit: InferPart) -> PartResult:
    """Run one :class:`InferPart`."""
    run = unit.run() if isinstance(unit.run, Cached) else unit.run
    found = PartResult([], [], [], None)
    with rasterio.Env(GDAL_CACHEMAX=STREAM_CACHE_MB), open_raster(unit.image_path) as src:
        read = _reader(src, unit.bands)
        shape = (src.height, src.width)
        if unit.uncertainty is not None:
            found.tally = WindowTally(shape, len(run.classes.names))
        blocks = probability_blocks(read, shape, run.predictor(), unit.tiling, unit.part)
        for row, col, probabilities in blocks:
            window = Window(col, row, probabilities.shape[1], probabilities.shape[0])
            values = probabilities.argmax(axis=2).astype(np.uint8) + 1
            values[src.dataset_mask(window=window) == 0] = 0
            top = uncertainty = None
            if unit.confidence:
                top = np.where(values > 0, probabilities.max(axis=2), np.nan).astype(np.float32)
            if unit.uncertainty is not None:
                probabilities[values == 0] = 0  # nodata: no posteriors, NaN uncertainty
                uncertainty = uncertainty_map(probabilities, unit.uncertainty)
                found.tally.add(row, col, uncertainty, probabilities)
            found.blocks.append((row, col, values))
            found.top.append(top)
            found.uncertainty.append(uncertainty)
    return found


def infer_file(
    run: FcnRun | Cached,
    image_path: str | os.PathLike,
    outputs: InferOutputs,
    tiling: Tiling = Tiling(),
    progress: Progress = quiet,
    confidence: Callable[[np.ndarray], None] | None = None,
    bands: BandChoice | None = None,
    executor: Executor | None = None,
    resume: bool = False,
    uncertainty: str = "margin",
) -> np.ndarray:
    """Segment one image of any size with the run's model and write ``outputs``; return the
    (K + 1,) pixel count of each label value (0 = nodata). Rasters stream block by block.
    ``uncertainty``: the measure of ``outputs.uncertainty`` (see
    :mod:`dltools.engines.uncertainty`), whose windows are ranked as they stream.

    ``confidence``, if given, is called with each block's top class probability ((rows, cols)
    float32, NaN at nodata). ``bands``: which of the image's bands feed the model (default:
    the run's; see :func:`dltools.io.images.inference_bands`). ``run``: a loaded run, or a
    :class:`~dltools.scale.cache.Cached` reference to one (needed when ``executor`` runs the
    parts of the image on a Dask cluster, see :func:`infer_parts`); at most a fixed number of
    parts are in flight, and the files are the same either way. The parts of an image made in
    more than one are kept as they finish (see :mod:`dltools.scale.journal`): with ``resume``,
    those an interrupted run finished for the same inputs are read back, not made again.
    """

    def units(run, bands, shape, wanted, measure) -> list[InferPart]:
        return [
            InferPart(Path(image_path), run, tiling, bands, part, wanted, measure)
            for part in infer_parts(shape, tiling)
        ]

    return _write_units(
        run,
        image_path,
        outputs,
        infer_part,
        units,
        {"tiling": dataclasses.asdict(tiling)},
        executor,
        resume,
        progress,
        confidence,
        bands,
        uncertainty,
    )


def _write_units(
    run: FcnRun | Cached,
    image_path: str | os.PathLike,
    outputs: InferOutputs,
    work: Callable[[Any], PartResult],
    make_units: Callable[..., Sequence[Any]],
    settings: dict,
    executor: Executor | None,
    resume: bool,
    progress: Progress,
    confidence: Callable[[np.ndarray], None] | None,
    bands: BandChoice | None,
    uncertainty: str,
) -> np.ndarray:
    """Run ``work`` on the units of an image with ``executor`` (None: in this process) and
    write what they make as ``outputs``, the windows of its uncertainty ranked; return the
    (K + 1,) pixel count of each label value. The units are ``make_units(run, bands, (H, W),
    confidence wanted, uncertainty measure or None)``, ``run`` loaded unless the executor is
    remote; ``bands`` (None: the run's) and the other arguments as in :func:`infer_file`.
    With more than one unit, finished units are kept in a journal (what they depend on: the
    image, the run's models, ``bands``, the measure, ``settings`` and ``confidence``)."""
    executor = InProcess() if executor is None else executor
    if executor.remote and not isinstance(run, Cached):
        raise ValueError("units run on a Dask cluster need run as a Cached reference")
    loaded = run() if isinstance(run, Cached) else run
    bands = loaded.bands if bands is None else bands
    measure = None if outputs.uncertainty is None else uncertainty
    wanted = confidence is not None
    profile = read_profile(image_path)
    shape = (profile["height"], profile["width"])
    units = make_units(run if executor.remote else loaded, bands, shape, wanted, measure)
    journal = None
    if len(units) > 1:
        inputs = {
            "image": file_identity(image_path),
            "runs": [file_identity(member.folder / MODEL) for member in loaded.ensemble],
            "bands": repr(bands),
            "uncertainty": measure,
        }
        journal = Journal(outputs.files()[0], inputs | settings | {"confidence": wanted}, resume)
    tally = WindowTally(shape, len(loaded.classes.names))
    like = profile if outputs.label.suffix == ".tif" else None
    with contextlib.ExitStack() as stack:
        if outputs.uncertainty is not None:
            put = stack.enter_context(open_fraction_writer(outputs.uncertainty, like, shape))

        def blocks() -> Iterator[Block]:
            for found in run_units(executor, work, units, journal):
                if found.tally is not None:
                    tally.merge(found.tally)
                for block, top, values in zip(
                    found.blocks, found.top, found.uncertainty, strict=True
                ):
                    if confidence is not None:
                        confidence(top)
                    if values is not None:
                        put(values, Window(block[1], block[0], values.shape[1], values.shape[0]))
                    yield block

        counts = write_outputs(image_path, blocks(), loaded.classes, outputs, progress, bands)
    if outputs.uncertainty is not None:
        names = loaded.classes.names
        write_window_ranking(tally.ranked(), names, like, outputs.next_csv, outputs.next_geojson)
    if journal is not None:
        journal.remove()
    return counts


def crf_halo(params: CRFParams, scale: float, tiling: Tiling) -> int:
    """Pixels of context around each window of :func:`infer_file_crf`: the network's window
    overlap, or the CRF's (:func:`dltools.engines.crf.crf_reach`) if that is more; a
    multiple of :data:`STRIDE`."""
    from dltools.engines.crf import crf_reach

    reach = max(tiling.overlap, crf_reach(params, scale))
    return -(-reach // STRIDE) * STRIDE


@dataclass(frozen=True)
class CrfWindow:
    """One unit of :func:`infer_file_crf`: the ``outer`` window of an image (H, W) =
    ``image_shape`` segmented by the network and refined by the CRF, of which the ``core``
    is kept. ``run``, ``bands`` and ``uncertainty`` as in :class:`InferPart`; ``confidence``:
    also return the network's top class probability over the core; ``params``, ``scale`` and
    ``workers``: the CRF's settings, working scale and processes."""

    image_path: Path
    run: FcnRun | Cached
    tiling: Tiling
    bands: BandChoice
    params: CRFParams
    scale: float
    workers: int | None
    core: Window
    outer: Window
    image_shape: tuple[int, int]
    confidence: bool
    uncertainty: str | None = None


def infer_crf_window(unit: CrfWindow) -> PartResult:
    """Run one :class:`CrfWindow`; the result holds one block, the core."""
    from dltools.engines.crf import NODATA as CRF_NODATA
    from dltools.engines.crf import label_from_probs

    run = unit.run() if isinstance(unit.run, Cached) else unit.run
    core, outer = unit.core, unit.outer
    with open_raster(unit.image_path) as src:
        rows, cols = outer.row_off, outer.col_off
        image = _reader(src, unit.bands)(rows, rows + outer.height, cols, cols + outer.width)
        nodata = src.dataset_mask(window=outer) == 0
    inner = core_slices(core, outer)
    probabilities = predict_image(image, run.predictor(), unit.tiling)
    top = None
    if unit.confidence:  # the network's, before the CRF
        top = np.where(nodata, np.nan, probabilities.max(axis=2))[inner].astype(np.float32)
    class_map, posteriors = label_from_probs(
        image, probabilities, len(run.classes.names), unit.scale, unit.params, nodata, unit.workers
    )
    del probabilities
    labels = np.where(class_map == CRF_NODATA, 0, class_map + 1).astype(np.uint8)[inner]
    found = PartResult([(core.row_off, core.col_off, labels)], [top], [None], None)
    if unit.uncertainty is not None:
        values, found.tally = core_uncertainty(
            posteriors, core, outer, labels > 0, unit.uncertainty, unit.image_shape
        )
        found.uncertainty = [values]
    return found


def infer_file_crf(
    run: FcnRun | Cached,
    image_path: str | os.PathLike,
    outputs: InferOutputs,
    params: CRFParams,
    scale: float = CRF_SCALE,
    tiling: Tiling = Tiling(),
    workers: int | None = None,
    confidence: Callable[[np.ndarray], None] | None = None,
    bands: BandChoice | None = None,
    uncertainty: str = "margin",
    executor: Executor | None = None,
    resume: bool = False,
    progress: Progress = quiet,
) -> np.ndarray:
    """As :func:`infer_file`, then refine the probabilities with the dense CRF of
    :mod:`dltools.engines.crf` at working ``scale`` (``params``: a
    :class:`dltools.engines.crf.CRFParams`); ``outputs.uncertainty`` comes from the CRF's
    posteriors.

    An image whose longer side is at most ``tiling.max_width`` is done whole. A larger one
    is done in windows of that size that tile it, each with :func:`crf_halo` pixels of
    context (a :class:`CrfWindow`, segmented and refined on its own, then cut to its
    core), so memory is bounded by the window, not the image; ``executor`` runs the windows
    and ``resume`` reads back those an interrupted run finished, as in :func:`infer_file`.
    """

    def units(run, bands, shape, wanted, measure) -> list[CrfWindow]:
        return [
            CrfWindow(
                Path(image_path),
                run,
                tiling,
                bands,
                params,
                scale,
                workers,
                core,
                outer,
                shape,
                wanted,
                measure,
            )
            for core, outer in crf_windows(shape, params, scale, tiling)
        ]

    settings = {
        "tiling": dataclasses.asdict(tiling),
        "crf": dataclasses.asdict(params),
        "scale": scale,
    }
    return _write_units(
        run,
        image_path,
        outputs,
        infer_crf_window,
        units,
        settings,
        executor,
        resume,
        progress,
        confidence,
        bands,
        uncertainty,
    )


def crf_windows(
    shape: tuple[int, int], params: CRFParams, scale: float, tiling: Tiling = Tiling()
) -> list[tuple[Window, Window]]:
    """The ``(core, outer)`` windows of :func:`infer_file_crf` on an (H, W) image: the whole
    image, or cores of ``tiling.max_width`` px with :func:`crf_halo` px of context."""
    if max(shape) <= tiling.max_width:
        whole = Window(0, 0, shape[1], shape[0])
        return [(whole, whole)]
    return halo_windows(*shape, tiling.max_width, crf_halo(params, scale, tiling))


def infer_images(samples: str | os.PathLike) -> list[Path]:
    """The images to segment: one file, or the image files of a folder."""
    samples = Path(samples)
    if samples.is_file():
        return [samples]
    images = list_images(samples)
    if not images:
        raise DltoolsError(f"{samples}: no images (jpg, png, tif) in this folder")
    return images
