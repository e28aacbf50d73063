"""Turning arrays into pictures for people: display RGB and class-colour overlays."""

from __future__ import annotations

import numpy as np

from dltools.errors import DltoolsError

OVERLAY_ALPHA = 0.5  # opacity of class colours drawn over an image


def to_display(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) image of any dtype -> (H, W, 3) uint8 RGB for the screen.

    The first three bands are shown (one band as grey); uint8 is kept as it is, anything else is
    stretched per band between its 0.5 and 99.5 percentiles (NaN ignored).
    """
    img = image[..., None] if image.ndim == 2 else image
    if img.ndim != 3 or img.shape[2] == 0:
        raise DltoolsError(f"cannot display an image of shape {image.shape}: expected (H, W[, C])")
    img = img[..., :3] if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    out = np.empty(img.shape, np.uint8)
    step = max(1, int(np.sqrt(img.shape[0] * img.shape[1] / 1e6)))  # percentiles from <= ~1e6 px
    for b in range(3):
        band = img[..., b].astype(np.float32)
        sample = band[::step, ::step]
        sample = sample[np.isfinite(sample)]
        lo, hi = np.percentile(sample, [0.5, 99.5]) if sample.size else (0.0, 1.0)
        stretched = (np.nan_to_num(band, nan=lo) - lo) * (255.0 / max(hi - lo, 1e-12))
        out[..., b] = np.clip(stretched, 0, 255).astype(np.uint8)
    return out


def overlay(
    rgb: np.ndarray, labels: np.ndarray, colors: np.ndarray, alpha: float = OVERLAY_ALPHA
) -> np.ndarray:
    """Blend class colours over an (h, w, 3) uint8 RGB image where ``labels`` (h, w) > 0.

    ``colors`` is (K, 3) uint8 RGB for classes 1..K. Returns a new (h, w, 3) uint8 array.
    """
    lut = np.vstack([np.zeros((1, 3), np.float32), colors.astype(np.float32)])
    painted = labels > 0
    out = rgb.copy()
    mixed = (1 - alpha) * rgb[painted].astype(np.float32) + alpha * lut[labels[painted]]
    out[painted] = np.round(mixed).astype(np.uint8)
    return out
