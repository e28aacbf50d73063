"""A raster shrunk by a whole factor, exactly and window by window: sums over square cells.

A window whose offsets are multiples of the cell adds its cells' sums to the shrunk raster
at its offsets divided by the cell, so a raster of any size shrinks in bounded memory.
"""

from __future__ import annotations

import numpy as np


def cell_sums(values: np.ndarray, cell: int) -> np.ndarray:
    """Sums over ``cell`` x ``cell`` blocks of ``values`` (h, w[, C]), any dtype.

    Returns (ceil(h / cell), ceil(w / cell)[, C]) float64; the cells of the last row and
    column are partial when ``cell`` does not divide h or w.
    """
    rows = np.arange(0, values.shape[0], cell)
    cols = np.arange(0, values.shape[1], cell)
    by_rows = np.add.reduceat(values.astype(np.float64), rows, axis=0)
    return np.add.reduceat(by_rows, cols, axis=1)
