"""Label maps read from files: ``(H, W)`` integer arrays, 0 = unlabelled, ``k`` = class ``k``.

A label map comes from a ``<name>_mres.mat`` file (class index + 1, classes matched by name),
a one-band label raster (the stored value; 0, NaN and nodata are unlabelled) or a colour label
image (the colours of a :class:`dltools.io.labels.Classes` table). Rasters are read window by
window, so label maps of any size stay on disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.enums import MaskFlags

from dltools.errors import DltoolsError
from dltools.io.geo import Window, open_raster, read_nodata_mask, read_raster
from dltools.io.images import image_shape, read_image
from dltools.io.labels import Classes
from dltools.io.results import read_result


class LabelMap:
    """The label map of one image, read by window: 0 = unlabelled, ``k`` = class ``k``.

    ``path`` is a ``*_mres.mat`` file (read whole, mapped onto ``class_names`` by name; without
    names the file's own order is used) or a one-band label raster (read window by window).
    """

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str] | None):
        self.path = Path(path)
        self.array: np.ndarray | None = None
        if self.path.suffix.lower() == ".mat":
            result = read_result(self.path, class_names)
            self.class_names = result.labels
            self.array = np.where(result.class_map < 0, 0, result.class_map.astype(np.int32) + 1)
            self.shape = self.array.shape
            return
        if class_names is None:
            raise DltoolsError(
                f"{self.path} is a label raster: pass -l labels.txt to name its classes "
                "(value k = line k; 0 = unlabelled)"
            )
        self.class_names = list(class_names)
        with open_raster(self.path) as src:
            if src.count != 1:
                raise DltoolsError(
                    f"{self.path}: a label raster must have one band, this one has {src.count}"
                )
            self.shape = (src.height, src.width)
            self.masked = MaskFlags.all_valid not in src.mask_flag_enums[0]

    def read(self, window: Window) -> np.ndarray:
        """``(h, w)`` int32 labels of ``window``; values outside 0..K are a DltoolsError."""
        if self.array is not None:
            rows, cols = window.toslices()
            return self.array[rows, cols]
        values = read_raster(self.path, window)[..., 0]
        if values.dtype.kind == "f":
            values = np.nan_to_num(values, nan=0.0)
            if not np.array_equal(values, np.round(values)):
                raise DltoolsError(f"{self.path}: label values must be whole numbers")
        if self.masked:
            values = np.where(read_nodata_mask(self.path, window), 0, values)
        count = len(self.class_names)
        if values.size and (values.min() < 0 or values.max() > count):
            raise DltoolsError(
                f"{self.path}: label value {values.max() if values.max() > count else values.min()}"
                f" found, but the labels file names {count} classes (values 1..{count}, "
                "0 = unlabelled); is this the right labels file?"
            )
        return values.astype(np.int32)


def decode_colors(rgb: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colour labels -> (H, W) uint8 label map, value k where the pixel has
    colour ``colors[k - 1]`` ((K, 3) uint8), 0 for any other colour."""
    keys = _color_keys(np.asarray(colors, np.uint8))
    if len(np.unique(keys)) != len(keys):
        raise DltoolsError("two classes share a colour: colour label images would be ambiguous")
    pixels = _color_keys(rgb[..., :3])
    order = np.argsort(keys)
    found = np.clip(np.searchsorted(keys[order], pixels), 0, len(keys) - 1)
    hit = keys[order][found] == pixels
    return np.where(hit, order[found] + 1, 0).astype(np.uint8)


def _color_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_label_map(path: str | os.PathLike, classes: Classes) -> np.ndarray:
    """(H, W) uint8 labels (0 = unlabelled, k = class k) of a ``.mat`` (classes matched by
    name), a one-band label raster (value k = class k) or a colour label image."""
    path = Path(path)
    if path.suffix.lower() != ".mat" and image_shape(path)[2] >= 3:
        return decode_colors(read_image(path), classes.colors)
    labels = LabelMap(path, classes.names)
    height, width = labels.shape
    return labels.read(Window(0, 0, width, height)).astype(np.uint8)
