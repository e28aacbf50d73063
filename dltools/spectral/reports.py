"""The figures and tables that go with spectral results: files in, files out.

The command line only names the files: whether a raster can be drawn, how big its figure is
and how a table of spectra is scored are decided here (figures from overviews, so no
result raster is read whole for a picture).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.engines.metrics import Scores, score
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
from dltools.io.outputs import atomic_path
from dltools.spectral.cube import Cube, read_overview
from dltools.spectral.folder import SpectralModel
from dltools.spectral.inference import Classify, compiled, sample_spectra
from dltools.spectral.labelled import SpectraTable

LOSSES_BLIND_TO_BRIGHTNESS = {"sa", "csa", "sid"}


def no_figure_reason(cube: Cube) -> str | None:
    """Why ``cube``'s results get no figure (a strip such as a table of spectra stored as a
    cube), or None when they do."""
    if drawable(cube.shape):
        return None
    rows, cols = cube.shape[:2]
    return (
        f"no figure: a {rows} x {cols} raster is more than {MAX_FIGURE_ASPECT} times longer "
        "than wide (for spectra without a grid, see --table)"
    )


def write_latent_figure(latent_path: str | os.PathLike, title: str, path: str | os.PathLike):
    """A figure of the first latent bands of an encoded raster (drawn from its overview)."""
    save_figure(latent_figure(read_overview(latent_path), title), path)


def write_reconstruction_figure(
    model: SpectralModel, cube: Cube, pixels: int, batch_size: int, path: str | os.PathLike
) -> None:
    """Pre-processed spectra of ``pixels`` random pixels of ``cube`` beside the autoencoder's
    reconstructions (fitted in brightness when the model's loss ignores it)."""
    positions, spectra = sample_spectra(cube, pixels, seed=0)
    scaled = model.scaling(spectra)
    rebuilt = compiled(model.model, cube.bands, batch_size)(scaled)
    names = [f"row {r}, col {c}" for r, c in positions]
    title = f"{cube.path.name}: pre-processed spectra and reconstructions"
    blind = model.config["training"]["loss"] in LOSSES_BLIND_TO_BRIGHTNESS
    save_figure(spectra_figure(scaled, rebuilt, names, title, fit_scale=blind), path)


def write_class_pictures(
    model: SpectralModel,
    class_path: str | os.PathLike,
    png_path: str | os.PathLike,
    figure_path: str | os.PathLike | None,
    title: str,
) -> None:
    """The class raster ``class_path`` as a PNG of label values (read whole: a PNG is
    written at once) and, with ``figure_path``, a map in class colours with a legend."""
    classes = model.config["classes"]
    write_image(png_path, read_raster(class_path)[..., 0])
    if figure_path is not None:
        colors = np.array(classes["colors"], np.uint8)
        overview = read_overview(class_path)[..., 0]
        figure = class_map_figure(overview, classes["values"], classes["names"], colors, title)
        save_figure(figure, figure_path)


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
    table: SpectraTable,
    path: str | os.PathLike,
    unknown_below: float,
    batch_size: int,
) -> TablePrediction:
    """Classify each row of ``table`` and write ``path`` (CSV: row, value, class, one
    probability per class, and the true value when the table has labels)."""
    classes = model.config["classes"]
    classify = Classify(
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
