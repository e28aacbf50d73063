"""Labelled spectra in memory: the labelled pixels of a cube, or a table of spectra.

A classifier trains on :class:`LabelledSpectra`: ``(n, B)`` spectra, their label values
(> 0) and which of them are held out for validation. They come from the pixels of a cube that
a label raster marks (:func:`labelled_pixels`; held out by a hash of their position, see
:func:`~dltools.spectral.cube.holdout_mask`) or from a table of spectra, one per row, with a
label column (:func:`read_table`, :func:`table_spectra`; held out per class at random). Only
labelled spectra are held in memory: 100,000 spectra of 480 bands take 190 MB.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.errors import DltoolsError
from dltools.spectral.cube import Cube, holdout_mask, read_label_values, read_spectra
from dltools.spectral.options import BLOCK

TABLE_SUFFIXES = (".csv", ".npy")


@dataclass(frozen=True)
class LabelledSpectra:
    """Spectra with class labels.

    spectra: (n, B) float32 raw spectra; values: (n,) int64 label values > 0; held: (n,) bool,
    True for the spectra kept for validation; names: the class names of label values 1, 2, ...
    (None: unnamed); source: where they came from (saved in a model's config.json).
    """

    spectra: np.ndarray
    values: np.ndarray
    held: np.ndarray
    names: list[str] | None
    source: dict

    @property
    def bands(self) -> int:
        return self.spectra.shape[1]

    def subset(self, rows: np.ndarray, held: np.ndarray) -> LabelledSpectra:
        """The spectra at ``rows`` ((m,) int indices), with a new ``held`` ((m,) bool)."""
        return LabelledSpectra(self.spectra[rows], self.values[rows], held, self.names, self.source)


def labelled_pixels(
    cube: Cube, labels: Cube, holdout: float = 0.0, seed: int = 0, block: int = BLOCK
) -> LabelledSpectra:
    """The pixels of ``cube`` whose label (in the raster ``labels``) is > 0, window by window.

    A pixel is held out with probability ``holdout``, decided by a hash of its position and
    ``seed`` (the same split for any windowing).
    """
    spectra, values, held = [], [], []
    for window in cube.windows(block):
        pixels, mask = read_spectra(cube, window)
        found = read_label_values(labels, window)[mask]
        keep = found > 0
        spectra.append(pixels[keep])
        values.append(found[keep])
        held.append(holdout_mask(window, cube.shape[1], holdout, seed)[mask][keep])
    source = {"cube": str(cube.path), "labels": str(labels.path)}
    return LabelledSpectra(
        np.concatenate(spectra), np.concatenate(values), np.concatenate(held), None, source
    )


def stratified_holdout(values: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """(n,) bool: ``round(fraction * n_k)`` random spectra of each class k (at most n_k - 1)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(values), bool)
    for value in np.unique(values):
        members = np.flatnonzero(values == value)
        count = min(round(fraction * len(members)), len(members) - 1)
        held[rng.choice(members, count, replace=False)] = True
    return held


@dataclass(frozen=True)
class SpectraTable:
    """A table of spectra, one per row: ``spectra`` (n, B) float32 and the label column.

    ``labels`` is (n,) int64 label values (0 and below: unlabelled) when every label is a
    whole number, else (n,) str class names ("" : unlabelled); None without a label column.
    """

    path: Path
    spectra: np.ndarray
    labels: np.ndarray | None

    def classes(self, names: list[str] | None = None) -> tuple[np.ndarray, list[str] | None]:
        """``(values (n,) int64, class names of values 1..K or None)``; 0 = unlabelled.

        Numeric labels are the values. Named labels get values by their position in
        ``names`` (as in labels.txt: line k = value k), or 1..K in sorted order without it.
        """
        if self.labels is None:
            raise DltoolsError(f"{self.path}: name its label column with --label-column")
        if self.labels.dtype.kind == "i":
            return np.maximum(self.labels, 0), names
        found = sorted(set(self.labels.tolist()) - {""})
        names = names or found
        unknown = sorted(set(found) - set(names))
        if unknown:
            raise DltoolsError(
                f"{self.path}: label(s) {', '.join(unknown)} are not among the classes "
                f"{', '.join(names)}"
            )
        lookup = {name: value for value, name in enumerate(names, start=1)}
        return np.array([lookup.get(label, 0) for label in self.labels.tolist()]), names


