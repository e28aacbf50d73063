"""Tile libraries on disk: ``<library>/<class>/<image>_<row>_<col>.jpg`` and a ``tiles.csv``.

Written by ``dltools retile`` (step 3) and read by the tile classifier (steps 4-5).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dltools.errors import DltoolsError
from dltools.io.images import is_image_file, read_image
from dltools.raster.bands import RGB8, BandChoice, rgb8

MANIFEST = "tiles.csv"
BANDS = "bands.json"  # how the library's images became its 8-bit RGB tiles
JPEG_QUALITY = 95  # as dltools.io.images.write_image


@dataclass(frozen=True)
class Tile:
    """One kept window: top-left pixel ``(row, col)`` of ``image``; ``label`` is 1-based."""

    image: Path
    row: int
    col: int
    label: int
    purity: float

    def name(self) -> str:
        """The tile's file name: ``<image stem>_<row>_<col>.jpg``."""
        return f"{self.image.stem}_{self.row}_{self.col}.jpg"


def source_image(tile_name: str) -> str:
    """The stem of the image a tile was cut from, ``<image stem>`` of a name made by
    :meth:`Tile.name`; a name of another form is its own source."""
    match = re.fullmatch(r"(.+)_\d+_\d+\.[^.]+", tile_name)
    return match.group(1) if match else tile_name


def write_tile(path: Path, rgb: np.ndarray) -> None:
    """Encode a (h, w, 3) uint8 tile as JPG; 4x faster than write_image for thousands of tiles.

    No per-file atomic rename: the whole library folder is renamed into place at the end.
    """
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.write_bytes(data.tobytes())


def write_manifest(path: Path, tiles: Sequence[Tile], names: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tile", "image", "row", "col", "class", "purity"])
        for t in tiles:
            name = names[t.label - 1]
            out.writerow(
                [f"{name}/{t.name()}", t.image.name, t.row, t.col, name, f"{t.purity:.4f}"]
            )


def write_band_choice(library: Path, choice: BandChoice) -> None:
    """Record in the library folder which bands of its images (and what stretch) made its tiles."""
    (library / BANDS).write_text(json.dumps(choice.to_dict(), indent=1) + "\n")


def read_band_choice(library: str | os.PathLike) -> BandChoice:
    """The :class:`BandChoice` of a tile library (libraries made before it was recorded:
    bands 1,2,3 of 3-band 8-bit images)."""
    path = Path(library) / BANDS
    if not path.is_file():
        return RGB8
    try:
        return BandChoice.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise DltoolsError(f"{path}: not a band record written by retile ({err})") from None


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``tiles.csv`` as dicts (tile, image, row, col, class, purity)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def list_tile_classes(tile_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """``{class name: sorted tile images}`` for each subfolder of a tile library, sorted by name.

    Empty class folders (no image files) are a DltoolsError naming them.
    """
    tile_dir = Path(tile_dir)
    if not tile_dir.is_dir():
        raise DltoolsError(f"{tile_dir}: tile folder not found")
    classes = {
        p.name: sorted(f for f in p.iterdir() if f.is_file() and is_image_file(f))
        for p in sorted(tile_dir.iterdir())
        if p.is_dir() and not p.name.startswith(".")
    }
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise DltoolsError(
            f"{tile_dir}: class folder(s) without any image: {', '.join(empty)}; "
            "add tiles or remove the folder(s)"
        )
    if not classes:
        raise DltoolsError(f"{tile_dir}: no class folders (expected {tile_dir}/<class>/*.jpg)")
    return classes


def read_tiles(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """(N, h, w, 3) uint8 tiles from image files (h, w of the first; others are resized to it).

    Grey tiles are repeated to RGB and bands after the third dropped. An unreadable or
    non-8-bit file is a DltoolsError naming it.
    """
    tiles = []
    for path in paths:
        pixels = rgb8(read_image(path), path)
        if tiles and pixels.shape != tiles[0].shape:
            height, width = tiles[0].shape[:2]
            pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
        tiles.append(pixels)
    if not tiles:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(tiles)


def sample_per_class(
    classes: dict[str, list[Path]], n: int, seed: int = 0
) -> dict[str, list[Path]]:
    """``n`` random tiles of each class (all of a class that has fewer), in name order.

    Deterministic for a seed: classes draw in sorted order, each from its sorted tiles.
    """
    if n < 1:
        raise DltoolsError(f"the number of tiles per class must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    chosen = {}
    for name in sorted(classes):
        files = sorted(classes[name])
        picks = rng.choice(len(files), size=min(n, len(files)), replace=False)
        chosen[name] = [files[i] for i in np.sort(picks)]
    return chosen
