"""Class strokes ("doodles"): painting them interactively, reading them from files.

A sparse stroke raster is (H, W) uint8 (uint16 above 254 classes) at the image's full
resolution: 0 = no stroke, k = class k (1-based, ``class_names[k - 1]``).
"""

from dltools.doodle.painter import paint_strokes
from dltools.doodle.readers import read_doodles, sparse_dtype

__all__ = ["paint_strokes", "read_doodles", "sparse_dtype"]