def _column(label_column: str, header: list[str] | None, width: int, path: Path) -> int:
    """The index of ``label_column``: a 0-based index (negative from the end) or a name."""
    try:
        index = int(label_column)
    except ValueError:
        if header is None or label_column not in header:
            columns = "the table has no header row" if header is None else f"columns: {header}"
            raise DltoolsError(f"{path}: no label column {label_column!r} ({columns})") from None
        return header.index(label_column)
    if not -width <= index < width:
        raise DltoolsError(f"{path}: label column {index} is outside its {width} columns")
    return index % width


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    try:
        with path.open(newline="") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DltoolsError(f"{path}: cannot read this CSV file ({err})") from err
    if not rows:
        raise DltoolsError(f"{path}: the table is empty")
    header = None if all(_is_number(cell) for cell in rows[0]) else rows.pop(0)
    widths = {len(row) for row in rows}
    if len(widths) != 1 or (header is not None and len(header) not in widths):
        raise DltoolsError(f"{path}: rows have different numbers of columns ({sorted(widths)})")
    return header, [[cell.strip() for cell in row] for row in rows]


def read_table(path: str | os.PathLike, label_column: str | None = None) -> SpectraTable:
    """Read a ``.csv`` or ``.npy`` table of spectra, one per row, B band columns.

    ``label_column`` names the column of class labels: a header name (CSV) or a 0-based
    index, negative from the end (``-1``: the last). A CSV file's first row is its header
    when it holds anything but numbers. A ``.npy`` table is an (n, C) numeric array. Every
    other column is a band; a cell that is not a finite number is an error.
    """
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DltoolsError(f"{path}: a table of spectra is a .csv or .npy file")
    if not path.is_file():
        raise DltoolsError(f"{path}: file not found")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path)
        except (OSError, ValueError) as err:
            raise DltoolsError(f"{path}: cannot read this .npy file ({err})") from err
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise DltoolsError(
                f"{path}: expected a 2-D numeric table, got {array.dtype} {array.shape}"
            )
        header, cells = None, array
    else:
        header, rows = _read_csv(path)
        cells = np.array(rows, dtype=object)
    columns = list(range(cells.shape[1]))
    labels = None
    if label_column is not None:
        index = _column(label_column, header, cells.shape[1], path)
        columns.remove(index)
        labels = _labels(cells[:, index])
    if not columns:
        raise DltoolsError(f"{path}: the table has no band columns")
    try:
        spectra = np.asarray(cells[:, columns], np.float32)
    except ValueError as err:
        raise DltoolsError(f"{path}: band columns must hold numbers only ({err})") from err
    bad = ~np.isfinite(spectra)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DltoolsError(f"{path}: row {row + 1}, band column {col + 1} is not a finite number")
    return SpectraTable(path, spectra, labels)


def _labels(column: np.ndarray) -> np.ndarray:
    """(n,) int64 label values when every cell is a whole number, else (n,) str."""
    numbers = np.array([_is_number(str(cell)) for cell in column])
    if numbers.all():
        values = column.astype(np.float64)
        if np.all(values == np.round(values)):
            return values.astype(np.int64)
    return np.array([str(cell) for cell in column], dtype=str)


def table_spectra(
    table: SpectraTable, names: list[str] | None = None, holdout: float = 0.0, seed: int = 0
) -> LabelledSpectra:
    """The labelled rows of ``table`` (see :meth:`SpectraTable.classes`), ``holdout`` of each
    class held out at random (:func:`stratified_holdout`)."""
    values, names = table.classes(names)
    keep = values > 0
    values = values[keep]
    held = stratified_holdout(values, holdout, seed)
    return LabelledSpectra(table.spectra[keep], values, held, names, {"table": str(table.path)})
