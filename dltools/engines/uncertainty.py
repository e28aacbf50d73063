"""Where to paint next: how unsure class posteriors are, and the windows that most need strokes.

Posteriors are ``(h, w, K)`` float (CRF posteriors of step 2, tile or network probabilities of
steps 6 and 8), rows summing to 1, all-zero rows for nodata. Uncertainty lies in [0, 1]:
``margin`` is 1 minus the gap between the two largest posteriors (1: a tie), ``entropy`` is
the entropy divided by log K (1: all classes equally likely).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dltools.raster.windows import Window, core_slices, edge_aligned_origins

MEASURES = ("margin", "entropy")
WINDOW = 512  # side in image pixels of the windows ranked by "where to paint next"
DOUBT = 0.5  # pixels at least this uncertain name the classes in doubt of their window


def uncertainty_map(posteriors: np.ndarray, measure: str = "margin") -> np.ndarray:
    """(h, w) float32 uncertainty of (h, w, K) ``posteriors``; NaN where all are 0 (nodata)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown uncertainty measure {measure!r}; one of {MEASURES}")
    p = np.asarray(posteriors, np.float32)
    valid = p.sum(axis=2) > 0
    if measure == "margin":
        top = np.sort(p, axis=2)[..., -2:] if p.shape[2] > 1 else np.concatenate([p * 0, p], 2)
        values = 1.0 - (top[..., 1] - top[..., 0])
    else:
        logs = np.log(np.where(p > 0, p, 1.0))
        values = -(p * logs).sum(axis=2) / np.log(max(p.shape[2], 2))
    return np.where(valid, np.clip(values, 0.0, 1.0), np.nan).astype(np.float32)


