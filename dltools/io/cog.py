"""Cloud-Optimized GeoTIFFs for every label and probability raster, styled for GIS.

:func:`open_cog_writer` is the one writer of the steps' georeferenced results. It yields a
tiled GeoTIFF writer that the step fills window by window (:func:`dltools.io.geo.write_window`);
on success the file is rewritten in COG layout by GDAL's COG driver (both stream, so memory
does not grow with the raster's size):

- 512 x 512 tiles, DEFLATE compression, internal overviews down to one tile, built with
  ``MODE`` resampling for class rasters and ``AVERAGE`` for continuous ones;
- nodata set;
- class rasters (value ``k`` = class ``k``, 0 = nodata): a colour table in the class colours
  (0 transparent) and the class names in the metadata tag :data:`CLASS_NAMES_TAG` (a JSON
  list; value ``k`` is item ``k - 1``), read back by :func:`read_raster_classes`;
- a QGIS style file ``<name>.qml`` beside it (:mod:`dltools.io.qgis`): paletted with the class
  names as legend, or a continuous ramp for probabilities.

Files appear whole or not at all (the COG is renamed into place, then its style is written).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil

from dltools.errors import DltoolsError
from dltools.io.geo import Window, open_raster, open_raster_writer, write_window
from dltools.io.images import write_image
from dltools.io.labels import Classes
from dltools.io.outputs import atomic_path
from dltools.io.qgis import paletted_style, pseudocolor_style, qml_path, write_qml

CLASS_NAMES_TAG = "CLASS_NAMES"  # dataset tag: JSON list of class names, value k = item k - 1
BLOCKSIZE = 512  # COG tile side


def cog_outputs(path: str | os.PathLike) -> list[Path]:
    """The files of the raster ``path``: a ``.tif`` and the ``.qml`` style that
    :func:`open_cog_writer` makes with it, or any other raster (e.g. a ``.png``) alone."""
    path = Path(path)
    return [path, qml_path(path)] if path.suffix == ".tif" else [path]


@contextlib.contextmanager
def open_cog_writer(
    path: str | os.PathLike,
    like: dict,
    dtype: np.dtype | str,
    nodata: float | None,
    classes: Classes | None = None,
) -> Iterator[rasterio.io.DatasetWriter]:
    """Open a one-band COG on the grid of ``like`` (a rasterio profile) for writing.

    Parameters
    ----------
    path : output ``.tif``; its style goes to ``<name>.qml``.
    like : profile with ``width``, ``height`` and optionally ``crs`` and ``transform``.
    dtype : band dtype; uint8 or uint16 for class rasters.
    nodata : the nodata value (0 for class rasters, NaN for probabilities).
    classes : the class table of a class raster (value ``k`` = ``classes.names[k - 1]``);
        None for a continuous raster (its colour ramp spans 0 to 1).

    Yields the writer of a temporary tiled GeoTIFF; fill it with
    :func:`dltools.io.geo.write_window`. On a clean exit it becomes ``path`` in COG layout.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(final) as tmp,
        tempfile.TemporaryDirectory(prefix=f".{final.stem}.", dir=final.parent) as scratch,
    ):
        layout = Path(scratch) / final.name
        with open_raster_writer(layout, like, 1, dtype, nodata) as dst:
            if classes is not None:
                _add_class_table(dst, classes)
            yield dst
        with rasterio.Env(GDAL_PAM_ENABLED="NO"):
            rasterio.shutil.copy(
                layout,
                tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                BLOCKSIZE=BLOCKSIZE,
                OVERVIEW_RESAMPLING="AVERAGE" if classes is None else "MODE",
                BIGTIFF="IF_SAFER",
            )
    style = pseudocolor_style() if classes is None else paletted_style(classes)
    write_qml(qml_path(final), style)


def _add_class_table(dst: rasterio.io.DatasetWriter, classes: Classes) -> None:
    """Colour table (0 transparent, ``k`` the colour of class ``k``) and class-name tags."""
    dtype = np.dtype(dst.dtypes[0])
    if dtype not in (np.uint8, np.uint16) or len(classes.names) > np.iinfo(dtype).max:
        raise ValueError(f"a {dst.dtypes[0]} band cannot hold {len(classes.names)} classes")
    table = {0: (0, 0, 0, 0)}
    table.update({k: (*map(int, rgb), 255) for k, rgb in enumerate(classes.colors, 1)})
    dst.write_colormap(1, table)
    dst.update_tags(**{CLASS_NAMES_TAG: json.dumps(list(classes.names))})
    dst.set_band_description(1, "class")


def write_cog(
    path: str | os.PathLike,
    array: np.ndarray,
    like: dict,
    nodata: float | None,
    classes: Classes | None = None,
) -> None:
    """Write an ``(H, W)`` array that is already in memory as a COG (see :func:`open_cog_writer`
    for the arguments)."""
    with open_cog_writer(path, like, array.dtype, nodata, classes) as dst:
        write_window(dst, array, Window(0, 0, array.shape[1], array.shape[0]))


@contextlib.contextmanager
def open_fraction_writer(
    path: str | os.PathLike, like: dict | None, shape: tuple[int, int]
) -> Iterator[Callable[[np.ndarray, Window], None]]:
    """Open a raster of (H, W) = ``shape`` float values in [0, 1], NaN where unknown (a
    confidence, an uncertainty), for writing window by window: a float32 COG with NaN nodata
    on the grid of ``like`` (a rasterio profile), or without one an 8-bit image (255 = 1; 0
    also where unknown; held whole until the end). Yields ``put((h, w) values, window)``; on
    a clean exit the file appears whole."""
    if like is not None:
        with open_cog_writer(path, like, np.float32, np.nan) as dst:
            yield lambda values, window: write_window(dst, values.astype(np.float32), window)
        return
    whole = np.zeros(shape, np.uint8)

    def put(values: np.ndarray, window: Window) -> None:
        whole[window.toslices()] = np.round(np.nan_to_num(values, nan=0.0) * 255)

    yield put
    write_image(path, whole)


def write_fraction_raster(path: str | os.PathLike, values: np.ndarray, like: dict | None) -> None:
    """Write (H, W) float values in [0, 1] that are in memory (see :func:`open_fraction_writer`)."""
    with open_fraction_writer(path, like, values.shape) as put:
        put(values, Window(0, 0, values.shape[1], values.shape[0]))


def read_raster_classes(path: str | os.PathLike) -> Classes | None:
    """The class table stored in a class raster by :func:`open_cog_writer`: names from the
    :data:`CLASS_NAMES_TAG` tag, colours from the colour table. None if it has no names."""
    with open_raster(path) as src:
        text = src.tags().get(CLASS_NAMES_TAG)
        if text is None:
            return None
        try:
            names = json.loads(text)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError
        except ValueError:
            raise DltoolsError(
                f"{path}: its {CLASS_NAMES_TAG} tag is not a JSON list of names: {text[:80]!r}"
            ) from None
        try:
            table = src.colormap(1)
        except ValueError:  # no colour table
            table = {}
    rgb = [table.get(k, (128, 128, 128, 255))[:3] for k in range(1, len(names) + 1)]
    return Classes(names, np.array(rgb, np.uint8).reshape(-1, 3))
