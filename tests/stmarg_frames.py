"""St Margaret's frames of ../shared with their hand labels, for the accuracy tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dltools.io.images import read_image


def read_frame(shared_dir: Path, number: str, shrink: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) uint8, labels (H, W) uint8: 0 unlabelled, 1 water, 2 sediment, 3 green),
    both ``shrink`` times smaller when asked (area and nearest-neighbour resampling)."""
    train = shared_dir / "data" / "stmarg" / "train"
    rgb = read_image(train / f"StMarg_{number}.jpg")
    labels = read_image(train / f"SCLS_StMarg{number}.tif")[..., 0].astype(np.uint8)
    if shrink > 1:
        size = (rgb.shape[1] // shrink, rgb.shape[0] // shrink)
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return rgb, labels
