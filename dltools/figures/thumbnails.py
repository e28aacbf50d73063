"""Figure-sized thumbnails of whole-image arrays, made window by window.

A raster processed in windows is never whole in memory; its figure is drawn from
thumbnails of at most :data:`~dltools.figures.panels.MAX_FIGURE_PIXELS` a side, to which
each window contributes its :data:`Piece`.
"""

from __future__ import annotations

import cv2
import numpy as np
from rasterio.windows import Window

from dltools.figures.panels import MAX_FIGURE_PIXELS


class Thumbnails:
    """Figure-sized copies of whole-image arrays, pasted together window by window."""

    def __init__(self, shape: tuple[int, int]):
        self.factor = min(1.0, MAX_FIGURE_PIXELS / max(shape))
        self.size = (max(1, round(shape[0] * self.factor)), max(1, round(shape[1] * self.factor)))
        self.arrays: dict[str, np.ndarray] = {}

    def paste(self, name: str, piece: Piece | None) -> None:
        """Paste a :func:`thumbnail_piece` (None: nothing to paste) into thumbnail ``name``."""
        if piece is None:
            return
        (r0, r1, c0, c1), small = piece
        if name not in self.arrays:
            self.arrays[name] = np.zeros((*self.size, *small.shape[2:]), small.dtype)
        self.arrays[name][r0:r1, c0:c1] = small


Piece = tuple[tuple[int, int, int, int], np.ndarray]  # (r0, r1, c0, c1) in a thumbnail, pixels


def thumbnail_piece(factor: float, core: Window, array: np.ndarray, labels: bool) -> Piece | None:
    """The part of a thumbnail at scale ``factor`` that the ``core`` window's ``array`` (its
    pixels, (h, w[, C])) makes: nearest-neighbour for ``labels``, area averages otherwise."""
    r0, r1 = round(core.row_off * factor), round((core.row_off + core.height) * factor)
    c0, c1 = round(core.col_off * factor), round((core.col_off + core.width) * factor)
    if r1 <= r0 or c1 <= c0:
        return None
    method = cv2.INTER_NEAREST if labels else cv2.INTER_AREA
    small = cv2.resize(array, (c1 - c0, r1 - r0), interpolation=method)
    return (r0, r1, c0, c1), small.reshape(r1 - r0, c1 - c0, *array.shape[2:])
