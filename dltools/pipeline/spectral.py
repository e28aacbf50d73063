"""``dltools spectral``: per-pixel spectral models, files in -> files out.

- :func:`train`: an autoencoder on every pixel of a cube, or a 1-D CNN classifier on labelled
  spectra (:func:`read_labelled`: the pixels of a cube marked by a label raster, or the rows
  of a table), written as a model folder (:mod:`dltools.spectral.folder`); also resumed from
  one of its checkpoints.
- :func:`cross_validate`: k-fold accuracy of the classifier against 1-NN baselines, ``cv.json``.
- :func:`apply` (encode, decode, reconstruct) and :func:`predict`: rasters beside their cube
  (or in an output folder), with figures drawn from overviews (no result raster is read
  whole for a picture); :func:`predict_table`: a CSV of a table's rows.

Each command has a function naming its output files (:func:`apply_outputs`,
:func:`predict_outputs`, :func:`table_output`), so the caller can refuse to overwrite them
before any work starts, and a function doing the work.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.engines.metrics import Scores, score
from dltools.errors import DltoolsError, DltoolsWarning
from dltools.figures.panels import (
    MAX_FIGURE_ASPECT,
    class_map_figure,
    drawable,
    latent_figure,
    save_figure,
    spectra_figure,
)
from dltools.io.geo import read_raster
from dltools.io.images import write_image
from dltools.io.labels import read_colors, read_labels
from dltools.io.outputs import atomic_path, ensure_new
from dltools.io.qgis import qml_path
from dltools.models.runs import CONFIG
from dltools.progress import Progress, quiet
from dltools.scale.executor import Executor
from dltools.spectral import inference
from dltools.spectral.crossval import CrossValidation
from dltools.spectral.crossval import cross_validate as cross_validate_spectra
from dltools.spectral.cube import Cube, open_cube, open_labels, read_overview
from dltools.spectral.folder import (
    HISTORY,
    MODEL,
    SpectralModel,
    checkpoint_path,
    read_config,
)
from dltools.spectral.labelled import (
    LabelledSpectra,
    labelled_pixels,
    read_table,
    table_spectra,
)
from dltools.spectral.options import PREDICT_BATCH, Training
from dltools.spectral.training import resume_training, train_autoencoder, train_classifier

CV_REPORT = "cv.json"  # the report of cross_validate, in its folder
LOSSES_BLIND_TO_BRIGHTNESS = {"sa", "csa", "sid"}  # reconstructions are fitted in brightness
APPLY_SUFFIXES = {  # the raster of each verb, then its figure
    "encode": ("_latent.tif", "_latent.png"),
    "decode": ("_decoded.tif",),
    "reconstruct": ("_reconstruction.tif", "_spectra.png"),
}


@dataclass(frozen=True)
class SpectraSource:
    """Where spectra come from: a cube (``cube``, the ``variable`` of a .mat file) with, for a
    classifier, a ``label_raster`` on its grid (``label_variable``); or a ``table`` whose
    ``label_column`` holds the classes. ``labels``: a labels.txt naming classes 1..K;
    ``block``: pixels per side of the windows read from a cube."""

    cube: str | None = None
    variable: str | None = None
    label_raster: str | None = None
    label_variable: str | None = None
    table: str | None = None
    label_column: str | None = None
    labels: str | None = None
    block: int = 512


def read_labelled(source: SpectraSource, holdout: float, seed: int) -> LabelledSpectra:
    """The labelled spectra of ``source``; a ``holdout`` fraction of them (drawn with
    ``seed``) is marked held out for validation."""
    names = read_labels(source.labels) if source.labels else None
    if source.table is not None:
        if source.label_column is None:
            raise DltoolsError("--table needs --label-column: the column of class labels")
        return table_spectra(read_table(source.table, source.label_column), names, holdout, seed)
    if source.label_raster is None:
        raise DltoolsError("-i CUBE needs -r RASTER: the class of each pixel")
    cube = open_cube(source.cube, source.variable)
    labels = open_labels(source.label_raster, cube, source.label_variable)
    data = labelled_pixels(cube, labels, holdout, seed, source.block)
    return dataclasses.replace(data, names=names)


def _clear_model_folder(
    folder: Path, save_epochs: list[int], resume_epoch: int | None, force: bool
) -> None:
    """Refuse to replace a model folder's files unless ``force`` (which also removes its old
    checkpoints); a resumed run refuses only the checkpoints it will write."""
    later = [checkpoint_path(folder, e) for e in save_epochs if e > (resume_epoch or 0)]
    if resume_epoch is not None:
        ensure_new(later, force)
        return
    old = sorted(folder.glob("epoch_*.keras"))
    ensure_new([folder / CONFIG, folder / MODEL, folder / HISTORY, *old, *later], force)
    for path in old:
        path.unlink()


def train(
    folder: str | os.PathLike,
    source: SpectraSource,
    training: Training,
    kind: str = "classifier",
    architecture: dict | None = None,
    scaling: str = "minmax",
    colors: str | None = None,
    resume_epoch: int | None = None,
    force: bool = False,
) -> SpectralModel:
    """Train a model of ``kind`` (``"mlp"`` or ``"conv"``: an autoencoder on every pixel of
    ``source.cube``; ``"classifier"``: a 1-D CNN on the labelled spectra of ``source``, a
    ``training.holdout`` fraction of them validating) into ``folder``; return it.

    ``colors``: a colors.txt of classes 1..K. With ``resume_epoch``, the run in ``folder``
    goes on from that checkpoint up to ``training.epochs`` with its own options (a
    classifier with its own validation split). Existing files of ``folder`` are refused
    unless ``force``, before any training.
    """
    folder = Path(folder)
    if kind == "classifier":
        holdout, seed = training.holdout, training.seed
        if resume_epoch is not None:  # the split that the run started with
            saved = read_config(folder)["training"]
            holdout, seed = saved["holdout"], saved["seed"]
        data: Cube | LabelledSpectra = read_labelled(source, holdout, seed)
    else:
        data = open_cube(source.cube, source.variable)
    _clear_model_folder(folder, list(training.save_epochs), resume_epoch, force)
    if resume_epoch is not None:
        return resume_training(
            folder, data, resume_epoch, training.epochs, list(training.save_epochs)
        )
    if kind != "classifier":
        return train_autoencoder(data, folder, kind, architecture, training, scaling)
    class_colors = read_colors(colors) if colors else None
    return train_classifier(data, folder, architecture, training, scaling, class_colors)


def cross_validate(
    folder: str | os.PathLike,
    source: SpectraSource,
    k: int,
    training: Training,
    architecture: dict | None = None,
    scaling: str = "minmax",
    force: bool = False,
) -> tuple[CrossValidation, Path]:
    """Stratified ``k``-fold accuracy of the classifier on the labelled spectra of ``source``
    and of 1-NN baselines on the same folds (see
    :func:`dltools.spectral.crossval.cross_validate`); written as ``folder/cv.json``, which
    is returned with the result. The fold models are trained in a temporary folder."""
    path = Path(folder) / CV_REPORT
    ensure_new([path], force)
    data = read_labelled(source, 0.0, training.seed)
    with tempfile.TemporaryDirectory(prefix="dltools-cv-") as tmp:
        cv = cross_validate_spectra(data, k, tmp, architecture, training, scaling)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(cv.to_dict(), indent=2) + "\n")
    return cv, path


def _beside(source: str | os.PathLike, out_dir: str | os.PathLike | None, suffix: str) -> Path:
    """``source``'s stem + ``suffix``, in ``out_dir`` (default: beside ``source``)."""
    source = Path(source)
    return (Path(out_dir) if out_dir else source.parent) / f"{source.stem}{suffix}"