def upsample(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float values, NaN where unknown, bilinearly resized to ``shape`` (H, W) without
    letting unknown pixels pull their neighbours: the interpolation is normalised by the
    interpolated share of known pixels. Returns (H, W) float32 (0 far from any known pixel)."""
    size = (shape[1], shape[0])
    known = np.isfinite(values)
    filled = np.where(known, values, 0).astype(np.float32)
    filled = cv2.resize(filled, size, interpolation=cv2.INTER_LINEAR)
    weight = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    return filled / np.maximum(weight, 1e-6)


@dataclass(frozen=True)
class WindowScore:
    """One window of the full-size image (``row``, ``col``, ``height``, ``width`` in pixels),
    its mean uncertainty over valid pixels, and the (up to two) classes in doubt there
    (0-based)."""

    row: int
    col: int
    height: int
    width: int
    mean: float
    doubt: tuple[int, ...]


def scaled(span: slice, ratio: float) -> slice:
    """The pixels ``span`` (start and stop set) of an axis on a grid ``ratio`` times as fine
    (at least one pixel): where posteriors at another scale lie under them."""
    start = int(span.start * ratio)
    return slice(start, max(int(span.stop * ratio), start + 1))


class WindowTally:
    """Running sums over the windows of ``size`` px of an (H, W) image that arrives in blocks,
    to rank them (:meth:`ranked`) without holding the image: per window, the sum and count of
    its finite uncertainty, and the posterior sums (K,) of its pixels at least :data:`DOUBT`
    uncertain and of all its valid pixels. The windows' last row and column are aligned with
    the image's edges, so all are whole (one window per axis when the image is smaller).
    Tallies of disjoint blocks of one image add up (:meth:`merge`), e.g. from Dask workers.
    """

    def __init__(self, shape: tuple[int, int], n_classes: int, size: int = WINDOW):
        self.shape = (int(shape[0]), int(shape[1]))
        self.box = (min(size, self.shape[0]), min(size, self.shape[1]))
        self.rows = edge_aligned_origins(self.shape[0], self.box[0])
        self.cols = edge_aligned_origins(self.shape[1], self.box[1])
        n = len(self.rows) * len(self.cols)
        self.total = np.zeros(n)
        self.count = np.zeros(n, np.int64)
        self.doubtful = np.zeros((n, n_classes))
        self.doubtful_count = np.zeros(n, np.int64)
        self.valid = np.zeros((n, n_classes))

    def add(self, row: int, col: int, uncertainty: np.ndarray, posteriors: np.ndarray) -> None:
        """Add the block at (``row``, ``col``) of the image: (h, w) float ``uncertainty`` (NaN
        = nodata) and the (h', w', K) ``posteriors`` of the same block at any scale (a
        window's part of it is mapped by the ratio of the two shapes)."""
        height, width = uncertainty.shape
        small = uncertainty_map(posteriors)
        sy, sx = small.shape[0] / height, small.shape[1] / width
        for i, r in enumerate(self.rows):
            r0, r1 = max(r, row) - row, min(r + self.box[0], row + height) - row
            if r0 >= r1:
                continue
            for j, c in enumerate(self.cols):
                c0, c1 = max(c, col) - col, min(c + self.box[1], col + width) - col
                if c0 >= c1:
                    continue
                k = i * len(self.cols) + j
                part = uncertainty[r0:r1, c0:c1]
                finite = np.isfinite(part)
                self.total[k] += float(part[finite].sum(dtype=np.float64))
                self.count[k] += int(finite.sum())
                rows, cols = scaled(slice(r0, r1), sy), scaled(slice(c0, c1), sx)
                p, u = posteriors[rows, cols], small[rows, cols]
                doubtful = u >= DOUBT
                self.doubtful[k] += p[doubtful].sum(axis=0)
                self.doubtful_count[k] += int(doubtful.sum())
                self.valid[k] += p[np.isfinite(u)].sum(axis=0)

    def merge(self, other: WindowTally) -> None:
        """Add the sums of ``other``, a tally of other blocks of the same image."""
        for name in ("total", "count", "doubtful", "doubtful_count", "valid"):
            getattr(self, name).__iadd__(getattr(other, name))

    def ranked(self) -> list[WindowScore]:
        """The windows with any valid pixel, most uncertain first (ties: row-major order);
        the classes in doubt are the two with the largest mean posterior over the window's
        pixels at least :data:`DOUBT` uncertain (over all its pixels when there are none)."""
        scores = []
        for k in np.flatnonzero(self.count):
            row, col = self.rows[k // len(self.cols)], self.cols[k % len(self.cols)]
            mean = self.doubtful[k] if self.doubtful_count[k] else self.valid[k]
            doubt = tuple(int(c) for c in np.argsort(-mean, kind="stable")[:2] if mean[c] > 0)
            score = self.total[k] / self.count[k]
            scores.append(WindowScore(int(row), int(col), *self.box, float(score), doubt))
        return sorted(scores, key=lambda s: -s.mean)


def rank_windows(uncertainty: np.ndarray, posteriors: np.ndarray, size: int) -> list[WindowScore]:
    """Windows of ``size`` px over the (H, W) ``uncertainty`` (NaN = nodata), most uncertain
    first, with the classes in doubt named by the (h, w, K) ``posteriors`` of the image at any
    scale (see :class:`WindowTally`)."""
    tally = WindowTally(uncertainty.shape, posteriors.shape[2], size)
    tally.add(0, 0, uncertainty, posteriors)
    return tally.ranked()


def core_uncertainty(
    posteriors: np.ndarray,
    core: Window,
    outer: Window,
    valid: np.ndarray,
    measure: str,
    image_shape: tuple[int, int],
) -> tuple[np.ndarray, WindowTally]:
    """Uncertainty of the ``core`` of an ``outer`` window (see
    :func:`dltools.raster.windows.halo_windows`) of an image of (H, W) = ``image_shape``,
    whose (h', w', K) ``posteriors`` cover ``outer`` at any scale, for a window-by-window run.

    Returns the core's (h, w) float32 uncertainty (``measure``, upsampled; NaN where the
    (h, w) bool ``valid`` is False) and its :class:`WindowTally`; the tallies of the cores
    of an image :meth:`~WindowTally.merge` into the tally of the whole.
    """
    shape = (outer.height, outer.width)
    inner = core_slices(core, outer)
    values = upsample(uncertainty_map(posteriors, measure), shape)[inner]
    values[~valid] = np.nan
    rows = scaled(inner[0], posteriors.shape[0] / shape[0])
    cols = scaled(inner[1], posteriors.shape[1] / shape[1])
    tally = WindowTally(image_shape, posteriors.shape[2])
    tally.add(core.row_off, core.col_off, values, posteriors[rows, cols])
    return values, tally


def next_windows(
    posteriors: np.ndarray,
    valid: np.ndarray,
    measure: str = "margin",
) -> tuple[np.ndarray, list[WindowScore]]:
    """Where to paint next on an image whose (H, W) bool ``valid`` pixels have (h, w, K)
    ``posteriors`` (any scale): its (H, W) float32 uncertainty (``measure``, upsampled; NaN
    where not valid) and its windows of :data:`WINDOW` px, most uncertain first
    (:func:`rank_windows`)."""
    values = upsample(uncertainty_map(posteriors, measure), valid.shape)
    values[~valid] = np.nan
    return values, rank_windows(values, posteriors, WINDOW)
