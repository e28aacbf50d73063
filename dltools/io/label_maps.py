"""Label maps read from files: ``(H, W)`` integer arrays, 0 = unlabelled, ``k`` = class ``k``.

A label map comes from a ``<name>_mres.mat`` file (class index + 1, classes matched by name),
a one-band label raster (the stored value; 0, NaN and nodata are unlabelled) or a colour mask
(RGB or a palette PNG, in the colours of a :class:`dltools.io.labels.Classes` table; colours
of no class are unlabelled, or an error naming them with ``strict``). Rasters are read window
by window, so label maps of any size stay on disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.enums import ColorInterp, MaskFlags

from dltools.errors import DltoolsError
from dltools.io.cog import CLASS_NAMES_TAG
from dltools.io.geo import Window, open_raster, read_nodata_mask, read_raster
from dltools.io.labels import Classes
from dltools.io.results import read_result
from dltools.raster.windows import strip_windows


class LabelMap:
    """The label map of one image, read by window: 0 = unlabelled, ``k`` = class ``k``.

    ``path`` is a ``*_mres.mat`` file (read whole, mapped onto ``class_names`` by name; without
    names the file's own order is used), a one-band label raster (value ``k`` = class ``k``) or,
    when ``colors`` ((K, 3) uint8 RGB, class ``k`` in ``colors[k - 1]``) are given, a colour
    mask: an image of 3 or more bands (RGB; an alpha band or nodata marks unlabelled pixels) or
    a one-band palette image without class names (a palette PNG) whose palette holds a class
    colour, decoded through its palette (a palette of none of them, as in index masks coloured
    for display, leaves the indices as label values).
    Colours of no class are unlabelled, or with ``strict`` a DltoolsError naming each such
    colour and its pixel count in the file. Label rasters written by dltools (a
    ``CLASS_NAMES`` tag) are always read by value. With ``strokes``, the map is the strokes of
    a ``.mat`` file (its ``sparse`` array: only the stroked pixels are labelled); other label
    files hold no strokes and are a DltoolsError.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        class_names: Sequence[str] | None,
        colors: np.ndarray | None = None,
        strict: bool = False,
        strokes: bool = False,
    ):
        self.path = Path(path)
        self.array: np.ndarray | None = None
        self.from_classes = False  # array holds class indices (-1 = none), not label values
        self.colors = None if colors is None else np.asarray(colors, np.uint8).reshape(-1, 3)
        self.strict = strict
        self.palette: np.ndarray | None = None  # (256,) int32 class of each palette index, -1: none
        if self.path.suffix.lower() == ".mat":
            result = read_result(self.path, class_names)
            self.class_names = result.labels
            if strokes and result.sparse is None:
                raise DltoolsError(f"{self.path} holds no strokes (no 'sparse' array)")
            self.array = result.sparse if strokes else result.class_map
            self.from_classes = not strokes
            self.shape = self.array.shape
            return
        if strokes:
            raise DltoolsError(
                f"{self.path} is a label raster: strokes come from <name>_mres.mat files (their "
                "'sparse' array), which step 2 writes"
            )
        if class_names is None:
            raise DltoolsError(
                f"{self.path} is a label raster: pass -l labels.txt to name its classes "
                "(value k = line k; 0 = unlabelled), or --labeldefs for a colour mask"
            )
        self.class_names = list(class_names)
        with open_raster(self.path) as src:
            self.shape = (src.height, src.width)
            self.masked = MaskFlags.all_valid not in src.mask_flag_enums[0]
            self.colour = src.count >= 3
            if self.colour and self.colors is None:
                raise DltoolsError(
                    f"{self.path} is a colour mask ({src.count} bands): pass --labeldefs "
                    "labeldefs.txt ('name, R, G, B' per line) to say which colour is which class"
                )
            if src.count == 2:
                raise DltoolsError(
                    f"{self.path}: a label raster must have one band (or three for a colour "
                    f"mask), this one has {src.count}"
                )
            if (
                src.count == 1
                and self.colors is not None
                and src.colorinterp[0] == ColorInterp.palette
                and CLASS_NAMES_TAG not in src.tags()
            ):
                table = _palette_classes(src.colormap(1), self.colors)
                # a palette of none of the class colours is for display: its indices are values
                self.palette = table if (table > 0).any() else None
        if self.colors is not None and len(self.colors) != len(self.class_names):
            raise ValueError("one colour per class is needed")

    @property
    def by_color(self) -> bool:
        """True if the file is read as a colour mask (RGB or palette), not by value."""
        return self.array is None and (self.colour or self.palette is not None)

    def _decode(self, window: Window) -> np.ndarray:
        """(h, w) int32 classes of a colour mask's window; -1 where the colour is no class."""
        if self.palette is not None:
            return self.palette[read_raster(self.path, window)[..., 0]]
        rgb = read_raster(self.path, window)[..., :3]
        if rgb.dtype != np.uint8:
            raise DltoolsError(f"{self.path}: a colour mask must be 8-bit, not {rgb.dtype}")
        return decode_colors(rgb, self.colors, unknown=-1)

    def read(self, window: Window) -> np.ndarray:
        """``(h, w)`` int32 labels of ``window``; values outside 0..K are a DltoolsError."""
        if self.array is not None:
            rows, cols = window.toslices()
            values = self.array[rows, cols].astype(np.int32)
            return np.maximum(values + 1, 0) if self.from_classes else values
        if self.by_color:
            values = self._decode(window)
            if self.masked:
                values = np.where(read_nodata_mask(self.path, window), 0, values)
            if self.strict and (values < 0).any():
                raise DltoolsError(self._unknown_colors_message())
            return np.maximum(values, 0)
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

    def unknown_colors(self) -> dict[tuple[int, int, int], int]:
        """``{(R, G, B): pixels}`` of the colours of a colour mask that are no class (pixels
        marked nodata left out), counted over the whole file in strips."""
        height, width = self.shape
        found: dict[tuple[int, int, int], int] = {}
        for window in strip_windows(height, width, STRIP):
            with open_raster(self.path) as src:
                if self.palette is not None:
                    table = _palette_rgb(src.colormap(1))
                    rgb = table[src.read(1, window=window)]
                else:
                    rgb = np.moveaxis(src.read([1, 2, 3], window=window), 0, -1)
            unknown = decode_colors(rgb, self.colors, unknown=-1) < 0
            if self.masked:
                unknown &= ~read_nodata_mask(self.path, window)
            keys, counts = np.unique(_color_keys(rgb[unknown]), return_counts=True)
            for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
                rgb_key = ((key >> 16) & 255, (key >> 8) & 255, key & 255)
                found[rgb_key] = found.get(rgb_key, 0) + n
        return dict(sorted(found.items(), key=lambda item: -item[1]))

    def _unknown_colors_message(self) -> str:
        listed = ", ".join(
            f"#{r:02X}{g:02X}{b:02X} ({r}, {g}, {b}): {n} pixels"
            for (r, g, b), n in self.unknown_colors().items()
        )
        return (
            f"{self.path}: colour(s) of no class in the labeldefs: {listed}; add them to "
            "labeldefs.txt, or leave out --strict to read them as unlabelled"
        )