def _figure_allowed(cube: Cube) -> bool:
    """Whether ``cube``'s results can be drawn (not a strip, such as a table of spectra stored
    as a cube); a DltoolsWarning says why not."""
    if drawable(cube.shape):
        return True
    rows, cols = cube.shape[:2]
    reason = (
        f"no figure: a {rows} x {cols} raster is more than {MAX_FIGURE_ASPECT} times longer "
        "than wide (for spectra without a grid, see --table)"
    )
    warnings.warn(reason, DltoolsWarning, stacklevel=3)
    return False


def apply_outputs(
    verb: str, cube: Cube, out_dir: str | os.PathLike | None, figure: bool
) -> list[Path]:
    """The files of ``verb`` (encode, decode, reconstruct) on ``cube``: its raster and,
    with ``figure`` (not for decode), its figure. A cube too long to draw gets no
    encoded figure (with a DltoolsWarning)."""
    paths = [_beside(cube.path, out_dir, suffix) for suffix in APPLY_SUFFIXES[verb]]
    if figure and verb == "encode":
        figure = _figure_allowed(cube)
    return paths if figure else paths[:1]


def apply(
    verb: str,
    model: SpectralModel,
    cube: Cube,
    paths: list[Path],
    block: int = 512,
    batch_size: int = PREDICT_BATCH,
    pixels: int = 6,
    progress: Progress = quiet,
    executor: Executor | None = None,
) -> dict[str, float] | None:
    """Run ``model`` on ``cube`` for ``verb`` and write ``paths`` (of :func:`apply_outputs`):
    the latent image (encode), the decoded spectra (decode) or the reconstruction
    (reconstruct, with ``pixels`` random spectra drawn in its figure). Windows of ``block``
    pixels, ``batch_size`` spectra per network call, run by ``executor``. Returns the mean
    SSE and spectral angle (``{"sse", "sa"}``) of a reconstruction, else None."""
    run = {
        "encode": inference.encode_cube,
        "decode": inference.decode_raster,
        "reconstruct": inference.reconstruct_cube,
    }[verb]
    errors = run(model, cube, paths[0], block, progress, batch_size, executor)  # or None
    if len(paths) > 1 and verb == "encode":
        title = f"{cube.path.name}: latent bands"
        save_figure(latent_figure(read_overview(paths[0]), title), paths[1])
    elif len(paths) > 1:
        _write_reconstruction_figure(model, cube, pixels, batch_size, paths[1])
    return errors


