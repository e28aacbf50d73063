"""What a saved tile model records about itself, read without importing TensorFlow.

A SavedModel folder written by :func:`dltools.models.loader.save_model` holds ``dltools.json``:
class names, input size, the side of the training tiles, module and the
:class:`~dltools.raster.bands.BandChoice`. Reading it alone lets a step check its inputs against
the model before the slow TensorFlow import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dltools.errors import DltoolsError
from dltools.raster.bands import BandChoice

METADATA = "dltools.json"  # inside a SavedModel folder: class names, sizes, module, bands
TILE = 96  # the tile side of models that do not record theirs (dl_tools' default)


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``dltools.json`` of a SavedModel folder; ``{}`` for ``.keras`` / ``.pb`` files and
    older folders. A missing model is a DltoolsError."""
    path = Path(path)
    if not path.exists():
        raise DltoolsError(f"{path}: model not found")
    meta_file = path / METADATA
    if not meta_file.is_file():
        return {}
    try:
        return json.loads(meta_file.read_text())
    except ValueError as err:
        raise DltoolsError(f"{meta_file}: not readable ({err})") from None


def model_tile_size(path: str | os.PathLike) -> int:
    """The side in pixels of the tiles the model at ``path`` was trained on (recorded by
    ``retrain`` since 5 December 2026), else :data:`TILE`."""
    return int(read_metadata(path).get("tile_size") or TILE)


def model_bands(path: str | os.PathLike) -> BandChoice:
    """Which bands of an image feed the model at ``path`` (see :func:`read_metadata`)."""
    return BandChoice.from_dict(read_metadata(path).get("bands"))
