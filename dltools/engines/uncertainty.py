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

from dltools.raster.windows import edge_aligned_origins

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


def rank_windows(uncertainty: np.ndarray, posteriors: np.ndarray, size: int) -> list[WindowScore]:
    """Windows of ``size`` px (the last row and column aligned with the image's edges, so all
    are whole) over the (H, W) ``uncertainty`` (NaN = nodata), most uncertain first (ties:
    row-major order). ``posteriors`` (h, w, K), at any scale, name the classes in
    doubt: the two with the largest mean posterior over the window's pixels at least
    :data:`DOUBT` uncertain (over all its pixels when there are none)."""
    height, width = uncertainty.shape
    small = uncertainty_map(posteriors)
    sy, sx = small.shape[0] / height, small.shape[1] / width
    box_h, box_w = min(size, height), min(size, width)
    scores = []
    for row in edge_aligned_origins(height, box_h):
        for col in edge_aligned_origins(width, box_w):
            part = uncertainty[row : row + box_h, col : col + box_w]
            if not np.isfinite(part).any():
                continue
            rows = slice(int(row * sy), max(int((row + box_h) * sy), int(row * sy) + 1))
            cols = slice(int(col * sx), max(int((col + box_w) * sx), int(col * sx) + 1))
            p, u = posteriors[rows, cols], small[rows, cols]
            doubtful = u >= DOUBT
            chosen = p[doubtful] if doubtful.any() else p[np.isfinite(u)]
            mean = chosen.mean(axis=0) if len(chosen) else np.zeros(posteriors.shape[2])
            doubt = tuple(int(k) for k in np.argsort(-mean, kind="stable")[:2] if mean[k] > 0)
            score = float(np.nanmean(part))
            scores.append(WindowScore(int(row), int(col), box_h, box_w, score, doubt))
    return sorted(scores, key=lambda s: -s.mean)


def next_windows(
    posteriors: np.ndarray,
    valid: np.ndarray,
    measure: str = "margin",
    size: int = WINDOW,
) -> tuple[np.ndarray, list[WindowScore]]:
    """Where to paint next on an image whose (H, W) bool ``valid`` pixels have (h, w, K)
    ``posteriors`` (any scale): its (H, W) float32 uncertainty (``measure``, upsampled; NaN
    where not valid) and its windows of ``size`` px, most uncertain first (:func:`rank_windows`)."""
    values = upsample(uncertainty_map(posteriors, measure), valid.shape)
    values[~valid] = np.nan
    return values, rank_windows(values, posteriors, size)