def _write_reconstruction_figure(
    model: SpectralModel, cube: Cube, pixels: int, batch_size: int, path: Path
) -> None:
    """Pre-processed spectra of ``pixels`` random pixels of ``cube`` beside the autoencoder's
    reconstructions (fitted in brightness when the model's loss ignores it)."""
    positions, spectra = inference.sample_spectra(cube, pixels, seed=0)
    scaled = model.scaling(spectra)
    rebuilt = inference.compiled(model.model, cube.bands, batch_size)(scaled)
    names = [f"row {r}, col {c}" for r, c in positions]
    title = f"{cube.path.name}: pre-processed spectra and reconstructions"
    blind = model.config["training"]["loss"] in LOSSES_BLIND_TO_BRIGHTNESS
    save_figure(spectra_figure(scaled, rebuilt, names, title, fit_scale=blind), path)


@dataclass(frozen=True)
class PredictOutputs:
    """The files of :func:`predict`: the class raster (a styled COG) and its QGIS style, a
    PNG of its values, and optionally a figure in class colours, the class probabilities and
    the outputs of one layer."""

    classes: Path
    picture: Path
    figure: Path | None
    scores: Path | None
    features: Path | None

    @property
    def style(self) -> Path:
        """The ``.qml`` QGIS style written with the class raster."""
        return qml_path(self.classes)

    @property
    def files(self) -> list[Path]:
        named = (self.classes, self.style, self.picture, self.figure, self.scores, self.features)
        return [path for path in named if path is not None]


def predict_outputs(
    cube: Cube, out_dir: str | os.PathLike | None, scores: bool, features: str | None
) -> PredictOutputs:
    """The files of :func:`predict` on ``cube``: with ``scores`` the probabilities, with
    ``features`` (a layer name) its outputs; no figure for a cube too long to draw (with a
    DltoolsWarning)."""
    classes = _beside(cube.path, out_dir, "_classes.tif")
    return PredictOutputs(
        classes,
        _beside(cube.path, out_dir, "_classes.png"),
        _beside(cube.path, out_dir, "_classes_figure.png") if _figure_allowed(cube) else None,
        _beside(cube.path, out_dir, "_scores.tif") if scores else None,
        _beside(cube.path, out_dir, f"_features_{features}.tif") if features else None,
    )


