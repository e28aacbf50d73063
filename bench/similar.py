"""Benchmark ``dltools similar`` on a large feature set: exact search against the faiss index.

A synthetic feature set of ``--count`` unit vectors of ``--dimensions`` (clustered like tile
features: ``--clusters`` centres plus noise) is written as a memory-mapped ``.npy``, as
``dltools features`` writes it. Then, in this process:

1. exact search (:func:`dltools.pipeline.features.nearest` without an index, in chunks over the
   memory map) for ``--queries`` queries;
2. :func:`~dltools.pipeline.features.build_index` (time and file size);
3. the same queries through the index (candidates scored exactly).

Prints seconds per query for both, their ratio, the index's recall at 10 against exact search
(the share of the exact 10 nearest it returns), and the sizes on disk.

    python bench/similar.py                          # 2,000,000 x 256 (see bench/README.md)
    python bench/similar.py --count 200000 --queries 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from dltools.pipeline.features import build_index, nearest

BLOCK = 100_000  # vectors generated at a time


def write_vectors(path: Path, count: int, dimensions: int, clusters: int, seed: int) -> np.ndarray:
    """A (count, dimensions) float32 memory map of unit vectors near ``clusters`` centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dimensions))
    vectors = np.lib.format.open_memmap(path, "w+", np.float32, (count, dimensions))
    for start in range(0, count, BLOCK):
        n = min(BLOCK, count - start)
        block = centres[rng.integers(0, clusters, n)] + rng.normal(scale=0.5, size=(n, dimensions))
        vectors[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    vectors.flush()
    return np.load(path, mmap_mode="r")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2_000_000, help="vectors in the set")
    parser.add_argument("--dimensions", type=int, default=256, help="length of each vector")
    parser.add_argument("--clusters", type=int, default=2000, help="centres they lie around")
    parser.add_argument("--queries", type=int, default=50, help="queries timed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import faiss

    with tempfile.TemporaryDirectory(prefix="dltools-bench-similar-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        vectors = write_vectors(
            folder / "set.npy", args.count, args.dimensions, args.clusters, args.seed
        )
        print(f"{args.count:,} x {args.dimensions} vectors written in "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        rows = np.random.default_rng(args.seed + 1).choice(args.count, args.queries, False)
        start = time.perf_counter()
        exact = [nearest(vectors, vectors[row], 10, exclude=int(row))[0] for row in rows]
        exact_seconds = (time.perf_counter() - start) / args.queries
        start = time.perf_counter()
        build_index(vectors, folder / "set.faiss", args.seed)
        build_seconds = time.perf_counter() - start
        index = faiss.read_index(str(folder / "set.faiss"))
        start = time.perf_counter()
        found = [nearest(vectors, vectors[r], 10, exclude=int(r), index=index)[0] for r in rows]
        index_seconds = (time.perf_counter() - start) / args.queries
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found, strict=True)])
        sizes = {name: (folder / name).stat().st_size / 2**20 for name in ("set.npy", "set.faiss")}
    print(f"exact search: {exact_seconds:.3f} s per query")
    print(f"index: built in {build_seconds:.0f} s, {index_seconds:.4f} s per query "
          f"({exact_seconds / index_seconds:.0f}x faster), recall at 10 {recall:.3f}")  # fmt: skip
    print(f"on disk: vectors {sizes['set.npy']:,.0f} MB, index {sizes['set.faiss']:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
