"""Tile grids and purity: tiles of an image as NumPy arrays, for steps 3 and 6.

Label maps are ``(H, W)`` integer arrays, 0 = unlabelled, ``k`` = class ``k``; tile grids are
the regular grids of :class:`TileGrid`; per-tile values are ``(ny, nx, ...)`` arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dltools.raster.windows import edge_aligned_origins, window_origins

MAX_WIDTH = 255  # class widths are counted up to this many pixels (wider: counted here)


def window_class_counts(
    labels: np.ndarray, size: int, rows: np.ndarray, cols: np.ndarray, n_classes: int
) -> np.ndarray:
    """Pixels of each class in the ``size`` x ``size`` windows at ``rows`` x ``cols``.

    labels: (H, W) int, 0 = unlabelled, k = class k. Returns (len(rows), len(cols), n_classes)
    int64, channel ``k - 1`` counting class ``k`` (summed-area tables, one class at a time).
    """
    counts = np.empty((len(rows), len(cols), n_classes), np.int64)
    for k in range(1, n_classes + 1):
        table = np.zeros((labels.shape[0] + 1, labels.shape[1] + 1), np.int64)
        np.cumsum(np.cumsum(labels == k, axis=0), axis=1, out=table[1:, 1:])
        r0, c0 = rows[:, None], cols[None, :]
        counts[..., k - 1] = (
            table[r0 + size, c0 + size]
            - table[r0, c0 + size]
            - table[r0 + size, c0]
            + table[r0, c0]
        )
    return counts


def pure_windows(
    labels: np.ndarray,
    size: int,
    stride: int,
    min_purity: float | np.ndarray,
    n_classes: int,
) -> list[tuple[int, int, int, float]]:
    """``(row, col, label, purity)`` of the whole windows of ``labels`` that one class dominates.

    labels: (H, W) int, 0 = unlabelled, k = class k (1..n_classes). ``min_purity``: one
    threshold for every class, or (n_classes,) float, ``min_purity[k - 1]`` for class k
    (class-aware purity: thin classes such as roads never fill 90% of a window). A window is
    kept when some class covers more than its threshold of the ``size * size`` pixels; its
    label is the class that exceeds its threshold by the largest ratio (with one threshold:
    the commonest class), ``purity`` that class's share.
    """
    rows = window_origins(labels.shape[0], size, stride)
    cols = window_origins(labels.shape[1], size, stride)
    if not (rows.size and cols.size):
        return []
    counts = window_class_counts(labels, size, rows, cols, n_classes)
    share = counts / float(size * size)
    threshold = np.broadcast_to(np.asarray(min_purity, np.float64), (n_classes,))
    ratio = np.where(share > threshold, share / np.maximum(threshold, 1e-9), 0.0)
    best = ratio.argmax(axis=2)
    purity = np.take_along_axis(share, best[..., None], axis=2)[..., 0]
    keep_r, keep_c = np.nonzero(ratio.max(axis=2) > 0)
    return [
        (int(rows[i]), int(cols[j]), int(best[i, j]) + 1, float(purity[i, j]))
        for i, j in zip(keep_r, keep_c, strict=True)
    ]


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``size`` px whose top-left corners are ``rows`` x ``cols`` (1-D int arrays)."""

    size: int
    rows: np.ndarray
    cols: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)

    def index(self, samples: int, length: int, axis: int) -> np.ndarray:
        """(samples,) intp: the tile row (axis 0) or column (axis 1) holding the centre of each
        of ``samples`` equal cells along an image side of ``length`` pixels."""
        centres = (np.arange(samples) + 0.5) * (length / samples)
        return np.minimum(centres // self.size, self.shape[axis] - 1).astype(np.intp)

    def expand(self, values: np.ndarray, shape: tuple[int, int], image: tuple[int, int]):
        """Per-tile ``values`` (ny, nx, ...) on a grid of ``shape`` cells over an ``image``
        (H, W): each cell takes the value of the tile holding its centre."""
        rows = self.index(shape[0], image[0], 0)
        cols = self.index(shape[1], image[1], 1)
        return values[rows][:, cols]


def tile_grid(height: int, width: int, size: int) -> TileGrid:
    """The tiles covering an image: a regular grid plus, where a side is not a multiple of
    ``size``, a last row/column aligned with the edge (an image smaller than a tile has one)."""
    return TileGrid(size, edge_aligned_origins(height, size), edge_aligned_origins(width, size))


def decimated(shape: tuple[int, int], decim: int) -> np.ndarray:
    """(ny, nx) bool: every ``decim``-th tile of each row, each row shifted by about
    sqrt(decim) tiles, so the chosen tiles spread evenly over the image.

    (The original took every decim-th tile in row-major order, which leaves whole columns
    unclassified when the row length is a multiple of decim.)
    """
    shift = max(1, round(np.sqrt(decim)))
    rows, cols = np.indices(shape)
    return (cols + rows * shift) % decim == 0


def tile_classes(probabilities: np.ndarray, prob_thres: float) -> np.ndarray:
    """(ny, nx) uint8: class + 1 of the tiles whose top probability reaches ``prob_thres``."""
    top = np.nan_to_num(probabilities, nan=-1.0)
    return np.where(top.max(axis=2) >= prob_thres, top.argmax(axis=2) + 1, 0).astype(np.uint8)


def fill_unclassified(probabilities: np.ndarray) -> np.ndarray:
    """``probabilities`` (ny, nx, K) with each unclassified (NaN) tile given its nearest tile's."""
    missing = ~np.isfinite(probabilities).all(axis=2)
    if not missing.any() or missing.all():
        return probabilities
    nearest = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
    return probabilities[nearest[0], nearest[1]]


def width_histogram(labels: np.ndarray, n_classes: int, max_width: int = MAX_WIDTH) -> np.ndarray:
    """How wide each class is around its pixels, as counts of pixels per width.

    labels: (H, W) int, 0 = unlabelled, k = class k. The width at a pixel of class k is twice
    its distance to the nearest pixel of any other value (unlabelled included; the edge of the
    array is no boundary), in whole pixels, capped at ``max_width``. Returns
    (n_classes, max_width + 1) int64: row ``k - 1`` counts class k's pixels by width.
    """
    counts = np.zeros((n_classes, max_width + 1), np.int64)
    for k in range(1, n_classes + 1):
        inside = labels == k
        if inside.all():  # no boundary in sight: as wide as counted
            counts[k - 1, max_width] = inside.size
        elif inside.any():
            width = 2 * ndimage.distance_transform_edt(inside)[inside]
            counts[k - 1] = np.bincount(
                np.minimum(width, max_width).astype(np.intp), minlength=max_width + 1
            )
    return counts


def median_widths(histogram: np.ndarray) -> np.ndarray:
    """(K,) float64 median width of each class of a (K, max_width + 1) :func:`width_histogram`
    (summed over images if need be); NaN for a class without pixels."""
    totals = histogram.sum(axis=1)
    cumulative = histogram.cumsum(axis=1)
    medians = (cumulative >= (totals[:, None] + 1) / 2).argmax(axis=1).astype(np.float64)
    return np.where(totals > 0, medians, np.nan)
