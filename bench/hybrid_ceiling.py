"""The hybrid's ceiling (issue #17): step 6's refiners fed by a perfect tile classifier.

Each tile's class probabilities are the class shares of its labelled pixels, read from the
masks themselves, so nothing is trained but the per-image refiner. What a refiner scores here
bounds what steps 3-6 can reach at that tile size with any tile classifier: the raw tile map
(``tiles``: each tile's majority class) shows what the tile size itself loses, the refiner rows
what step 6 makes of perfect evidence (tiles under ``--prob`` of one class left unknown, as
step 6 does). Scores pool every labelled pixel of every image (nothing is held out: nothing is
learnt across images).

    python bench/hybrid_ceiling.py                          # Dubai, 48-px tiles, ~3 min
    python bench/hybrid_ceiling.py --tile 24 48 96 --fct 0.5
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np
from accuracy import Result, add_scores, cpu_seconds, load_dubai, load_stmarg, table

from dltools.engines.crf import working_shape
from dltools.engines.refine import REFINERS, refine
from dltools.engines.tiles import TileGrid, tile_grid, window_class_counts


def perfect_tiles(labels: np.ndarray, tile: int, n_classes: int) -> tuple[TileGrid, np.ndarray]:
    """(grid, (ny, nx, K) float32): each tile's class shares of its labelled pixels (``labels``
    (H, W), 0 = unlabelled, k = class k); NaN where a tile has none."""
    grid = tile_grid(*labels.shape, tile)
    counts = window_class_counts(labels, tile, grid.rows, grid.cols, n_classes)
    total = counts.sum(axis=2, keepdims=True)
    shares = np.where(total > 0, counts / np.maximum(total, 1), np.nan)
    return grid, shares.astype(np.float32)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        default="dubai",
        choices=["stmarg", "dubai"],
        help="shared data set whose masks make the tiles (default: %(default)s)",
    )
    parser.add_argument(
        "--tile", type=int, nargs="+", default=[48], help="tile sizes, px (default: 48)"
    )
    parser.add_argument(
        "--fct", type=float, default=0.25, help="working scale of the refiners (default: 0.25)"
    )
    parser.add_argument(
        "--prob",
        type=float,
        default=0.5,
        help="tiles whose largest class share is below this are unknown (default: 0.5)",
    )
    parser.add_argument(
        "--refiners",
        nargs="+",
        default=["mlp", "crf"],
        choices=REFINERS,
        help="step 6 refiners to score (default: mlp crf)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the per-image classifiers (default: 0)"
    )
    args = parser.parse_args(argv)
    data = load_dubai(1, False) if args.set == "dubai" else load_stmarg(1, False)
    k = len(data.classes)
    for tile in args.tile:
        results = {m: Result(np.zeros((k, k), np.int64)) for m in ("tiles", *args.refiners)}
        for item in data.items:
            shape = item.labels.shape
            grid, shares = perfect_tiles(item.labels, tile, k)
            majority = np.nan_to_num(shares, nan=0.0).argmax(axis=2).astype(np.uint8) + 1
            add_scores(results["tiles"], item.labels, grid.expand(majority, shape, shape))
            evidence = grid.expand(shares, working_shape(shape, args.fct), shape)
            evidence[~(np.nan_to_num(evidence).max(axis=2) >= args.prob)] = np.nan
            for method in args.refiners:
                start = cpu_seconds()
                class_map, _ = refine(item.image, evidence, method, args.fct, seed=args.seed)
                add_scores(results[method], item.labels, class_map.astype(np.int64) + 1)
                results[method].cpu += cpu_seconds() - start
        print(f"\n{args.set}, {tile}-px tiles from the masks, refiners at working scale {args.fct}")
        print(table(data, results, f"{os.getloadavg()[0]:.1f}"))


if __name__ == "__main__":
    main()