STRIP = 1024  # rows per strip when a whole colour mask is scanned for unknown colours


def _palette_rgb(colormap: dict[int, tuple[int, ...]]) -> np.ndarray:
    """(256, 3) uint8 RGB of each palette index (indices without an entry: black)."""
    table = np.zeros((256, 3), np.uint8)
    for index, rgba in colormap.items():
        if 0 <= index < 256:
            table[index] = rgba[:3]
    return table


def _palette_classes(colormap: dict[int, tuple[int, ...]], colors: np.ndarray) -> np.ndarray:
    """(256,) int32: the class (1..K) whose colour each palette index has, -1 for none."""
    classes = decode_colors(_palette_rgb(colormap)[None], colors, unknown=-1)[0]
    missing = [i for i in range(256) if i not in colormap]
    classes[missing] = -1
    return classes


def decode_colors(rgb: np.ndarray, colors: np.ndarray, unknown: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 colour labels -> (H, W) label map, value k where the pixel has colour
    ``colors[k - 1]`` ((K, 3) uint8), ``unknown`` for any other colour: uint8 when
    ``unknown`` is 0, else int32."""
    keys = _color_keys(np.asarray(colors, np.uint8))
    if len(np.unique(keys)) != len(keys):
        raise DltoolsError("two classes share a colour: colour label images would be ambiguous")
    pixels = _color_keys(rgb[..., :3])
    order = np.argsort(keys)
    found = np.clip(np.searchsorted(keys[order], pixels), 0, len(keys) - 1)
    hit = keys[order][found] == pixels
    dtype = np.uint8 if unknown == 0 else np.int32
    return np.where(hit, order[found] + 1, unknown).astype(dtype)


def _color_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_label_map(
    path: str | os.PathLike, classes: Classes, strict: bool = False, strokes: bool = False
) -> np.ndarray:
    """(H, W) uint8 labels (0 = unlabelled, k = class k) of a ``.mat`` (classes matched by
    name), a one-band label raster (value k = class k) or a colour mask (RGB or palette, in
    the colours of ``classes``); with ``strokes``, the strokes of a ``.mat`` (see
    :class:`LabelMap`)."""
    labels = LabelMap(path, classes.names, classes.colors, strict, strokes)
    height, width = labels.shape
    return labels.read(Window(0, 0, width, height)).astype(np.uint8)
