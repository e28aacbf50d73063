"""bench/hybrid_ceiling.py: a perfect tile classifier's evidence, read from the masks (#17)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def ceiling():
    sys.path.insert(0, str(BENCH))  # it imports the loaders and scores of bench/accuracy.py
    try:
        spec = importlib.util.spec_from_file_location("bench_ceiling", BENCH / "hybrid_ceiling.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_each_tile_gets_the_class_shares_of_its_labelled_pixels(ceiling):
    labels = np.zeros((96, 144), np.uint8)  # 0 = unlabelled; 2 x 3 tiles of 48 px
    labels[:48, :48] = 1  # pure class 1
    labels[:48, 48:72] = 2  # half class 2, half unlabelled: all its labelled pixels are 2
    labels[48:, 48:] = 1
    labels[48:60, 48:96] = 3  # a quarter class 3
    labels[:, 96:] = 0  # no labelled pixel at all

    grid, shares = ceiling.perfect_tiles(labels, 48, 3)

    assert shares.shape == (2, 3, 3) and shares.dtype == np.float32
    np.testing.assert_allclose(shares[0, 0], [1, 0, 0])
    np.testing.assert_allclose(shares[0, 1], [0, 1, 0])
    np.testing.assert_allclose(shares[1, 1], [0.75, 0, 0.25])
    assert np.isnan(shares[1, 0]).all() and np.isnan(shares[:, 2]).all()
    assert grid.size == 48 and list(grid.rows) == [0, 48] and list(grid.cols) == [0, 48, 96]