def predict(
    model: SpectralModel,
    cube: Cube,
    outputs: PredictOutputs,
    features: str | None = None,
    unknown_below: float = 0.0,
    block: int = 512,
    batch_size: int = PREDICT_BATCH,
    progress: Progress = quiet,
    executor: Executor | None = None,
) -> dict[int, int]:
    """Classify every pixel of ``cube`` with ``model`` and write ``outputs`` (with
    ``features``, the outputs of that layer); pixels whose top probability is under
    ``unknown_below`` are unknown (0). Returns ``{class value: pixels}`` (0: unknown or
    nodata)."""
    counts = inference.predict_cube(
        model,
        cube,
        outputs.classes,
        outputs.scores,
        (features, outputs.features) if features else None,
        unknown_below,
        block,
        progress,
        batch_size,
        executor,
    )
    classes = model.config["classes"]
    write_image(outputs.picture, read_raster(outputs.classes)[..., 0])  # a PNG is written whole
    if outputs.figure is not None:
        colors = np.array(classes["colors"], np.uint8)
        overview = read_overview(outputs.classes)[..., 0]
        title = f"{cube.path.name}: classes"
        figure = class_map_figure(overview, classes["values"], classes["names"], colors, title)
        save_figure(figure, outputs.figure)
    return counts


def table_output(table: str | os.PathLike, out_dir: str | os.PathLike | None) -> Path:
    """The CSV that :func:`predict_table` writes for ``table``."""
    return _beside(table, out_dir, "_predictions.csv")


@dataclass(frozen=True)
class TablePrediction:
    """What :func:`predict_table` found: spectra per label value (0 = unknown) and, when the
    table has labels, the score over its labelled rows (labels the model does not know count
    as wrong)."""

    counts: dict[int, int]
    score: Scores | None
    labelled: int


def predict_table(
    model: SpectralModel,
    table: str | os.PathLike,
    path: str | os.PathLike,
    label_column: str | None = None,
    unknown_below: float = 0.0,
    batch_size: int = PREDICT_BATCH,
) -> TablePrediction:
    """Classify each row of ``table`` (a CSV or 2-D .npy of spectra; ``label_column``, when
    given, holds true labels, which are then scored) and write ``path`` (CSV: row, value,
    class, one probability per class, and the true value when the table has labels)."""
    table = read_table(table, label_column)
    classes = model.config["classes"]
    classify = inference.Classify(
        model, table.spectra.shape[1], unknown_below=unknown_below, batch_size=batch_size
    )
    found = classify(table.spectra)
    named = dict(zip(classes["values"], classes["names"], strict=True))
    truth = None
    if table.labels is not None:
        names = [named.get(v, f"class {v}") for v in range(1, max(classes["values"]) + 1)]
        truth = table.classes(names if table.labels.dtype.kind != "i" else None)[0]
    header = ["row", "value", "class", *(f"p_{name}" for name in classes["names"])]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header + ([] if truth is None else ["true_value"]))
        for i, (value, scores) in enumerate(zip(found["classes"], found["scores"], strict=True)):
            row = [i + 1, int(value), named.get(int(value), "unknown")]
            row += [f"{p:.6g}" for p in scores]
            writer.writerow(row + ([] if truth is None else [int(truth[i])]))
    if truth is None:
        return TablePrediction(classify.summary(found["counts"]), None, 0)
    labelled = truth > 0
    known = np.union1d([0, *classes["values"]], truth[labelled])
    result = score(
        np.searchsorted(known, truth[labelled]),
        np.searchsorted(known, found["classes"][labelled]),
        [{0: "unknown", **named}.get(v, f"class {v}") for v in known.tolist()],
    )
    return TablePrediction(classify.summary(found["counts"]), result, int(labelled.sum()))
