"""Pixels for networks: which bands of an image feed a model, in what range.

Every step that gives pixels to a CNN (tile library, tile segmentation, FCN) converts them here.
"""

from __future__ import annotations

import os

import numpy as np

from dltools.errors import DltoolsError


def rgb8(pixels: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    """(h, w, C) pixels -> (h, w, 3) uint8 RGB: grey is repeated, bands after the third dropped.

    Other dtypes than uint8 and 2-band images are a DltoolsError (the network takes 8-bit RGB).
    """
    if pixels.dtype != np.uint8:
        raise DltoolsError(
            f"{source} holds {pixels.dtype} pixels but the network takes 8-bit RGB: convert "
            "the image first (e.g. gdal_translate -ot Byte -scale)"
        )
    if pixels.shape[2] == 2:
        raise DltoolsError(f"{source} has 2 bands; the network takes 1 (grey) or 3+ (RGB)")
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]
