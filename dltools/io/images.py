"""Image files (JPG, PNG, TIFF, GeoTIFF) to and from ``(H, W, C)`` numpy arrays.

All formats are decoded by GDAL (see :mod:`dltools.io.geo`), so every step sees the same
pixels for the same file: use :func:`read_image` rather than another decoder, whose JPEG
output can differ by a few grey levels. Pixels are returned as stored: EXIF orientation is
not applied and palette PNGs give their indices.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltools.errors import DltoolsError
from dltools.io.geo import create_raster, open_raster, read_raster, sample_pixels
from dltools.io.pairs import visible_files
from dltools.raster.bands import BandChoice, choose_bands, stretch_ranges

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})


@dataclass(frozen=True)
class _Format:
    driver: str
    dtypes: frozenset[str] | None  # None: any dtype GDAL can store
    band_counts: frozenset[int] | None  # None: any number of bands
    options: dict


_PNG = _Format("PNG", frozenset({"uint8", "uint16"}), frozenset({1, 2, 3, 4}), {})
_JPEG = _Format("JPEG", frozenset({"uint8"}), frozenset({1, 3}), {"QUALITY": 95})
_TIFF = _Format("GTiff", None, None, {"compress": "deflate", "BIGTIFF": "IF_SAFER"})
_FORMATS = {".png": _PNG, ".jpg": _JPEG, ".jpeg": _JPEG, ".tif": _TIFF, ".tiff": _TIFF}


def is_image_file(path: str | os.PathLike) -> bool:
    """True if ``path`` has an image suffix (case-insensitive) and is not a hidden file."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name; other files are ignored.

    Hidden files (such as the temporary files of unfinished writes) are skipped.
    """
    return [p for p in visible_files(folder) if is_image_file(p)]


def read_image(path: str | os.PathLike, bands: Sequence[int] | None = None) -> np.ndarray:
    """Read a whole image as ``(H, W, C)`` in its stored dtype (uint8, uint16, float...).

    Band order is the file's (RGB for colour JPG/PNG); ``bands`` selects 0-based bands.
    For rasters too big for memory use :func:`dltools.io.geo.read_raster` with windows.
    """
    return read_raster(path, bands=bands)


def image_shape(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(H, W, C)`` of an image, read from its header without decoding the pixels."""
    with open_raster(path) as src:
        return src.height, src.width, src.count


def band_layout(path: str | os.PathLike) -> tuple[int, str]:
    """``(band count, dtype name)`` of an image, from its header."""
    with open_raster(path) as src:
        return src.count, src.dtypes[0]


def training_bands(
    paths: Sequence[str | os.PathLike],
    bands: Sequence[int] | None = None,
    stretch: tuple[float, float] | None = None,
) -> BandChoice:
    """The :class:`~dltools.raster.bands.BandChoice` of a model trained on the images ``paths``.

    All images must have the same band count and dtype (headers only are read, so a mismatch
    costs nothing). ``bands``: ``--bands`` (default: see :func:`choose_bands`). Images that
    are not uint8 are stretched to 0-255: by ``stretch`` (``--stretch LOW,HIGH``), else by
    each chosen band's 2nd-98th percentiles over a sample of windows of every image.
    """
    if not paths:
        raise DltoolsError("no training images")
    layouts = {Path(p): band_layout(p) for p in paths}
    (first, (count, dtype)), *_ = layouts.items()
    other = next((p for p, lay in layouts.items() if lay != (count, dtype)), None)
    if other is not None:
        raise DltoolsError(
            f"{other} has {layouts[other][0]} band(s) of {layouts[other][1]} but {first} has "
            f"{count} of {dtype}: train on images of one band layout"
        )
    chosen = choose_bands(count, first, bands)
    if dtype == "uint8":
        return BandChoice(chosen, count, dtype)
    samples = None if stretch else np.concatenate([sample_pixels(p) for p in layouts])
    return BandChoice(chosen, count, dtype, stretch_ranges(samples, chosen, stretch))


def inference_bands(
    choice: BandChoice,
    paths: Sequence[str | os.PathLike],
    bands: Sequence[int] | None = None,
    model: str | os.PathLike = "the model",
) -> dict[Path, BandChoice]:
    """``{image: its BandChoice}`` for a model's ``choice``, checked for every image from the
    headers before any work (see :meth:`~dltools.raster.bands.BandChoice.for_image`)."""
    return {Path(p): choice.for_image(*band_layout(p), p, bands, model) for p in paths}


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``(H, W)`` or ``(H, W, C)`` pixels to a PNG, JPG (quality 95) or TIFF, atomically.

    PNG takes uint8/uint16 with 1-4 bands, JPG uint8 with 1 or 3 bands, TIFF any dtype and
    band count (DEFLATE-compressed, without georeferencing: see
    :func:`dltools.io.geo.write_raster` for GeoTIFFs).
    """
    suffix = Path(path).suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None:
        raise DltoolsError(
            f"{path}: cannot write images with suffix {suffix!r}; "
            f"use one of {', '.join(sorted(_FORMATS))}"
        )
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) array, got shape {array.shape}")
    bands = array[..., np.newaxis] if array.ndim == 2 else array
    height, width, count = bands.shape
    dtype = bands.dtype.name
    if (fmt.dtypes is not None and dtype not in fmt.dtypes) or (
        fmt.band_counts is not None and count not in fmt.band_counts
    ):
        raise DltoolsError(
            f"{path}: {fmt.driver} cannot store {count} band(s) of {dtype} "
            f"(it takes {sorted(fmt.dtypes)} with {sorted(fmt.band_counts)} band(s)); "
            "write a .tif instead"
        )
    profile = {
        "driver": fmt.driver,
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        **fmt.options,
    }
    with create_raster(path, profile) as dst:
        dst.write(np.moveaxis(bands, -1, 0))
